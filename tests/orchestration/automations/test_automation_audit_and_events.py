"""Automations' changes are audit records (``automation.created|updated|deleted``) and Prefect's
lifecycle events (``prefect.automation.created|updated|deleted``, payload the automation)."""

from __future__ import annotations

import pytest

from audit.models import AuditLogEntry
from orchestration.models import Event
from tests.orchestration.automations.test_api_automations import body

pytestmark = pytest.mark.django_db


def audited(tenant, api_name):
    return list(AuditLogEntry.objects.filter(workspace_ref=tenant.workspace.id, api_name=api_name))


def emitted(tenant, name):
    return list(Event.objects.for_workspace(tenant.workspace.id).filter(event=name).order_by("occurred"))


def test_create_update_pause_delete_are_audited_and_emitted(tenant, dev):
    p = f"{tenant.prefix}/automations"
    automation = dev.post(f"{p}/", body("nightly"), format="json").json()
    (created,) = audited(tenant, "automation.created")
    assert (created.target_id, created.target_label) == (automation["id"], "nightly")
    assert created.actor_kind == "service_account" and created.payload["after"]["name"] == "nightly"
    assert created.message.endswith("created automation nightly")
    (event,) = emitted(tenant, "prefect.automation.created")
    assert event.resource == {
        "prefect.resource.id": f"prefect.automation.{automation['id']}",
        "prefect.resource.name": "nightly",
    }
    assert event.related == [] and event.payload == automation

    assert dev.put(f"{p}/{automation['id']}", body("renamed"), format="json").status_code == 204
    assert dev.patch(f"{p}/{automation['id']}", {"enabled": False}, format="json").status_code == 204
    renamed, paused = sorted(audited(tenant, "automation.updated"), key=lambda e: e.sequence)
    # Only what changed (a PUT gives the trigger new ids, as Prefect's does).
    assert set(renamed.payload["after"]) == {"name", "trigger"}
    assert (renamed.payload["before"]["name"], renamed.payload["after"]["name"]) == ("nightly", "renamed")
    assert (paused.payload["before"], paused.payload["after"]) == ({"enabled": True}, {"enabled": False})
    updates = emitted(tenant, "prefect.automation.updated")
    assert [(e.payload["name"], e.payload["enabled"]) for e in updates] == [
        ("renamed", True),
        ("renamed", False),
    ]

    assert dev.delete(f"{p}/{automation['id']}").status_code == 204
    (deleted,) = audited(tenant, "automation.deleted")
    assert deleted.target_id == automation["id"] and deleted.payload["before"]["name"] == "renamed"
    (gone,) = emitted(tenant, "prefect.automation.deleted")
    assert gone.payload["id"] == automation["id"]


def test_a_refused_change_records_nothing(tenant, dev):
    p = f"{tenant.prefix}/automations"
    assert dev.post(f"{p}/", body(trigger={"type": "nope"}), format="json").status_code == 422
    assert dev.delete(f"{p}/00000000-0000-0000-0000-000000000001").status_code == 404
    assert not AuditLogEntry.objects.filter(api_name__startswith="automation.").exists()
    assert not Event.objects.for_workspace(tenant.workspace.id).filter(
        event__startswith="prefect.automation."
    )


def test_owned_automations_deleted_with_their_owner_are_audited_not_emitted(tenant, dev):
    p = f"{tenant.prefix}/automations"
    owner = "prefect.deployment.8a5c0f7e-0000-0000-0000-000000000001"
    dev.post(f"{p}/", body("owned", owner_resource=owner), format="json")
    assert dev.delete(f"{p}/owned-by/{owner}").status_code == 202
    (deleted,) = audited(tenant, "automation.deleted")
    assert deleted.payload["owner_resource"] == owner and deleted.target_label == "owned"
    assert emitted(tenant, "prefect.automation.deleted") == []
