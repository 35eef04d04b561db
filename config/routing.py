"""Websocket routes. Any other websocket path is refused at the handshake (HTTP 403), the answer a
client expects for "not here" (a worker then falls back to REST heartbeats)."""

from __future__ import annotations

from channels.generic.websocket import WebsocketConsumer
from django.urls import path, re_path

from orchestration.api.task_runs.subscriptions import ScheduledTaskSubscriptionConsumer
from orchestration.events.consumers import EventsInConsumer, EventsOutConsumer

WORKSPACE_PREFIX = "api/accounts/<str:account_ref>/workspaces/<str:workspace_ref>/"


class RefuseConsumer(WebsocketConsumer):
    def connect(self) -> None:
        self.close()


websocket_urlpatterns: list = [
    path(WORKSPACE_PREFIX + "events/in", EventsInConsumer.as_asgi()),
    path(WORKSPACE_PREFIX + "events/out", EventsOutConsumer.as_asgi()),
    path(WORKSPACE_PREFIX + "task_runs/subscriptions/scheduled", ScheduledTaskSubscriptionConsumer.as_asgi()),
    re_path(r"", RefuseConsumer.as_asgi()),
]
