"""``account_memberships/…``: the people of the account and their account role."""

from __future__ import annotations

from rest_framework.response import Response

from accounts.api.base import AccountApi, Body, BodyUUID, any_filter, iso, paged, path_id
from accounts.models import AccountMembership, User
from accounts.permissions import AccountRole, builtin_account_role_id
from accounts.selectors import membership_get, membership_list, membership_scim_managed
from accounts.services import membership_change_role, membership_remove
from core.errors import NotFound, Unprocessable


def handle_of(user: User) -> str:
    return user.email.split("@", 1)[0]


def membership_wire(membership: AccountMembership) -> dict:
    user = membership.user
    role = AccountRole(membership.role)
    return {
        "id": str(membership.id),
        "created": iso(membership.created),
        "updated": iso(membership.updated),
        "actor_id": str(user.id),
        "account_id": str(membership.account_id),
        "user_id": str(user.id),
        "first_name": user.first_name,
        "last_name": user.last_name,
        "handle": handle_of(user),
        "email": user.email,
        "account_role_id": str(builtin_account_role_id(role.value)),
        "account_role_name": role.label,
        "last_login": iso(user.last_login),
        "active": user.is_active,
        # Provisioned by the account's identity provider over SCIM (changed there, not here).
        "managed_by": "scim" if membership_scim_managed(membership) else None,
    }


class MembershipsFilterApi(AccountApi):
    required_permissions = {"POST": "read:account_membership"}

    def post(self, request, **kwargs):
        body = self.body()
        emails = any_filter(body, "account_memberships", "email")
        if body.get("only_bots"):
            return Response([])
        memberships = membership_list(account=self.account, emails=emails)
        return Response([membership_wire(m) for m in paged(body, memberships)])


class MembershipChange(Body):
    account_role_id: BodyUUID = None


class MembershipApi(AccountApi):
    required_permissions = {
        "GET": "read:account_membership",
        "PATCH": "update:account_membership",
        "DELETE": "delete:account_membership",
    }

    def _membership(self, membership_id) -> AccountMembership:
        membership = membership_get(account=self.account, membership_id=path_id(membership_id, "Membership"))
        if membership is None:
            raise NotFound("Membership not found.")
        return membership

    def get(self, request, membership_id, **kwargs):
        return Response(membership_wire(self._membership(membership_id)))

    def patch(self, request, membership_id, **kwargs):
        membership = self._membership(membership_id)
        body = self.parse(MembershipChange)
        if "account_role_id" not in body.model_fields_set:
            raise Unprocessable("account_role_id is required.", code="missing_field")
        membership_change_role(
            membership=membership, role=self._account_role(body.account_role_id), actor=request.user
        )
        return Response(status=204)

    def delete(self, request, membership_id, **kwargs):
        membership_remove(membership=self._membership(membership_id), actor=request.user)
        return Response(status=204)
