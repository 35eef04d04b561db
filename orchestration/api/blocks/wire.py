"""Blocks in Prefect's response shapes (``BlockType``, ``BlockSchema``, ``BlockDocument``)."""

from __future__ import annotations

from typing import Any

from orchestration.schemas.base import iso
from orchestration.selectors.blocks import ResolvedDocument


def block_type_to_wire(block_type) -> dict[str, Any]:
    return {
        "id": str(block_type.id),
        "created": iso(block_type.created),
        "updated": iso(block_type.updated),
        "name": block_type.name,
        "slug": block_type.slug,
        "logo_url": block_type.logo_url,
        "documentation_url": block_type.documentation_url,
        "description": block_type.description,
        "code_example": block_type.code_example,
        "is_protected": block_type.is_protected,
    }


def block_schema_to_wire(block_schema) -> dict[str, Any]:
    return {
        "id": str(block_schema.id),
        "created": iso(block_schema.created),
        "updated": iso(block_schema.updated),
        "checksum": block_schema.checksum,
        # Prefect's server always answers the references of nested block schemas, {} when none.
        "fields": {"block_schema_references": {}, **(block_schema.fields or {})}
        if "block_schema_references" not in (block_schema.fields or {})
        else block_schema.fields,
        "block_type_id": str(block_schema.block_type_id),
        "block_type": block_type_to_wire(block_schema.block_type),
        "capabilities": block_schema.capabilities or [],
        "version": block_schema.version,
    }


def _references_to_wire(resolved: ResolvedDocument) -> dict[str, Any]:
    return {
        name: {
            "block_document": {
                "id": str(child.document.id),
                "name": child.document.name,
                "block_type": block_type_to_wire(child.document.block_type),
                "is_anonymous": child.document.is_anonymous,
                "block_document_references": _references_to_wire(child),
            }
        }
        for name, child in resolved.references.items()
    }


def block_document_to_wire(resolved: ResolvedDocument) -> dict[str, Any]:
    document = resolved.document
    return {
        "id": str(document.id),
        "created": iso(document.created),
        "updated": iso(document.updated),
        "name": document.name,
        "data": resolved.data,
        "block_schema_id": str(document.block_schema_id),
        "block_schema": block_schema_to_wire(document.block_schema),
        "block_type_id": str(document.block_type_id),
        "block_type_name": document.block_type_name,
        "block_type": block_type_to_wire(document.block_type),
        "block_document_references": _references_to_wire(resolved),
        "is_anonymous": document.is_anonymous,
    }
