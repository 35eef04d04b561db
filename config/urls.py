from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts.api import MeApi, MyWorkspacesApi
from accounts.views import home
from config.health import health

handler404 = "config.errors.json_not_found"
handler500 = "config.errors.json_server_error"

WORKSPACE_PREFIX = "api/accounts/<str:account_ref>/workspaces/<str:workspace_ref>/"

urlpatterns = [
    path("", home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/health", health, name="health"),
    path("api/me/", MeApi.as_view()),
    path("api/me/workspaces", MyWorkspacesApi.as_view()),
    path(WORKSPACE_PREFIX, include("orchestration.urls")),
]
