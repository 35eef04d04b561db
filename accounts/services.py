"""Writes about people and service accounts. Each service runs in one transaction and records its
audit event in it. Plan limits are checked with the account row locked."""

from __future__ import annotations

from contextlib import ExitStack

from django.contrib.sessions.models import Session
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.api_keys.models import ApiKey
from accounts.models import AccountMembership, ServiceAccount, Team, User, WorkspaceRoleGrant
from accounts.permissions import AccountRole, WorkspaceRole
from accounts.roles import ResolvedRole, role_of
from accounts.selectors import account_role_of
from audit import events
from audit.actors import SCIM, SystemActor
from audit.services import audit_record
from billing import entitlements
from billing.models import Door
from billing.services import seat_change
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from tenants.models import Account


def _lock_account(account: Account) -> Account:
    return Account.objects.select_for_update().get(pk=account.pk)


def _require_owner_for_owner_changes(*, actor, account: Account) -> None:
    """Only an Owner makes or unmakes an Owner (the system itself may, e.g. when bootstrapping)."""
    if isinstance(actor, SystemActor):
        return
    if account_role_of(actor, account) != AccountRole.OWNER:
        raise Forbidden("Only an account Owner can make or remove an Owner.", code="owner_required")


def _accounts_of(user: User) -> list[Account]:
    """The accounts ``user`` is a member of, in a stable order (locks are taken in it)."""
    return list(Account.objects.filter(memberships__user=user).order_by("pk"))


def _owner_count(account: Account) -> int:
    return AccountMembership.objects.filter(
        account=account, role=AccountRole.OWNER, user__is_active=True
    ).count()


def user_create(
    *, email: str, password: str | None = None, first_name: str = "", last_name: str = ""
) -> User:
    email = User.objects.normalize_email(email).strip()
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict(f"A user with the email {email} already exists.", code="user_exists")
    try:
        with transaction.atomic():
            return User.objects.create_user(email, password, first_name=first_name, last_name=last_name)
    except IntegrityError:
        raise Conflict(f"A user with the email {email} already exists.", code="user_exists") from None


def membership_add(
    *, account: Account, user: User, role: str, actor, door: str = Door.API
) -> AccountMembership:
    """Add ``user`` to the account. ``door`` names where the seat came from (the seat ledger's
    column): the seat is checked and recorded by ``billing.services.seat_change``, in this
    transaction."""
    role = AccountRole(role)
    with transaction.atomic():
        account = _lock_account(account)
        if AccountMembership.objects.filter(account=account, user=user).exists():
            raise Conflict(f"{user.email} is already a member of this account.", code="already_member")
        if role == AccountRole.OWNER:
            _require_owner_for_owner_changes(actor=actor, account=account)
        with seat_change(account=account, actor=actor, door=door, reason=f"{user.email} joined", adding=1):
            membership = AccountMembership.objects.create(account=account, user=user, role=role)
        audit_record(
            event=events.MEMBER_ADDED, actor=actor, account=account, target=user, payload={"role": role.value}
        )
    return membership


def membership_change_role(*, membership: AccountMembership, role: str, actor) -> AccountMembership:
    role = AccountRole(role)
    with transaction.atomic():
        account = _lock_account(membership.account)
        membership = AccountMembership.objects.select_for_update().get(pk=membership.pk)
        old_role = membership.role
        if old_role == role:
            return membership
        if AccountRole.OWNER in (old_role, role):
            _require_owner_for_owner_changes(actor=actor, account=account)
        if old_role == AccountRole.OWNER and _owner_count(account) <= 1:
            raise Conflict("The last Owner of an account cannot be demoted.", code="last_owner")
        membership.role = role
        membership.save(update_fields=["role", "updated"])
        audit_record(
            event=events.MEMBER_ROLE_CHANGED,
            actor=actor,
            account=account,
            target=membership.user,
            payload={"role": role.value, "old_role": old_role},
        )
    return membership


