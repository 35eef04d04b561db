"""Blocks end to end: the unmodified ``prefect`` client and CLI against the live server."""

from __future__ import annotations

import pytest

from orchestration.models import BlockDocument, BlockDocumentReference, BlockSchema, BlockType
from tests.live.conftest import FLOWS_DIR, make_live_tenant

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SECRET = "s3cr3t-value-0123456789"


def _documents(workspace, **lookup):
    return BlockDocument.objects.for_workspace(workspace.id).filter(**lookup)


def _save(run_prefect, name, value="v", *, overwrite=False, only_load=False, **kwargs):
    env = {"BLOCK_NAME": name, "BLOCK_VALUE": value, "BLOCK_OVERWRITE": "1" if overwrite else "0",
           "BLOCK_ONLY_LOAD": "1" if only_load else "0"}  # fmt: skip
    run = run_prefect("blocks_save.py", env, **kwargs)
    assert run.result is not None, run.describe()
    return run


def test_secret_json_and_custom_blocks_save_and_load_in_a_flow(run_prefect, live_tenant, asgi_server):
    mark = asgi_server.mark()
    run = run_prefect("blocks_roundtrip.py", {"BLOCK_SECRET": SECRET})
    result = run.result
    assert run.returncode == 0 and result and "error" not in result, run.describe()
    assert result["type"] == "COMPLETED", run.describe()
    assert result["secret"] == SECRET
    assert result["json"] == {"host": "db", "port": 5432, "tags": ["a"]}
    assert result["custom"] == {"user": "svc", "password": SECRET, "options": {"ssl": True}}
    workspace = live_tenant.workspace
    assert result["nested"] == {"endpoint": "https://svc.example", "password": SECRET}
    names = {"db-pass", "db-json", "svc", "svc-with-creds"}
    assert set(_documents(workspace).values_list("name", flat=True)) == names
    # The nested block was saved as a reference to the saved one, not a copy.
    service = _documents(workspace, name="svc-with-creds").get()
    refs = BlockDocumentReference.objects.for_workspace(workspace.id).filter(parent_block_document=service)
    assert [(r.name, r.reference_block_document.name) for r in refs] == [("creds", "svc")]
    custom = BlockType.objects.for_workspace(workspace.id).get(slug="blocks-live-creds")
    assert custom.is_protected is False
    schema = BlockSchema.objects.for_workspace(workspace.id).get(block_type=custom)
    assert schema.fields["secret_fields"] == ["password"]
    # Encrypted at rest: no stored row holds the secret in the clear.
    assert all(SECRET not in doc.data for doc in _documents(workspace))
    # The server answered the secret only where the client asked for it (the loads).
    answered = [e for e in asgi_server.since(mark) if SECRET.encode() in e.response_body]
    assert answered and all("include_secrets=true" in e.query for e in answered), run.trail


def test_overwrite_and_a_name_in_use(run_prefect, live_tenant):
    first = _save(run_prefect, "rotating", "one")
    assert first.result == {"id": first.result["id"], "value": "one"}, first.describe()
    refused = _save(run_prefect, "rotating", "two")
    assert "already in use" in refused.result.get("error", ""), refused.describe()
    assert _save(run_prefect, "rotating", only_load=True).result["value"] == "one"
    replaced = _save(run_prefect, "rotating", "two", overwrite=True)
    assert replaced.result == {"id": first.result["id"], "value": "two"}, replaced.describe()
    assert _documents(live_tenant.workspace, name="rotating").count() == 1


def test_a_viewer_key_cannot_save_a_block(run_prefect, live_tenant):
    run = _save(run_prefect, "from-viewer", "x", key=live_tenant.viewer_key)
    assert "error" in run.result and "403" in run.result["error"], run.describe()
    assert not _documents(live_tenant.workspace, name="from-viewer").exists()


def test_a_block_of_workspace_a_is_not_visible_from_b(run_prefect, live_tenant, asgi_server):
    assert _save(run_prefect, "shared-name", "from-a").result["value"] == "from-a"
    other = make_live_tenant(asgi_server.url)
    as_b = {"key": other.developer_key, "api_url": other.api_url}
    missing = _save(run_prefect, "shared-name", only_load=True, **as_b)
    assert "Unable to find block document named shared-name" in missing.result.get("error", ""), (
        missing.describe()
    )
    assert _save(run_prefect, "shared-name", "from-b", **as_b).result["value"] == "from-b"
    assert _save(run_prefect, "shared-name", only_load=True).result["value"] == "from-a"
    a_doc = _documents(live_tenant.workspace, name="shared-name").get()
    b_doc = _documents(other.workspace, name="shared-name").get()
    assert a_doc.id != b_doc.id and a_doc.block_type_id != b_doc.block_type_id


def test_the_block_cli(run_prefect, live_tenant):
    registered = run_prefect(["prefect", "block", "register", "-m", "prefect.blocks.notifications"])
    assert registered.returncode == 0, registered.describe()
    assert "Successfully registered" in registered.stdout, registered.describe()
    from_file = run_prefect(
        ["prefect", "block", "register", "-f", str(FLOWS_DIR / "blocks_custom_register.py")]
    )
    assert from_file.returncode == 0, from_file.describe()
    thing = BlockType.objects.for_workspace(live_tenant.workspace.id).get(slug="blocks-registered-thing")
    assert BlockSchema.objects.for_workspace(live_tenant.workspace.id).filter(block_type=thing).count() == 1

    types = run_prefect(["prefect", "block", "type", "ls"])
    assert types.returncode == 0, types.describe()
    assert "secret" in types.stdout and "blocks-registered-thing" in types.stdout, types.describe()

    assert _save(run_prefect, "cli-pass", SECRET).result["value"] == SECRET
    listed = run_prefect(["prefect", "block", "ls"])
    assert listed.returncode == 0 and "secret/cli-pass" in listed.stdout, listed.describe()
    inspected = run_prefect(["prefect", "block", "inspect", "secret/cli-pass"])
    assert inspected.returncode == 0 and "cli-pass" in inspected.stdout, inspected.describe()
    assert SECRET not in inspected.stdout, inspected.describe()

    # A protected type cannot be deleted.
    refused = run_prefect(["prefect", "block", "type", "delete", "secret", "--no-prompt"])
    assert refused.returncode != 0, refused.describe()
    assert "DELETE W/block_types/" in refused.trail and "-> 403" in refused.trail, refused.describe()
    assert BlockType.objects.for_workspace(live_tenant.workspace.id).filter(slug="secret").exists()

    deleted = run_prefect(["prefect", "block", "delete", "secret/cli-pass", "--no-prompt"])
    assert deleted.returncode == 0, deleted.describe()
    assert not _documents(live_tenant.workspace, name="cli-pass").exists()
    gone = run_prefect(["prefect", "block", "inspect", "secret/cli-pass"])
    assert gone.returncode != 0, gone.describe()
