"""Group mappings: the groups an identity provider sends, mapped to teams and workspace roles.

The table is the account's (``GET/PUT /api/accounts/<id>/sso/group_mappings``, replaced whole, an
audit event with before and after). At each SSO sign-in whose assertion or id_token carries groups,
the person is put in every mapped team of a group they hold and taken out of mapped teams of groups
they no longer hold; a workspace mapped by their groups gets a direct grant of the strongest mapped
role (the one with the most scopes), and a grant a mapping gave earlier is taken away when no held
group maps that workspace any more. Teams and grants that no mapping names are never touched, and
a sign-in without a groups attribute changes nothing. Group names match case-insensitively.
"""

from __future__ import annotations

import contextlib

from django.db import transaction

from accounts.models import SsoGroupMapping, SsoManagedGrant, Team, TeamMember
from accounts.roles import ResolvedRole, workspace_role_resolve
from accounts.services import _lock_account, workspace_access_grant, workspace_access_revoke
from audit import events
from audit.actors import SystemActor
from audit.services import audit_record, audited_update
from core.errors import Conflict, NotFound, Unprocessable
from core.ids import as_uuid
from tenants.models import Workspace

SSO = SystemActor("SSO")
"""The account's identity provider, acting through group mappings at sign-in."""

MAX_MAPPINGS = 500


def mapping_wire(mapping: SsoGroupMapping) -> dict:
    role = role_of_mapping(mapping)
    return {
        "id": str(mapping.id),
        "group": mapping.group,
        "team_id": str(mapping.team_id) if mapping.team_id else None,
        "workspace_id": str(mapping.workspace_id) if mapping.workspace_id else None,
        "workspace_role_id": str(role.id) if role else None,
    }


def role_of_mapping(mapping: SsoGroupMapping) -> ResolvedRole | None:
    if mapping.workspace_id is None:
        return None
    if mapping.custom_role_id is not None:
        return ResolvedRole(custom=mapping.custom_role)
    return ResolvedRole(builtin=mapping.workspace_role)


def _invalid(message: str) -> Unprocessable:
    return Unprocessable(message, code="invalid_group_mapping")


def _clean(account, entry, index: int) -> SsoGroupMapping:
    where = f"mappings[{index}]"
    if not isinstance(entry, dict):
        raise _invalid(f"{where} must be an object.")
    unknown = set(entry) - {"id", "group", "team_id", "workspace_id", "workspace_role_id"}
    if unknown:
        raise _invalid(f"{where} has unknown field(s): {', '.join(sorted(unknown))}.")
    group = entry.get("group")
    if not isinstance(group, str) or not group.strip() or len(group) > 255:
        raise _invalid(f"{where}.group must be a group name (at most 255 characters).")
    mapping = SsoGroupMapping(account=account, group=group.strip())
    team_id, workspace_id = entry.get("team_id"), entry.get("workspace_id")
    if (team_id is None) == (workspace_id is None):
        raise _invalid(
            f"{where} maps a group to either a team_id or a workspace_id with a workspace_role_id."
        )
    if team_id is not None:
        team = _by_id(Team.objects.filter(account=account), team_id)
        if team is None:
            raise _invalid(f"{where}.team_id is not a team of this account.")
        if team.scim_managed:
            raise Conflict(
                f"The team {team.name} is managed over SCIM; map groups to it there.", code="idp_managed"
            )
        mapping.team = team
        return mapping
    workspace = _by_id(Workspace.objects.filter(account=account), workspace_id)
    if workspace is None:
        raise _invalid(f"{where}.workspace_id is not a workspace of this account.")
    role = workspace_role_resolve(entry.get("workspace_role_id"), account=account)
    if role is None:
        raise _invalid(f"{where}.workspace_role_id is not a workspace role of this account.")
    mapping.workspace = workspace
    mapping.workspace_role, mapping.custom_role = role.builtin, role.custom
    return mapping


def _by_id(queryset, value):
    value = as_uuid(value)
    return queryset.filter(pk=value).first() if value is not None else None


def group_mappings_list(account) -> list[SsoGroupMapping]:
    return list(
        SsoGroupMapping.objects.filter(account=account).select_related("custom_role", "team", "workspace")
    )


def _mappings_snapshot(account) -> list[dict]:
    return [mapping_wire(m) for m in group_mappings_list(account)]


