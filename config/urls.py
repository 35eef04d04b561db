from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config.health import health

handler404 = "config.errors.json_not_found"
handler500 = "config.errors.json_server_error"

WORKSPACE_PREFIX = "api/accounts/<str:account_ref>/workspaces/<str:workspace_ref>/"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health", health, name="health"),
    path(WORKSPACE_PREFIX, include("orchestration.urls")),
]
