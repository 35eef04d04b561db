"""Connect the ``prefect`` client (``/console/me/connect/``): for a workspace the signed-in person
can open from here, the exact commands that point the client at it (a profile, or
``prefect cloud login`` with the one setting it does not save), and a ``pnu_`` key made on the spot
for it, expiring, shown once inside those commands. Keys are minted only here or on My API keys,
when the person asks, by the same service and checks (the accounts' lifetime caps, SSO's refusal
of a session it did not start) as ``/api/users/<own id>/api_keys``."""

from __future__ import annotations

import shlex
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import render
from django.utils import timezone
from django.views import View

from access.gate import Surface, workspaces_open_to
from access.views import caller_of
from accounts.api_keys.services import api_key_create
from accounts.sso.enforcement import key_creation_refusal
from console.pages.base import error_message, layout_context
from core.errors import AppError

KEY_PLACEHOLDER = "<your pnu_ key>"


class ConnectKeyForm(forms.Form):
    name = forms.CharField(label="Key name", max_length=200, initial="prefect client")
    expires_in_days = forms.IntegerField(label="Expires in (days)", min_value=1, max_value=3650, initial=90)


def client_commands(*, workspace, key: str) -> dict[str, str]:
    """The shell commands that point the ``prefect`` client at ``workspace`` with ``key``."""
    public = settings.PUBLIC_URL
    api_url = f"{public}/api/accounts/{workspace.account_id}/workspaces/{workspace.pk}"
    cloud = f"{public}/api"
    quoted = shlex.quote(key)  # the placeholder, quoted, stays one word
    return {
        "api_url": api_url,
        "profile": (
            f"prefect profile create {shlex.quote(workspace.handle)} && "
            f"prefect profile use {shlex.quote(workspace.handle)}\n"
            f"prefect config set PREFECT_API_URL={api_url} \\\n"
            f"    PREFECT_CLOUD_API_URL={cloud} PREFECT_API_KEY={quoted}"
        ),
        "login": (
            f"prefect config set PREFECT_CLOUD_API_URL={cloud}\n"
            f"prefect cloud login --key {quoted} --workspace "
            f"{workspace.account.handle}/{workspace.handle}"
        ),
        "environment": (
            f"export PREFECT_API_URL={api_url}\n"
            f"export PREFECT_CLOUD_API_URL={cloud}\n"
            f"export PREFECT_API_KEY={quoted}"
        ),
    }


class ConnectPage(LoginRequiredMixin, View):
    def workspaces(self) -> list:
        found, _, _ = workspaces_open_to(caller_of(self.request, Surface.CONSOLE))
        return [workspace for workspace, _ in found]

    def chosen(self, workspaces: list, value):
        """The workspace the request names (by id) among those open to the person; else the first."""
        for workspace in workspaces:
            if str(workspace.pk) == str(value or ""):
                return workspace
        return workspaces[0] if workspaces and not value else None

    def show(self, *, workspaces, workspace, form=None, key=None, error=None, status: int = 200):
        context = {
            **layout_context(self.request),
            "nav_current": "console-connect",
            "workspaces": workspaces,
            "workspace": workspace,
            "form": form or ConnectKeyForm(),
            "new_key": key,
            "error": error,
            "commands": (
                client_commands(workspace=workspace, key=key["plaintext"] if key else KEY_PLACEHOLDER)
                if workspace is not None
                else None
            ),
        }
        return render(self.request, "console/connect.html", context, status=status)

    def get(self, request):
        workspaces = self.workspaces()
        workspace = self.chosen(workspaces, request.GET.get("workspace"))
        if workspace is None and request.GET.get("workspace"):
            return self.show(workspaces=workspaces, workspace=None, status=404)
        return self.show(workspaces=workspaces, workspace=workspace)

    def post(self, request):
        workspaces = self.workspaces()
        workspace = self.chosen(workspaces, request.POST.get("workspace"))
        if workspace is None:
            return self.show(workspaces=workspaces, workspace=None, status=404)
        form = ConnectKeyForm(request.POST)
        if not form.is_valid():
            return self.show(workspaces=workspaces, workspace=workspace, form=form, status=422)
        refusal = key_creation_refusal(request)
        if refusal is not None:
            return self.show(workspaces=workspaces, workspace=workspace, form=form, error=refusal, status=403)
        try:
            key, plaintext = api_key_create(
                owner=request.user,
                name=form.cleaned_data["name"],
                actor=request.user,
                expires_at=timezone.now() + timedelta(days=form.cleaned_data["expires_in_days"]),
            )
        except AppError as error:
            form.add_error(None, error_message(error))
            return self.show(workspaces=workspaces, workspace=workspace, form=form, status=422)
        return self.show(
            workspaces=workspaces,
            workspace=workspace,
            key={"key": key, "plaintext": plaintext},
            status=201,
        )
