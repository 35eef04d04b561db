"""Writing the audit trail."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import logging
import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from audit.actors import actor_kind, actor_label
from audit.context import current_credential, current_request_context
from audit.models import AuditChain, AuditChainVerification, AuditLogEntry, AuditPendingEntry
from audit.registry import AuditEventType, registry

logger = logging.getLogger(__name__)


def _target_fields(target) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    meta = getattr(target, "_meta", None)
    target_type = f"{meta.app_label}.{meta.model_name}" if meta else type(target).__name__.lower()
    return target_type, str(getattr(target, "pk", "")), str(target)[:254]


def _new_entry(
    *,
    event: AuditEventType | str,
    actor,
    account=None,
    workspace=None,
    target=None,
    payload: dict[str, Any] | None = None,
) -> AuditLogEntry:
    """The entry ``audit_record`` writes, not yet in its chain (no sequence, no hashes)."""
    if isinstance(event, str):
        event = registry.get(event)
    if workspace is not None and account is None:
        account = workspace.account
    payload = dict(payload or {})
    credential = current_credential()
    if credential is not None and "auth" not in payload:
        payload["auth"] = {"method": credential.method, "api_key_id": credential.api_key_id}
    kind = actor_kind(actor)
    label = actor_label(actor)
    target_type, target_id, target_label = _target_fields(target)
    context = current_request_context()
    message = event.render(
        actor=label,
        target=target_label,
        workspace=str(workspace) if workspace is not None else "",
        **{key: value for key, value in payload.items() if key not in {"actor", "target", "workspace"}},
    )
    return AuditLogEntry(
        id=uuid.uuid4(),
        occurred=timezone.now(),
        event_id=event.id,
        api_name=event.api_name,
        account=account,
        workspace=workspace,
        account_ref=account.pk if account is not None else None,
        workspace_ref=workspace.pk if workspace is not None else None,
        actor_kind=kind,
        actor_user=actor if kind == "user" else None,
        actor_service_account=actor if kind == "service_account" else None,
        actor_label=label[:254],
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        ip=_IP_FIELD.get_prep_value(context.ip) if context.ip else None,
        user_agent=context.user_agent,
        request_id=context.request_id,
        message=message,
        # Stored as it will read back, so the hash computed now is the hash re-computed later.
        payload=json.loads(json.dumps(payload, default=str)),
        chain=account.pk if account is not None else GLOBAL_CHAIN,
    )


def audit_record(
    *,
    event: AuditEventType | str,
    actor,
    account=None,
    workspace=None,
    target=None,
    payload: dict[str, Any] | None = None,
) -> AuditLogEntry:
    """Record ``event``. Call it inside the service's transaction so the record and the change
    commit or roll back together. Request facts (IP, user agent, request id) come from the request
    context the middleware sets."""
    entry = _new_entry(
        event=event, actor=actor, account=account, workspace=workspace, target=target, payload=payload
    )
    # No savepoint of its own: inside the change's transaction, a failure here fails the change.
    with transaction.atomic(savepoint=False):
        head = _locked_head(entry.chain)
        entry.sequence = head.sequence + 1
        entry.prev_hash = head.head_hash
        entry.hash = entry_hash(entry)
        entry.save(force_insert=True)
        AuditChain.objects.filter(pk=head.pk).update(
            sequence=entry.sequence, head_hash=entry.hash, updated=entry.occurred
        )
    return entry


def audit_record_pending(
    *,
    event: AuditEventType | str,
    actor,
    account=None,
    workspace=None,
    target=None,
    payload: dict[str, Any] | None = None,
) -> AuditPendingEntry:
    """Record ``event`` with one INSERT and no lock: for records on a hot path that must not wait on
    (nor serialize behind) the account's chain, such as reads of secrets. The row is durable when
    the caller's transaction commits (with no transaction open, when this returns); it joins the
    chain, in the order written, when ``audit_chain_pending`` runs (Celery beat, every few seconds,
    and before the log is read, exported or verified). Its ``occurred`` is when it happened; its
    sequence is when it joined."""
    entry = _new_entry(
        event=event, actor=actor, account=account, workspace=workspace, target=target, payload=payload
    )
    fields = entry_fields(entry)
    for chained in ("sequence", "prev_hash"):
        del fields[chained]
    return AuditPendingEntry.objects.create(chain=entry.chain, entry_id=entry.id, fields=fields)


def _entry_from_fields(fields: dict[str, Any]) -> AuditLogEntry:
    return AuditLogEntry(
        id=uuid.UUID(fields["id"]),
        occurred=dt.datetime.fromisoformat(fields["occurred"]),
        event_id=fields["event_id"],
        api_name=fields["api_name"],
        account_id=fields["account_ref"],
        workspace_id=fields["workspace_ref"],
        account_ref=fields["account_ref"],
        workspace_ref=fields["workspace_ref"],
        actor_kind=fields["actor_kind"],
        actor_user_id=fields["actor_user"],
        actor_service_account_id=fields["actor_service_account"],
        actor_label=fields["actor_label"],
        target_type=fields["target_type"],
        target_id=fields["target_id"],
        target_label=fields["target_label"],
        ip=fields["ip"],
        user_agent=fields["user_agent"],
        request_id=fields["request_id"],
        message=fields["message"],
        payload=fields["payload"],
        chain=uuid.UUID(fields["chain"]),
    )


def audit_chain_pending(*, chain: uuid.UUID | None = None, batch: int = 1000) -> int:
    """Move pending records (``audit_record_pending``) into their chains, oldest first: under the
    chain's lock, each becomes the next entry (same id and fields) and its pending row is deleted,
    in one transaction, so a record is in the chain or still pending, never lost nor twice there.
    ``chain`` limits it to one chain. Returns how many joined."""
    chains = (
        [chain]
        if chain is not None
        else list(AuditPendingEntry.objects.values_list("chain", flat=True).distinct())
    )
    joined = 0
    for each in chains:
        while True:
            with transaction.atomic():
                head = _locked_head(each)
                pending = list(AuditPendingEntry.objects.filter(chain=each).order_by("position")[:batch])
                if not pending:
                    break
                sequence, prev_hash, entries = head.sequence, head.head_hash, []
                for row in pending:
                    entry = _entry_from_fields(row.fields)
                    sequence += 1
                    entry.sequence, entry.prev_hash = sequence, prev_hash
                    entry.hash = prev_hash = entry_hash(entry)
                    entries.append(entry)
                AuditLogEntry.objects.bulk_create(entries)
                AuditChain.objects.filter(pk=head.pk).update(
                    sequence=sequence, head_hash=prev_hash, updated=timezone.now()
                )
                AuditPendingEntry.objects.filter(position__in=[row.position for row in pending]).delete()
            joined += len(pending)
            if len(pending) < batch:
                break
    return joined


@dataclass
class AuditedUpdate:
    """What ``audited_update`` hands the block: the snapshot taken before it (``after`` once the
    block is done), the payload keys to add after ``before`` and ``after`` (``extra``), and
    ``record``, which a block sets to record the event even when the snapshots are equal."""

    before: Any
    after: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    record: bool = False
    entry: AuditLogEntry | None = None


_TARGET_IS_INSTANCE = object()


@contextmanager
def audited_update(
    *,
    instance,
    snapshot: Callable[[Any], Any],
    event: AuditEventType | str | Callable[[Any, Any], AuditEventType | str],
    actor,
    account=None,
    workspace=None,
    target=_TARGET_IS_INSTANCE,
    payload: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    always: bool = False,
) -> Iterator[AuditedUpdate]:
    """Snapshot ``instance``, let the block change and save it, snapshot it again, and record
    ``event`` with ``{**payload, "before": …, "after": …, **extra}`` when the snapshots differ (or
    ``always``, or when the block sets ``record``). ``event`` may be a function of the two
    snapshots; ``target`` is ``instance`` unless given. Nothing is recorded when the block raises.
    Used inside the service's transaction, as ``audit_record`` is::

        with audited_update(instance=team, snapshot=team_snapshot, event=events.TEAM_UPDATED,
                            actor=actor, account=account):
            team.name = name
            team.save()
    """
    change = AuditedUpdate(before=snapshot(instance), extra=dict(extra or {}))
    yield change
    change.after = snapshot(instance)
    if always or change.record or change.before != change.after:
        change.entry = audit_record(
            event=event(change.before, change.after) if callable(event) else event,
            actor=actor,
            account=account,
            workspace=workspace,
            target=instance if target is _TARGET_IS_INSTANCE else target,
            payload={**(payload or {}), "before": change.before, "after": change.after, **change.extra},
        )


# --- the hash chain --------------------------------------------------------------------------------

GLOBAL_CHAIN = uuid.UUID(int=0)
_IP_FIELD = AuditLogEntry._meta.get_field("ip")


def _locked_head(chain: uuid.UUID) -> AuditChain:
    head = AuditChain.objects.select_for_update().filter(pk=chain).first()
    if head is None:
        # The chain's first entry: create its head (a concurrent first writer wins, we wait on it).
        AuditChain.objects.bulk_create([AuditChain(id=chain)], ignore_conflicts=True)
        head = AuditChain.objects.select_for_update().get(pk=chain)
    return head


def entry_fields(entry: AuditLogEntry) -> dict[str, Any]:
    """The entry as plain JSON values: what its hash covers, and what an export carries (with the
    hash itself beside them)."""
    return {
        "id": str(entry.id),
        "chain": str(entry.chain),
        "sequence": entry.sequence,
        "occurred": entry.occurred.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "event_id": entry.event_id,
        "api_name": entry.api_name,
        "account_ref": str(entry.account_ref) if entry.account_ref else None,
        "workspace_ref": str(entry.workspace_ref) if entry.workspace_ref else None,
        "actor_kind": entry.actor_kind,
        "actor_user": str(entry.actor_user_id) if entry.actor_user_id else None,
        "actor_service_account": (
            str(entry.actor_service_account_id) if entry.actor_service_account_id else None
        ),
        "actor_label": entry.actor_label,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "target_label": entry.target_label,
        # In Python's spelling: PostgreSQL's inet reads some addresses back in another (::1.2.3.4).
        "ip": str(ipaddress.ip_address(entry.ip)) if entry.ip else None,
        "user_agent": entry.user_agent,
        "request_id": entry.request_id,
        "message": entry.message,
        "payload": entry.payload,
        "prev_hash": entry.prev_hash,
    }


def _stable_numbers(value: Any) -> Any:
    """``value`` with each float that jsonb reads back as an integer given as that integer.

    jsonb keeps numbers as decimals: ``1e16`` (Python writes integral floats of 16 digits and more
    in exponent form) comes back as ``10000000000000000``, an int to Python's json. Giving such
    floats as the exact integer their decimal spelling names makes the hash the same before the
    write and after the read. Other floats (``1.0``, ``1.5e-07``) read back as they were written."""
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and "e" in repr(value):
            return int(Decimal(repr(value)))
        return value
    if isinstance(value, dict):
        return {key: _stable_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stable_numbers(item) for item in value]
    return value


def entry_hash(entry: AuditLogEntry) -> str:
    """SHA-256 over the entry's fields (canonical JSON) and the previous entry's hash."""
    fields = entry_fields(entry)
    fields["payload"] = _stable_numbers(fields["payload"])
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    chain: uuid.UUID
    checked: int
    first_sequence: int | None
    last_sequence: int | None
    head_hash: str
    broken_at: int | None = None
    entry_id: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def audit_verify_chain(chain: uuid.UUID, *, batch: int = 5000) -> ChainReport:
    """Re-walk a chain from its checkpoint (or its start): every sequence number present once, each
    entry's ``prev_hash`` the previous entry's hash and its ``hash`` its own. The first broken link
    is reported with the entry's id."""
    head = AuditChain.objects.filter(pk=chain).first()
    expected_sequence = (head.checkpoint_sequence if head else 0) + 1
    expected_prev = head.checkpoint_hash if head else ""
    checked, first = 0, None
    last_hash = expected_prev
    rows = AuditLogEntry.objects.filter(chain=chain, sequence__gt=0).order_by("sequence")
    for entry in rows.iterator(chunk_size=batch):
        first = entry.sequence if first is None else first
        broken = None
        if entry.sequence != expected_sequence:
            broken = f"expected sequence {expected_sequence}, found {entry.sequence} (entries missing)"
        elif entry.prev_hash != expected_prev:
            broken = "its prev_hash does not match the previous entry's hash"
        elif entry_hash(entry) != entry.hash:
            broken = "its contents do not match its hash (the entry was changed)"
        if broken:
            return ChainReport(
                chain, checked, first, entry.sequence, last_hash, entry.sequence, str(entry.id), broken
            )
        checked += 1
        expected_sequence, expected_prev = entry.sequence + 1, entry.hash
        last_hash = entry.hash
    # Also with no entry left after the checkpoint: a head that records later ones has lost them.
    if head is not None and (expected_sequence - 1 != head.sequence or last_hash != head.head_hash):
        return ChainReport(
            chain,
            checked,
            first,
            expected_sequence - 1,
            last_hash,
            expected_sequence,
            None,
            "the chain head records later entries that are missing",
        )
    return ChainReport(chain, checked, first, expected_sequence - 1 if checked else None, last_hash)


