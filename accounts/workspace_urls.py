"""Access routes under a workspace: ``user_access``, ``bot_access``, ``team_access``, and
``access/explain``."""

from __future__ import annotations

from django.urls import path

from accounts.api import access_explain, workspace_access

urlpatterns = [
    path("user_access/", workspace_access.UserAccessApi.as_view()),
    path("user_access/filter", workspace_access.UserAccessFilterApi.as_view()),
    path("user_access/<str:access_id>", workspace_access.UserAccessItemApi.as_view()),
    path("bot_access/", workspace_access.BotAccessApi.as_view()),
    path("bot_access/filter", workspace_access.BotAccessFilterApi.as_view()),
    path("bot_access/<str:access_id>", workspace_access.BotAccessItemApi.as_view()),
    path("team_access/", workspace_access.TeamAccessApi.as_view()),
    path("team_access/filter", workspace_access.TeamAccessFilterApi.as_view()),
    path("team_access/<str:access_id>", workspace_access.TeamAccessItemApi.as_view()),
    path("access/explain", access_explain.AccessExplainApi.as_view()),
]
