"""Session pages for people. The full console comes later; this is sign-in and a landing page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.selectors import workspaces_of


@login_required
def home(request):
    """The person's workspaces, except in accounts whose IP allowlist refuses this address (those
    are named, with the address the server saw, and the refusal is audited)."""
    from accounts.ip_allowlist import check_request
    from audit.context import client_ip

    ip = client_ip(request)
    workspaces, blocked, decided = [], {}, {}
    for workspace, access in workspaces_of(request.user):
        account = workspace.account
        if account.pk not in decided:
            decided[account.pk] = check_request(account, ip, actor=request.user, surface="console")
        if decided[account.pk] is not None:
            blocked[account.pk] = account
            continue
        workspaces.append({"workspace": workspace, "roles": sorted(access.roles)})
    return render(
        request,
        "accounts/home.html",
        {
            "workspaces": workspaces,
            "blocked_accounts": list(blocked.values()),
            "client_ip": ip,
            "public_url": settings.PUBLIC_URL,
        },
    )
