"""Exports an auditor can take away: JSON Lines or CSV, by date range, actor, action and workspace,
with a signed manifest (the file's SHA-256, the entry count and sequence range, and the chain head
at export time). ``verify_export`` checks a file against its manifest without the database: the
file's digest and the manifest's Ed25519 signature (with a public key the auditor holds, or this
deployment's), and for JSON Lines every entry's own hash and, when
nothing was filtered out, every link between consecutive entries."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from django.core import signing
from django.db.models import Q

from audit import events
from audit import signing as manifest_signing
from audit.models import AuditChain, AuditLogEntry
from audit.services import audit_chain_pending, audit_record, entry_fields, entry_hash

FIELDS = (
    "id", "chain", "sequence", "occurred", "event_id", "api_name", "account_ref", "workspace_ref",
    "actor_kind", "actor_user", "actor_service_account", "actor_label", "target_type", "target_id",
    "target_label", "ip", "user_agent", "request_id", "message", "payload", "prev_hash", "hash",
)  # fmt: skip
_SALT = "audit-export-manifest"


def entry_record(entry: AuditLogEntry) -> dict:
    return {**entry_fields(entry), "hash": entry.hash}


def _entry_from_record(record: dict) -> AuditLogEntry:
    """An unsaved entry carrying the record's values, to recompute its hash."""
    return AuditLogEntry(
        id=uuid.UUID(record["id"]),
        chain=uuid.UUID(record["chain"]),
        sequence=record["sequence"],
        occurred=dt.datetime.fromisoformat(record["occurred"]),
        event_id=record["event_id"],
        api_name=record["api_name"],
        account_ref=uuid.UUID(record["account_ref"]) if record["account_ref"] else None,
        workspace_ref=uuid.UUID(record["workspace_ref"]) if record["workspace_ref"] else None,
        actor_kind=record["actor_kind"],
        actor_user_id=uuid.UUID(record["actor_user"]) if record["actor_user"] else None,
        actor_service_account_id=(
            uuid.UUID(record["actor_service_account"]) if record["actor_service_account"] else None
        ),
        actor_label=record["actor_label"],
        target_type=record["target_type"],
        target_id=record["target_id"],
        target_label=record["target_label"],
        ip=record["ip"],
        user_agent=record["user_agent"],
        request_id=record["request_id"],
        message=record["message"],
        payload=record["payload"],
        prev_hash=record["prev_hash"],
        hash=record["hash"],
    )


@dataclass
class ExportFilters:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    actor: str | None = None  # a user or service-account id, or an actor label
    action: str | None = None  # an api_name, e.g. member.added
    workspace: uuid.UUID | None = None
    target: str | None = None  # the target's id or its label

    def is_empty(self) -> bool:
        return not any((self.since, self.until, self.actor, self.action, self.workspace, self.target))

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "actor": self.actor,
            "action": self.action,
            "workspace": str(self.workspace) if self.workspace else None,
            **({"target": self.target} if self.target else {}),
        }


def filtered_entries(account_id: uuid.UUID, filters: ExportFilters):

    entries = AuditLogEntry.objects.filter(chain=account_id, sequence__gt=0)
    if filters.since:
        entries = entries.filter(occurred__gte=filters.since)
    if filters.until:
        entries = entries.filter(occurred__lt=filters.until)
    if filters.action:
        entries = entries.filter(api_name=filters.action)
    if filters.workspace:
        entries = entries.filter(workspace_ref=filters.workspace)
    if filters.target:
        entries = entries.filter(Q(target_id=filters.target) | Q(target_label=filters.target))
    if filters.actor:
        try:
            actor_id = uuid.UUID(filters.actor)
        except ValueError:
            entries = entries.filter(actor_label=filters.actor)
        else:
            entries = entries.filter(Q(actor_user_id=actor_id) | Q(actor_service_account_id=actor_id))
    return entries.order_by("sequence")


