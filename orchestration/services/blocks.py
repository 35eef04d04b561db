"""Writes of block types, schemas and documents (Prefect's ``models/block_*.py`` and the
``api/block_*.py`` routes' checks), and the system block types every workspace has.

System block types: Prefect's server registers them at startup (``block_registration``); here each
workspace gets them lazily on its first block read (``system_blocks_ensure``), idempotently: the
check is one indexed query (is the catalogue's Secret schema there?), the install is two bulk
inserts that ignore rows another request inserted first (unique constraints decide), so concurrent
first uses are safe. The protected types (Secret, Webhook, LocalFileSystem, as in Prefect) are
written with ``is_protected`` and cannot be deleted through the API (their descriptive fields may
be updated, as Prefect's server allows).

Block documents: every create, update and delete is an audit record
(``block-document.created|updated|deleted``, naming the document, never its data) in the change's
transaction, and, for a named (not anonymous) document, Prefect's ``prefect.block-document.*``
event on commit, whose data carries only string values that are not secret fields.
"""

from __future__ import annotations

import html
import uuid
from typing import Any

from django.db import IntegrityError, transaction

from audit import events
from core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unprocessable
from orchestration.events.services import object_event_record_on_commit
from orchestration.models import BlockDocument, BlockDocumentReference, BlockSchema, BlockType
from orchestration.persistence.block_data import decrypt_data, encrypt_data
from orchestration.schemas.blocks import (
    BlockDocumentCreate,
    BlockDocumentUpdate,
    BlockSchemaCreate,
    BlockTypeCreate,
    BlockTypeUpdate,
    keep_unchanged_secrets,
    obfuscate_secrets,
    schema_checksum,
    system_catalog,
)
from orchestration.selectors.blocks import ResolvedDocument, block_schema_by_checksum, resolve_document
from orchestration.services import auditing
from tenants.scoping import current_workspace_id

_TYPE_FIELDS = ("logo_url", "documentation_url", "description", "code_example")


# --- system block types ------------------------------------------------------------------------------


def _installed() -> bool:
    secret = next(e for e in system_catalog() if e["block_type"]["slug"] == "secret")
    return BlockSchema.objects.filter(
        checksum=secret["block_schema"]["checksum"], block_type__slug="secret", block_type__is_protected=True
    ).exists()


def system_blocks_ensure_if_named(*, slug: str | None = None, checksum: str | None = None) -> None:
    """``system_blocks_ensure`` for a read of one type (by slug) or schema (by checksum), only when
    it names an entry of the catalogue: a read of anything else (the workspace's own types, a slug
    that names nothing) writes nothing, so its 404 stores nothing either."""
    if any(
        entry["block_type"]["slug"] == slug or entry["block_schema"]["checksum"] == checksum
        for entry in system_catalog()
    ):
        system_blocks_ensure()


def system_blocks_ensure(*, force: bool = False) -> None:
    """Give the current workspace the system block types and schemas (Prefect's
    ``run_block_auto_registration``); ``force`` rewrites the protected types from the catalogue."""
    if not force and _installed():
        return
    workspace_id = current_workspace_id()
    catalog = system_catalog()
    with transaction.atomic():
        BlockType.objects.bulk_create(
            [BlockType(workspace_id=workspace_id, **entry["block_type"]) for entry in catalog],
            ignore_conflicts=True,
        )
        for entry in catalog:
            if entry["block_type"]["is_protected"]:
                # Prefect's override=True: the protected types are always the catalogue's.
                BlockType.objects.filter(slug=entry["block_type"]["slug"]).update(**entry["block_type"])
        type_ids = dict(BlockType.objects.values_list("slug", "id"))
        BlockSchema.objects.bulk_create(
            [
                BlockSchema(
                    workspace_id=workspace_id,
                    block_type_id=type_ids[entry["block_type"]["slug"]],
                    checksum=entry["block_schema"]["checksum"],
                    fields=entry["block_schema"]["fields"],
                    capabilities=entry["block_schema"]["capabilities"],
                    version=entry["block_schema"]["version"],
                )
                for entry in catalog
                if entry["block_type"]["slug"] in type_ids
            ],
            ignore_conflicts=True,
        )


# --- block types -------------------------------------------------------------------------------------


def _escaped(value: str | None) -> str | None:
    return html.escape(value, quote=False) if value is not None else None


