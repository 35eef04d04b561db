"""The console's pages: server-rendered, behind a browser session, through the access gate."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from access.gate import Surface, workspaces_open_to
from access.views import caller_of
from accounts.models import IdentityProvider
from accounts.sso import enforcement
from console.ui import ui_base


@login_required
def home(request):
    """The person's workspaces, each linking to its Prefect UI (``console.ui``), except in accounts whose IP allowlist refuses this address, or that
    enforce SSO and this session did not come from their identity provider (those are named, and
    an allowlist refusal is audited)."""
    caller = caller_of(request, Surface.CONSOLE)
    found, blocked, sso_blocked = workspaces_open_to(caller)
    workspaces = [
        {
            "workspace": workspace,
            "roles": sorted(access.roles),
            "ui_url": ui_base(workspace.account_id, workspace.pk) + "/",
        }
        for workspace, access in found
    ]
    facts = enforcement.session_sso(request.session)
    sso_provider = (
        IdentityProvider.objects.select_related("account").filter(pk=facts.get("provider_id")).first()
        if facts
        else None
    )
    return render(
        request,
        "accounts/home.html",
        {
            "workspaces": workspaces,
            "blocked_accounts": list(blocked.values()),
            "sso_blocked_accounts": list(sso_blocked.values()),
            "sso_provider": sso_provider,
            "client_ip": caller.ip,
            "public_url": settings.PUBLIC_URL,
        },
    )
