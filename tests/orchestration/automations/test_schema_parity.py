"""Our automation schema against Prefect's own (``prefect.server.events.schemas.automations``, in
the test extras): the same bodies are accepted or refused, and accepted ones store the same JSON."""

from __future__ import annotations

import json
import uuid

import pytest
from prefect.server.events.schemas import automations as theirs

from orchestration.schemas import automations as ours

D = str(uuid.uuid4())
EVENT = {"type": "event", "posture": "Reactive"}
NESTED_LOOPS = "{% for a in b %}{% for c in d %}{% for e in f %}{% endfor %}{% endfor %}{% endfor %}"
RUNNING = {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Running"]}

CASES = [
    {"trigger": {"type": "event", "posture": "Proactive", "expect": ["a"], "within": 30}},
    {"trigger": {"type": "event", "posture": "Proactive", "expect": ["a"], "within": 3}},
    {"trigger": {"type": "event", "posture": "Proactive", "expect": ["a"]}},
    {"trigger": {"posture": "Reactive", "expect": ["a"]}, "actions": [{}]},
    {"trigger": {"type": "compound", "require": "any", "within": None, "triggers": [{"posture": "Reactive"}]},
     "actions": [{"type": "pause-deployment", "source": "inferred"}]},
    {"trigger": {"type": "compound", "require": 3, "within": None, "triggers": [{"posture": "Reactive"}]}},
    {"trigger": {"type": "compound", "require": 0, "within": 5, "triggers": [EVENT]}},
    {"trigger": {"type": "sequence", "within": 60, "triggers": [
        {"posture": "Reactive", "match": {"prefect.resource.id": ["a", "b"]}, "match_related": [{"x": "y"}]}]},
     "actions": [{"type": "call-webhook", "block_document_id": D, "payload": {"a": 1}}]},
    {"trigger": RUNNING, "actions": [{"type": "run-deployment", "source": "inferred"}]},
    {"trigger": RUNNING, "actions": [{"type": "run-deployment", "deployment_id": D}]},
    {"trigger": RUNNING, "enabled": False, "actions": [{"type": "run-deployment", "deployment_id": D}]},
    {"trigger": {**RUNNING, "match": {"prefect.resource.id": "prefect.flow-run.1"}},
     "actions": [{"type": "run-deployment", "deployment_id": D,
                  "parameters": {"a": "{{ x }}", "b": {"__prefect_kind": "json", "value": "{"}}}]},
    {"actions": [{"type": "run-deployment", "deployment_id": D,
                  "parameters": {"a": "hi {{ x }}", "b": {"__prefect_kind": "none"}}}]},
    {"actions": [{"type": "run-deployment", "deployment_id": D, "parameters": {"a": ["{{ x }}", "{% if %}"]}}]},
    {"actions": [{"type": "run-deployment", "deployment_id": D, "schedule_after": -5}]},
    {"actions": [{"type": "run-deployment", "deployment_id": D, "schedule_after": "PT5M", "job_variables": {}}]},
    {"actions": [{"type": "change-flow-run-state", "state": "NOPE"}]},
    {"actions": [{"type": "change-flow-run-state", "state": "FAILED", "name": "Boom", "force": True}]},
    {"actions": [{"type": "pause-work-pool", "source": "selected"}]},
    {"actions": [{"type": "resume-work-queue", "source": "inferred", "work_queue_id": D}]},
    {"actions": [{"type": "pause-automation", "source": "inferred"}]},
    {"actions": [{"type": "send-notification", "block_document_id": D, "body": NESTED_LOOPS}]},
    {"actions": [{"type": "send-notification", "block_document_id": D, "body": "{{ flow_run.name }}"}]},
    {"actions": [{"type": "send-notification", "block_document_id": D}]},
    {"actions": [{"type": "suspend-flow-run"}, {"type": "resume-flow-run"}, {"type": "delete-flow-run"}],
     "actions_on_trigger": [{"type": "cancel-flow-run"}], "actions_on_resolve": [{"type": "do-nothing"}]},
    {"trigger": {**EVENT, "within": "PT1M"}, "owner_resource": "prefect.deployment.x"},
    {"trigger": {**EVENT, "within": "PT1M"}, "surprise": 1},
    {"trigger": {**EVENT, "within": -1}},
    {"trigger": {**EVENT, "within": None}},
    {"trigger": {**EVENT, "threshold": "x"}},
    {"trigger": {"type": "metric", "posture": "Metric"}},
    {"name": None},
    {"tags": ["a", "b"], "description": "d"},
]  # fmt: skip


def _outcome(module, data):
    try:
        model = module.AutomationCreate.model_validate(json.loads(json.dumps(data)))
    except ValueError:
        return "refused"
    dumped = json.loads(model.model_dump_json())

    def strip(trigger):
        trigger.pop("id", None)
        for child in trigger.get("triggers", []):
            strip(child)
        for key in ("expect", "after", "for_each"):
            if key in trigger:
                trigger[key] = sorted(trigger[key])

    strip(dumped["trigger"])
    return dumped


@pytest.mark.parametrize("overrides", CASES)
def test_same_verdict_and_same_stored_json_as_prefects_schema(overrides):
    data = {"name": "x", "trigger": EVENT, "actions": [{"type": "do-nothing"}], **overrides}
    assert _outcome(ours, data) == _outcome(theirs, data)
