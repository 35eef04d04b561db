"""What the account's identity provider changes over SCIM, and the tokens it does it with.

Every change acts as the "SCIM" system actor and is an audit event with before/after.

People: a SCIM User is a ``ScimUser`` of the account, bound to the global ``User`` with its
``userName`` (an email). Active means a member of the account: provisioning (or reactivating)
someone takes a seat and makes them a Member, the account's default role; deactivating them (or
deleting the resource) removes the membership and its workspace grants at once, ends their console
sessions and, when this account was their only one, deactivates the person everywhere (which
revokes their ``pnu_`` keys). Their history and audit trail stay. The last Owner of an account is
never deprovisioned. The account's IdP may change a person's name and email only while the person
belongs to no other account.

Groups are teams marked ``scim_managed``; their members are the account's SCIM users. Team rows
of someone deactivated stay (a team grants nothing without a membership), so reactivation restores
what the IdP last said.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.db.models.lookups import Exact
from django.utils import timezone

from accounts import authcache
from accounts.models import AccountMembership, ScimActivity, ScimToken, ScimUser, Team, TeamMember, User
from accounts.permissions import AccountRole
from accounts.scim.protocol import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_SCHEMA,
    USER_SCHEMA,
    ScimError,
    apply_patch,
    as_bool,
    bad_request,
    get_in,
    primary_or_typed,
    schema_attributes,
)
from accounts.scim.resources import (
    CORE_USER_KEYS,
    NO_EMAIL_DOMAIN,
    group_to_resource,
    team_members,
    user_to_resource,
)
from accounts.services import (
    _lock_account,
    _owner_count,
    membership_add,
    membership_remove,
    user_deactivate,
    user_reactivate,
    user_sessions_end,
)
from audit import events
from audit.actors import SCIM
from audit.services import audit_record, audited_update
from billing import entitlements
from billing.models import Door
from billing.plans import PLANS
from core.errors import AppError
from core.ids import as_uuid
from tenants.models import Account

SCIM_ACTOR = SCIM
TOKEN_PREFIX = "scim_"
LAST_USED_RESOLUTION = timedelta(seconds=60)
SETTING_EXEMPT_FROM_IP_ALLOWLIST = "scim_exempt_from_ip_allowlist"
MAX_NAME = 150
USER_ATTRIBUTES = schema_attributes(USER_SCHEMA, ENTERPRISE_USER_SCHEMA)
GROUP_ATTRIBUTES = schema_attributes(GROUP_SCHEMA)


# --- tokens ---------------------------------------------------------------------------------------


def scim_token_create(*, account: Account, actor, name: str = "") -> tuple[ScimToken, str]:
    """A new token for the account's IdP; the secret is returned once and never stored."""
    entitlements.ensure_feature(account, "scim")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ScimToken.objects.create(
            account=account,
            name=(name or "").strip()[:200],
            token_hash=authcache.token_digest(raw),
            hint=raw[: len(TOKEN_PREFIX) + 4],
            created_by=actor if isinstance(actor, User) else None,
        )
        audit_record(
            event=events.SCIM_TOKEN_CREATED,
            actor=actor,
            account=account,
            target=account,
            payload={"token_id": str(token.id), "name": token.name, "hint": token.hint},
        )
    return token, raw


def scim_token_revoke(*, token: ScimToken, actor) -> ScimToken:
    with transaction.atomic():
        token = ScimToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(
                event=events.SCIM_TOKEN_REVOKED,
                actor=actor,
                account=token.account,
                target=token.account,
                payload={"token_id": str(token.id), "name": token.name, "hint": token.hint},
            )
    return token


