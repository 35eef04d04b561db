"""Accepting an invitation from its emailed link: ``/console/invitations/<id>/accept?token=…``.

The token is the credential (as for ``POST /api/invitations/<id>/accept``): a signed-in person of
the invited email accepts with one click; someone new sets a password (checked by the password
validators), which creates their user, and is then asked to sign in. Both go through the same services as the
API (``rbac.invitation_accept``, ``rbac.invitation_accept_new_user``) with their audit events.

When the invited address is in a domain the inviting account verified for single sign-on and the
account has an enabled identity provider, the page offers "Sign in with your organisation's SSO"
(said to be required when the account enforces it): a sign-in through the account's identity
provider accepts the pending invitation to that address (``accounts.sso.pipeline``). Only a link
whose token is right says anything about the invitation."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from accounts import rbac, throttles
from accounts.selectors import invitation_for_link
from accounts.sso.selectors import sso_sign_in_options
from audit.context import client_ip
from console.pages.base import error_message, layout_context
from core.errors import AppError, TooManyRequests


class NewUserForm(forms.Form):
    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    password = forms.CharField(label="Password", widget=forms.PasswordInput, max_length=4096)


class InvitationAcceptPage(View):
    template_name = "console/invitation_accept.html"

    def _sso(self, request, invitation_id, token: str) -> dict:
        """The account's identity providers for the invited address, to a visitor not signed in
        whose link is right (none otherwise)."""
        if request.user.is_authenticated:
            return {}
        invitation = invitation_for_link(invitation_id=invitation_id, token=token)
        if invitation is None:
            return {}
        options = sso_sign_in_options(invitation.email)
        if options["sso_account"] is None or options["sso_account"].pk != invitation.account_id:
            return {}
        return {
            "invitation": invitation,
            "sso_providers": options["providers"],
            "sso_enforced": options["enforced"],
            "sso_next": reverse("console-members", args=[invitation.account.handle]),
        }

    def _show(self, request, invitation_id, token: str, *, form=None, error=None, status=200):
        context = layout_context(request) if request.user.is_authenticated else {}
        sign_in = f"{reverse('login')}?next={request.path}%3Ftoken%3D{token}"
        return render(
            request,
            self.template_name,
            {
                **context,
                **self._sso(request, invitation_id, token),
                "token": token,
                "form": form or NewUserForm(),
                "error": error,
                "sign_in_url": sign_in,
            },
            status=status,
        )

    def _refused(self, request, invitation_id, token: str, error: AppError):
        status = 429 if isinstance(error, TooManyRequests) else 422
        response = self._show(request, invitation_id, token, error=error_message(error), status=status)
        for name, value in error.headers.items():
            response[name] = value
        return response

    def get(self, request, invitation_id):
        return self._show(request, invitation_id, request.GET.get("token", ""))

    def post(self, request, invitation_id):
        token = request.POST.get("token", "")
        # A wrong token is a failure at a throttled door (per address and per invitation).
        door = {"address": client_ip(request), "subject": str(invitation_id)}
        if request.user.is_authenticated:
            try:
                with throttles.attempt(throttles.Door.INVITATION, **door):
                    membership = rbac.invitation_accept(
                        invitation_id=invitation_id, token=token, user=request.user
                    )
            except AppError as error:
                return self._refused(request, invitation_id, token, error)
            messages.success(request, f"You joined {membership.account.name}.")
            return redirect(reverse("console-members", args=[membership.account.handle]))
        form = NewUserForm(request.POST)
        if form.is_valid():
            try:
                with throttles.attempt(throttles.Door.INVITATION, **door):
                    membership = rbac.invitation_accept_new_user(
                        invitation_id=invitation_id,
                        token=token,
                        password=form.cleaned_data["password"],
                        first_name=form.cleaned_data["first_name"],
                        last_name=form.cleaned_data["last_name"],
                    )
            except TooManyRequests as error:
                return self._refused(request, invitation_id, token, error)
            except AppError as error:
                form.add_error("password" if error.code == "invalid_password" else None, error_message(error))
            else:
                members = reverse("console-members", args=[membership.account.handle])
                return render(
                    request,
                    "console/invitation_accepted.html",
                    {
                        "membership": membership,
                        "sign_in_url": f"{reverse('login')}?next={members}",
                    },
                )
        return self._show(request, invitation_id, token, form=form, status=422)
