"""Access routes under a workspace: ``user_access``, ``bot_access``, ``team_access``, and
``access/explain``."""

from __future__ import annotations

from django.urls import path

from accounts import account_api as api

urlpatterns = [
    path("user_access/", api.UserAccessApi.as_view()),
    path("user_access/filter", api.UserAccessFilterApi.as_view()),
    path("user_access/<str:access_id>", api.UserAccessItemApi.as_view()),
    path("bot_access/", api.BotAccessApi.as_view()),
    path("bot_access/filter", api.BotAccessFilterApi.as_view()),
    path("bot_access/<str:access_id>", api.BotAccessItemApi.as_view()),
    path("team_access/", api.TeamAccessApi.as_view()),
    path("team_access/filter", api.TeamAccessFilterApi.as_view()),
    path("team_access/<str:access_id>", api.TeamAccessItemApi.as_view()),
    path("access/explain", api.AccessExplainApi.as_view()),
]
