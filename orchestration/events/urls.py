"""HTTP routes of the events API, mounted under the workspace prefix."""

from __future__ import annotations

urlpatterns: list = []
