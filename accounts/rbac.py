"""Writes for granular access: custom workspace roles, teams, workspace default roles, invitations,
service-account key rotation and account settings. Each runs in one transaction with the account
row locked, checks the plan, and records an audit event with the before and after."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import ip_allowlist
from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_create
from accounts.models import (
    AccountMembership,
    CustomRole,
    Invitation,
    ServiceAccount,
    Team,
    TeamMember,
    User,
    WorkspaceDefaultRole,
    WorkspaceRoleGrant,
)
from accounts.permissions import SCOPES_BY_NAME, AccountRole, WorkspaceRole
from accounts.roles import ResolvedRole, custom_role_scopes, role_of, workspace_role_resolve
from accounts.selectors import account_role_of, invitation_token_hash
from accounts.services import (
    _lock_account,
    _require_owner_for_owner_changes,
    membership_add,
    service_account_create,
    workspace_access_grant,
)
from accounts.sso import enforcement
from accounts.tenancy import account_update, workspace_update
from audit import events
from audit.actors import SCIM, SYSTEM
from audit.services import audit_record, audited_update
from billing import entitlements
from billing.models import Door
from billing.services import seat_change, seats_released
from core.errors import Conflict, InvalidInput, NotFound
from core.ids import as_uuid
from tenants.models import Account, Workspace

MAX_ROLE_NAME = 100
MAX_TEAM_NAME = 200
INVITATION_LIFETIME = timedelta(days=7)
MAX_ROTATION_GRACE_SECONDS = 172_800


# --- custom workspace roles ---------------------------------------------------------------------


def _clean_scopes(scopes) -> list[str]:
    if scopes is None:
        return []
    if not isinstance(scopes, list | tuple) or not all(isinstance(name, str) for name in scopes):
        raise InvalidInput("scopes must be a list of scope names.", code="invalid_scopes")
    unknown = sorted(set(scopes) - set(SCOPES_BY_NAME))
    if unknown:
        raise InvalidInput(f"Unknown workspace scope(s): {', '.join(unknown)}.", code="unknown_scope")
    return sorted(set(scopes))


def _clean_name(name, *, what: str, limit: int) -> str:
    name = (name or "").strip() if isinstance(name, str | type(None)) else None
    if not name or len(name) > limit:
        raise InvalidInput(f"A {what} needs a name of 1 to {limit} characters.", code="invalid_name")
    return name


def _role_snapshot(role: CustomRole) -> dict:
    return {
        "name": role.name,
        "description": role.description,
        "scopes": list(role.scopes or ()),
        "inherited_role": role.inherited_role or None,
    }


def custom_role_create(
    *, account: Account, name: str, actor, description: str = "", scopes=None, inherited_role: str = ""
) -> CustomRole:
    name = _clean_name(name, what="role", limit=MAX_ROLE_NAME)
    scopes = _clean_scopes(scopes)
    inherited_role = WorkspaceRole(inherited_role).value if inherited_role else ""
    with transaction.atomic():
        account = _lock_account(account)
        entitlements.ensure_feature(account, "custom_roles")
        builtin_names = {role.label.lower() for role in WorkspaceRole}
        if name.lower() in builtin_names or CustomRole.objects.filter(account=account, name=name).exists():
            raise Conflict(f"A workspace role named {name!r} already exists.", code="name_taken")
        role = CustomRole.objects.create(
            account=account,
            name=name,
            description=description or "",
            scopes=scopes,
            inherited_role=inherited_role,
        )
        audit_record(
            event=events.CUSTOM_ROLE_CREATED,
            actor=actor,
            account=account,
            target=role,
            payload={"before": None, "after": _role_snapshot(role)},
        )
    return role


_UNSET = object()


def custom_role_update(
    *, role: CustomRole, actor, name=_UNSET, description=_UNSET, scopes=_UNSET, inherited_role=_UNSET
) -> CustomRole:
    with transaction.atomic():
        account = _lock_account(role.account)
        role = CustomRole.objects.select_for_update().get(pk=role.pk)
        with audited_update(
            instance=role,
            snapshot=_role_snapshot,
            event=events.CUSTOM_ROLE_UPDATED,
            actor=actor,
            account=account,
            always=True,
        ):
            if name is not _UNSET:
                name = _clean_name(name, what="role", limit=MAX_ROLE_NAME)
                builtin_names = {builtin.label.lower() for builtin in WorkspaceRole}
                taken = CustomRole.objects.filter(account=account, name=name).exclude(pk=role.pk).exists()
                if taken or name.lower() in builtin_names:
                    raise Conflict(f"A workspace role named {name!r} already exists.", code="name_taken")
                role.name = name
            if description is not _UNSET:
                role.description = description or ""
            if scopes is not _UNSET:
                role.scopes = _clean_scopes(scopes)
            if inherited_role is not _UNSET:
                role.inherited_role = WorkspaceRole(inherited_role).value if inherited_role else ""
            role.save()
    return role


def custom_role_delete(*, role: CustomRole, actor) -> None:
    with transaction.atomic():
        account = _lock_account(role.account)
        # The role's grants across its account's workspaces (an account-level read).
        grants = (
            WorkspaceRoleGrant.objects.unscoped()
            .filter(custom_role=role, workspace__account_id=account.pk)
            .count()
        )
        defaults = WorkspaceDefaultRole.objects.filter(custom_role=role).count()
        if grants or defaults:
            raise Conflict(
                f"The role {role.name!r} is granted ({grants} grant(s), default role of {defaults} "
                "workspace(s)); remove those first.",
                code="role_in_use",
            )
        audit_record(
            event=events.CUSTOM_ROLE_DELETED,
            actor=actor,
            account=account,
            target=role,
            payload={"before": _role_snapshot(role), "after": None},
        )
        role.delete()


# --- workspace default role -------------------------------------------------------------------------


def workspace_default_role_set(*, workspace: Workspace, role: ResolvedRole | None, actor) -> None:
    """Every member of the account holds ``role`` in ``workspace`` (None removes the default)."""
    with transaction.atomic():
        account = _lock_account(workspace.account)
        current = (
            WorkspaceDefaultRole.objects.select_related("custom_role").filter(workspace=workspace).first()
        )
        old = role_of(current) if current is not None else None
        if role is not None and role.custom is not None:
            if role.custom.account_id != account.pk:
                raise NotFound("Workspace role not found.")
            entitlements.ensure_feature(account, "custom_roles")
        if (old.id if old else None) == (role.id if role else None):
            return
        if role is None:
            current.delete()
        else:
            WorkspaceDefaultRole.objects.update_or_create(workspace=workspace, defaults=role.as_fields())
        audit_record(
            event=events.WORKSPACE_DEFAULT_ROLE_CHANGED,
            actor=actor,
            workspace=workspace,
            target=workspace,
            payload={
                "role": role.name if role else None,
                "before": {"role_id": str(old.id), "role": old.name} if old else None,
                "after": {"role_id": str(role.id), "role": role.name} if role else None,
            },
        )


# --- teams ----------------------------------------------------------------------------------------


def _team_snapshot(team: Team) -> dict:
    return {"name": team.name, "description": team.description}


def team_create(*, account: Account, name: str, actor, description: str = "") -> Team:
    name = _clean_name(name, what="team", limit=MAX_TEAM_NAME)
    with transaction.atomic():
        account = _lock_account(account)
        entitlements.ensure_feature(account, "teams")
        if Team.objects.filter(account=account, name=name).exists():
            raise Conflict(f"A team named {name!r} already exists.", code="name_taken")
        team = Team.objects.create(account=account, name=name, description=description or "")
        audit_record(
            event=events.TEAM_CREATED,
            actor=actor,
            account=account,
            target=team,
            payload={"before": None, "after": _team_snapshot(team)},
        )
    return team


def _not_idp_managed(team: Team, actor) -> None:
    """A team the account's identity provider provisions over SCIM is changed only by it."""
    if team.scim_managed and actor != SCIM:
        raise Conflict(
            f"The team {team.name!r} is managed by the account's identity provider (SCIM); change it there.",
            code="idp_managed",
        )


