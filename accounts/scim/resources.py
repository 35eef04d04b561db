"""SCIM representations of the account's people (``ScimUser``) and teams (``Team``), and the
attributes a filter may name."""

from __future__ import annotations

from typing import Any

from accounts.models import ScimUser, Team, TeamMember
from accounts.scim.protocol import ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA, Attr

# The reserved domain (RFC 2606) of the placeholder address of someone provisioned without one.
NO_EMAIL_DOMAIN = "scim.invalid"

# Kept for the IdP as sent, beside the columns (RFC 7643 §4.1 attributes without a column here).
CORE_USER_KEYS = {
    "schemas",
    "id",
    "meta",
    "username",
    "name",
    "active",
    "externalid",
    "displayname",
    "password",
    "groups",
}

USER_FILTER_ATTRIBUTES = {
    "id": Attr("id", kind="reference", case_exact=True),
    "username": Attr("user_name"),
    "externalid": Attr("external_id", case_exact=True),
    "active": Attr("active", kind="boolean"),
    "displayname": Attr("display_name"),
    "name.givenname": Attr("user__first_name"),
    "name.familyname": Attr("user__last_name"),
    "emails.value": Attr("user__email"),
    "emails": Attr("user__email"),
    "meta.created": Attr("created", kind="datetime"),
    "meta.lastmodified": Attr("updated", kind="datetime"),
}

GROUP_FILTER_ATTRIBUTES = {
    "id": Attr("id", kind="reference", case_exact=True),
    "displayname": Attr("name"),
    "externalid": Attr("scim_external_id", case_exact=True),
    "members.value": Attr("members__user__scim_identities__id", kind="reference", case_exact=True),
    "members": Attr("members__user__scim_identities__id", kind="reference", case_exact=True),
    "meta.created": Attr("created", kind="datetime"),
    "meta.lastmodified": Attr("updated", kind="datetime"),
}


def _emails_of(user) -> list[dict[str, Any]]:
    if user.email.endswith(f"@{NO_EMAIL_DOMAIN}"):
        return []
    return [{"value": user.email, "type": "work", "primary": True}]


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def user_to_resource(
    scim_user: ScimUser, *, base_url: str, groups: list[Team] | None = None
) -> dict[str, Any]:
    user = scim_user.user
    extra = dict(scim_user.attributes or {})
    resource: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "id": str(scim_user.id),
        "userName": scim_user.user_name or user.email,
        "displayName": scim_user.display_name
        or f"{user.first_name} {user.last_name}".strip()
        or scim_user.user_name,
    }
    name = {
        "givenName": user.first_name,
        "familyName": user.last_name,
        **{k: v for k, v in (extra.pop("name", None) or {}).items() if k not in ("givenName", "familyName")},
    }
    name = {k: v for k, v in name.items() if v not in ("", None)}  # empty means unassigned
    if name:
        resource["name"] = name
    if scim_user.active is not None:
        resource["active"] = scim_user.active
    emails = extra.pop("emails", None)
    emails = _emails_of(user) if emails is None else emails  # None: never said; []: removed
    if emails:
        resource["emails"] = emails
    if scim_user.external_id:
        resource["externalId"] = scim_user.external_id
    enterprise = extra.pop(ENTERPRISE_USER_SCHEMA, None)
    resource.update(extra)
    if enterprise:
        resource["schemas"] = [USER_SCHEMA, ENTERPRISE_USER_SCHEMA]
        resource[ENTERPRISE_USER_SCHEMA] = enterprise
    if groups is not None:
        resource["groups"] = [
            {
                "value": str(team.id),
                "display": team.name,
                "$ref": f"{base_url}/Groups/{team.id}",
                "type": "direct",
            }
            for team in groups
        ]
    resource["meta"] = {
        "resourceType": "User",
        "created": _iso(scim_user.created),
        "lastModified": _iso(scim_user.updated),
        "location": f"{base_url}/Users/{scim_user.id}",
    }
    return resource


def group_to_resource(team: Team, *, base_url: str, members: list[ScimUser] | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": str(team.id), "displayName": team.name}
    if team.scim_external_id:
        resource["externalId"] = team.scim_external_id
    if members is not None:
        resource["members"] = [
            {
                "value": str(member.id),
                "type": "User",
                "$ref": f"{base_url}/Users/{member.id}",
            }
            for member in members
        ]
    resource["meta"] = {
        "resourceType": "Group",
        "created": _iso(team.created),
        "lastModified": _iso(team.updated),
        "location": f"{base_url}/Groups/{team.id}",
    }
    return resource


def members_of_teams(teams: list[Team]) -> dict:
    """Each team's people as SCIM users of its account: ``{team_id: [ScimUser]}``, in one query."""
    found: dict = {team.id: [] for team in teams}
    if not teams:
        return found
    account_ids = {team.account_id for team in teams}
    rows = (
        TeamMember.objects.filter(team__in=teams, user__isnull=False)
        .values_list("team_id", "user_id", "team__account_id")
        .order_by()
    )
    memberships: dict = {}
    for team_id, user_id, account_id in rows:
        memberships.setdefault((account_id, user_id), []).append(team_id)
    people = (
        ScimUser.objects.filter(
            account_id__in=account_ids, user_id__in={user_id for _, user_id in memberships}
        )
        .select_related("user")
        .order_by("created", "id")
    )
    for person in people:
        for team_id in memberships.get((person.account_id, person.user_id), []):
            found[team_id].append(person)
    return found


def team_members(team: Team) -> list[ScimUser]:
    return members_of_teams([team])[team.id]


def groups_of_users(scim_users: list[ScimUser]) -> dict:
    """Each SCIM user's teams in its account: ``{scim_user_id: [Team]}``, in one query."""
    found: dict = {person.id: [] for person in scim_users}
    if not scim_users:
        return found
    by_key = {(person.account_id, person.user_id): person.id for person in scim_users}
    rows = (
        TeamMember.objects.filter(
            team__account_id__in={person.account_id for person in scim_users},
            user_id__in={person.user_id for person in scim_users},
        )
        .select_related("team")
        .order_by("team__name")
    )
    for row in rows:
        scim_id = by_key.get((row.team.account_id, row.user_id))
        if scim_id is not None:
            found[scim_id].append(row.team)
    return found


def user_groups(scim_user: ScimUser) -> list[Team]:
    return groups_of_users([scim_user])[scim_user.id]
