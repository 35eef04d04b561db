"""What a browser session may do in an account that enforces single sign-on.

An account on a plan with SSO may set ``enforce_sso``: its members then act there only in a session
that its own identity provider started. Password sign-in is refused to anyone whose every account
would refuse it; a person with other accounts may still sign in with a password, and the enforcing
accounts are closed to that session (the console names them, the API answers 403). Owners keep a
break-glass path: their password session is allowed in the account, and each such sign-in is an
audit event and an email to every other Owner. A new ``pnu_`` key cannot be made from a session that
any of the person's enforcing accounts refuses (the key would carry the person into that account).

SSO sessions last ``auth_expiration_seconds`` (an account setting), and the session records which
account's identity provider started it (``request.session["sso"]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from accounts.models import AccountMembership, IdentityProvider, SsoDomain
from accounts.permissions import AccountRole
from audit import events
from audit.services import audit_record
from billing import entitlements
from core.errors import InvalidInput

SESSION_KEY = "sso"


def enforces_sso(account) -> bool:
    return bool((account.settings or {}).get("enforce_sso")) and bool(
        entitlements.check_feature(account, "sso")
    )


def auth_expiration_seconds(account) -> int:
    value = (account.settings or {}).get("auth_expiration_seconds")
    return int(value) if value else settings.SSO_SESSION_SECONDS


def session_sso(session) -> dict | None:
    facts = session.get(SESSION_KEY) if session is not None else None
    return facts if isinstance(facts, dict) else None


def session_may_act(request, account, *, role: str | None = None) -> bool:
    """Whether this browser session may act in ``account`` (the caller knows the person belongs to
    it). ``role``: the person's account role there, when already known."""
    if not enforces_sso(account):
        return True
    facts = session_sso(getattr(request, "session", None))
    if facts is not None and facts.get("account_id") == str(account.pk):
        return True
    if role is None:
        role = (
            AccountMembership.objects.filter(account=account, user=request.user)
            .values_list("role", flat=True)
            .first()
        )
    return role == AccountRole.OWNER


def refusal_detail(account) -> str:
    return (
        f"{account.name} requires single sign-on: sign in through its identity provider "
        f"({settings.PUBLIC_URL}/login/)."
    )


@dataclass
class PasswordDecision:
    allowed: bool
    blocked: list = field(default_factory=list)  # enforcing accounts the session cannot act in
    break_glass: list = field(default_factory=list)  # enforcing accounts entered as an Owner


def password_login_decision(user) -> PasswordDecision:
    memberships = list(AccountMembership.objects.filter(user=user).select_related("account"))
    decision = PasswordDecision(allowed=True)
    open_accounts = 0
    for membership in memberships:
        if not enforces_sso(membership.account):
            open_accounts += 1
        elif membership.role == AccountRole.OWNER:
            decision.break_glass.append(membership.account)
        else:
            decision.blocked.append(membership.account)
    decision.allowed = not decision.blocked or bool(open_accounts or decision.break_glass)
    return decision


def break_glass_record(*, user, accounts) -> None:
    """Audit an Owner's password sign-in to accounts that enforce SSO, and tell every other Owner."""
    for account in accounts:
        others = list(
            AccountMembership.objects.filter(account=account, role=AccountRole.OWNER, user__is_active=True)
            .exclude(user=user)
            .values_list("user__email", flat=True)
        )
        audit_record(
            event=events.SSO_BREAK_GLASS_LOGIN,
            actor=user,
            account=account,
            target=user,
            payload={"notified": others},
        )
        if others:
            subject = f"Break-glass sign-in to {account.name}"
            body = (
                f"{user.email} signed in to {account.name} with a password, bypassing single sign-on, "
                "which the account enforces. If this was not expected, review the account's audit log."
            )
            transaction.on_commit(
                lambda s=subject, b=body, to=others: send_mail(s, b, None, to, fail_silently=True)
            )


def key_creation_refusal(request) -> str | None:
    """Why a new key may not be made from this browser session, or None."""
    for membership in AccountMembership.objects.filter(user=request.user).select_related("account"):
        if not session_may_act(request, membership.account, role=membership.role):
            return (
                f"{membership.account.name} requires single sign-on: API keys are made from a session "
                "its identity provider started."
            )
    return None


def enforcement_check(account, *, enable: bool) -> None:
    """Turning enforcement on needs something to sign in with: an enabled identity provider and a
    verified domain (the caller has checked the plan)."""

    if not enable:
        return
    if not IdentityProvider.objects.filter(account=account, enabled=True).exists():
        raise InvalidInput(
            "Add and enable an identity provider before enforcing single sign-on.",
            code="no_identity_provider",
        )
    if not SsoDomain.objects.filter(account=account, verified_at__isnull=False).exists():
        raise InvalidInput("Verify a domain before enforcing single sign-on.", code="no_verified_domain")