def block_type_create(*, data: BlockTypeCreate) -> BlockType:
    if data.name.lower().startswith("prefect"):
        raise Forbidden("Block type names beginning with 'Prefect' are reserved.")
    system_blocks_ensure()
    try:
        with transaction.atomic():
            return BlockType.objects.create(
                workspace_id=current_workspace_id(),
                name=data.name,
                slug=data.slug,
                logo_url=data.logo_url,
                documentation_url=data.documentation_url,
                description=_escaped(data.description),
                code_example=_escaped(data.code_example),
            )
    except IntegrityError:
        raise Conflict(f'Block type with name "{data.name}" already exists') from None


def _changes(block_type: BlockType, data: BlockTypeUpdate) -> dict[str, Any]:
    """The fields the update would really change (Prefect's ``_should_update_block_type``)."""

    def plain(value):
        return html.unescape(value) if isinstance(value, str) else value

    changes = {}
    for name, value in data.model_dump(exclude_unset=True).items():
        if name in _TYPE_FIELDS and plain(value) != plain(getattr(block_type, name)):
            changes[name] = value
    return changes


def block_type_update(*, block_type_id: uuid.UUID, data: BlockTypeUpdate) -> None:
    with transaction.atomic():
        block_type = BlockType.objects.select_for_update().filter(id=block_type_id).first()
        if block_type is None:
            raise NotFound("Block type not found")
        changes = _changes(block_type, data)
        if not changes:
            return
        # As Prefect's server: a protected type's description and links may change (its copy in
        # this workspace); it cannot be deleted, and `install_system_block_types` restores it.
        for name, value in changes.items():
            setattr(block_type, name, value)
        block_type.save()


def block_type_delete(*, block_type_id: uuid.UUID) -> None:
    with transaction.atomic():
        block_type = BlockType.objects.select_for_update().filter(id=block_type_id).first()
        if block_type is None:
            raise NotFound("Block type not found")
        if block_type.is_protected:
            raise Forbidden("protected block types cannot be deleted.")
        block_type.delete()


# --- block schemas -----------------------------------------------------------------------------------


def block_schema_create(*, data: BlockSchemaCreate) -> tuple[BlockSchema, bool]:
    """The schema and whether it is new: the same fields and version answer the stored one."""
    if not BlockType.objects.filter(id=data.block_type_id).exists():
        raise NotFound(f"Block type {data.block_type_id} not found.")
    try:
        checksum = schema_checksum(data.fields)
    except (ValueError, TypeError) as error:
        raise Unprocessable(str(error)) from None
    existing = block_schema_by_checksum(checksum, data.version)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            created = BlockSchema.objects.create(
                workspace_id=current_workspace_id(),
                checksum=checksum,
                fields=data.fields,
                block_type_id=data.block_type_id,
                capabilities=data.capabilities,
                version=data.version,
            )
    except IntegrityError:
        # Another request stored the same schema first.
        existing = block_schema_by_checksum(checksum, data.version)
        if existing is None:
            raise
        return existing, False
    return BlockSchema.objects.select_related("block_type").get(id=created.id), True


def block_schema_delete(*, block_schema_id: uuid.UUID) -> None:
    with transaction.atomic():
        block_schema = BlockSchema.objects.select_related("block_type").filter(id=block_schema_id).first()
        if block_schema is None:
            raise NotFound("Block schema not found")
        if block_schema.block_type.is_protected:
            raise Forbidden("Block schemas for protected block types cannot be deleted.")
        block_schema.delete()


# --- block documents ---------------------------------------------------------------------------------


def _split_references(data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, uuid.UUID]]]:
    """Top-level ``{"$ref": {"block_document_id": …}}`` values are references, kept apart."""
    plain: dict[str, Any] = {}
    references: list[tuple[str, uuid.UUID]] = []
    for key, value in data.items():
        if isinstance(value, dict) and "$ref" in value:
            ref = value["$ref"]
            target = ref.get("block_document_id") if isinstance(ref, dict) else None
            if target is None:
                raise InvalidInput(f"Received block reference without a block_document_id in key {key}")
            try:
                references.append((key, uuid.UUID(str(target))))
            except ValueError:
                raise InvalidInput(f"Invalid block_document_id in key {key}") from None
        else:
            plain[key] = value
    return plain, references


