"""THE permissions table: scope vocabulary, implied scopes and built-in roles.

Names follow Prefect Cloud so its users (and its Terraform provider) feel at home:

* workspace scopes are ``see_*`` / ``write_*`` / ``run_*`` / ``manage_*``; a scope includes the
  scopes it implies (``manage_x`` ⊇ ``write_x`` ⊇ ``see_x``), and a role's effective set is the
  closure of what it lists;
* workspace roles: Viewer < Runner < Developer < Owner, plus Worker (what a worker needs to poll
  for and submit work, nothing more);
* account permissions are ``verb:noun`` (``create:workspace``, ``update:billing``); account roles
  Member < Admin < Owner. Account Owners and Admins act as workspace Owner in every workspace of
  their account.

Everything else asks this module; nothing else spells out a role's scopes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Literal

from django.db import models


@dataclass(frozen=True)
class Scope:
    name: str
    title: str
    includes: tuple[str, ...] = ()


def _chain(noun: str, title: str, verbs: Iterable[str] = ("see", "write", "manage")) -> list[Scope]:
    """``see_x``, then each stronger verb including the previous one."""
    scopes: list[Scope] = []
    previous: str | None = None
    labels = {"see": "View", "write": "Create and edit", "run": "Run", "manage": "Delete and manage"}
    for verb in verbs:
        name = f"{verb}_{noun}"
        scopes.append(Scope(name, f"{labels[verb]} {title}", (previous,) if previous else ()))
        previous = name
    return scopes


WORKSPACE_SCOPES: tuple[Scope, ...] = tuple(
    [
        *_chain("flows", "flows and flow runs", ("see", "run", "manage")),
        Scope("run_tasks", "Run tasks", ("see_flows",)),
        Scope("manage_saved_search", "Create, update and delete saved searches", ("see_flows",)),
        *_chain("deployments", "deployments", ("see", "run", "write", "manage")),
        *_chain("work_pools", "work pools"),
        *_chain("work_queues", "work queues"),
        *_chain("workers", "workers"),
        Scope("see_blocks", "View blocks"),
        Scope("see_secret_blocks", "View secret block data", ("see_blocks",)),
        Scope("manage_blocks", "Create, edit and delete blocks", ("see_secret_blocks",)),
        Scope("see_automations", "View automations"),
        Scope("manage_automations", "Create, edit and delete automations", ("see_automations",)),
        *_chain("notifications", "notifications"),
        Scope("see_concurrency_limits", "View concurrency limits"),
        Scope("manage_concurrency_limits", "Manage concurrency limits", ("see_concurrency_limits",)),
        *_chain("variables", "variables"),
        *_chain("artifacts", "artifacts"),
        *_chain("assets", "assets"),
        Scope("see_events", "View events"),
        Scope("manage_events", "Emit and manage events", ("see_events",)),
        Scope("see_event_publications", "View event publications"),
        Scope("manage_event_publications", "Manage event publications", ("see_event_publications",)),
        Scope("see_event_subscriptions", "View event subscriptions"),
        Scope("manage_event_subscriptions", "Manage event subscriptions", ("see_event_subscriptions",)),
        *_chain("incidents", "incidents"),
        Scope("see_tags", "View tags"),
        Scope("manage_tags", "Manage tags", ("see_tags",)),
        Scope("see_webhooks", "View webhooks"),
        Scope("manage_webhooks", "Create, edit and delete webhooks", ("see_webhooks",)),
        Scope("manage_acls", "Manage object-level access"),
        *_chain("workspace_settings", "workspace settings"),
        Scope("see_workspace_users", "View workspace users"),
        Scope("manage_workspace_users", "Add, remove and change workspace users", ("see_workspace_users",)),
        Scope("see_workspace_service_accounts", "View workspace service accounts"),
        Scope(
            "manage_workspace_service_accounts",
            "Add, remove and change workspace service accounts",
            ("see_workspace_service_accounts",),
        ),
        Scope("manage_workspace_teams", "Add, remove and change workspace teams", ("see_workspace_users",)),
    ]
)

SCOPES_BY_NAME: dict[str, Scope] = {scope.name: scope for scope in WORKSPACE_SCOPES}
assert len(SCOPES_BY_NAME) == len(WORKSPACE_SCOPES), "duplicate scope name"
for _scope in WORKSPACE_SCOPES:
    for _included in _scope.includes:
        assert _included in SCOPES_BY_NAME, f"{_scope.name} includes unknown scope {_included}"

WorkspaceScopeName = Literal[
    "see_flows", "run_flows", "manage_flows", "run_tasks", "manage_saved_search",
    "see_deployments", "run_deployments", "write_deployments", "manage_deployments",
    "see_work_pools", "write_work_pools", "manage_work_pools",
    "see_work_queues", "write_work_queues", "manage_work_queues",
    "see_workers", "write_workers", "manage_workers",
    "see_blocks", "see_secret_blocks", "manage_blocks",
    "see_automations", "manage_automations",
    "see_notifications", "write_notifications", "manage_notifications",
    "see_concurrency_limits", "manage_concurrency_limits",
    "see_variables", "write_variables", "manage_variables",
    "see_artifacts", "write_artifacts", "manage_artifacts",
    "see_assets", "write_assets", "manage_assets",
    "see_events", "manage_events", "see_event_publications", "manage_event_publications",
    "see_event_subscriptions", "manage_event_subscriptions",
    "see_incidents", "write_incidents", "manage_incidents",
    "see_tags", "manage_tags", "see_webhooks", "manage_webhooks", "manage_acls",
    "see_workspace_settings", "write_workspace_settings", "manage_workspace_settings",
    "see_workspace_users", "manage_workspace_users",
    "see_workspace_service_accounts", "manage_workspace_service_accounts", "manage_workspace_teams",
]  # fmt: skip


def expand_scopes(names: Iterable[str]) -> frozenset[str]:
    """The closure of ``names`` under "includes". Unknown names raise ``KeyError``."""
    result: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in result:
            continue
        result.add(name)
        stack.extend(SCOPES_BY_NAME[name].includes)
    return frozenset(result)


# --- Workspace roles --------------------------------------------------------------------------------


class WorkspaceRole(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    RUNNER = "runner", "Runner"
    DEVELOPER = "developer", "Developer"
    OWNER = "owner", "Owner"
    WORKER = "worker", "Worker"


_VIEWER = (
    "see_flows", "see_deployments", "see_work_pools", "see_work_queues", "see_workers", "see_blocks",
    "see_automations", "see_notifications", "see_concurrency_limits", "see_variables", "see_artifacts",
    "see_assets", "see_events", "see_tags", "see_incidents", "see_webhooks",
)  # fmt: skip
_RUNNER = (*_VIEWER, "run_deployments")
_DEVELOPER = (
    *_RUNNER,
    "manage_flows", "run_tasks", "manage_saved_search", "manage_deployments", "manage_work_pools",
    "manage_work_queues", "manage_workers", "manage_blocks", "manage_automations", "manage_notifications",
    "manage_concurrency_limits", "manage_variables", "manage_artifacts", "manage_assets", "manage_events",
    "manage_incidents", "manage_tags", "manage_webhooks", "see_workspace_settings",
)  # fmt: skip
# A worker polls, heartbeats, moves the runs it starts through their states, reads what those runs
# need (blocks, variables, limits) and listens for their cancellation on the event stream.
_WORKER = (
    "see_flows", "run_flows", "see_deployments", "see_work_pools", "see_work_queues", "write_workers",
    "see_secret_blocks", "see_variables", "see_concurrency_limits", "see_events",
)  # fmt: skip

_WORKSPACE_ROLE_GRANTS: dict[str, tuple[str, ...]] = {
    WorkspaceRole.VIEWER: _VIEWER,
    WorkspaceRole.RUNNER: _RUNNER,
    WorkspaceRole.DEVELOPER: _DEVELOPER,
    # An Owner holds every workspace scope.
    WorkspaceRole.OWNER: tuple(SCOPES_BY_NAME),
    WorkspaceRole.WORKER: _WORKER,
}
WORKSPACE_ROLE_SCOPES: dict[str, frozenset[str]] = {
    role: expand_scopes(grants) for role, grants in _WORKSPACE_ROLE_GRANTS.items()
}
WORKSPACE_ROLE_DESCRIPTIONS = {
    WorkspaceRole.VIEWER: "Can see everything in the workspace, but change nothing.",
    WorkspaceRole.RUNNER: "A Viewer who can also run deployments.",
    WorkspaceRole.DEVELOPER: "Builds and operates flows, deployments, work pools, blocks and automations.",
    WorkspaceRole.OWNER: "Everything in the workspace, including its members and settings.",
    WorkspaceRole.WORKER: "The minimum a worker needs to poll for and submit work.",
}


def workspace_role_scopes(roles: Iterable[str]) -> frozenset[str]:
    """The union of the scopes of ``roles`` (every grant counts)."""
    result: frozenset[str] = frozenset()
    for role in roles:
        result |= WORKSPACE_ROLE_SCOPES[role]
    return result


# --- Account roles -----------------------------------------------------------------------------------


class AccountRole(models.TextChoices):
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"


ACCOUNT_PERMISSIONS: tuple[str, ...] = (
    "read:account", "update:account", "delete:account",
    "read:account_membership", "add:account_member", "update:account_membership", "delete:account_membership",
    "read:account_role", "create:account_role", "update:account_role", "delete:account_role",
    "read:workspace_role", "create:workspace_role", "update:workspace_role", "delete:workspace_role",
    "read:workspace", "create:workspace", "administrate:workspace", "delete:workspace",
    "read:invitation", "create:invitation", "update:invitation",
    "read:workspace_invitation", "create:workspace_invitation", "update:workspace_invitation",
    "read:bot", "create:bot", "update:bot", "delete:bot",
    "read:team", "create:team", "update:team", "delete:team",
    "read:billing", "update:billing",
    "read:audit_event", "create:audit_event",
    "read:sso", "administrate:sso", "bypass:sso",
    "read:ip_allowlist", "update:ip_allowlist",
    "read:integrations", "update:integrations",
)  # fmt: skip
assert len(set(ACCOUNT_PERMISSIONS)) == len(ACCOUNT_PERMISSIONS), "duplicate account permission"

_MEMBER_PERMISSIONS = (
    "read:account", "read:account_membership", "read:account_role", "read:workspace_role", "read:workspace",
    "read:bot", "read:team", "read:invitation", "read:workspace_invitation", "read:sso", "read:integrations",
)  # fmt: skip
ACCOUNT_ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    AccountRole.MEMBER: frozenset(_MEMBER_PERMISSIONS),
    # Only an Owner may delete the account or keep a password path when SSO is enforced.
    AccountRole.ADMIN: frozenset(ACCOUNT_PERMISSIONS) - {"delete:account", "bypass:sso"},
    AccountRole.OWNER: frozenset(ACCOUNT_PERMISSIONS),
}
ACCOUNT_ROLE_RANK = {AccountRole.MEMBER: 0, AccountRole.ADMIN: 1, AccountRole.OWNER: 2}
# Account roles that act as workspace Owner in every workspace of their account.
WORKSPACE_OWNING_ACCOUNT_ROLES = frozenset({AccountRole.ADMIN, AccountRole.OWNER})


# --- Stable ids for built-in roles -------------------------------------------------------------
# The API addresses roles by id (as Prefect Cloud's Terraform provider does); built-in roles have
# ids derived from their names, identical on every installation.
_ROLE_NAMESPACE = uuid.UUID("6f1f6a3e-8d3c-4b8e-9a57-3f1c2b7de1a0")


@cache
def builtin_workspace_role_id(role: str) -> uuid.UUID:
    return uuid.uuid5(_ROLE_NAMESPACE, f"workspace-role:{role}")


@cache
def builtin_account_role_id(role: str) -> uuid.UUID:
    return uuid.uuid5(_ROLE_NAMESPACE, f"account-role:{role}")