def scim_token_authenticate(raw: str) -> ScimToken | None:
    """The usable token for ``raw``, or None. Records its use (at most once a minute)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = ScimToken.objects.select_related("account").filter(token_hash=authcache.token_digest(raw)).first()
    now = timezone.now()
    if token is None or not token.is_usable(now):
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ScimToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def scim_settings(account: Account) -> dict[str, Any]:
    return {"exempt_from_ip_allowlist": bool((account.settings or {}).get(SETTING_EXEMPT_FROM_IP_ALLOWLIST))}


def scim_settings_update(*, account: Account, actor, exempt_from_ip_allowlist: bool) -> dict[str, Any]:
    with transaction.atomic():
        account = _lock_account(account)
        with audited_update(
            instance=account,
            snapshot=scim_settings,
            event=events.SCIM_SETTINGS_CHANGED,
            actor=actor,
            account=account,
        ) as change:
            account.settings = {
                **(account.settings or {}),
                SETTING_EXEMPT_FROM_IP_ALLOWLIST: bool(exempt_from_ip_allowlist),
            }
            account.save(update_fields=["settings"])
    return change.after


# --- people ---------------------------------------------------------------------------------------


@dataclass
class UserFields:
    user_name: str
    email: str | None  # None: the IdP sent no address (the person cannot sign in until it does)
    first_name: str
    last_name: str
    display_name: str
    external_id: str
    active: bool | None  # None: unassigned, which counts as active
    attributes: dict[str, Any] = field(default_factory=dict)


def _string(value: Any, what: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request(f"{what} must be a string.")
    return value.strip()[:limit]


def user_fields(data: Any) -> UserFields:
    """The columns a SCIM User body sets (RFC 7643 §4.1); 400 ``invalidValue`` when unusable."""
    if not isinstance(data, Mapping):
        raise bad_request("The body must be a SCIM User object.", "invalidSyntax")
    user_name = get_in(data, "userName")
    if not isinstance(user_name, str) or not user_name.strip():
        raise bad_request("userName is required.")
    user_name = user_name.strip()[:255]
    emails = get_in(data, "emails")
    if emails is not None and not isinstance(emails, list):
        raise bad_request("emails must be a list.")
    # People sign in by email: the userName when it is an address, else the primary/work email.
    email = None
    for candidate in (user_name, primary_or_typed(emails)):
        try:
            validate_email(candidate or "")
        except ValidationError:
            continue
        email = User.objects.normalize_email(candidate).lower()
        break
    active = get_in(data, "active")
    name = get_in(data, "name") or {}
    if not isinstance(name, Mapping):
        raise bad_request("name must be an object.")
    attributes = {
        key: value
        for key, value in data.items()
        if key.lower() not in CORE_USER_KEYS and key.lower() != ENTERPRISE_USER_SCHEMA.lower()
    }
    extra_name = {k: v for k, v in name.items() if k.lower() not in ("givenname", "familyname")}
    if extra_name:
        attributes["name"] = extra_name
    attributes["emails"] = list(emails or [])  # kept even when empty: removed means unassigned
    enterprise = get_in(data, ENTERPRISE_USER_SCHEMA)
    if isinstance(enterprise, Mapping) and enterprise:
        attributes[ENTERPRISE_USER_SCHEMA] = dict(enterprise)
    return UserFields(
        user_name=user_name,
        email=email,
        first_name=_string(get_in(name, "givenName"), "name.givenName", MAX_NAME),
        last_name=_string(get_in(name, "familyName"), "name.familyName", MAX_NAME),
        display_name=_string(get_in(data, "displayName"), "displayName", 255),
        external_id=_string(get_in(data, "externalId"), "externalId", 255),
        active=None if active is None else as_bool(active),
        attributes=attributes,
    )


def _only_here(user: User, account: Account) -> bool:
    """Does ``user`` belong to no other account (so this account's IdP may change them)?"""
    return not (
        AccountMembership.objects.filter(user=user).exclude(account=account).exists()
        or ScimUser.objects.filter(user=user).exclude(account=account).exists()
    )


def _user_snapshot(scim_user: ScimUser) -> dict[str, Any]:
    user = scim_user.user
    return {
        "userName": scim_user.user_name,
        "email": user.email,
        "givenName": user.first_name,
        "familyName": user.last_name,
        "displayName": scim_user.display_name,
        "externalId": scim_user.external_id,
        "active": scim_user.active,
    }


def _seat_or_refuse(account: Account) -> None:
    decision = entitlements.check_seat(account)
    if not decision:
        raise ScimError(403, f"{decision.reason} Nothing was provisioned.")


def _grant_membership(account: Account, user: User) -> None:

    if not user.is_active:
        user_reactivate(user=user, actor=SCIM_ACTOR, account=account, door=Door.SCIM)
    if not AccountMembership.objects.filter(account=account, user=user).exists():
        try:  # it checks the seat; a refusal rolls the whole request back
            membership_add(
                account=account, user=user, role=AccountRole.MEMBER, actor=SCIM_ACTOR, door=Door.SCIM
            )
        except AppError as error:
            raise ScimError(403, f"{error.message} Nothing was provisioned.") from None


def _end_membership(account: Account, user: User) -> None:
    """Remove the person from the account now: membership and grants, sessions, and (when this
    was their only account) the person everywhere, keys included."""

    membership = AccountMembership.objects.filter(account=account, user=user).first()
    if membership is not None:
        if membership.role == AccountRole.OWNER and _owner_count(account) <= 1:
            raise ScimError(
                400,
                f"{user.email} is the last Owner of this account and cannot be deprovisioned; make "
                "someone else an Owner first.",
                "mutability",
            )
        membership_remove(membership=membership, actor=SCIM_ACTOR, door=Door.SCIM)
    if not AccountMembership.objects.filter(user=user).exists() and user.is_active:
        user_deactivate(user=user, actor=SCIM_ACTOR, account=account, door=Door.SCIM)
    else:
        user_sessions_end(user)


def _apply_user(account: Account, scim_user: ScimUser | None, fields: UserFields) -> ScimUser:
    """Create or replace a SCIM user from ``fields``, under the account's lock."""
    clash = ScimUser.objects.filter(Exact(Lower("user_name"), fields.user_name.lower()), account=account)
    if fields.email is not None:
        clash = clash | ScimUser.objects.filter(Exact(Lower("user__email"), fields.email), account=account)
    if scim_user is not None:
        clash = clash.exclude(pk=scim_user.pk)
    if clash.exists():
        raise ScimError(409, f"A user with userName {fields.user_name} already exists.", "uniqueness")
    if fields.external_id:
        clash = ScimUser.objects.filter(account=account, external_id=fields.external_id)
        if scim_user is not None:
            clash = clash.exclude(pk=scim_user.pk)
        if clash.exists():
            raise ScimError(409, f"A user with externalId {fields.external_id} already exists.", "uniqueness")

    if scim_user is None:
        user = User.objects.filter(Exact(Lower("email"), fields.email)).first() if fields.email else None
        is_member = user is not None and AccountMembership.objects.filter(account=account, user=user).exists()
        if fields.active is not False and not is_member:
            _seat_or_refuse(account)  # before anything is written
        if user is None:
            # Without an address the person gets a placeholder in the reserved .invalid domain:
            # nobody can sign in with it, and a later update with an address replaces it.
            email = fields.email or f"{uuid.uuid4().hex}@{NO_EMAIL_DOMAIN}"
            user = User.objects.create_user(
                email, None, first_name=fields.first_name, last_name=fields.last_name
            )
        elif _only_here(user, account):
            user.first_name, user.last_name = fields.first_name, fields.last_name
            user.save(update_fields=["first_name", "last_name"])
        scim_user = ScimUser(account=account, user=user)
        was_active = False
    else:
        user = scim_user.user
        was_active = scim_user.active is not False
        if fields.email is None:
            fields.email = user.email.lower()
        email_changed = user.email.lower() != fields.email
        names_changed = (user.first_name, user.last_name) != (fields.first_name, fields.last_name)
        if (email_changed or names_changed) and _only_here(user, account):
            if email_changed and User.objects.filter(email__iexact=fields.email).exclude(pk=user.pk).exists():
                raise ScimError(409, f"A user with userName {fields.user_name} already exists.", "uniqueness")
            user.email, user.first_name, user.last_name = fields.email, fields.first_name, fields.last_name
            user.save(update_fields=["email", "first_name", "last_name"])
        elif email_changed:
            raise ScimError(
                400,
                "This person also belongs to another account; their email cannot be changed here.",
                "mutability",
            )
    scim_user.user_name = fields.user_name
    scim_user.external_id = fields.external_id
    scim_user.display_name = fields.display_name
    scim_user.attributes = fields.attributes
    scim_user.active = fields.active
    scim_user.save()
    granted = fields.active is not False
    if granted and not was_active:
        _grant_membership(account, user)
    elif was_active and not granted:
        _end_membership(account, user)
    return scim_user


def scim_user_create(*, account: Account, data: Any) -> ScimUser:
    fields = user_fields(data)
    try:
        with transaction.atomic():
            account = _lock_account(account)
            scim_user = _apply_user(account, None, fields)
            audit_record(
                event=events.SCIM_USER_PROVISIONED,
                actor=SCIM_ACTOR,
                account=account,
                target=scim_user.user,
                payload={"scim_id": str(scim_user.id), "before": None, "after": _user_snapshot(scim_user)},
            )
    except IntegrityError:
        raise ScimError(
            409, f"A user with userName {fields.user_name} already exists.", "uniqueness"
        ) from None
    return scim_user


def _user_replace_event(before: dict[str, Any], after: dict[str, Any]):
    if (before["active"] is not False) != (after["active"] is not False):
        return events.SCIM_USER_DEACTIVATED if after["active"] is False else events.SCIM_USER_REACTIVATED
    return events.SCIM_USER_UPDATED


def scim_user_replace(*, scim_user: ScimUser, data: Any) -> ScimUser:
    fields = user_fields(data)
    try:
        with transaction.atomic():
            account = _lock_account(scim_user.account)
            scim_user = ScimUser.objects.select_for_update().select_related("user").get(pk=scim_user.pk)
            # Recorded every time: an update, or a deactivation or reactivation (whose snapshots
            # differ in "active").
            with audited_update(
                instance=scim_user,
                snapshot=_user_snapshot,
                event=_user_replace_event,
                actor=SCIM_ACTOR,
                account=account,
                target=scim_user.user,
                payload={"scim_id": str(scim_user.id)},
                always=True,
            ):
                _apply_user(account, scim_user, fields)
    except IntegrityError:
        raise ScimError(
            409, f"A user with userName {fields.user_name} already exists.", "uniqueness"
        ) from None
    return scim_user


def scim_user_patch(*, scim_user: ScimUser, body: Any, base_url: str) -> ScimUser:
    current = user_to_resource(scim_user, base_url=base_url)
    patched = apply_patch(
        current, body, known_urns=(ENTERPRISE_USER_SCHEMA, USER_SCHEMA), attributes=USER_ATTRIBUTES
    )
    return scim_user_replace(scim_user=scim_user, data=patched)


def scim_user_delete(*, scim_user: ScimUser) -> None:
    with transaction.atomic():
        account = _lock_account(scim_user.account)
        scim_user = ScimUser.objects.select_for_update().select_related("user").get(pk=scim_user.pk)
        before = _user_snapshot(scim_user)
        if scim_user.active is not False:
            _end_membership(account, scim_user.user)
        audit_record(
            event=events.SCIM_USER_DELETED,
            actor=SCIM_ACTOR,
            account=account,
            target=scim_user.user,
            payload={"scim_id": str(scim_user.id), "before": before, "after": None},
        )
        scim_user.delete()


# --- groups ---------------------------------------------------------------------------------------


@dataclass
class GroupFields:
    name: str
    external_id: str
    member_ids: list[str] | None


def group_fields(data: Any) -> GroupFields:
    if not isinstance(data, Mapping):
        raise bad_request("The body must be a SCIM Group object.", "invalidSyntax")
    name = get_in(data, "displayName")
    if name is None:
        # RFC 7643 §4.2 does not require displayName; a team needs a name.
        external = get_in(data, "externalId")
        name = external if isinstance(external, str) and external.strip() else f"Group {uuid.uuid4().hex[:8]}"
    if not isinstance(name, str) or not name.strip():
        raise bad_request("displayName must be a non-empty string.")
    members = get_in(data, "members")
    member_ids: list[str] | None = None
    if members is not None:
        if not isinstance(members, list):
            raise bad_request("members must be a list.")
        member_ids = []
        for member in members:
            value = get_in(member, "value") if isinstance(member, Mapping) else None
            if not isinstance(value, str) or not value:
                raise bad_request("Each member needs a value (the id of a SCIM User).")
            member_ids.append(value)
    return GroupFields(
        name=name.strip()[:200],
        external_id=_string(get_in(data, "externalId"), "externalId", 255),
        member_ids=member_ids,
    )


def _members_of(account: Account, ids: list[str]) -> list[ScimUser]:
    parsed = []
    for value in dict.fromkeys(ids):
        member_id = as_uuid(value) if isinstance(value, str) else None
        if member_id is None:
            raise bad_request(f"{value!r} is not the id of a user of this account.")
        parsed.append(member_id)
    found = list(ScimUser.objects.filter(account=account, id__in=parsed).select_related("user"))
    if len(found) != len(parsed):
        missing = sorted({str(p) for p in parsed} - {str(f.id) for f in found})
        raise bad_request(f"Unknown member(s) of this account: {', '.join(missing)}.")
    return found


def _set_members(team: Team, wanted: list[ScimUser]) -> tuple[list[str], list[str]]:
    current = set(TeamMember.objects.filter(team=team, user__isnull=False).values_list("user_id", flat=True))
    wanted_ids = {member.user_id for member in wanted}
    added = [member for member in wanted if member.user_id not in current]
    removed = current - wanted_ids
    TeamMember.objects.bulk_create([TeamMember(team=team, user_id=member.user_id) for member in added])
    if removed:
        for member in TeamMember.objects.filter(team=team, user_id__in=removed):
            member.delete()  # one by one: the access memo hears of each
    if added:
        authcache.authz_changed()
    return [str(member.user_id) for member in added], [str(user_id) for user_id in removed]


def _group_snapshot(team: Team) -> dict[str, Any]:
    return {"displayName": team.name, "externalId": team.scim_external_id}


def _check_group_name(account: Account, name: str, team: Team | None) -> None:
    clash = Team.objects.filter(account=account, name=name)
    if team is not None:
        clash = clash.exclude(pk=team.pk)
    if clash.exists():
        raise ScimError(409, f"A group named {name!r} already exists.", "uniqueness")


def scim_group_create(*, account: Account, data: Any) -> Team:
    fields = group_fields(data)
    try:
        with transaction.atomic():
            account = _lock_account(account)
            _check_group_name(account, fields.name, None)
            members = _members_of(account, fields.member_ids or [])
            team = Team.objects.create(
                account=account, name=fields.name, scim_managed=True, scim_external_id=fields.external_id
            )
            added, _ = _set_members(team, members)
            audit_record(
                event=events.SCIM_GROUP_CREATED,
                actor=SCIM_ACTOR,
                account=account,
                target=team,
                payload={"before": None, "after": _group_snapshot(team), "members_added": added},
            )
    except IntegrityError:
        raise ScimError(409, f"A group named {fields.name!r} already exists.", "uniqueness") from None
    return team


def scim_group_replace(*, team: Team, data: Any) -> Team:
    fields = group_fields(data)
    try:
        with transaction.atomic():
            account = _lock_account(team.account)
            team = Team.objects.select_for_update().get(pk=team.pk)
            _check_group_name(account, fields.name, team)
            with audited_update(
                instance=team,
                snapshot=_group_snapshot,
                event=events.SCIM_GROUP_UPDATED,
                actor=SCIM_ACTOR,
                account=account,
                always=True,
            ) as change:
                team.name, team.scim_external_id, team.scim_managed = fields.name, fields.external_id, True
                team.save()
                added, removed = [], []
                if fields.member_ids is not None:
                    added, removed = _set_members(team, _members_of(account, fields.member_ids))
                change.extra.update(members_added=added, members_removed=removed)
    except IntegrityError:
        raise ScimError(409, f"A group named {fields.name!r} already exists.", "uniqueness") from None
    return team


def scim_group_patch(*, team: Team, body: Any, base_url: str) -> Team:
    current = group_to_resource(team, base_url=base_url, members=team_members(team))
    patched = apply_patch(current, body, known_urns=(GROUP_SCHEMA,), attributes=GROUP_ATTRIBUTES)
    if get_in(patched, "displayName") is None:
        # RFC 7643 §4.2: displayName is REQUIRED; a team is known by its name.
        raise ScimError(400, "displayName is required and cannot be removed.", "mutability")
    if get_in(patched, "members") is None:
        patched["members"] = []  # every member removed
    return scim_group_replace(team=team, data=patched)


def scim_group_delete(*, team: Team) -> None:
    with transaction.atomic():
        account = _lock_account(team.account)
        audit_record(
            event=events.SCIM_GROUP_DELETED,
            actor=SCIM_ACTOR,
            account=account,
            target=team,
            payload={"before": _group_snapshot(team), "after": None},
        )
        team.delete()


# --- the journal ----------------------------------------------------------------------------------


def scim_activity_purge_expired(*, now=None) -> int:
    """Drop journal entries older than each account's audit retention (the plan's)."""

    now = now or timezone.now()
    deleted = 0
    for plan in PLANS.values():
        cutoff = now - timedelta(days=plan.audit_log_retention_days)
        count, _ = ScimActivity.objects.filter(account__plan=plan.key, occurred__lt=cutoff).delete()
        deleted += count
    return deleted