def membership_remove(*, membership: AccountMembership, actor, door: str = Door.API) -> None:
    with transaction.atomic():
        account = _lock_account(membership.account)
        membership = (
            AccountMembership.objects.select_for_update(of=("self",))
            .select_related("user")
            .get(pk=membership.pk)
        )
        if membership.role == AccountRole.OWNER:
            _require_owner_for_owner_changes(actor=actor, account=account)
            if _owner_count(account) <= 1:
                raise Conflict("The last Owner of an account cannot be removed.", code="last_owner")
        if (
            actor != SCIM
            and membership.user.scim_identities.filter(account=account).exclude(active=False).exists()
        ):
            raise Conflict(
                f"{membership.user.email} is provisioned by the account's identity provider (SCIM); "
                "deprovision them there.",
                code="idp_managed",
            )
        # Grants in this account's workspaces go with the membership.
        WorkspaceRoleGrant.objects.unscoped().filter(
            workspace__account=account, user=membership.user
        ).delete()
        user = membership.user
        with seat_change(account=account, actor=actor, door=door, reason=f"{user.email} left"):
            membership.delete()
        audit_record(event=events.MEMBER_REMOVED, actor=actor, account=account, target=user)


def service_account_create(
    *, account: Account, name: str, actor, account_role: str = AccountRole.MEMBER
) -> ServiceAccount:
    if name is not None and not isinstance(name, str):
        raise InvalidInput("A service account's name must be a string.", code="invalid_name")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A service account needs a name.", code="name_required")
    account_role = AccountRole(account_role)
    with transaction.atomic():
        account = _lock_account(account)
        entitlements.ensure_feature(account, "service_accounts")
        if account_role == AccountRole.OWNER:
            _require_owner_for_owner_changes(actor=actor, account=account)
        if ServiceAccount.objects.filter(account=account, name=name).exists():
            raise Conflict(f"A service account named {name!r} already exists.", code="name_taken")
        service_account = ServiceAccount.objects.create(
            account=account,
            name=name,
            account_role=account_role,
            created_by=actor if isinstance(actor, User) else None,
        )
        audit_record(
            event=events.SERVICE_ACCOUNT_CREATED, actor=actor, account=account, target=service_account
        )
    return service_account


def service_account_delete(*, service_account: ServiceAccount, actor) -> None:
    with transaction.atomic():
        account = _lock_account(service_account.account)
        audit_record(
            event=events.SERVICE_ACCOUNT_DELETED, actor=actor, account=account, target=service_account
        )
        # Its keys and grants go with it (cascade).
        service_account.delete()


def _grant_lookup(principal) -> dict:
    if isinstance(principal, ServiceAccount):
        return {"service_account": principal}
    if isinstance(principal, User):
        return {"user": principal}
    if isinstance(principal, Team):
        return {"team": principal}
    raise InvalidInput("Workspace access is granted to a user, a service account or a team.")


def _principal_in_account(principal, account) -> bool:
    if isinstance(principal, Team):
        return principal.account_id == account.pk
    return account_role_of(principal, account) is not None


def _as_role(role, *, account) -> ResolvedRole:
    if isinstance(role, ResolvedRole):
        if role.custom is not None and role.custom.account_id != account.pk:
            raise NotFound("Workspace role not found.")
        return role
    return ResolvedRole(builtin=WorkspaceRole(role).value)


def workspace_access_grant(*, workspace, principal, role, actor) -> WorkspaceRoleGrant:
    """Grant ``role`` (a built-in role key or a ``ResolvedRole``) on ``workspace`` to ``principal``
    (a user, service account or team of the workspace's account), replacing its previous role
    there. Granting a custom role needs the plan's custom roles; a team, the plan's teams."""
    lookup = _grant_lookup(principal)
    with transaction.atomic():
        account = _lock_account(workspace.account)
        role = _as_role(role, account=account)
        if not _principal_in_account(principal, account):
            raise NotFound("No such member, service account or team in this account.")
        if role.custom is not None:
            entitlements.ensure_feature(account, "custom_roles")
        if isinstance(principal, Team):
            entitlements.ensure_feature(account, "teams")
        grant = (
            WorkspaceRoleGrant.objects.for_workspace(workspace.pk)
            .select_for_update(of=("self",))
            .select_related("custom_role")
            .filter(**lookup)
            .first()
        )
        old = role_of(grant) if grant else None
        if grant is None:
            grant = WorkspaceRoleGrant.objects.for_workspace(workspace.pk).create(
                workspace=workspace, **role.as_fields(), **lookup
            )
        elif old.id != role.id:
            grant.role, grant.custom_role = role.builtin, role.custom
            grant.save(update_fields=["role", "custom_role", "updated"])
        if old is None or old.id != role.id:
            audit_record(
                event=events.WORKSPACE_ACCESS_GRANTED,
                actor=actor,
                workspace=workspace,
                target=principal,
                payload={
                    "role": role.name,
                    "role_id": str(role.id),
                    "old_role": old.name if old else None,
                    "old_role_id": str(old.id) if old else None,
                },
            )
    return grant