#: Where the last verification of every chain is kept for ``/metrics`` (the default cache: Redis when
#: ``REDIS_URL`` is set, so the web reads what a worker found).
CHAINS_VERIFIED_CACHE_KEY = "audit:chains-verified"


def _verify_in_snapshot(chain: uuid.UUID) -> ChainReport:
    """``audit_verify_chain`` in one consistent snapshot (entries appended meanwhile are the next
    walk's), its result kept as the chain's last verification (``AuditChainVerification``)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        report = audit_verify_chain(chain)
    AuditChainVerification.objects.update_or_create(
        chain=chain,
        defaults={
            "verified_at": timezone.now(),
            "entries": report.checked,
            "last_sequence": report.last_sequence,
            "broken_at": report.broken_at,
            "broken_entry_id": report.entry_id or "",
            "reason": report.reason[:255],
        },
    )
    if not report.ok:
        logger.error(
            "audit chain broken",
            extra={"chain": str(chain), "sequence": report.broken_at, "reason": report.reason},
        )
    return report


def audit_verify_account(*, account) -> ChainReport:
    """Walk ``account``'s chain now (its pending records joined first) and keep the result as its
    last verification, as the hourly walk does: what the console's "verify now" runs."""
    audit_chain_pending(chain=account.pk)
    return _verify_in_snapshot(account.pk)