def team_update(*, team: Team, actor, name: str, description: str | None = None) -> Team:
    name = _clean_name(name, what="team", limit=MAX_TEAM_NAME)
    _not_idp_managed(team, actor)
    with transaction.atomic():
        account = _lock_account(team.account)
        team = Team.objects.select_for_update().get(pk=team.pk)
        if Team.objects.filter(account=account, name=name).exclude(pk=team.pk).exists():
            raise Conflict(f"A team named {name!r} already exists.", code="name_taken")
        with audited_update(
            instance=team,
            snapshot=_team_snapshot,
            event=events.TEAM_UPDATED,
            actor=actor,
            account=account,
            always=True,
        ):
            team.name, team.description = name, description or ""
            team.save()
    return team


def team_delete(*, team: Team, actor) -> None:
    _not_idp_managed(team, actor)
    with transaction.atomic():
        account = _lock_account(team.account)
        audit_record(
            event=events.TEAM_DELETED,
            actor=actor,
            account=account,
            target=team,
            payload={"before": _team_snapshot(team), "after": None},
        )
        team.delete()  # its memberships and grants go with it


def team_member_add(*, team: Team, principal: User | ServiceAccount, actor) -> TeamMember:
    _not_idp_managed(team, actor)
    with transaction.atomic():
        account = _lock_account(team.account)
        if account_role_of(principal, account) is None:
            raise NotFound("No such member or service account in this account.")
        lookup = {"user": principal} if isinstance(principal, User) else {"service_account": principal}
        member, created = TeamMember.objects.get_or_create(team=team, **lookup)
        if created:
            audit_record(
                event=events.TEAM_MEMBER_ADDED,
                actor=actor,
                account=account,
                target=principal,
                payload={"team": team.name, "team_id": str(team.id)},
            )
    return member