def workspace_access_revoke(*, workspace, principal, actor) -> None:
    lookup = _grant_lookup(principal)
    with transaction.atomic():
        grant = (
            WorkspaceRoleGrant.objects.for_workspace(workspace.pk)
            .select_related("custom_role")
            .filter(**lookup)
            .first()
        )
        if grant is None:
            raise NotFound("This principal has no access to the workspace.")
        old = role_of(grant)
        grant.delete()
        audit_record(
            event=events.WORKSPACE_ACCESS_REVOKED,
            actor=actor,
            workspace=workspace,
            target=principal,
            payload={"old_role": old.name, "old_role_id": str(old.id)},
        )


def workspace_access_grant_many(*, workspace, grants: list[tuple], actor) -> list[WorkspaceRoleGrant]:
    """``workspace_access_grant`` for each ``(principal, role)``, all or none."""
    with transaction.atomic():
        return [
            workspace_access_grant(workspace=workspace, principal=principal, role=role, actor=actor)
            for principal, role in grants
        ]


def user_sessions_end(user: User) -> int:
    """End every console session of ``user`` (database sessions hold the user id in their data)."""
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            ended += 1
    return ended


def user_deactivate(*, user: User, actor, account: Account | None = None, door: str = Door.OPERATOR) -> User:
    """Deactivate a person everywhere at once: they can no longer log in, their console sessions
    end and their ``pnu_`` keys are revoked. Their memberships, history and audit trail stay (a
    reactivation restores the person, not the keys). The last active Owner of an account cannot be
    deactivated."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if not user.is_active:
            return user
        for membership in AccountMembership.objects.filter(user=user, role=AccountRole.OWNER).select_related(
            "account"
        ):
            if _owner_count(_lock_account(membership.account)) <= 1:
                raise Conflict(
                    f"{user.email} is the last Owner of {membership.account}; make someone else an Owner first.",
                    code="last_owner",
                )
        with ExitStack() as seats:  # each account the person was a member of frees a seat
            for member_of in _accounts_of(user):
                seats.enter_context(
                    seat_change(account=member_of, actor=actor, door=door, reason=f"{user.email} deactivated")
                )
            user.is_active = False
            user.save(update_fields=["is_active"])
        revoked = ApiKey.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
        sessions = user_sessions_end(user)
        audit_record(
            event=events.USER_DEACTIVATED,
            actor=actor,
            account=account,
            target=user,
            payload={
                "before": {"active": True},
                "after": {"active": False},
                "keys_revoked": revoked,
                "sessions_ended": sessions,
            },
        )
    return user


def user_reactivate(*, user: User, actor, account: Account | None = None, door: str = Door.OPERATOR) -> User:
    """Reactivate a person; they take a seat again in each account they are a member of (refused,
    with nothing changed, where the plan has none free)."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.is_active:
            return user
        with ExitStack() as seats:
            for member_of in _accounts_of(user):
                seats.enter_context(
                    seat_change(
                        account=member_of,
                        actor=actor,
                        door=door,
                        reason=f"{user.email} reactivated",
                        adding=1,
                    )
                )
            user.is_active = True
            user.save(update_fields=["is_active"])
        audit_record(
            event=events.USER_REACTIVATED,
            actor=actor,
            account=account,
            target=user,
            payload={"before": {"active": False}, "after": {"active": True}},
        )
    return user
