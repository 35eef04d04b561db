"""Identifiers as clients send them: in paths, query strings and bodies."""

from __future__ import annotations

import uuid


def as_uuid(value) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one (any spelling ``uuid.UUID`` accepts)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None
