"""Key/value input sent to a flow run (Prefect's ``FlowRunInput``): what ``pause_flow_run(
wait_for_input=…)``, ``resume_flow_run(run_input=…)`` and ``send_input``/``receive_input`` store."""

from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class FlowRunInput(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flow_run = models.ForeignKey("orchestration.FlowRun", on_delete=models.CASCADE, related_name="inputs")
    key = models.CharField(max_length=255)
    value = models.TextField()
    sender = models.CharField(max_length=255, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "flow_run", "key"], name="flow_run_input_unique_key"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "flow_run", "created"], name="flow_run_input_ws_run_created"),
        ]

    def __str__(self) -> str:
        return self.key
