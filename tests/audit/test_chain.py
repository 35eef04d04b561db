"""The tamper-evident audit log: entries chained per account, append-only on PostgreSQL, verified by
``audit_verify`` (which names the first broken link), exported with a signed manifest that verifies
offline, and read through the account API with cursor paging."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.test import Client
from django.utils import timezone

from audit import events
from audit.actors import SYSTEM
from audit.models import AuditChain, AuditLogEntry
from audit.services import audit_record, audit_verify_chain
from tests.accounts.test_account_api import client, make_org

pytestmark = pytest.mark.django_db


def _tamper(entry_id, **changes):
    """Change a row behind the application's back, as a DBA with table ownership could."""
    sets = ", ".join(f"{column} = %s" for column in changes)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditlogentry DISABLE TRIGGER audit_entry_append_only")
        cursor.execute(
            f"UPDATE audit_auditlogentry SET {sets} WHERE id = %s",
            [*changes.values(), entry_id.hex if connection.vendor == "sqlite" else entry_id],
        )  # noqa: S608
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditlogentry ENABLE TRIGGER audit_entry_append_only")


def _entries(org):
    return list(AuditLogEntry.objects.filter(chain=org.account.pk, sequence__gt=0).order_by("sequence"))


def test_entries_chain_per_account_and_verify():
    org, other = make_org(), make_org()
    for _ in range(3):
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account, payload={"n": 1})
    entries = _entries(org)
    assert [e.sequence for e in entries] == list(range(1, len(entries) + 1))
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    assert audit_verify_chain(org.account.pk).ok and audit_verify_chain(other.account.pk).ok
    call_command("audit_verify", account=str(org.account.id))


def test_a_hand_edited_row_is_named_by_audit_verify(capsys):
    org = make_org()
    for _ in range(4):
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    victim = _entries(org)[2]
    _tamper(victim.id, actor_label="someone else")
    report = audit_verify_chain(org.account.pk)
    assert not report.ok and report.broken_at == victim.sequence and report.entry_id == str(victim.id)
    with pytest.raises(CommandError):
        call_command("audit_verify", account=org.account.handle)
    assert str(victim.id) in capsys.readouterr().out


def test_a_removed_row_breaks_the_chain():
    org = make_org()
    for _ in range(3):
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    victim = _entries(org)[1]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditlogentry DISABLE TRIGGER audit_entry_append_only")
        AuditLogEntry.objects.filter(pk=victim.pk).delete()
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditlogentry ENABLE TRIGGER audit_entry_append_only")
    report = audit_verify_chain(org.account.pk)
    # Named at the first entry after the hole, which says which sequence is missing.
    assert not report.ok and report.broken_at == victim.sequence + 1
    assert f"expected sequence {victim.sequence}" in report.reason