def _would_cycle(parent_id: uuid.UUID, reference_id: uuid.UUID) -> bool:
    if parent_id == reference_id:
        return True
    seen: set[uuid.UUID] = set()
    stack = [reference_id]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current == parent_id:
            return True
        stack.extend(
            BlockDocumentReference.objects.filter(parent_block_document_id=current).values_list(
                "reference_block_document_id", flat=True
            )
        )
    return False


def _set_references(document: BlockDocument, references: list[tuple[str, uuid.UUID]]) -> None:
    wanted = dict(references)
    existing = {r.name: r for r in BlockDocumentReference.objects.filter(parent_block_document=document)}
    for name, current in existing.items():
        if wanted.get(name) != current.reference_block_document_id:
            current.delete()
    for name, target in wanted.items():
        if name in existing and existing[name].reference_block_document_id == target:
            continue
        if not BlockDocument.objects.filter(id=target).exists():
            raise InvalidInput(f"Block document {target} referenced in key {name} not found.")
        if _would_cycle(document.id, target):
            raise InvalidInput(
                "Cannot create block document reference: it would introduce a cycle into the "
                f"block_document_reference graph (parent={document.id}, reference={target})."
            )
        BlockDocumentReference.objects.create(
            workspace_id=document.workspace_id,
            parent_block_document=document,
            reference_block_document_id=target,
            name=name,
        )


# --- block documents: audit records and Prefect's lifecycle events -------------------------------------


def _document_snapshot(document: BlockDocument) -> dict[str, Any]:
    """What an audit record shows of a document: never its data (it may hold secrets)."""
    return {
        "name": document.name,
        "block_type": document.block_type.slug,
        "block_schema_id": str(document.block_schema_id),
        "is_anonymous": document.is_anonymous,
    }


def _emit_document(document: BlockDocument, action: str) -> None:
    """Prefect's ``prefect.block-document.<action>`` event (``events/schemas/lifecycle.py``): the
    name, the string values of the data that are not secret fields, the schema's capabilities and
    block type. None for an anonymous document, as in Prefect."""
    if document.is_anonymous:
        return
    schema = document.block_schema
    secret_fields = (schema.fields or {}).get("secret_fields") or []
    data = obfuscate_secrets(decrypt_data(document.data), secret_fields)
    related = [
        {
            "prefect.resource.id": f"prefect.block-type.{document.block_type_id}",
            "prefect.resource.role": "block-type",
        },
        {
            "prefect.resource.id": f"prefect.block-schema.{document.block_schema_id}",
            "prefect.resource.role": "block-schema",
        },
    ]
    if document.block_type_name:
        related[0]["prefect.resource.name"] = document.block_type_name
    object_event_record_on_commit(
        workspace_id=document.workspace_id,
        event=f"prefect.block-document.{action}",
        resource_id=f"prefect.block-document.{document.id}",
        resource_name=document.name,
        related=related,
        payload={
            "name": document.name,
            "data": {
                key: value
                for key, value in data.items()
                if key not in set(secret_fields) and isinstance(value, str)
            },
            "block_schema": {
                "capabilities": list(schema.capabilities or []),
                "block_type": {"id": str(document.block_type_id), "name": document.block_type_name or ""},
            },
        },
    )


def _document_for_change(block_document_id: uuid.UUID) -> BlockDocument | None:
    return (
        BlockDocument.objects.select_for_update(of=("self",))
        .select_related("block_schema", "block_type")
        .filter(id=block_document_id)
        .first()
    )


def block_document_create(*, data: BlockDocumentCreate, actor=None) -> ResolvedDocument:
    block_type = BlockType.objects.filter(id=data.block_type_id).first()
    if block_type is None:
        raise NotFound(f"Block type {data.block_type_id} not found.")
    block_schema = BlockSchema.objects.filter(id=data.block_schema_id).first()
    if block_schema is None:
        raise NotFound(f"Block schema {data.block_schema_id} not found.")
    if block_schema.block_type_id != block_type.id:
        raise InvalidInput("The block schema is not a schema of the block type.")
    name = data.name if not (data.is_anonymous and not data.name) else f"anonymous-{uuid.uuid4()}"
    plain, references = _split_references(data.data)
    try:
        with transaction.atomic():
            if BlockDocument.objects.filter(block_type=block_type, name=name).exists():
                raise Conflict("Block already exists")
            document = BlockDocument.objects.create(
                workspace_id=current_workspace_id(),
                name=name,
                data=encrypt_data(plain),
                block_schema=block_schema,
                block_type=block_type,
                block_type_name=block_type.name,
                is_anonymous=data.is_anonymous,
            )
            _set_references(document, references)
            auditing.record(
                events.BLOCK_DOCUMENT_CREATED,
                target=document,
                actor=actor,
                after=_document_snapshot(document),
            )
            _emit_document(document, "created")
    except IntegrityError:
        raise Conflict("Block already exists") from None
    document = BlockDocument.objects.select_related("block_schema__block_type", "block_type").get(
        id=document.id
    )
    return resolve_document(document, include_secrets=False)