def team_member_remove(*, team: Team, principal: User | ServiceAccount, actor) -> None:
    _not_idp_managed(team, actor)
    with transaction.atomic():
        account = _lock_account(team.account)
        lookup = {"user": principal} if isinstance(principal, User) else {"service_account": principal}
        deleted, _ = TeamMember.objects.filter(team=team, **lookup).delete()
        if not deleted:
            raise NotFound("This principal is not a member of the team.")
        audit_record(
            event=events.TEAM_MEMBER_REMOVED,
            actor=actor,
            account=account,
            target=principal,
            payload={"team": team.name, "team_id": str(team.id)},
        )


# --- service accounts: update and key rotation -----------------------------------------------------


def _service_account_snapshot(service_account: ServiceAccount) -> dict:
    return {"name": service_account.name, "account_role": service_account.account_role}


def service_account_update(
    *, service_account: ServiceAccount, actor, name: str | None = None, account_role: str | None = None
) -> ServiceAccount:
    with transaction.atomic():
        account = _lock_account(service_account.account)
        service_account = ServiceAccount.objects.select_for_update().get(pk=service_account.pk)
        with audited_update(
            instance=service_account,
            snapshot=_service_account_snapshot,
            event=events.SERVICE_ACCOUNT_UPDATED,
            actor=actor,
            account=account,
        ):
            if name is not None:
                name = _clean_name(name, what="service account", limit=200)
                taken = ServiceAccount.objects.filter(account=account, name=name).exclude(
                    pk=service_account.pk
                )
                if taken.exists():
                    raise Conflict(f"A service account named {name!r} already exists.", code="name_taken")
                service_account.name = name
            if account_role is not None:
                role = AccountRole(account_role)
                if AccountRole.OWNER in (role, service_account.account_role):
                    _require_owner_for_owner_changes(actor=actor, account=account)
                service_account.account_role = role
            service_account.save()
    return service_account


