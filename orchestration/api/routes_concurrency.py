"""Routes for concurrency, mounted under the workspace prefix."""

from __future__ import annotations

urlpatterns: list = []
