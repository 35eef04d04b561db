"""Storing and publishing events (owned by the events work; this is its public surface)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction


def event_record_on_commit(*, workspace_id: uuid.UUID, event: dict[str, Any]) -> None:
    """Store ``event`` (a Prefect event dict: id, occurred, event, resource, related, payload) in
    the workspace and publish it to ``/events/out`` subscribers, once the current transaction
    commits. Idempotent on the event id."""
    transaction.on_commit(lambda: events_ingest(workspace_id=workspace_id, events=[event]))


def events_ingest(*, workspace_id: uuid.UUID, events: list[dict[str, Any]]) -> int:
    """Store a batch of events (and apply task-run events). Returns how many were new."""
    raise NotImplementedError