def service_account_rotate_key(
    *,
    service_account: ServiceAccount,
    actor,
    expires_at: datetime | None = None,
    old_key_expires_in_seconds: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the service account. Its previous keys stop working at once, or after
    ``old_key_expires_in_seconds`` (at most two days) so that running workers can be moved over."""
    if old_key_expires_in_seconds is not None and not (
        0 <= old_key_expires_in_seconds <= MAX_ROTATION_GRACE_SECONDS
    ):
        raise InvalidInput(
            f"old_key_expires_in_seconds must be between 0 and {MAX_ROTATION_GRACE_SECONDS}.",
            code="invalid_grace",
        )
    with transaction.atomic():
        account = _lock_account(service_account.account)
        now = timezone.now()
        old_keys = list(
            ApiKey.objects.select_for_update()
            .filter(service_account=service_account, revoked_at__isnull=True)
            .exclude(expires_at__lte=now)
        )
        key, plaintext = api_key_create(
            owner=service_account, name=f"{service_account.name} key", actor=actor, expires_at=expires_at
        )
        grace_end = now + timedelta(seconds=old_key_expires_in_seconds or 0)
        for old in old_keys:
            if old_key_expires_in_seconds:
                old.expires_at = min(old.expires_at, grace_end) if old.expires_at else grace_end
                old.save(update_fields=["expires_at"])
            else:
                old.revoked_at = now
                old.save(update_fields=["revoked_at"])
        audit_record(
            event=events.API_KEY_ROTATED,
            actor=actor,
            account=account,
            target=service_account,
            payload={
                "before": {"key_ids": [str(old.id) for old in old_keys]},
                "after": {"key_id": str(key.id), "old_keys_valid_until": grace_end.isoformat()},
            },
        )
    return key, plaintext


# --- invitations ----------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return invitation_token_hash(token)


def invitation_create(
    *,
    account: Account,
    email: str,
    actor,
    account_role: str = AccountRole.MEMBER,
    workspace_grants: list[tuple[Workspace, ResolvedRole]] = (),
    lifetime: timedelta = INVITATION_LIFETIME,
    door: str = Door.INVITATION,
) -> tuple[Invitation, str]:
    """Invite ``email`` to the account: ``(invitation, token)``; the token goes in the link and is
    shown once. A pending invitation holds a seat from now, so invitations cannot overbook.
    ``door`` names where the invitation was sent from in the seat ledger (the console's own)."""
    if email is not None and not isinstance(email, str):
        raise InvalidInput("email must be a string.", code="invalid_email")
    email = User.objects.normalize_email(email or "").strip()
    if "@" not in email:
        raise InvalidInput("An invitation needs an email address.", code="invalid_email")
    role = AccountRole(account_role)
    with transaction.atomic():
        account = _lock_account(account)
        if role == AccountRole.OWNER:
            _require_owner_for_owner_changes(actor=actor, account=account)
        for workspace, workspace_role in workspace_grants:
            if workspace.account_id != account.pk:
                raise NotFound("Workspace not found.")
            if workspace_role.custom is not None and workspace_role.custom.account_id != account.pk:
                raise NotFound("Workspace role not found.")
        if AccountMembership.objects.filter(account=account, user__email__iexact=email).exists():
            raise Conflict(f"{email} is already a member of this account.", code="already_member")
        if invitations_pending(account).filter(email__iexact=email).exists():
            raise Conflict(f"{email} already has a pending invitation.", code="already_invited")
        # An expired invitation (this address's among them) releases its seat in the ledger first.
        _invitations_expire_locked(account)
        token = secrets.token_urlsafe(32)
        with seat_change(
            account=account, actor=actor, door=door, reason=f"invitation sent to {email}", adding=1
        ):
            invitation = Invitation.objects.create(
                account=account,
                email=email,
                account_role=role,
                workspace_grants=[
                    {"workspace_id": str(workspace.id), "workspace_role_id": str(workspace_role.id)}
                    for workspace, workspace_role in workspace_grants
                ],
                token_hash=_token_hash(token),
                expires_at=timezone.now() + lifetime,
                invited_by=actor if isinstance(actor, User) else None,
            )
        audit_record(
            event=events.INVITATION_SENT,
            actor=actor,
            account=account,
            target=invitation,
            payload={"email": email, "role": role.value, "workspace_grants": invitation.workspace_grants},
        )
        # robust: a mail server that refuses is logged and the invitation stands (revoke it and invite again).
        transaction.on_commit(lambda: invitation_email_send(invitation=invitation, token=token), robust=True)
    return invitation, token


def invitation_accept_url(*, invitation: Invitation, token: str) -> str:
    """The link an invitation's email carries: the console's accept page with the token."""
    path = reverse("console-invitation-accept", args=[invitation.pk])
    return f"{settings.PUBLIC_URL}{path}?token={token}"


def invitation_email_send(*, invitation: Invitation, token: str) -> None:
    """Email the invitation through Django's mail backend (after the invitation is committed)."""
    context = {
        "account_name": invitation.account.name,
        "inviter": invitation.invited_by.email if invitation.invited_by else None,
        "role": AccountRole(invitation.account_role).label,
        "accept_url": invitation_accept_url(invitation=invitation, token=token),
        "expires_at": invitation.expires_at,
    }
    send_mail(
        subject=f"You are invited to {invitation.account.name}",
        message=render_to_string("accounts/invitation_email.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


def _invitations_expire_locked(account: Account, *, now: datetime | None = None) -> int:
    """Mark the account's pending invitations past their time EXPIRED, each with its audit record,
    and the seats they held released in one ledger row. The account row is locked by the caller."""
    now = now or timezone.now()
    expired = list(
        Invitation.objects.select_for_update()
        .filter(account=account, status=Invitation.Status.PENDING, expires_at__lte=now)
        .order_by("expires_at")
    )
    if not expired:
        return 0
    Invitation.objects.filter(pk__in=[invitation.pk for invitation in expired]).update(
        status=Invitation.Status.EXPIRED, updated=now
    )
    for invitation in expired:
        audit_record(
            event=events.INVITATION_EXPIRED,
            actor=SYSTEM,
            account=account,
            target=invitation,
            payload={"email": invitation.email, "expires_at": invitation.expires_at.isoformat()},
        )
    emails = ", ".join(invitation.email for invitation in expired[:3]) + (", …" if len(expired) > 3 else "")
    seats_released(
        account=account,
        actor=SYSTEM,
        door=Door.INVITATION,
        reason=f"{len(expired)} invitation(s) expired: {emails}",
        released=len(expired),
    )
    return len(expired)


def invitations_expire(*, now: datetime | None = None) -> int:
    """Every account's pending invitations past their time: marked EXPIRED, their seats' release in
    the ledger (beat runs this; each account in its own short transaction). How many expired."""
    now = now or timezone.now()
    account_ids = (
        Invitation.objects.filter(status=Invitation.Status.PENDING, expires_at__lte=now)
        .values_list("account_id", flat=True)
        .distinct()
    )
    total = 0
    for account_id in list(account_ids):
        with transaction.atomic():
            account = Account.objects.select_for_update().filter(pk=account_id).first()
            if account is not None:
                total += _invitations_expire_locked(account, now=now)
    return total


def invitations_pending(account: Account):
    return Invitation.objects.filter(
        account=account, status=Invitation.Status.PENDING, expires_at__gt=timezone.now()
    )


def invitation_revoke(*, invitation: Invitation, actor, door: str = Door.INVITATION) -> Invitation:
    with transaction.atomic():
        account = _lock_account(invitation.account)
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.status != Invitation.Status.PENDING:
            raise Conflict("Only a pending invitation can be revoked.", code="not_pending")
        with seat_change(
            account=account,
            actor=actor,
            door=door,
            reason=f"invitation to {invitation.email} revoked",
        ):
            invitation.status = Invitation.Status.REVOKED
            invitation.save(update_fields=["status", "updated"])
        audit_record(
            event=events.INVITATION_REVOKED,
            actor=actor,
            account=account,
            target=invitation,
            payload={"email": invitation.email},
        )
    return invitation


def invitation_accept(*, invitation_id, token: str, user: User) -> AccountMembership:
    """Accept with the link's token, as the invited person (their email must match). Single use:
    a second attempt, a revoked or an expired invitation is refused and changes nothing."""
    invitation_id = as_uuid(invitation_id)
    if invitation_id is None:
        raise NotFound("Invitation not found.")
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().filter(pk=invitation_id).first()
        if invitation is None or not secrets.compare_digest(invitation.token_hash, _token_hash(token or "")):
            raise NotFound("Invitation not found.")
        if invitation.status != Invitation.Status.PENDING:
            raise Conflict("This invitation has already been used or revoked.", code="not_pending")
        if invitation.expires_at <= timezone.now():
            raise Conflict("This invitation has expired; ask for a new one.", code="expired")
        if user.email.lower() != invitation.email.lower():
            raise NotFound("Invitation not found.")
        membership = _invitation_accept_locked(invitation, user=user, via="link")
    return membership


def _invitation_accept_locked(invitation: Invitation, *, user: User, via: str) -> AccountMembership:
    """Make ``user`` a member with the invitation's account role and its workspace grants (each
    through ``workspace_access_grant``, with its audit event); the invitation's seat passes to the
    membership. The invitation row is locked and pending; ``via`` says how it was accepted (the
    emailed link, or a sign-in through the account's identity provider)."""
    account = _lock_account(invitation.account)
    with seat_change(
        account=account, actor=user, door=Door.INVITATION_ACCEPTED, reason=f"{user.email} accepted"
    ):
        # The invitation held the seat; release it before the membership takes it.
        invitation.status = Invitation.Status.ACCEPTED
        invitation.accepted_by, invitation.accepted_at = user, timezone.now()
        invitation.save(update_fields=["status", "accepted_by", "accepted_at", "updated"])
        membership = membership_add(
            account=account,
            user=user,
            role=invitation.account_role,
            actor=SYSTEM,
            door=Door.INVITATION_ACCEPTED,
        )
    for grant in invitation.workspace_grants:
        workspace = Workspace.objects.filter(account=account, pk=grant["workspace_id"]).first()
        role = workspace_role_resolve(grant["workspace_role_id"], account=account)
        if workspace is not None and role is not None:
            workspace_access_grant(workspace=workspace, principal=user, role=role, actor=SYSTEM)
    audit_record(
        event=events.INVITATION_ACCEPTED,
        actor=user,
        account=account,
        target=invitation,
        payload={"email": invitation.email, "via": via},
    )
    return membership


def invitation_accept_on_sign_in(*, account: Account, user: User) -> AccountMembership | None:
    """A sign-in through ``account``'s identity provider (which speaks only for the account's
    verified domains) accepts the pending invitation to that person's address, if there is one:
    they join with the invitation's role and workspace grants rather than the plain member a
    just-in-time sign-in makes. None when no invitation is pending (or it has expired)."""
    with transaction.atomic():
        invitation = invitations_pending(account).select_for_update().filter(email__iexact=user.email).first()
        if invitation is None:
            return None
        return _invitation_accept_locked(invitation, user=user, via="sso")


def invitation_accept_new_user(
    *, invitation_id, token: str, password: str, first_name: str = "", last_name: str = ""
) -> AccountMembership:
    """Accept as someone new: the user is created with the invitation's email and the password
    (checked by the password validators), in the same transaction as the membership. Refused
    when a user with that email exists (they sign in and accept instead)."""
    invitation_uuid = as_uuid(invitation_id)
    if invitation_uuid is None:
        raise NotFound("Invitation not found.")
    invitation = Invitation.objects.filter(pk=invitation_uuid).first()
    if invitation is None or not secrets.compare_digest(invitation.token_hash, _token_hash(token or "")):
        raise NotFound("Invitation not found.")
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise Conflict(
            f"{invitation.email} already has a user: sign in and accept the invitation.", code="user_exists"
        )
    try:
        validate_password(password, User(email=invitation.email, first_name=first_name, last_name=last_name))
    except ValidationError as error:
        raise InvalidInput(" ".join(error.messages), code="invalid_password") from None
    with transaction.atomic():
        user = User.objects.create_user(
            invitation.email, password, first_name=first_name, last_name=last_name
        )
        return invitation_accept(invitation_id=invitation.pk, token=token, user=user)


# --- account settings ------------------------------------------------------------------------------

SETTINGS_DEFAULTS = {"max_api_key_lifetime_seconds": None}


def account_settings(account: Account) -> dict:
    """The account's settings as the API shows them. ``enforce_ip_allowlist`` is present only on
    plans with IP allowlisting (the ``prefect`` CLI reads its presence as "available")."""
    stored = account.settings or {}
    result = {**SETTINGS_DEFAULTS, **{k: v for k, v in stored.items() if k in SETTINGS_DEFAULTS}}
    if ip_allowlist.plan_allows(account):
        result["enforce_ip_allowlist"] = bool(stored.get("enforce_ip_allowlist", False))
    if entitlements.check_feature(account, "sso"):
        result["enforce_sso"] = bool(stored.get("enforce_sso", False))
        result["auth_expiration_seconds"] = (
            stored.get("auth_expiration_seconds") or settings.SSO_SESSION_SECONDS
        )
    return result


MIN_AUTH_EXPIRATION_SECONDS = 300
MAX_AUTH_EXPIRATION_SECONDS = 30 * 24 * 3600


def _sso_settings_check(account: Account, changes: dict) -> None:
    sso_changes = {"enforce_sso", "auth_expiration_seconds"} & set(changes)
    if not sso_changes:
        return
    if not entitlements.check_feature(account, "sso"):
        raise InvalidInput(
            f"Single sign-on is not available on the {entitlements.plan_for(account).name} plan.",
            code="plan_limit",
        )
    if "enforce_sso" in changes:
        if not isinstance(changes["enforce_sso"], bool):
            raise InvalidInput("enforce_sso must be true or false.", code="invalid_setting")
        enforcement.enforcement_check(account, enable=changes["enforce_sso"])
    seconds = changes.get("auth_expiration_seconds", _UNSET)
    if (
        seconds is not _UNSET
        and seconds is not None
        and (
            not isinstance(seconds, int)
            or isinstance(seconds, bool)
            or not MIN_AUTH_EXPIRATION_SECONDS <= seconds <= MAX_AUTH_EXPIRATION_SECONDS
        )
    ):
        raise InvalidInput(
            f"auth_expiration_seconds must be a whole number of seconds from {MIN_AUTH_EXPIRATION_SECONDS} "
            f"to {MAX_AUTH_EXPIRATION_SECONDS}, or null.",
            code="invalid_setting",
        )


def account_settings_update(
    *, account: Account, changes: dict, actor, requester_ip: str | None = None
) -> dict:
    known = {*SETTINGS_DEFAULTS, "enforce_ip_allowlist", "enforce_sso", "auth_expiration_seconds"}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise InvalidInput(f"Unknown account setting(s): {', '.join(unknown)}.", code="unknown_setting")
    lifetime = changes.get("max_api_key_lifetime_seconds", _UNSET)
    if (
        lifetime is not _UNSET
        and lifetime is not None
        and (not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime < 60)
    ):
        raise InvalidInput(
            "max_api_key_lifetime_seconds must be a whole number of seconds, at least 60, or null.",
            code="invalid_setting",
        )
    enforce = changes.get("enforce_ip_allowlist", _UNSET)
    if enforce is not _UNSET and not isinstance(enforce, bool):
        raise InvalidInput("enforce_ip_allowlist must be true or false.", code="invalid_setting")
    with transaction.atomic():
        account = _lock_account(account)
        if enforce is not _UNSET:
            if not ip_allowlist.plan_allows(account):
                raise InvalidInput(
                    f"IP allowlisting is not available on the {entitlements.plan_for(account).name} plan.",
                    code="plan_limit",
                )
            ip_allowlist.enforcement_check(account, enable=enforce, requester_ip=requester_ip)
        _sso_settings_check(account, changes)
        with audited_update(
            instance=account,
            snapshot=account_settings,
            event=events.ACCOUNT_SETTINGS_CHANGED,
            actor=actor,
            account=account,
            always=True,
        ) as change:
            account.settings = {**(account.settings or {}), **changes}
            account.save(update_fields=["settings", "updated"])
        before, after = change.before, change.after
        if before.get("enforce_sso") != after.get("enforce_sso"):
            audit_record(
                event=events.SSO_ENFORCEMENT_CHANGED,
                actor=actor,
                account=account,
                target=account,
                payload={
                    "state": "on" if after["enforce_sso"] else "off",
                    "enforce_sso": after["enforce_sso"],
                },
            )
    return after


# --- changes that combine services (one transaction each) -----------------------------------------


def service_account_create_with_key(
    *,
    account: Account,
    name: str,
    actor,
    account_role: str = AccountRole.MEMBER,
    key_expires_at: datetime | None = None,
) -> tuple[ServiceAccount, ApiKey, str]:
    """A new service account with its first key: ``(service_account, key, plaintext)``."""
    with transaction.atomic():
        service_account = service_account_create(
            account=account, name=name, actor=actor, account_role=account_role
        )
        key, plaintext = api_key_create(
            owner=service_account, name=f"{service_account.name} key", actor=actor, expires_at=key_expires_at
        )
    return service_account, key, plaintext


def team_members_add(*, team: Team, principals: list[User | ServiceAccount], actor) -> Team:
    """Add every principal to the team (those already in it stay, as do members not listed)."""
    with transaction.atomic():
        for principal in principals:
            team_member_add(team=team, principal=principal, actor=actor)
    return team


def account_update_with_settings(
    *,
    account: Account,
    actor,
    name: str | None = None,
    handle: str | None = None,
    settings_changes: dict | None = None,
    requester_ip: str | None = None,
) -> Account:
    """Rename the account, change its handle and its settings in one change: a refused setting
    leaves the name and handle as they were too."""
    with transaction.atomic():
        account = account_update(account=account, actor=actor, name=name, handle=handle)
        if settings_changes:
            account_settings_update(
                account=account, changes=settings_changes, actor=actor, requester_ip=requester_ip
            )
            account.refresh_from_db()
    return account


def workspace_update_with_default_role(
    *, workspace: Workspace, actor, changes: dict, default_role: ResolvedRole | None | object = _UNSET
) -> Workspace:
    """``workspace_update`` with ``changes`` (name, handle, description), and the workspace's default
    role set (None removes it) when ``default_role`` is given, in one transaction."""
    with transaction.atomic():
        if changes:
            workspace = workspace_update(workspace=workspace, actor=actor, **changes)
        if default_role is not _UNSET:
            workspace_default_role_set(workspace=workspace, role=default_role, actor=actor)
    return workspace


__all__ = [
    "account_update_with_settings",
    "account_settings",
    "account_settings_update",
    "custom_role_create",
    "custom_role_delete",
    "custom_role_scopes",
    "custom_role_update",
    "invitation_accept",
    "invitation_create",
    "invitation_revoke",
    "invitations_pending",
    "service_account_create_with_key",
    "service_account_rotate_key",
    "service_account_update",
    "team_create",
    "team_delete",
    "team_member_add",
    "team_member_remove",
    "team_members_add",
    "team_update",
    "workspace_default_role_set",
    "workspace_update_with_default_role",
]