def test_the_application_cannot_update_or_delete_entries_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's")
    org = make_org()
    entry = audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    for attempt in (
        lambda: AuditLogEntry.objects.filter(pk=entry.pk).update(actor_label="x"),
        lambda: AuditLogEntry.objects.filter(pk=entry.pk).delete(),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()
    assert AuditLogEntry.objects.get(pk=entry.pk).actor_label == "system"


def _refused(attempt, match: str) -> None:
    with pytest.raises(DatabaseError, match=match), transaction.atomic():
        attempt()


def _backdate(entry_ids, days: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditlogentry DISABLE TRIGGER audit_entry_append_only")
        AuditLogEntry.objects.filter(pk__in=entry_ids).update(
            occurred=timezone.now() - dt.timedelta(days=days)
        )
        cursor.execute("ALTER TABLE audit_auditlogentry ENABLE TRIGGER audit_entry_append_only")


def test_the_purge_flag_alone_deletes_nothing_recent_nor_past_the_checkpoint():
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's")
    from audit.services import _allow_purge

    org = make_org()
    old = [audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account) for _ in range(2)]
    recent = audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    _backdate([e.pk for e in old], days=30)

    def purge(entry):
        def attempt():
            _allow_purge()
            AuditLogEntry.objects.filter(pk=entry.pk).delete()

        return attempt

    # Old, but the head does not account it as purged (no checkpoint yet).
    _refused(purge(old[0]), "append-only")
    # At or before the checkpoint but recent.
    AuditChain.objects.filter(pk=org.account.pk).update(
        checkpoint_sequence=recent.sequence, checkpoint_hash=recent.hash
    )
    _refused(purge(recent), "append-only")
    # Old and at or before the checkpoint: the purge's own case.
    with transaction.atomic():
        purge(old[0])()
    assert not AuditLogEntry.objects.filter(pk=old[0].pk).exists()


def test_chain_heads_only_move_forward_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the chain head trigger is PostgreSQL's")
    org = make_org()
    first = audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    last = audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    heads = AuditChain.objects.filter(pk=org.account.pk)
    for change in (
        {"sequence": first.sequence, "head_hash": first.hash},  # back, to hide the last entry
        {"head_hash": "0" * 64},  # another hash at the same place
        {"sequence": last.sequence + 1, "head_hash": "f" * 64},  # ahead, to no entry
        {"checkpoint_sequence": last.sequence + 1, "checkpoint_hash": "f" * 64},  # past the head
        {"checkpoint_sequence": first.sequence, "checkpoint_hash": "0" * 64},  # to a wrong hash
    ):
        _refused(lambda change=change: heads.update(**change), "only move forward")
    _refused(lambda: heads.delete(), "never deleted")
    head = heads.get()
    assert (head.sequence, head.head_hash, head.checkpoint_sequence) == (last.sequence, last.hash, 0)
    # The writer's own moves still work.
    newest = audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    heads.update(checkpoint_sequence=first.sequence, checkpoint_hash=first.hash)
    head = heads.get()
    assert (head.sequence, head.checkpoint_sequence) == (newest.sequence, first.sequence)


def test_export_and_manifest_verify_offline(tmp_path):
    org = make_org()
    for i in range(5):
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account, payload={"i": i})
    out = tmp_path / "audit.jsonl"
    call_command("audit_export", account=str(org.account.id), out=str(out))
    manifest = json.loads((tmp_path / "audit.jsonl.manifest.json").read_text())
    assert manifest["entries"] == len(_entries(org)) and manifest["complete"] is True
    call_command("audit_verify", manifest=str(tmp_path / "audit.jsonl.manifest.json"))
    # One changed character in the file, or in the manifest, is caught.
    lines = out.read_text().splitlines()
    record = json.loads(lines[2])
    record["actor_label"] = "forged"
    (tmp_path / "forged.jsonl").write_text(
        "\n".join([*lines[:2], json.dumps(record, sort_keys=True), *lines[3:]]) + "\n"
    )
    with pytest.raises(CommandError, match="SHA-256"):
        call_command(
            "audit_verify",
            manifest=str(tmp_path / "audit.jsonl.manifest.json"),
            file=str(tmp_path / "forged.jsonl"),
        )
    manifest["entries"] += 1
    (tmp_path / "bad.manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="signature"):
        call_command("audit_verify", manifest=str(tmp_path / "bad.manifest.json"), file=str(out))


def test_csv_export_by_action(tmp_path):
    org = make_org()
    audit_record(event=events.TEAM_CREATED, actor=SYSTEM, account=org.account)
    out = tmp_path / "teams.csv"
    call_command(
        "audit_export", account=str(org.account.id), out=str(out), format="csv", action="team.created"
    )
    rows = out.read_text().splitlines()
    assert rows[0].startswith("id,chain,sequence") and len(rows) == 2 and "team.created" in rows[1]
    call_command("audit_verify", manifest=f"{out}.manifest.json")


def test_the_read_api_pages_with_a_cursor_and_filters():
    org = make_org()
    for _ in range(5):
        audit_record(event=events.TEAM_CREATED, actor=SYSTEM, account=org.account)
    c = client(org.owner_key)
    first = c.get(f"{org.api}/audit_events", {"limit": 3, "event": "team.created"}).json()
    assert len(first["events"]) == 3 and first["next_cursor"]
    second = c.get(
        f"{org.api}/audit_events", {"limit": 3, "event": "team.created", "cursor": first["next_cursor"]}
    ).json()
    assert len(second["events"]) == 2 and second["next_cursor"] is None
    sequences = [e["sequence"] for e in first["events"] + second["events"]]
    assert sequences == sorted(sequences, reverse=True) and len(set(sequences)) == 5
    assert c.get(f"{org.api}/audit_events", {"limit": 0}).status_code == 422
    hobby = make_org(plan="hobby")
    assert client(hobby.owner_key).get(f"{hobby.api}/audit_events").status_code == 403


def _export(org, tmp_path) -> Path:
    for i in range(3):
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account, payload={"i": i})
    out = tmp_path / "audit.jsonl"
    call_command("audit_export", account=str(org.account.id), out=str(out))
    return tmp_path / "audit.jsonl.manifest.json"


