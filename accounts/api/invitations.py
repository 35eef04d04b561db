"""``invitations/…`` and ``/api/invitations/<id>/accept``."""

from __future__ import annotations

from typing import Annotated, Any

from django.utils import timezone
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import rbac, throttles
from accounts.api.base import AccountApi, ApiMixin, Body, BodyUUID, checked, iso, paged, parse_body, path_id
from accounts.api.memberships import membership_wire
from accounts.models import Invitation, User
from accounts.permissions import builtin_account_role_id
from accounts.selectors import invitation_get, invitation_list
from audit.context import client_ip
from core.errors import NotFound


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


class InvitationGrant(Body):
    workspace_id: Any = None  # a path-like id: an unknown one answers 404
    workspace_role_id: BodyUUID = None


class InvitationCreate(Body):
    email: Any = None
    account_role_id: BodyUUID = None
    workspace_grants: Annotated[
        Any,
        checked(
            lambda value: not value or (isinstance(value, list) and all(isinstance(e, dict) for e in value)),
            "workspace_grants must be a list of objects.",
            "invalid_grants",
        ),
    ] = None


class InvitationsApi(AccountApi):
    required_permissions = {"POST": "create:invitation"}

    def post(self, request, **kwargs):
        body = self.parse(InvitationCreate)
        grants = []
        for entry in body.workspace_grants or []:
            grant = parse_body(InvitationGrant, entry)
            grants.append(
                (self._workspace(grant.workspace_id), self._workspace_role(grant.workspace_role_id))
            )
        invitation, token = rbac.invitation_create(
            account=self.account,
            email=body.email or "",
            account_role=self._account_role(body.account_role_id),
            workspace_grants=grants,
            actor=request.user,
        )
        return Response([invitation_wire(invitation, token=token)], status=201)


class InvitationsFilterApi(AccountApi):
    required_permissions = {"POST": "read:invitation"}

    def post(self, request, **kwargs):
        body = self.body()
        return Response([invitation_wire(i) for i in paged(body, invitation_list(account=self.account))])


class _InvitationLookup:
    def _invitation(self, invitation_id) -> Invitation:
        invitation = invitation_get(account=self.account, invitation_id=path_id(invitation_id, "Invitation"))
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


class InvitationAcceptance(Body):
    token: Any = None
    password: Any = None
    first_name: Any = None
    last_name: Any = None


class InvitationAcceptApi(ApiMixin, APIView):
    """``POST /api/invitations/<id>/accept`` with ``{"token": …}``: by the invited person signed in
    (a key or a session of the invited email), or, for someone new, without credentials and with
    ``{"token", "password", "first_name"?, "last_name"?}``, which creates their user."""

    permission_classes = []

    def post(self, request, invitation_id):
        body = self.parse(InvitationAcceptance)
        token = str(body.token or "")
        user = request.user
        # A wrong token is a failure at a throttled door (per address and per invitation).
        with throttles.attempt(
            throttles.Door.INVITATION, address=client_ip(request), subject=str(invitation_id)
        ):
            if user is None or not getattr(user, "is_authenticated", False):
                if not isinstance(body.password, str) or not body.password:
                    raise drf_exceptions.NotAuthenticated()
                membership = rbac.invitation_accept_new_user(
                    invitation_id=invitation_id,
                    token=token,
                    password=body.password,
                    first_name=str(body.first_name or ""),
                    last_name=str(body.last_name or ""),
                )
            elif isinstance(user, User):
                membership = rbac.invitation_accept(invitation_id=invitation_id, token=token, user=user)
            else:
                raise NotFound("Invitation not found.")
        return Response(membership_wire(membership), status=201)
