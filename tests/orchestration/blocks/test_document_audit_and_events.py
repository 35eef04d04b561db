"""Block documents' changes are audit records (``block-document.created|updated|deleted``, never
carrying data) and, for named documents, Prefect's ``prefect.block-document.*`` events whose data
holds only the string values that are not secret fields."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditLogEntry
from orchestration.models import Event
from tests.orchestration.blocks.test_api_blocks import _document, _setup

pytestmark = pytest.mark.django_db


def audited(tenant, api_name):
    return sorted(
        AuditLogEntry.objects.filter(workspace_ref=tenant.workspace.id, api_name=api_name),
        key=lambda entry: entry.sequence,
    )


def emitted(tenant, name):
    return list(Event.objects.for_workspace(tenant.workspace.id).filter(event=name).order_by("occurred"))


def test_create_update_delete_are_audited_and_emitted(tenant, dev):
    p = tenant.prefix
    block_type, block_schema = _setup(dev, p)
    doc = _document(dev, p, block_type["id"], block_schema["id"]).json()
    (created,) = audited(tenant, "block-document.created")
    assert (created.target_id, created.target_label, created.actor_kind) == (
        doc["id"],
        "prod",
        "service_account",
    )
    assert created.payload["after"] == {
        "name": "prod", "block_type": "creds", "block_schema_id": block_schema["id"], "is_anonymous": False,
    }  # fmt: skip
    (event,) = emitted(tenant, "prefect.block-document.created")
    assert event.resource == {
        "prefect.resource.id": f"prefect.block-document.{doc['id']}",
        "prefect.resource.name": "prod",
    }
    assert event.related == [
        {"prefect.resource.id": f"prefect.block-type.{block_type['id']}", "prefect.resource.role": "block-type",
         "prefect.resource.name": "Creds"},
        {"prefect.resource.id": f"prefect.block-schema.{block_schema['id']}", "prefect.resource.role": "block-schema"},
    ]  # fmt: skip
    assert event.payload == {
        "name": "prod",
        "data": {"user": "u"},  # the secret field is left out
        "block_schema": {"capabilities": [], "block_type": {"id": block_type["id"], "name": "Creds"}},
    }

    patch = {"data": {"user": "v", "password": "swordfish"}, "merge_existing_data": True}
    assert dev.patch(f"{p}/block_documents/{doc['id']}", patch, format="json").status_code == 204
    (updated,) = audited(tenant, "block-document.updated")
    assert updated.payload["updated_fields"] == ["data"]
    (event,) = emitted(tenant, "prefect.block-document.updated")
    assert event.payload["data"] == {"user": "v"}

    assert dev.delete(f"{p}/block_documents/{doc['id']}").status_code == 204
    (deleted,) = audited(tenant, "block-document.deleted")
    assert deleted.target_id == doc["id"] and deleted.payload["before"]["name"] == "prod"
    assert len(emitted(tenant, "prefect.block-document.deleted")) == 1
    records = [created, updated, deleted, *emitted(tenant, "prefect.block-document.updated")]
    assert not any(
        "hunter2" in json.dumps(r.payload) or "swordfish" in json.dumps(r.payload) for r in records
    )


def test_anonymous_documents_are_audited_without_events(tenant, dev):
    p = tenant.prefix
    block_type, block_schema = _setup(dev, p)
    doc = _document(dev, p, block_type["id"], block_schema["id"], name=None, is_anonymous=True).json()
    assert dev.delete(f"{p}/block_documents/{doc['id']}").status_code == 204
    assert [e.target_id for e in audited(tenant, "block-document.created")] == [doc["id"]]
    assert [e.target_id for e in audited(tenant, "block-document.deleted")] == [doc["id"]]
    assert not Event.objects.for_workspace(tenant.workspace.id).filter(
        event__startswith="prefect.block-document."
    )


def test_a_refused_change_records_nothing(tenant, dev):
    p = tenant.prefix
    block_type, block_schema = _setup(dev, p)
    _document(dev, p, block_type["id"], block_schema["id"])
    assert _document(dev, p, block_type["id"], block_schema["id"]).status_code == 409  # same name
    assert dev.delete(f"{p}/block_documents/00000000-0000-0000-0000-000000000001").status_code == 404
    assert len(audited(tenant, "block-document.created")) == 1
    assert not audited(tenant, "block-document.deleted")
    assert len(emitted(tenant, "prefect.block-document.created")) == 1
