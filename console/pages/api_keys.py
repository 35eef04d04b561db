"""My API keys (``/console/me/api-keys/``): the signed-in person's own ``pnu_`` keys. Create one
with a name, an optional expiry and optionally narrowed to some workspace scopes (never more than
the person may do), shown once with a copy button; revoke one (asked first). The same services,
checks and audit events as ``/api/users/<own id>/api_keys``: the accounts' key lifetime caps, and a
session that an account enforcing SSO did not start may not make keys."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from accounts.api_keys.models import ApiKey
from accounts.api_keys.selectors import user_api_key_get, user_api_key_list
from accounts.api_keys.services import api_key_create, api_key_revoke
from accounts.sso.enforcement import key_creation_refusal
from console.pages.base import error_message, layout_context
from core.errors import AppError


class ApiKeyForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    expires_in_days = forms.IntegerField(
        label="Expires in (days, empty for never)", required=False, min_value=1, max_value=3650
    )
    scopes = forms.CharField(
        label="Only these workspace scopes (space-separated, empty for all you may do)",
        required=False,
        max_length=4000,
    )


class _OwnKeys(LoginRequiredMixin, View):
    """The person's own keys: nobody else's are reachable (another's key id is 404)."""

    def show(self, *, form=None, new_key=None, error=None, status: int = 200):
        context = {
            **layout_context(self.request),
            "keys": list(user_api_key_list(user=self.request.user)),
            "form": form or ApiKeyForm(),
            "new_key": new_key,
            "error": error,
            "nav_current": "console-api-keys",
        }
        return render(self.request, "console/api_keys.html", context, status=status)

    def key(self, key_id) -> ApiKey:
        key = user_api_key_get(user=self.request.user, key_id=key_id)
        if key is None:
            raise Http404("Not Found")
        return key


class ApiKeysPage(_OwnKeys):
    def get(self, request):
        return self.show()

    def post(self, request):
        form = ApiKeyForm(request.POST)
        if not form.is_valid():
            return self.show(form=form, status=422)
        refusal = key_creation_refusal(request)
        if refusal is not None:
            return self.show(form=form, error=refusal, status=403)
        days = form.cleaned_data["expires_in_days"]
        scopes = form.cleaned_data["scopes"].split()
        try:
            key, plaintext = api_key_create(
                owner=request.user,
                name=form.cleaned_data["name"],
                actor=request.user,
                expires_at=timezone.now() + timedelta(days=days) if days else None,
                scopes=scopes or None,
            )
        except AppError as error:
            form.add_error("scopes" if error.code == "unknown_scope" else None, error_message(error))
            return self.show(form=form, status=422)
        return self.show(new_key={"key": key, "plaintext": plaintext}, status=201)


class ApiKeyRevokePage(_OwnKeys):
    def get(self, request, key_id):
        key = self.key(key_id)
        return render(
            request,
            "console/confirm.html",
            {
                **layout_context(request),
                "title": f"Revoke the API key {key.name}?",
                "explanation": f"{key.display} stops working at once, wherever it is used.",
                "action_label": "Revoke key",
                "cancel_url": reverse("console-api-keys"),
            },
        )

    def post(self, request, key_id):
        key = self.key(key_id)
        try:
            api_key_revoke(key=key, actor=request.user)
        except AppError as error:
            return self.show(error=error_message(error), status=422)
        messages.success(request, f"The API key {key.name} was revoked.")
        return redirect(reverse("console-api-keys"))
