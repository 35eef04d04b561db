"""``invitations/…`` and ``/api/invitations/<id>/accept``."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import rbac
from accounts.api.base import AccountApi, ApiMixin, iso, paged, path_id
from accounts.api.memberships import membership_wire
from accounts.models import (
    Invitation,
    User,
)
from accounts.permissions import builtin_account_role_id
from core.errors import NotFound, Unprocessable


def invitation_wire(invitation: Invitation, *, token: str | None = None) -> dict:
    status = invitation.status
    if status == Invitation.Status.PENDING and invitation.expires_at <= timezone.now():
        status = "EXPIRED"
    data = {
        "id": str(invitation.id),
        "created": iso(invitation.created),
        "updated": iso(invitation.updated),
        "email": invitation.email,
        "account_id": str(invitation.account_id),
        "account_role_id": str(builtin_account_role_id(invitation.account_role)),
        "workspace_grants": invitation.workspace_grants,
        "status": status,
        "expiration": iso(invitation.expires_at),
    }
    if token is not None:
        data["token"] = token
        data["accept_path"] = f"/api/invitations/{invitation.id}/accept"
    return data


class InvitationsApi(AccountApi):
    required_permissions = {"POST": "create:invitation"}

    def post(self, request, **kwargs):
        body = self.body()
        grants = []
        for entry in body.get("workspace_grants") or []:
            if not isinstance(entry, dict):
                raise Unprocessable("workspace_grants must be a list of objects.", code="invalid_grants")
            grants.append(
                (
                    self._workspace(entry.get("workspace_id")),
                    self._workspace_role(entry.get("workspace_role_id")),
                )
            )
        invitation, token = rbac.invitation_create(
            account=self.account,
            email=body.get("email") or "",
            account_role=self._account_role(body),
            workspace_grants=grants,
            actor=request.user,
        )
        return Response([invitation_wire(invitation, token=token)], status=201)


class InvitationsFilterApi(AccountApi):
    required_permissions = {"POST": "read:invitation"}

    def post(self, request, **kwargs):
        body = self.body()
        invitations = Invitation.objects.filter(account=self.account).order_by("-created")
        return Response([invitation_wire(i) for i in paged(body, invitations)])


class _InvitationLookup:
    def _invitation(self, invitation_id) -> Invitation:
        invitation = Invitation.objects.filter(
            account=self.account, pk=path_id(invitation_id, "Invitation")
        ).first()
        if invitation is None:
            raise NotFound("Invitation not found.")
        return invitation


class InvitationApi(_InvitationLookup, AccountApi):
    required_permissions = {"GET": "read:invitation"}

    def get(self, request, invitation_id, **kwargs):
        return Response(invitation_wire(self._invitation(invitation_id)))


class InvitationRevokeApi(_InvitationLookup, AccountApi):
    required_permissions = {"POST": "update:invitation"}

    def post(self, request, invitation_id, **kwargs):
        invitation = rbac.invitation_revoke(invitation=self._invitation(invitation_id), actor=request.user)
        return Response(invitation_wire(invitation))


class InvitationAcceptApi(ApiMixin, APIView):
    """``POST /api/invitations/<id>/accept`` with ``{"token": …}``: by the invited person signed in
    (a key or a session of the invited email), or, for someone new, without credentials and with
    ``{"token", "password", "first_name"?, "last_name"?}``, which creates their user."""

    permission_classes = []

    def post(self, request, invitation_id):
        body = self.body()
        token = str(body.get("token") or "")
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            password = body.get("password")
            if not isinstance(password, str) or not password:
                raise drf_exceptions.NotAuthenticated()
            membership = rbac.invitation_accept_new_user(
                invitation_id=invitation_id,
                token=token,
                password=password,
                first_name=str(body.get("first_name") or ""),
                last_name=str(body.get("last_name") or ""),
            )
        elif isinstance(user, User):
            membership = rbac.invitation_accept(invitation_id=invitation_id, token=token, user=user)
        else:
            raise NotFound("Invitation not found.")
        return Response(membership_wire(membership), status=201)
