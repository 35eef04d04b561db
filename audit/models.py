"""Audit records. Written only by ``audit.services.audit_record``, inside the transaction of the
change they describe."""

from __future__ import annotations

import uuid

from django.db import models


class ActorKind(models.TextChoices):
    USER = "user", "User"
    SERVICE_ACCOUNT = "service_account", "Service account"
    SYSTEM = "system", "System"


class AuditLogEntry(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    occurred = models.DateTimeField(db_index=True)
    event_id = models.PositiveIntegerField()
    api_name = models.CharField(max_length=100)
    # References without database constraints: an entry is never changed, not even when what it
    # names is deleted (the ``*_ref`` values and labels keep naming it).
    account = models.ForeignKey(
        "tenants.Account",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    workspace = models.ForeignKey(
        "tenants.Workspace",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # The ids are kept as values too, so the record still names its tenant after deletion.
    account_ref = models.UUIDField(null=True, blank=True)
    workspace_ref = models.UUIDField(null=True, blank=True)
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        "accounts.User",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_service_account = models.ForeignKey(
        "accounts.ServiceAccount",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=254)
    target_type = models.CharField(max_length=100, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_label = models.CharField(max_length=254, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    request_id = models.CharField(max_length=64, blank=True, default="")
    message = models.TextField(blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    # The hash chain of the entry's account (or of entries without one): its place in the chain,
    # the previous entry's hash, and the SHA-256 over this entry's fields and that previous hash.
    chain = models.UUIDField(default=uuid.UUID(int=0))
    sequence = models.BigIntegerField(default=0)
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-occurred"]
        indexes = [
            models.Index(fields=["account_ref", "-occurred"], name="audit_account_occurred"),
            models.Index(fields=["workspace_ref", "-occurred"], name="audit_workspace_occurred"),
            models.Index(fields=["api_name"], name="audit_api_name"),
            # The audit log's filters by event type and by target, read newest first by the
            # chain's sequence (migration 0006 says why).
            models.Index(
                fields=["chain", "api_name", "-sequence"],
                condition=models.Q(sequence__gt=0),
                name="audit_chain_event",
            ),
            models.Index(
                fields=["chain", "target_id", "-sequence"],
                condition=models.Q(sequence__gt=0),
                name="audit_chain_target_id",
            ),
            models.Index(
                fields=["chain", "target_label", "-sequence"],
                condition=models.Q(sequence__gt=0),
                name="audit_chain_target_label",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["chain", "sequence"],
                condition=models.Q(sequence__gt=0),
                name="audit_chain_sequence_unique",
            ),
        ]
        verbose_name_plural = "audit log entries"

    def __str__(self) -> str:
        return f"{self.occurred:%Y-%m-%d %H:%M:%S} {self.api_name} by {self.actor_label}"


class AuditChain(models.Model):
    """The head of one hash chain (an account's, or the one of entries without an account): the
    last sequence number and hash, and the checkpoint left by the retention purge (the sequence and
    hash of the last entry it removed, which the first remaining entry chains to)."""

    id = models.UUIDField(primary_key=True)  # the account id, or the nil UUID
    sequence = models.BigIntegerField(default=0)
    head_hash = models.CharField(max_length=64, blank=True, default="")
    checkpoint_sequence = models.BigIntegerField(default=0)
    checkpoint_hash = models.CharField(max_length=64, blank=True, default="")
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"audit chain {self.id} at {self.sequence}"


class AuditPendingEntry(models.Model):
    """An audit record written where the request cannot wait on its chain (reading secrets): the
    entry's fields as ``services.entry_fields`` gives them, durable before the answer, waiting to
    join its chain (``services.audit_chain_pending``), in the order they were written. On
    PostgreSQL a row is never changed and is deleted only once its chain holds the entry."""

    position = models.BigAutoField(primary_key=True)
    chain = models.UUIDField()
    entry_id = models.UUIDField(unique=True)
    fields = models.JSONField()

    class Meta:
        indexes = [models.Index(fields=["chain", "position"], name="audit_pending_chain")]
        verbose_name_plural = "audit pending entries"

    def __str__(self) -> str:
        return f"pending audit entry {self.entry_id} of chain {self.chain}"


class AuditChainVerification(models.Model):
    """The last walk of one chain (``services.audit_verify_chain``, by beat's hourly
    ``verify_audit_chains`` or an account's "verify now"): when, how many entries it checked up to
    which sequence, and the first broken link it found (none: the chain is intact). One row per
    chain, replaced by each walk."""

    chain = models.UUIDField(primary_key=True)  # the account id, or the nil UUID
    verified_at = models.DateTimeField()
    entries = models.BigIntegerField(default=0)
    last_sequence = models.BigIntegerField(null=True, blank=True)
    broken_at = models.BigIntegerField(null=True, blank=True)
    broken_entry_id = models.CharField(max_length=36, blank=True, default="")
    reason = models.CharField(max_length=255, blank=True, default="")

    def __str__(self) -> str:
        state = "intact" if self.broken_at is None else f"broken at {self.broken_at}"
        return f"audit chain {self.chain} verified {self.verified_at:%Y-%m-%d %H:%M} ({state})"

    @property
    def ok(self) -> bool:
        return self.broken_at is None