def block_document_update(*, block_document_id: uuid.UUID, data: BlockDocumentUpdate, actor=None) -> None:
    merge = data.merge_existing_data
    with transaction.atomic():
        document = _document_for_change(block_document_id)
        if document is None:
            raise NotFound("Block document not found")
        before = _document_snapshot(document)
        updated_fields = []
        if merge and "data" not in data.model_fields_set:
            pass
        else:
            current = decrypt_data(document.data)
            secret_fields = (document.block_schema.fields or {}).get("secret_fields") or []
            update = keep_unchanged_secrets(data.data, current, secret_fields)
            if merge:
                current.update(update)
                update = current
            plain, references = _split_references(update)
            updated_fields.append("data")  # not which values: they may be secrets
            document.data = encrypt_data(plain)
            _set_references(document, references)
        schema_id = data.block_schema_id
        if schema_id is not None and schema_id != document.block_schema_id:
            proposed = BlockSchema.objects.filter(id=schema_id).first()
            if proposed is None:
                raise NotFound(f"Block schema {schema_id} not found.")
            if proposed.block_type_id != document.block_type_id:
                raise InvalidInput("Must migrate block document to a block schema of the same block type.")
            document.block_schema = proposed
        document.save()
        after = _document_snapshot(document)
        auditing.record(
            events.BLOCK_DOCUMENT_UPDATED,
            target=document,
            actor=actor,
            before=before,
            after=after,
            extra={"updated_fields": updated_fields + [k for k in after if before[k] != after[k]]},
        )
        _emit_document(document, "updated")


def block_document_delete(*, block_document_id: uuid.UUID, actor=None) -> None:
    with transaction.atomic():
        document = _document_for_change(block_document_id)
        if document is None:
            raise NotFound("Block document not found")
        BlockDocument.objects.filter(id=document.id).delete()
        auditing.record(
            events.BLOCK_DOCUMENT_DELETED, target=document, actor=actor, before=_document_snapshot(document)
        )
        _emit_document(document, "deleted")


#: Block names an audit message lists before "and N more" (the payload lists every one).
AUDIT_NAMES_SHOWN = 10


def _with_secrets(documents: list[ResolvedDocument]) -> list[BlockDocument]:
    found: dict[uuid.UUID, BlockDocument] = {}
    stack = list(documents)
    while stack:
        resolved = stack.pop()
        if (resolved.document.block_schema.fields or {}).get("secret_fields"):
            found.setdefault(resolved.document.id, resolved.document)
        stack.extend(resolved.references.values())
    return list(found.values())


def block_secrets_read(*, workspace, documents: list[ResolvedDocument], actor) -> None:
    """Record who read secret values: one audit record per answer that carried block documents'
    secret fields in clear (nested references included), naming each of them; its target is the
    document when there is one. The record is written (durably, before the answer) without waiting
    on the account's audit chain, so concurrent reads do not queue behind one another; it joins
    the chain moments later (``auditing.record_read``)."""
    read = _with_secrets(documents)
    if not read:
        return
    named = [f"{document.block_type.slug}/{document.name}" for document in read]
    shown = ", ".join(named[:AUDIT_NAMES_SHOWN]) + (
        f" and {len(named) - AUDIT_NAMES_SHOWN} more" if len(named) > AUDIT_NAMES_SHOWN else ""
    )
    auditing.record_read(
        events.BLOCK_SECRETS_READ,
        workspace=workspace,
        target=read[0] if len(read) == 1 else None,
        actor=actor,
        extra={
            "blocks": shown,
            "block_documents": [
                {"id": str(document.id), "block_type": document.block_type.slug, "name": document.name}
                for document in read
            ],
        },
    )
