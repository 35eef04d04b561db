"""Automations in Prefect's response shape (``Automation``)."""

from __future__ import annotations

from orchestration.schemas.automations import automation_document as automation_to_wire

__all__ = ["automation_to_wire"]
