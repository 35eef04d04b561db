"""The block routes against Prefect's server behaviour (``api/block_*.py``)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit import events as audit_events
from audit.models import AuditLogEntry, AuditPendingEntry
from audit.services import audit_verify_chain
from audit.tasks import chain_pending_audit_records
from orchestration.models import BlockDocument, BlockSchema, BlockType
from orchestration.schemas.blocks import schema_checksum, system_catalog

pytestmark = pytest.mark.django_db

SECRET_FIELDS = {
    "title": "Creds",
    "type": "object",
    "properties": {"user": {"type": "string"}, "password": {"type": "string", "format": "password"}},
    "secret_fields": ["password"],
    "block_type_slug": "creds",
}


def _type(client, p, name="Creds", slug="creds"):
    response = client.post(
        f"{p}/block_types/", {"name": name, "slug": slug, "description": "a <b>"}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _schema(client, p, block_type_id, fields=None, version="1"):
    body = {"block_type_id": block_type_id, "fields": fields or SECRET_FIELDS, "version": version}
    return client.post(f"{p}/block_schemas/", body, format="json")


def _document(client, p, type_id, schema_id, name="prod", data=None, **extra):
    body = {"name": name, "block_type_id": type_id, "block_schema_id": schema_id,
            "data": data if data is not None else {"user": "u", "password": "hunter2"}, **extra}  # fmt: skip
    return client.post(f"{p}/block_documents/", body, format="json")


def _setup(client, p):
    block_type = _type(client, p)
    block_schema = _schema(client, p, block_type["id"]).json()
    return block_type, block_schema


class TestSystemBlockTypes:
    def test_every_workspace_has_the_system_types_and_schemas(self, tenant, dev):
        secret = dev.get(f"{tenant.prefix}/block_types/slug/secret")
        assert secret.status_code == 200
        assert secret.json()["is_protected"] is True and secret.json()["name"] == "Secret"
        slugs = [t["slug"] for t in dev.post(f"{tenant.prefix}/block_types/filter", {}, format="json").json()]
        assert {"secret", "webhook", "local-file-system", "slack-webhook", "s3-bucket"} <= set(slugs)
        assert len(slugs) == len(system_catalog())
        entry = next(e for e in system_catalog() if e["block_type"]["slug"] == "slack-webhook")
        by_checksum = dev.get(f"{tenant.prefix}/block_schemas/checksum/{entry['block_schema']['checksum']}")
        assert by_checksum.status_code == 200 and by_checksum.json()["block_type"]["slug"] == "slack-webhook"
        assert "notify" in dev.get(f"{tenant.prefix}/block_capabilities/").json()

    def test_a_read_that_names_no_system_entry_writes_nothing(self, tenant, dev):
        """A 404 for a slug or checksum that names nothing once seeded the whole catalogue (found
        by the schemathesis run: a refused request stored rows); a system slug still finds its type,
        and a schema's checksum its schema, on a workspace's first read."""
        p, ws = tenant.prefix, tenant.workspace.id
        assert dev.get(f"{p}/block_types/slug/no-such-type").status_code == 404
        assert dev.get(f"{p}/block_schemas/checksum/sha256:nothing").status_code == 404
        assert dev.get(f"{p}/block_types/slug/no-such-type/block_documents").status_code == 404
        assert BlockType.objects.for_workspace(ws).count() == 0
        assert BlockSchema.objects.for_workspace(ws).count() == 0
        entry = next(e for e in system_catalog() if e["block_type"]["slug"] == "webhook")
        by_checksum = dev.get(f"{p}/block_schemas/checksum/{entry['block_schema']['checksum']}")
        assert by_checksum.status_code == 200 and by_checksum.json()["block_type"]["slug"] == "webhook"
        assert dev.get(f"{p}/block_types/slug/secret").status_code == 200

    def test_install_is_idempotent_and_forced_install_restores_protected_types(self, tenant, dev):
        p = tenant.prefix
        dev.get(f"{p}/block_types/slug/secret")
        count = BlockType.objects.for_workspace(tenant.workspace.id).count()
        BlockType.objects.for_workspace(tenant.workspace.id).filter(slug="secret").update(description="x")
        assert dev.post(f"{p}/block_types/install_system_block_types", {}, format="json").json() is None
        assert BlockType.objects.for_workspace(tenant.workspace.id).count() == count
        assert dev.get(f"{p}/block_types/slug/secret").json()["description"] != "x"
        assert BlockSchema.objects.for_workspace(tenant.workspace.id).count() == len(system_catalog())

    def test_protected_types_cannot_be_deleted_but_may_be_described_as_prefect_allows(self, tenant, dev):
        p = tenant.prefix
        secret = dev.get(f"{p}/block_types/slug/secret").json()
        assert dev.delete(f"{p}/block_types/{secret['id']}").status_code == 403
        # The same values (what the client sends when nothing changed) are no change: 204.
        same = dev.patch(
            f"{p}/block_types/{secret['id']}", {"description": secret["description"]}, format="json"
        )
        assert same.status_code == 204
        schema = dev.post(f"{p}/block_schemas/filter", {"block_schemas": {"block_type_id": {"any_": [secret["id"]]}}},
                          format="json").json()[0]  # fmt: skip
        assert dev.delete(f"{p}/block_schemas/{schema['id']}").status_code == 403
        # Prefect's server lets a protected type's description change (a client whose copy of the
        # type differs must still save its blocks); installing the system types restores it.
        changed = dev.patch(f"{p}/block_types/{secret['id']}", {"description": "mine"}, format="json")
        assert changed.status_code == 204
        assert dev.get(f"{p}/block_types/slug/secret").json()["description"] == "mine"
        dev.post(f"{p}/block_types/install_system_block_types", {}, format="json")
        assert dev.get(f"{p}/block_types/slug/secret").json()["description"] == secret["description"]

    def test_names_beginning_with_prefect_are_reserved(self, tenant, dev):
        response = dev.post(
            f"{tenant.prefix}/block_types/", {"name": "Prefect Thing", "slug": "pt"}, format="json"
        )
        assert response.status_code == 403


class TestBlockTypes:
    def test_crud(self, tenant, dev):
        p = tenant.prefix
        created = _type(dev, p)
        assert created["description"] == "a &lt;b&gt;"  # escaped at rest, as Prefect's server stores it
        # As Prefect's server: the slug is unique, the name is not.
        assert (
            dev.post(f"{p}/block_types/", {"name": "Other", "slug": "creds"}, format="json").status_code
            == 409
        )
        assert (
            dev.post(f"{p}/block_types/", {"name": "Creds", "slug": "creds-2"}, format="json").status_code
            == 201
        )
        assert dev.get(f"{p}/block_types/{created['id']}").json()["slug"] == "creds"
        assert (
            dev.patch(
                f"{p}/block_types/{created['id']}", {"logo_url": "https://x/y.png"}, format="json"
            ).status_code
            == 204
        )
        assert dev.get(f"{p}/block_types/slug/creds").json()["logo_url"] == "https://x/y.png"
        names = lambda body: [
            t["name"] for t in dev.post(f"{p}/block_types/filter", body, format="json").json()
        ]  # noqa: E731
        assert names({"block_types": {"name": {"like_": "creds"}}}) == ["Creds", "Creds"]
        assert names({"block_types": {"slug": {"any_": ["creds", "secret"]}}}) == ["Creds", "Secret"]
        assert dev.delete(f"{p}/block_types/{created['id']}").status_code == 204
        assert dev.get(f"{p}/block_types/{created['id']}").status_code == 404
        assert dev.get(f"{p}/block_types/slug/creds").json() == {"detail": "Block type not found"}

    @pytest.mark.parametrize(
        "body",
        [{"name": "A", "slug": "Has Caps"}, {"name": "a/b", "slug": "ab"}, {"slug": "x"}, {"name": "x"}],
    )
    def test_invalid_bodies_are_422_and_store_nothing(self, tenant, dev, body):
        assert dev.post(f"{tenant.prefix}/block_types/", body, format="json").status_code == 422
        assert not BlockType.objects.for_workspace(tenant.workspace.id).exists()


class TestBlockSchemas:
    def test_create_is_idempotent_by_checksum_and_version(self, tenant, dev):
        p = tenant.prefix
        block_type = _type(dev, p)
        first = _schema(dev, p, block_type["id"])
        assert first.status_code == 201
        assert first.json()["checksum"] == schema_checksum(SECRET_FIELDS)
        assert first.json()["block_type"]["id"] == block_type["id"]
        again = _schema(dev, p, block_type["id"])
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        other_version = _schema(dev, p, block_type["id"], version="2")
        assert other_version.status_code == 201
        checksum = first.json()["checksum"]
        assert dev.get(f"{p}/block_schemas/checksum/{checksum}?version=1").json()["id"] == first.json()["id"]
        assert dev.get(f"{p}/block_schemas/checksum/{checksum}").json()["id"] == other_version.json()["id"]
        assert dev.get(f"{p}/block_schemas/checksum/{checksum}?version=9").status_code == 404
        assert dev.get(f"{p}/block_schemas/{first.json()['id']}").json()["fields"] == {
            **SECRET_FIELDS,
            "block_schema_references": {},
        }
        assert dev.delete(f"{p}/block_schemas/{first.json()['id']}").status_code == 204
        assert dev.get(f"{p}/block_schemas/{first.json()['id']}").status_code == 404

    def test_unknown_block_type_is_404(self, tenant, dev):
        missing = "00000000-0000-0000-0000-000000000001"
        assert _schema(dev, tenant.prefix, missing).status_code == 404

    def test_filter_by_type_and_capabilities(self, tenant, dev):
        p = tenant.prefix
        block_type = _type(dev, p)
        body = {
            "block_type_id": block_type["id"],
            "fields": SECRET_FIELDS,
            "capabilities": ["read-path", "x"],
        }
        dev.post(f"{p}/block_schemas/", body, format="json")
        found = dev.post(f"{p}/block_schemas/filter", {"block_schemas": {"block_capabilities": {"all_": ["x", "read-path"]}}},
                         format="json").json()  # fmt: skip
        assert [s["block_type_id"] for s in found] == [block_type["id"]]
        types = dev.post(f"{p}/block_types/filter", {"block_schemas": {"block_capabilities": {"all_": ["x"]}}},
                         format="json").json()  # fmt: skip
        assert [t["slug"] for t in types] == ["creds"]


class TestBlockDocuments:
    def test_secrets_are_encrypted_at_rest_and_obfuscated_unless_asked(self, tenant, dev):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        created = _document(dev, p, block_type["id"], block_schema["id"])
        assert created.status_code == 201, created.content
        doc = created.json()
        assert doc["data"] == {"user": "u", "password": "********"}
        assert doc["block_schema"]["id"] == block_schema["id"] and doc["block_type_name"] == "Creds"
        stored = BlockDocument.objects.for_workspace(tenant.workspace.id).get(id=doc["id"])
        assert "hunter2" not in stored.data and "user" not in stored.data
        with connection.cursor() as cursor:
            cursor.execute("SELECT data FROM orchestration_blockdocument")
            assert all("hunter2" not in row[0] for row in cursor.fetchall())
        assert dev.get(f"{p}/block_documents/{doc['id']}").json()["data"]["password"] == "********"
        assert (
            dev.get(f"{p}/block_documents/{doc['id']}?include_secrets=true").json()["data"]["password"]
            == "hunter2"
        )
        by_name = dev.get(f"{p}/block_types/slug/creds/block_documents/name/prod?include_secrets=true")
        assert by_name.json()["data"] == {"user": "u", "password": "hunter2"}
        listed = dev.post(f"{p}/block_documents/filter", {"include_secrets": True}, format="json").json()
        assert [d["data"]["password"] for d in listed] == ["hunter2"]
        of_type = dev.get(f"{p}/block_types/slug/creds/block_documents").json()
        assert [d["data"]["password"] for d in of_type] == ["********"]

    def test_who_read_a_secret_is_in_the_audit_log(self, tenant, dev, role_client):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        doc = _document(dev, p, block_type["id"], block_schema["id"]).json()
        reads = AuditLogEntry.objects.filter(event_id=audit_events.BLOCK_SECRETS_READ.id)
        pending = AuditPendingEntry.objects.filter(chain=tenant.account.pk)
        dev.get(f"{p}/block_documents/{doc['id']}")  # obfuscated: not a read of the secret
        assert pending.count() == 0
        dev.get(f"{p}/block_documents/{doc['id']}?include_secrets=true")
        dev.post(f"{p}/block_documents/filter", {"include_secrets": True}, format="json")
        # Written before the answer, and joining the account's chain (the beat task) later.
        assert pending.count() == 2 and reads.count() == 0
        assert chain_pending_audit_records() == 2
        assert pending.count() == 0 and reads.count() == 2
        assert audit_verify_chain(tenant.account.pk).ok
        entry = reads.latest("sequence")
        assert (entry.target_id, entry.workspace_id) == (doc["id"], tenant.workspace.id)
        assert entry.message.endswith("read the secrets of creds/prod")
        assert entry.actor_kind == "service_account"
        assert "hunter2" not in json.dumps(entry.payload)
        # A Viewer asking gets the secret obfuscated: nothing was read.
        role_client("viewer").get(f"{p}/block_documents/{doc['id']}?include_secrets=true")
        assert pending.count() == 0

    def test_a_secret_read_writes_one_row_and_takes_no_chain_lock(self, tenant, dev):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        doc = _document(dev, p, block_type["id"], block_schema["id"]).json()
        url = f"{p}/block_documents/{doc['id']}"
        with CaptureQueriesContext(connection) as plain:
            dev.get(url)
        with CaptureQueriesContext(connection) as secret:
            dev.get(f"{url}?include_secrets=true")
        added = [q["sql"] for q in secret.captured_queries[len(plain.captured_queries) :]]
        assert len(secret.captured_queries) == len(plain.captured_queries) + 1, added
        assert "audit_auditpendingentry" in added[0] and added[0].startswith("INSERT")
        assert not any("audit_auditchain" in q["sql"] for q in secret.captured_queries)

    def test_viewer_sees_blocks_but_never_secrets_and_cannot_write(self, tenant, dev, role_client):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        doc = _document(dev, p, block_type["id"], block_schema["id"]).json()
        viewer = role_client("viewer")
        asked = viewer.get(f"{p}/block_documents/{doc['id']}?include_secrets=true")
        assert asked.status_code == 200 and asked.json()["data"] == {"user": "u", "password": "********"}
        listed = viewer.post(f"{p}/block_documents/filter", {"include_secrets": True}, format="json").json()
        assert listed[0]["data"]["password"] == "********"
        assert _document(viewer, p, block_type["id"], block_schema["id"], name="v").status_code == 403
        assert (
            viewer.patch(
                f"{p}/block_documents/{doc['id']}", {"data": {"user": "x"}}, format="json"
            ).status_code
            == 403
        )
        assert viewer.delete(f"{p}/block_documents/{doc['id']}").status_code == 403
        worker = role_client("worker")
        assert (
            worker.get(f"{p}/block_documents/{doc['id']}?include_secrets=true").json()["data"]["password"]
            == "hunter2"
        )
        assert _document(worker, p, block_type["id"], block_schema["id"], name="w").status_code == 403
        assert BlockDocument.objects.for_workspace(tenant.workspace.id).count() == 1

    def test_duplicate_name_is_409_and_invalid_names_422(self, tenant, dev):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        assert _document(dev, p, block_type["id"], block_schema["id"]).status_code == 201
        assert _document(dev, p, block_type["id"], block_schema["id"]).json() == {
            "detail": "Block already exists"
        }
        for bad in ("Has-Caps", "a_b", "a/b", ""):
            assert _document(dev, p, block_type["id"], block_schema["id"], name=bad).status_code == 422
        assert _document(dev, p, block_type["id"], block_schema["id"], name=None).status_code == 422
        assert BlockDocument.objects.for_workspace(tenant.workspace.id).count() == 1

    def test_anonymous_documents_are_named_and_hidden_by_default(self, tenant, dev):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        anon = _document(dev, p, block_type["id"], block_schema["id"], name=None, is_anonymous=True).json()
        assert anon["name"].startswith("anonymous-") and anon["is_anonymous"] is True
        _document(dev, p, block_type["id"], block_schema["id"], name="named")
        names = lambda body: [
            d["name"] for d in dev.post(f"{p}/block_documents/filter", body, format="json").json()
        ]  # noqa: E731
        assert names({}) == ["named"]
        assert names({"block_documents": {"name": {"like_": "a"}}}) == ["named"]
        assert names({"block_documents": {"is_anonymous": {"eq_": True}}}) == [anon["name"]]
        assert len(names({"block_documents": {"is_anonymous": None}})) == 2
        assert dev.post(f"{p}/block_documents/count", {}, format="json").json() == 1
        assert dev.get(f"{p}/block_documents/{anon['id']}").status_code == 200

    def test_patch_merges_or_replaces_and_keeps_obfuscated_secrets(self, tenant, dev):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        doc = _document(dev, p, block_type["id"], block_schema["id"]).json()
        url = f"{p}/block_documents/{doc['id']}"
        # Posting back what a read answered (obfuscated) keeps the stored secret.
        assert (
            dev.patch(url, {"data": {"user": "v", "password": "********"}}, format="json").status_code == 204
        )
        assert dev.get(f"{url}?include_secrets=true").json()["data"] == {"user": "v", "password": "hunter2"}
        assert dev.patch(url, {"data": {"extra": 1}}, format="json").status_code == 204
        assert dev.get(f"{url}?include_secrets=true").json()["data"] == {
            "user": "v",
            "password": "hunter2",
            "extra": 1,
        }
        replace = {"data": {"user": "w"}, "merge_existing_data": False}
        assert dev.patch(url, replace, format="json").status_code == 204
        assert dev.get(f"{url}?include_secrets=true").json()["data"] == {"user": "w"}
        assert dev.patch(f"{p}/block_documents/00000000-0000-0000-0000-000000000001", {"data": {}},
                         format="json").status_code == 404  # fmt: skip
        assert dev.patch(url, {"data": "x"}, format="json").status_code == 422

    def test_patch_to_a_schema_of_another_type_is_400(self, tenant, dev):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        doc = _document(dev, p, block_type["id"], block_schema["id"]).json()
        other = _type(dev, p, name="Other", slug="other")
        other_schema = _schema(dev, p, other["id"], fields={**SECRET_FIELDS, "title": "Other"}).json()
        body = {"block_schema_id": other_schema["id"], "data": {"user": "z"}}
        assert dev.patch(f"{p}/block_documents/{doc['id']}", body, format="json").status_code == 400
        again = dev.get(f"{p}/block_documents/{doc['id']}?include_secrets=true").json()
        assert again["data"]["user"] == "u" and again["block_schema_id"] == block_schema["id"]

    def test_references_are_resolved_obfuscated_and_cannot_cycle(self, tenant, dev):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        child = _document(dev, p, block_type["id"], block_schema["id"], name="child").json()
        parent_type = _type(dev, p, name="Parent", slug="parent")
        parent_schema = _schema(
            dev, p, parent_type["id"], fields={"title": "Parent", "properties": {}}
        ).json()
        data = {"creds": {"$ref": {"block_document_id": child["id"]}}, "x": 1}
        parent = _document(dev, p, parent_type["id"], parent_schema["id"], name="parent", data=data)
        assert parent.status_code == 201, parent.content
        body = parent.json()
        assert body["data"] == {"x": 1, "creds": {"user": "u", "password": "********"}}
        ref = body["block_document_references"]["creds"]["block_document"]
        assert ref["id"] == child["id"] and ref["name"] == "child" and ref["block_type"]["slug"] == "creds"
        full = dev.get(f"{p}/block_documents/{body['id']}?include_secrets=true").json()
        assert full["data"]["creds"]["password"] == "hunter2"
        cycle = {"data": {"back": {"$ref": {"block_document_id": body["id"]}}}}
        assert dev.patch(f"{p}/block_documents/{child['id']}", cycle, format="json").status_code == 400
        missing = {"data": {"r": {"$ref": {}}}}
        assert dev.patch(f"{p}/block_documents/{child['id']}", missing, format="json").status_code == 400
        # Deleting the referenced document drops the reference.
        assert dev.delete(f"{p}/block_documents/{child['id']}").status_code == 204
        assert dev.get(f"{p}/block_documents/{body['id']}").json()["block_document_references"] == {}

    def test_delete(self, tenant, dev):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        doc = _document(dev, p, block_type["id"], block_schema["id"]).json()
        assert dev.delete(f"{p}/block_documents/{doc['id']}").status_code == 204
        assert dev.delete(f"{p}/block_documents/{doc['id']}").status_code == 404
        assert dev.get(f"{p}/block_types/slug/creds/block_documents/name/prod").status_code == 404

    def test_bad_filters_and_queries_are_422(self, tenant, dev):
        p = tenant.prefix
        assert dev.post(f"{p}/block_documents/filter", {"sort": "NOPE"}, format="json").status_code == 422
        assert (
            dev.post(f"{p}/block_documents/filter", {"include_secrets": "maybe"}, format="json").status_code
            == 422
        )
        assert (
            dev.post(f"{p}/block_documents/filter", {"block_documents": {"x": {}}}, format="json").status_code
            == 422
        )
        assert (
            dev.get(
                f"{p}/block_documents/00000000-0000-0000-0000-000000000001?include_secrets=maybe"
            ).status_code
            == 422
        )


class TestIsolation:
    def test_another_workspaces_blocks_are_404_even_with_the_same_name(self, two_workspaces, api_client):
        from tests.conftest import bearer

        a, b = two_workspaces
        client_a = bearer(api_client.__class__(), a.service_key)
        client_b = bearer(api_client.__class__(), b.service_key)
        block_type, block_schema = _setup(client_a, a.prefix)
        doc = _document(client_a, a.prefix, block_type["id"], block_schema["id"]).json()
        secret_a = client_a.get(f"{a.prefix}/block_types/slug/secret").json()
        assert client_b.get(f"{b.prefix}/block_documents/{doc['id']}").status_code == 404
        assert client_b.get(f"{b.prefix}/block_types/{block_type['id']}").status_code == 404
        assert client_b.get(f"{b.prefix}/block_schemas/{block_schema['id']}").status_code == 404
        assert client_b.get(f"{b.prefix}/block_types/slug/creds").status_code == 404
        assert client_b.delete(f"{b.prefix}/block_types/{secret_a['id']}").status_code == 404
        assert (
            client_b.patch(f"{b.prefix}/block_documents/{doc['id']}", {"data": {}}, format="json").status_code
            == 404
        )
        assert client_b.post(f"{b.prefix}/block_documents/filter", {}, format="json").json() == []
        # B's own Secret type is its own row; the same names are free in B.
        assert client_b.get(f"{b.prefix}/block_types/slug/secret").json()["id"] != secret_a["id"]
        b_type, b_schema = _setup(client_b, b.prefix)
        assert _document(client_b, b.prefix, b_type["id"], b_schema["id"]).status_code == 201
        # A document of B cannot reference one of A.
        ref = {"r": {"$ref": {"block_document_id": doc["id"]}}}
        assert (
            _document(client_b, b.prefix, b_type["id"], b_schema["id"], name="x", data=ref).status_code == 400
        )
        # A cannot create a document on B's type or schema.
        assert _document(client_a, a.prefix, b_type["id"], b_schema["id"], name="y").status_code == 404
        assert (
            json.loads(client_a.get(f"{a.prefix}/block_documents/{doc['id']}?include_secrets=true").content)[
                "data"
            ]["password"]
            == "hunter2"
        )


class TestListQueries:
    def test_listing_documents_with_references_does_not_grow_with_the_page(
        self, tenant, dev, django_assert_max_num_queries
    ):
        p = tenant.prefix
        block_type, block_schema = _setup(dev, p)
        for i in range(12):
            child = _document(dev, p, block_type["id"], block_schema["id"], name=f"child-{i}").json()
            ref = {"inner": {"$ref": {"block_document_id": child["id"]}}, "user": "p"}
            _document(dev, p, block_type["id"], block_schema["id"], name=f"parent-{i}", data=ref)
        body = {"block_documents": {"name": {"like_": "parent"}}, "include_secrets": True}
        with django_assert_max_num_queries(20):  # the reads, and one audit record of the secrets read
            listed = dev.post(f"{p}/block_documents/filter", body, format="json").json()
        assert len(listed) == 12
        assert all(d["data"]["inner"] == {"user": "u", "password": "hunter2"} for d in listed)
        assert {d["block_document_references"]["inner"]["block_document"]["name"] for d in listed} == {
            f"child-{i}" for i in range(12)
        }