def export(account_id: uuid.UUID, filters: ExportFilters, *, fmt: str, out: Path) -> dict:
    """Write the export to ``out`` and its manifest beside it (``<out>.manifest.json``)."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError("format must be jsonl or csv")
    audit_chain_pending(chain=account_id)
    records = [entry_record(e) for e in filtered_entries(account_id, filters).iterator(chunk_size=5000)]
    if fmt == "jsonl":
        body = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({**record, "payload": json.dumps(record["payload"], sort_keys=True)})
        body = buffer.getvalue()
    data = body.encode()
    out.write_bytes(data)
    head = AuditChain.objects.filter(pk=account_id).first()
    manifest = {
        "account_id": str(account_id),
        "format": fmt,
        "filters": filters.as_dict(),
        "complete": filters.is_empty(),
        "entries": len(records),
        "first_sequence": records[0]["sequence"] if records else None,
        "last_sequence": records[-1]["sequence"] if records else None,
        "file": out.name,
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "chain_head": {
            "sequence": head.sequence if head else 0,
            "hash": head.head_hash if head else "",
            "checkpoint_sequence": head.checkpoint_sequence if head else 0,
            "checkpoint_hash": head.checkpoint_hash if head else "",
        },
        "created": dt.datetime.now(dt.UTC).isoformat(),
    }
    manifest["signature_algorithm"] = manifest_signing.ALGORITHM
    manifest["public_key"] = manifest_signing.public_key_b64()
    manifest["signature"] = manifest_signing.sign(_canonical(manifest).encode())
    Path(f"{out}.manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _canonical(manifest: dict) -> str:
    return json.dumps(
        {k: v for k, v in manifest.items() if k != "signature"}, sort_keys=True, separators=(",", ":")
    )


def _legacy_signature(manifest: dict) -> str:
    """Manifests written before Ed25519: an HMAC keyed by SECRET_KEY (checked only where it is)."""
    return signing.Signer(salt=_SALT).signature(_canonical(manifest))


def _signature_problem(manifest: dict, public_key: str | None) -> str | None:
    signature = manifest.get("signature")
    if not isinstance(signature, str):
        return "the manifest carries no signature"
    if manifest.get("signature_algorithm") != manifest_signing.ALGORITHM:
        if signing.constant_time_compare(_legacy_signature(manifest), signature):
            return None
        return "the manifest's signature does not match (the manifest was changed or not ours)"
    expected = public_key or manifest_signing.public_key_b64()
    if manifest.get("public_key") != expected:
        return "the manifest was signed with another key than the one it is checked against"
    if not manifest_signing.verify(_canonical(manifest).encode(), signature, expected):
        return "the manifest's signature does not match (the manifest was changed or not ours)"
    return None


@dataclass
class ExportReport:
    problems: list[str] = field(default_factory=list)
    entries: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_export(
    manifest_path: Path, file_path: Path | None = None, *, public_key: str | None = None
) -> ExportReport:
    """Check an export against its manifest, without the database. ``public_key``: the signer's
    public key as the auditor holds it (base64); by default this deployment's."""
    report = ExportReport()
    manifest = json.loads(Path(manifest_path).read_text())
    problem = _signature_problem(manifest, public_key)
    if problem:
        report.problems.append(problem)
    file_path = Path(file_path) if file_path else Path(manifest_path).with_name(manifest["file"])
    data = file_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest["file_sha256"]:
        report.problems.append("the file's SHA-256 does not match the manifest (the file was changed)")
    if manifest["format"] != "jsonl":
        return report
    previous = None
    # Records end at "\n" only: str.splitlines() would also split inside a value holding U+0085 or
    # U+2028 (JSON Lines leaves those unescaped).
    lines = [line for line in data.split(b"\n") if line.strip()]
    for number, raw in enumerate(lines, start=1):
        try:
            record = json.loads(raw.decode())
            recomputed = entry_hash(_entry_from_record(record))
        except (ValueError, KeyError, TypeError) as error:
            report.problems.append(f"line {number}: not an audit entry ({error})")
            break
        report.entries += 1
        if recomputed != record["hash"]:
            report.problems.append(
                f"line {number} (sequence {record['sequence']}): contents do not match its hash"
            )
            break
        links = (
            record["sequence"] == previous["sequence"] + 1 and record["prev_hash"] == previous["hash"]
            if previous
            else True
        )
        if manifest.get("complete") and not links:
            report.problems.append(f"line {number} (sequence {record['sequence']}): breaks the chain")
            break
        previous = record
    if report.entries != manifest["entries"]:
        report.problems.append(f"the file holds {report.entries} entries, the manifest {manifest['entries']}")
    at_head = previous is not None and manifest["chain_head"]["sequence"] == previous["sequence"]
    if manifest.get("complete") and at_head and previous["hash"] != manifest["chain_head"]["hash"]:
        report.problems.append("the last entry is not the chain head the manifest recorded")
    return report


def export_archive(*, account, filters: ExportFilters, fmt: str, actor) -> tuple[str, bytes]:
    """An export and its signed manifest as one zip for a download: ``(file name, zip bytes)``.
    The export is audited (``audit-log.exported``, with its filters and entry count) after it
    is taken, so the record is not part of what it exports."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"audit-{account.handle}-{stamp}.{fmt}"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / name
        manifest = export(account.pk, filters, fmt=fmt, out=out)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(out, name)
            archive.write(f"{out}.manifest.json", f"{name}.manifest.json")
    audit_record(
        event=events.AUDIT_LOG_EXPORTED,
        actor=actor,
        account=account,
        target=account,
        payload={"format": fmt, "entries": manifest["entries"], "filters": filters.as_dict()},
    )
    return f"audit-{account.handle}-{stamp}.zip", buffer.getvalue()