def test_manifests_are_ed25519_signed_and_verify_with_the_public_key_alone(tmp_path, settings):
    org = make_org()
    manifest_path = _export(org, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    published = Client().get("/api/audit/signing_key").json()
    assert published["algorithm"] == manifest["signature_algorithm"] == "ed25519"
    assert manifest["public_key"] == published["public_key"]
    out = io.StringIO()
    call_command("audit_signing_key", stdout=out)
    assert out.getvalue().strip() == published["public_key"]
    # The auditor needs no server secret: another SECRET_KEY, the published key given.
    settings.SECRET_KEY = "an auditor's machine knows no secret of the server"
    call_command("audit_verify", manifest=str(manifest_path), public_key=published["public_key"])
    # ... while this (now different) deployment's own key does not vouch for it.
    with pytest.raises(CommandError, match="another key"):
        call_command("audit_verify", manifest=str(manifest_path))


def test_a_manifest_re_signed_with_another_key_is_refused(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit import signing
    from audit.export import _canonical

    org = make_org()
    manifest_path = _export(org, tmp_path)
    pinned = signing.public_key_b64()
    manifest = json.loads(manifest_path.read_text())
    manifest["entries"] -= 1  # hide an entry, then sign with a key of one's own
    forger = Ed25519PrivateKey.generate()
    manifest["public_key"] = base64.b64encode(
        forger.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()
    manifest["signature"] = base64.b64encode(forger.sign(_canonical(manifest).encode())).decode()
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="another key"):
        call_command("audit_verify", manifest=str(manifest_path), public_key=pinned)
    # Its own key in place of the pinned one: the signature checks, the entry count does not.
    with pytest.raises(CommandError, match="entries"):
        call_command("audit_verify", manifest=str(manifest_path), public_key=manifest["public_key"])


def test_a_configured_signing_key_signs(tmp_path, settings):
    from audit import signing

    seed = io.StringIO()
    call_command("audit_signing_key", generate=True, stdout=seed)
    settings.AUDIT_SIGNING_KEY = seed.getvalue().strip()
    org = make_org()
    manifest = json.loads(_export(org, tmp_path).read_text())
    assert manifest["public_key"] == signing.public_key_b64()
    settings.AUDIT_SIGNING_KEY = ""
    assert manifest["public_key"] != signing.public_key_b64()
    settings.AUDIT_SIGNING_KEY = "not a seed"
    with pytest.raises(CommandError, match="32 bytes"):
        call_command("audit_signing_key")


def test_a_manifest_from_before_ed25519_still_verifies_where_its_key_is(tmp_path):
    from audit.export import _legacy_signature

    org = make_org()
    manifest_path = _export(org, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    for key in ("signature_algorithm", "public_key", "signature"):
        manifest.pop(key)
    manifest["signature"] = _legacy_signature(manifest)
    manifest_path.write_text(json.dumps(manifest))
    call_command("audit_verify", manifest=str(manifest_path))
    manifest["entries"] += 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="signature"):
        call_command("audit_verify", manifest=str(manifest_path))


def test_no_plan_keeps_entries_shorter_than_the_trigger_lets_the_purge_delete():
    # audit/migrations/0003_chain_head_guard.py lets the purge delete entries older than 7 days only.
    from billing.plans import PLANS

    assert min(plan.audit_log_retention_days for plan in PLANS.values()) >= 7
