"""Reads of block types, schemas and documents (Prefect's ``models/block_*.py``).

A document is read as a ``ResolvedDocument``: its data decrypted, each referenced document's data
put under the reference's name (recursively, at most 50 deep, as Prefect's server), and every
secret field obfuscated unless the caller asked for secrets AND may see them (the view decides).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from core.errors import NotFound
from orchestration.models import BlockDocument, BlockDocumentReference, BlockSchema, BlockType
from orchestration.persistence.block_data import decrypt_data
from orchestration.schemas.blocks import obfuscate_secrets
from orchestration.selectors.filters import FilterError, filter_queryset, ordering, paging

MAX_REFERENCE_DEPTH = 50


@dataclass
class ResolvedDocument:
    document: BlockDocument
    data: dict[str, Any]
    references: dict[str, ResolvedDocument] = field(default_factory=dict)


def block_type_get(**lookup) -> BlockType:
    block_type = BlockType.objects.filter(**lookup).first()
    if block_type is None:
        raise NotFound("Block type not found")
    return block_type


def block_types_list(body: dict) -> QuerySet:
    qs = filter_queryset("block_types", body, related=("block_schemas",)).order_by(
        *ordering("block_types", None)
    )
    limit, offset = paging(body)
    return qs[offset : offset + limit]


def block_schema_get(**lookup) -> BlockSchema:
    block_schema = BlockSchema.objects.select_related("block_type").filter(**lookup).first()
    if block_schema is None:
        raise NotFound("Block schema not found")
    return block_schema


def block_schema_by_checksum(checksum: str, version: str | None) -> BlockSchema | None:
    qs = BlockSchema.objects.select_related("block_type").filter(checksum=checksum)
    if version is not None:
        qs = qs.filter(version=version)
    return qs.order_by("-created", "-id").first()


def block_schemas_list(body: dict) -> QuerySet:
    qs = filter_queryset("block_schemas", body).select_related("block_type")
    limit, offset = paging(body)
    return qs.order_by(*ordering("block_schemas", None))[offset : offset + limit]


def block_capabilities() -> list[str]:
    found: set[str] = set()
    for capabilities in BlockSchema.objects.values_list("capabilities", flat=True):
        found.update(c for c in capabilities or () if isinstance(c, str))
    return sorted(found)


# --- documents ---------------------------------------------------------------------------------------


def _documents_filter(body: dict) -> dict:
    """Prefect's default: anonymous documents are left out unless the filter says otherwise."""
    documents = body.get("block_documents")
    if documents is None:
        documents = {}
    if not isinstance(documents, dict):
        raise FilterError("block_documents must be an object")
    if "is_anonymous" not in documents:
        documents = {**documents, "is_anonymous": {"eq_": False}}
    return {**body, "block_documents": documents}


def _documents(qs: QuerySet) -> QuerySet:
    return qs.select_related("block_schema", "block_schema__block_type", "block_type")


def block_documents_query(body: dict) -> QuerySet:
    return filter_queryset(
        "block_documents", _documents_filter(body), related=("block_types", "block_schemas")
    )


def block_documents_list(body: dict, *, include_secrets: bool) -> list[ResolvedDocument]:
    qs = _documents(block_documents_query(body)).order_by(*ordering("block_documents", body.get("sort")))
    limit, offset = paging(body)
    return resolve_documents(list(qs[offset : offset + limit]), include_secrets=include_secrets)


def block_documents_count(body: dict) -> int:
    return block_documents_query(body).count()


def block_document_get(*, include_secrets: bool, **lookup) -> ResolvedDocument:
    document = _documents(BlockDocument.objects.filter(**lookup)).first()
    if document is None:
        raise NotFound("Block document not found")
    return resolve_document(document, include_secrets=include_secrets)


def block_documents_of_type(slug: str, *, include_secrets: bool) -> list[ResolvedDocument]:
    block_type = block_type_get(slug=slug)
    qs = _documents(BlockDocument.objects.filter(block_type=block_type, is_anonymous=False)).order_by(
        "name", "id"
    )
    return resolve_documents(list(qs), include_secrets=include_secrets)


def resolve_document(document: BlockDocument, *, include_secrets: bool) -> ResolvedDocument:
    return resolve_documents([document], include_secrets=include_secrets)[0]


def resolve_documents(
    documents: list[BlockDocument], *, include_secrets: bool, depth: int = 0
) -> list[ResolvedDocument]:
    """Each document with its references' data in place, one query per level of nesting."""
    if depth > MAX_REFERENCE_DEPTH:
        raise FilterError(f"Block document reference graph exceeds max depth {MAX_REFERENCE_DEPTH}.")
    resolved = []
    for document in documents:
        data = decrypt_data(document.data)
        if not include_secrets:
            data = obfuscate_secrets(data, (document.block_schema.fields or {}).get("secret_fields") or [])
        resolved.append(ResolvedDocument(document=document, data=data))
    if not documents:
        return resolved
    references = list(
        BlockDocumentReference.objects.filter(parent_block_document__in=[d.id for d in documents])
        .select_related(
            "reference_block_document__block_schema__block_type", "reference_block_document__block_type"
        )
        .order_by("name")
    )
    if not references:
        return resolved
    children = resolve_documents(
        [r.reference_block_document for r in references], include_secrets=include_secrets, depth=depth + 1
    )
    by_parent = {r.document.id: r for r in resolved}
    for reference, child in zip(references, children, strict=True):
        parent = by_parent[reference.parent_block_document_id]
        parent.data[reference.name] = child.data
        parent.references[reference.name] = child
    return resolved
