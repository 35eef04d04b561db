"""Websocket routes. Unknown websocket paths are refused by the router."""

from __future__ import annotations

from django.urls import path

from orchestration.events.consumers import EventsInConsumer, EventsOutConsumer

WORKSPACE_PREFIX = "api/accounts/<str:account_ref>/workspaces/<str:workspace_ref>/"

websocket_urlpatterns: list = [
    path(WORKSPACE_PREFIX + "events/in", EventsInConsumer.as_asgi()),
    path(WORKSPACE_PREFIX + "events/out", EventsOutConsumer.as_asgi()),
]
