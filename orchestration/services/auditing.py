"""Audit events for orchestration objects people configure (deployments, work pools), recorded in
the workspace the change happens in, in the change's transaction."""

from __future__ import annotations

import json
from typing import Any

from audit.actors import SYSTEM
from audit.services import audit_record
from tenants.models import Workspace
from tenants.scoping import current_workspace_id


def record(
    event, *, target, actor=None, before: Any = None, after: Any = None, extra: dict | None = None
) -> None:
    """``extra`` adds payload keys (the event's message template may name them)."""
    workspace = Workspace.objects.select_related("account").get(pk=current_workspace_id())
    audit_record(
        event=event,
        actor=actor if actor is not None else SYSTEM,
        workspace=workspace,
        target=target,
        payload=json.loads(json.dumps({"before": before, "after": after, **(extra or {})}, default=str)),
    )
