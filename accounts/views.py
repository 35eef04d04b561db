"""Session pages for people. The full console comes later; this is sign-in and a landing page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.selectors import workspaces_of


@login_required
def home(request):
    workspaces = [
        {"workspace": workspace, "roles": sorted(access.roles)}
        for workspace, access in workspaces_of(request.user)
    ]
    return render(
        request, "accounts/home.html", {"workspaces": workspaces, "public_url": settings.PUBLIC_URL}
    )
