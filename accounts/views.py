"""Sign-in pages for people (the signed-in pages are the console's, in ``console``).

Sign-in is email-first: the first step asks for the address only; an address in a domain an
account has verified for single sign-on is offered that account's identity providers (and the
password only where the account does not enforce SSO, or as an Owner's break-glass path). Posting
the address with a password signs in with the password, subject to the accounts' SSO enforcement
(``accounts.sso.enforcement``).
"""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpResponse

from accounts import throttles
from accounts.sso import enforcement
from accounts.sso.selectors import sso_sign_in_options
from audit import events
from audit.actors import SYSTEM
from audit.context import client_ip
from audit.services import audit_record
from core.errors import TooManyRequests


def _sso_login_check(form, user) -> None:
    """Refuse a password sign-in where every account of ``user`` requires SSO (each refusal an
    audit event); otherwise keep the decision on ``form`` (Owners' break-glass accounts)."""
    decision = enforcement.password_login_decision(user)
    if not decision.allowed:
        for account in decision.blocked:
            audit_record(
                event=events.LOGIN_FAILED,
                actor=SYSTEM,
                account=account,
                target=user,
                payload={"email": user.email, "reason": "sso_required"},
            )
        names = ", ".join(account.name for account in decision.blocked)
        raise forms.ValidationError(
            f"{names} requires single sign-on: continue with your identity provider instead of a password.",
            code="sso_required",
        )
    form.sso_decision = decision


class SignInForm(AuthenticationForm):
    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        _sso_login_check(self, user)


class AdminSignInForm(AdminAuthenticationForm):
    """The Django admin's password sign-in, under the same SSO enforcement as ``/login/``: refused
    where every account of the person requires SSO, and an Owner's sign-in there is break-glass
    (audited, every other Owner told). A refusal says who the admin is for and where an account's
    Owners and Admins go instead."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter the correct %(username)s and password for a staff account. The admin is for "
            "the operators of this installation (staff users, made with `python manage.py "
            "createsuperuser`); an account's Owners and Admins run their organisation in the console, "
            "at /console/."
        ),
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)  # active staff only
        _sso_login_check(self, user)
        decision = self.sso_decision
        if decision.break_glass:
            enforcement.break_glass_record(user=user, accounts=decision.break_glass)


def _too_many(refusal: TooManyRequests) -> HttpResponse:
    response = HttpResponse(refusal.message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(refusal.retry_after)
    return response


class SignInView(auth_views.LoginView):
    form_class = SignInForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if "password" not in request.POST:
            email = (request.POST.get("username") or "").strip()
            return self._second_step(self.get_form_class()(request, initial={"username": email}))
        try:
            throttles.check(throttles.Door.SIGN_IN, **self._throttle_names())
        except TooManyRequests as refusal:
            return _too_many(refusal)
        return super().post(request, *args, **kwargs)

    def _throttle_names(self) -> dict:
        email = (self.request.POST.get("username") or "").strip()
        return {"address": client_ip(self.request), "subject": email}

    def form_invalid(self, form):
        if "password" in self.request.POST:
            try:
                throttles.failed(throttles.Door.SIGN_IN, **self._throttle_names())
            except TooManyRequests as refusal:
                return _too_many(refusal)
        return self._second_step(form)

    def _second_step(self, form):
        """The page after the address: its identity providers and the password step."""
        email = (self.request.POST.get("username") or "").strip()
        context = self.get_context_data(form=form)
        context.update(sso_sign_in_options(email), email_step_done=bool(email), email=email)
        return self.render_to_response(context)

    def form_valid(self, form):
        response = super().form_valid(form)
        decision = getattr(form, "sso_decision", None)
        if decision is not None and decision.break_glass:
            enforcement.break_glass_record(user=form.get_user(), accounts=decision.break_glass)
        return response