def audit_verify_all_chains() -> dict[str, Any]:
    """Verify every chain, each in one consistent snapshot, keep each chain's result
    (``AuditChainVerification``: what an account's audit log page shows) and the summary for
    ``/metrics``: chains, entries checked, which chains are broken (each logged as an error with
    its first broken link) and when."""
    broken: list[dict[str, Any]] = []
    chains = checked = 0
    for chain in AuditChain.objects.order_by("pk").values_list("pk", flat=True):
        report = _verify_in_snapshot(chain)
        chains += 1
        checked += report.checked
        if not report.ok:
            broken.append({"chain": str(chain), "sequence": report.broken_at, "reason": report.reason})
    summary = {"chains": chains, "entries": checked, "broken": broken, "at": timezone.now().timestamp()}
    cache.set(CHAINS_VERIFIED_CACHE_KEY, summary, timeout=None)
    return summary


def audit_purge_expired(*, now=None) -> int:
    """Delete entries older than each account's retention (entries without an account are kept
    for the longest retention). Each chain loses a prefix, and its head records the last removed
    entry as a checkpoint, so the rest still verifies. How long an account keeps its trail is the
    billing plan's to say: ``settings.AUDIT_RETENTION_POLICY`` names the function that answers."""
    now = now or timezone.now()
    days_by_account, longest = import_string(settings.AUDIT_RETENTION_POLICY)()
    cutoffs: dict[uuid.UUID, dt.datetime] = {
        account_id: now - timedelta(days=days) for account_id, days in days_by_account.items()
    }
    cutoffs[GLOBAL_CHAIN] = now - timedelta(days=longest)
    chains = set(
        # Any chain with an entry older than the latest cutoff may have some to lose; each chain is
        # then cut at its own cutoff.
        AuditLogEntry.objects.filter(occurred__lt=max(cutoffs.values(), default=now))
        .values_list("chain", flat=True)
        .distinct()
    )
    deleted = 0
    for chain in chains:
        cutoff = cutoffs.get(chain, cutoffs[GLOBAL_CHAIN])
        deleted += _purge_chain(chain, cutoff)
    # Entries written before the chain existed (sequence 0) follow the same retention.
    for chain, cutoff in cutoffs.items():
        with transaction.atomic():
            _allow_purge()
            count, _ = AuditLogEntry.objects.filter(chain=chain, sequence=0, occurred__lt=cutoff).delete()
        deleted += count
    return deleted


def _allow_purge() -> None:

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL audit.allow_purge = 'on'")


def _purge_chain(chain: uuid.UUID, cutoff: dt.datetime) -> int:
    with transaction.atomic():
        head = _locked_head(chain)
        entries = AuditLogEntry.objects.filter(chain=chain, sequence__gt=head.checkpoint_sequence)
        # The longest prefix older than the cutoff: a chain only ever loses its beginning.
        first_kept = (
            entries.filter(occurred__gte=cutoff)
            .order_by("sequence")
            .values_list("sequence", flat=True)
            .first()
        )
        last_removed = (first_kept - 1) if first_kept is not None else head.sequence
        if last_removed <= head.checkpoint_sequence:
            return 0
        boundary = entries.filter(sequence=last_removed).values_list("hash", flat=True).first()
        if boundary is None:
            return 0
        # The checkpoint first: on PostgreSQL only entries at or before it may be deleted.
        head.checkpoint_sequence, head.checkpoint_hash = last_removed, boundary
        head.save(update_fields=["checkpoint_sequence", "checkpoint_hash", "updated"])
        _allow_purge()
        count, _ = AuditLogEntry.objects.filter(
            chain=chain, sequence__gt=0, sequence__lte=last_removed
        ).delete()
    return count
