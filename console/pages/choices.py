"""What several pages offer to choose from: workspace roles (built-in, and the account's custom
roles when its plan has them), principals ("user:<id>", "bot:<id>", "team:<id>") and workspaces;
and the parsing back of a choice, through the same resolvers as the account API."""

from __future__ import annotations

import uuid

from accounts.permissions import WorkspaceRole, builtin_workspace_role_id
from accounts.roles import ResolvedRole, workspace_role_resolve
from accounts.selectors import account_principal_get, account_principals, account_team_names, custom_role_list
from billing.entitlements import plan_for

PRINCIPAL_KINDS = {"user": "user", "bot": "bot", "team": "team"}


def workspace_role_choices(account) -> list[tuple[str, str]]:
    """``(role id, label)`` for every role a grant can hold in ``account``."""
    choices = [(str(builtin_workspace_role_id(role.value)), role.label) for role in WorkspaceRole]
    if plan_for(account).has("custom_roles"):
        choices += [(str(role.pk), f"{role.name} (custom)") for role in custom_role_list(account=account)]
    return choices


def parse_uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value or ""))
    except ValueError:
        return None


def parse_workspace_role(account, value) -> ResolvedRole | None:
    role_id = parse_uuid(value)
    return workspace_role_resolve(role_id, account=account) if role_id is not None else None


def parse_principal(account, value, *, kinds=("user", "bot")):
    """The user, service account or team a ``"<kind>:<id>"`` choice names in ``account``, or None."""
    kind, _, raw_id = str(value or "").partition(":")
    principal_id = parse_uuid(raw_id)
    if kind not in kinds or principal_id is None:
        return None
    return account_principal_get(account=account, kind=PRINCIPAL_KINDS[kind], principal_id=principal_id)


def principal_choices(account, *, teams: bool = False) -> list[tuple[str, str]]:
    """``("user:<id>", email)`` for each person of the account, ``("bot:<id>", "<name> (service
    account)")`` for each service account and, with ``teams`` (when the plan has them), ``("team:<id>",
    "<name> (team)")`` for each team: what ``parse_principal`` reads back. Plain rows, no model
    instance per choice (a big account offers 1,300 of them)."""
    users, bots = account_principals(account=account)
    choices = [(f"user:{pk}", email) for pk, email in users]
    choices += [(f"bot:{pk}", f"{name} (service account)") for pk, name in bots]
    if teams and plan_for(account).has("teams"):
        choices += [(f"team:{pk}", f"{name} (team)") for pk, name in account_team_names(account=account)]
    return choices
