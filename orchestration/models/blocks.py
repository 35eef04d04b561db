"""Blocks (Prefect's ``block_type``, ``block_schema``, ``block_document`` and
``block_document_reference`` tables), one set per workspace.

A document's ``data`` is stored only as a Fernet token (``orchestration.persistence.block_data``):
every field, secret or not, is encrypted at rest, as Prefect's server encrypts the whole blob.
"""

from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import WorkspaceScopedModel


class BlockType(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    slug = models.CharField(max_length=255)
    logo_url = models.TextField(null=True, blank=True)
    documentation_url = models.TextField(null=True, blank=True)
    description = models.TextField(null=True, blank=True)
    code_example = models.TextField(null=True, blank=True)
    # Protected types (the system types a workspace is given) cannot be changed or deleted.
    is_protected = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        # As Prefect's server: the slug is unique, the name is not.
        constraints = [models.UniqueConstraint(fields=["workspace", "slug"], name="block_type_unique_slug")]

    def __str__(self) -> str:
        return self.slug


class BlockSchema(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    checksum = models.CharField(max_length=255)
    fields = models.JSONField(default=dict)
    block_type = models.ForeignKey(BlockType, on_delete=models.CASCADE, related_name="schemas")
    capabilities = models.JSONField(default=list)
    version = models.CharField(max_length=255)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "checksum", "version"], name="block_schema_unique_checksum_version"
            )
        ]

    def __str__(self) -> str:
        return self.checksum


class BlockDocument(WorkspaceScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    # A Fernet token of the JSON data (never the plain data).
    data = models.TextField()
    block_schema = models.ForeignKey(BlockSchema, on_delete=models.CASCADE, related_name="+")
    block_type = models.ForeignKey(BlockType, on_delete=models.CASCADE, related_name="+")
    block_type_name = models.CharField(max_length=255, null=True, blank=True)
    is_anonymous = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "block_type", "name"], name="block_document_unique_type_name"
            )
        ]
        indexes = [models.Index(fields=["workspace", "name"], name="block_document_ws_name")]

    def __str__(self) -> str:
        return self.name


class BlockDocumentReference(WorkspaceScopedModel):
    """``parent.data[name]`` is the data of the ``reference`` document."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    parent_block_document = models.ForeignKey(
        BlockDocument, on_delete=models.CASCADE, related_name="references"
    )
    reference_block_document = models.ForeignKey(BlockDocument, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "parent_block_document", "name"], name="block_document_reference_unique"
            )
        ]
