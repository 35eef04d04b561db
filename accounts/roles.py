"""Workspace and account roles as the API addresses them: by id, built-in or custom.

Built-in roles come from the permission table (stable ids derived from their keys); custom workspace
roles are rows of ``CustomRole`` in one account. A custom role's effective scopes are the closure of
its own scopes plus everything its inherited built-in role holds today.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from accounts.models import CustomRole
from accounts.permissions import (
    ACCOUNT_ROLE_PERMISSIONS,
    WORKSPACE_ROLE_DESCRIPTIONS,
    WORKSPACE_ROLE_SCOPES,
    AccountRole,
    WorkspaceRole,
    builtin_account_role_id,
    builtin_workspace_role_id,
    expand_scopes,
)
from core.ids import as_uuid

BUILTIN_WORKSPACE_ROLE_BY_ID: dict[uuid.UUID, WorkspaceRole] = {
    builtin_workspace_role_id(role.value): role for role in WorkspaceRole
}
BUILTIN_ACCOUNT_ROLE_BY_ID: dict[uuid.UUID, AccountRole] = {
    builtin_account_role_id(role.value): role for role in AccountRole
}


@dataclass(frozen=True)
class ResolvedRole:
    """A workspace role as a grant holds it: a built-in key or a custom role."""

    builtin: str = ""
    custom: CustomRole | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.custom.id if self.custom is not None else builtin_workspace_role_id(self.builtin)

    @property
    def name(self) -> str:
        return self.custom.name if self.custom is not None else WorkspaceRole(self.builtin).label

    @property
    def key(self) -> str:
        """What ``WorkspaceAccess.roles`` lists: a built-in key, or the custom role's name."""
        return self.custom.name if self.custom is not None else self.builtin

    @property
    def scopes(self) -> frozenset[str]:
        if self.custom is not None:
            return custom_role_scopes(self.custom)
        return WORKSPACE_ROLE_SCOPES[self.builtin]

    def as_fields(self) -> dict:
        """The model fields that hold this role (``role`` and ``custom_role``)."""
        return {"role": self.builtin, "custom_role": self.custom}


def custom_role_scopes(role: CustomRole) -> frozenset[str]:
    own = expand_scopes(role.scopes or ())
    if role.inherited_role:
        return own | WORKSPACE_ROLE_SCOPES[role.inherited_role]
    return own


def role_of(row) -> ResolvedRole:
    """The role a grant (or default-role row) holds."""
    if row.custom_role_id is not None:
        return ResolvedRole(custom=row.custom_role)
    return ResolvedRole(builtin=row.role)


def workspace_role_resolve(role_id, *, account) -> ResolvedRole | None:
    """The built-in role with that id, or the custom role of ``account`` with that id; None when
    there is none (a custom role of another account is none)."""
    role_id = as_uuid(role_id)
    if role_id is None:
        return None
    builtin = BUILTIN_WORKSPACE_ROLE_BY_ID.get(role_id)
    if builtin is not None:
        return ResolvedRole(builtin=builtin.value)
    custom = CustomRole.objects.filter(account=account, pk=role_id).first()
    return ResolvedRole(custom=custom) if custom is not None else None


def account_role_resolve(role_id) -> AccountRole | None:
    return BUILTIN_ACCOUNT_ROLE_BY_ID.get(as_uuid(role_id))


def builtin_workspace_role_wire(role: WorkspaceRole) -> dict:
    return {
        "id": str(builtin_workspace_role_id(role.value)),
        "created": None,
        "updated": None,
        "name": role.label,
        "description": str(WORKSPACE_ROLE_DESCRIPTIONS[role]),
        "scopes": sorted(WORKSPACE_ROLE_SCOPES[role.value]),
        "permissions": sorted(WORKSPACE_ROLE_SCOPES[role.value]),
        "account_id": None,
        "inherited_role_id": None,
        "is_system_role": True,
    }


def custom_role_wire(role: CustomRole) -> dict:
    inherited = role.inherited_role or None
    return {
        "id": str(role.id),
        "created": role.created.isoformat(),
        "updated": role.updated.isoformat(),
        "name": role.name,
        "description": role.description,
        "scopes": sorted(role.scopes or ()),
        "permissions": sorted(custom_role_scopes(role)),
        "account_id": str(role.account_id),
        "inherited_role_id": str(builtin_workspace_role_id(inherited)) if inherited else None,
        "is_system_role": False,
    }


def account_role_wire(role: AccountRole) -> dict:
    return {
        "id": str(builtin_account_role_id(role.value)),
        "created": None,
        "updated": None,
        "name": role.label,
        "permissions": sorted(ACCOUNT_ROLE_PERMISSIONS[role]),
        "account_id": None,
        "is_system_role": True,
    }
