"""Sign-ins, sign-outs and failed sign-ins (Django's auth signals) as audit events, in every account
the person belongs to (and once without an account when they belong to none)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts.models import User
from audit import events
from audit.actors import SYSTEM
from audit.services import audit_record
from tenants.models import Account


def _accounts_of(user):
    return list(Account.objects.filter(memberships__user=user)) or [None]


@receiver(user_logged_in, dispatch_uid="audit-login")
def _logged_in(sender, request, user, **kwargs):
    method = getattr(request, "auth_method", None) or "password"
    for account in _accounts_of(user):
        audit_record(
            event=events.LOGIN_SUCCEEDED, actor=user, account=account, target=user, payload={"method": method}
        )


@receiver(user_logged_out, dispatch_uid="audit-logout")
def _logged_out(sender, request, user, **kwargs):
    if user is None:
        return
    for account in _accounts_of(user):
        audit_record(event=events.LOGOUT, actor=user, account=account, target=user)


@receiver(user_login_failed, dispatch_uid="audit-login-failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    email = str(credentials.get("username") or credentials.get("email") or "")[:254]
    user = User.objects.filter(email__iexact=email).first() if email else None
    for account in _accounts_of(user) if user is not None else [None]:
        audit_record(
            event=events.LOGIN_FAILED, actor=SYSTEM, account=account, target=user, payload={"email": email}
        )
