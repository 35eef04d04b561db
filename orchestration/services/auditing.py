"""Audit events for orchestration objects people configure (deployments, work pools, automations,
block documents), recorded in the workspace the change happens in, in the change's transaction;
and reads of secrets (``record_read``), recorded without waiting on the account's chain."""

from __future__ import annotations

import json
from typing import Any

from audit.actors import SYSTEM
from audit.services import audit_record, audit_record_pending
from tenants.models import Workspace
from tenants.scoping import current_workspace_id


def _payload(before: Any, after: Any, extra: dict | None) -> dict:
    return json.loads(json.dumps({"before": before, "after": after, **(extra or {})}, default=str))


def record(
    event,
    *,
    target,
    actor=None,
    before: Any = None,
    after: Any = None,
    extra: dict | None = None,
    workspace: Workspace | None = None,
) -> None:
    """``extra`` adds payload keys (the event's message template may name them); ``workspace`` is
    the current one, looked up when not given."""
    if workspace is None:
        workspace = Workspace.objects.select_related("account").get(pk=current_workspace_id())
    audit_record(
        event=event,
        actor=actor if actor is not None else SYSTEM,
        workspace=workspace,
        target=target,
        payload=_payload(before, after, extra),
    )


def record_changes(event, *, target, actor, before: dict, after: dict) -> None:
    """``event`` with the keys of two snapshots that differ, before and after; nothing when none
    does."""
    changed = [name for name in after if before.get(name) != after[name]]
    if changed:
        record(
            event,
            target=target,
            actor=actor,
            before={name: before.get(name) for name in changed},
            after={name: after[name] for name in changed},
        )


def record_read(event, *, workspace: Workspace, target, actor, extra: dict | None = None) -> None:
    """A read worth recording (of secrets): one durable INSERT, no lock; it joins the account's
    hash chain moments later (``audit.services.audit_record_pending``)."""
    audit_record_pending(
        event=event,
        actor=actor if actor is not None else SYSTEM,
        workspace=workspace,
        target=target,
        payload=_payload(None, None, extra),
    )
