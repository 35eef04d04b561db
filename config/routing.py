"""Websocket routes. Unknown websocket paths are refused by the router."""

from __future__ import annotations

websocket_urlpatterns: list = []