def group_mappings_set(*, account, mappings, actor) -> list[SsoGroupMapping]:
    if not isinstance(mappings, list):
        raise _invalid("mappings must be a list.")
    if len(mappings) > MAX_MAPPINGS:
        raise _invalid(f"An account can map at most {MAX_MAPPINGS} groups.")
    cleaned = [_clean(account, entry, index) for index, entry in enumerate(mappings)]
    with transaction.atomic():
        account = _lock_account(account)
        with audited_update(
            instance=account,
            snapshot=_mappings_snapshot,
            event=events.SSO_GROUP_MAPPINGS_CHANGED,
            actor=actor,
            account=account,
            always=True,
        ):
            SsoGroupMapping.objects.filter(account=account).delete()
            SsoGroupMapping.objects.bulk_create(cleaned)
    return group_mappings_list(account)


def _mapping_plan(mappings: list[SsoGroupMapping], groups: list[str]):
    """What ``groups`` earn under ``mappings``: the mapped teams they hold (ids), every mapped team
    (ids), the strongest mapped role per workspace id, and the workspaces and teams by id."""
    held = {str(g).strip().casefold() for g in groups}
    wanted_teams, mapped_teams = set(), set()
    wanted_roles: dict = {}
    workspaces, teams = {}, {}
    for mapping in mappings:
        holds = mapping.group.casefold() in held
        if mapping.team_id is not None:
            mapped_teams.add(mapping.team_id)
            if holds:
                wanted_teams.add(mapping.team_id)
                teams[mapping.team_id] = mapping.team
        elif holds:
            role = role_of_mapping(mapping)
            workspaces[mapping.workspace_id] = mapping.workspace
            best = wanted_roles.get(mapping.workspace_id)
            if best is None or len(role.scopes) > len(best.scopes):
                wanted_roles[mapping.workspace_id] = role
    return wanted_teams, mapped_teams, wanted_roles, workspaces, teams


def group_mappings_resolve(mappings: list[SsoGroupMapping], groups: list[str]):
    """``(teams, [(workspace, role)])`` the mappings would give someone holding ``groups``: what
    a sign-in applies, computed without applying it (the console's test sign-in)."""
    wanted_teams, _, wanted_roles, workspaces, teams = _mapping_plan(mappings, groups)
    return (
        [teams[team_id] for team_id in wanted_teams],
        [(workspaces[workspace_id], role) for workspace_id, role in wanted_roles.items()],
    )


def group_mappings_apply(*, account, user, groups: list[str]) -> None:
    mappings = group_mappings_list(account)
    if not mappings:
        return
    wanted_teams, mapped_teams, wanted_roles, workspaces, _ = _mapping_plan(mappings, groups)
    with transaction.atomic():
        current = set(
            TeamMember.objects.filter(user=user, team_id__in=mapped_teams).values_list("team_id", flat=True)
        )
        for team in Team.objects.filter(pk__in=wanted_teams - current):
            TeamMember.objects.get_or_create(team=team, user=user)
            audit_record(
                event=events.TEAM_MEMBER_ADDED,
                actor=SSO,
                account=account,
                target=user,
                payload={"team": team.name, "team_id": str(team.id), "via": "sso group mapping"},
            )
        for team in Team.objects.filter(pk__in=(current & mapped_teams) - wanted_teams):
            TeamMember.objects.filter(team=team, user=user).delete()
            audit_record(
                event=events.TEAM_MEMBER_REMOVED,
                actor=SSO,
                account=account,
                target=user,
                payload={"team": team.name, "team_id": str(team.id), "via": "sso group mapping"},
            )
        managed = set(
            SsoManagedGrant.objects.filter(user=user, workspace__account=account).values_list(
                "workspace_id", flat=True
            )
        )
        for workspace_id, role in wanted_roles.items():
            workspace_access_grant(workspace=workspaces[workspace_id], principal=user, role=role, actor=SSO)
            SsoManagedGrant.objects.get_or_create(user=user, workspace_id=workspace_id)
        for workspace in Workspace.objects.filter(pk__in=managed - set(wanted_roles)):
            with contextlib.suppress(NotFound):  # already revoked by hand
                workspace_access_revoke(workspace=workspace, principal=user, actor=SSO)
            SsoManagedGrant.objects.filter(user=user, workspace=workspace).delete()
