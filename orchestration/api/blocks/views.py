"""Prefect's block routes (``api/block_types.py``, ``block_schemas.py``, ``block_documents.py``,
``block_capabilities.py``).

Secrets: a document's secret fields are ``********`` in every answer unless the request asks for
``include_secrets`` AND the caller holds ``see_secret_blocks``; a caller with ``see_blocks`` only
(a Viewer) who asks gets the obfuscated values, not a refusal (as Prefect Cloud answers), so reads
that need no secret still work for it. Writes need ``manage_blocks``.

The system block types reach a workspace on its first read of block types or schemas
(``system_blocks_ensure``), after the request's body has been validated, so a refused request
writes nothing; a read of one type or schema seeds them only when it names one of them, so a 404
for a slug or checksum that names nothing writes nothing either.
"""

from __future__ import annotations

from django.http import HttpResponse
from pydantic import Field
from rest_framework.response import Response

from orchestration.api.base import PrefectApiView, created, no_content, parse_id
from orchestration.api.blocks.wire import block_document_to_wire, block_schema_to_wire, block_type_to_wire
from orchestration.schemas.base import PrefectModel
from orchestration.schemas.blocks import (
    BlockDocumentCreate,
    BlockDocumentUpdate,
    BlockSchemaCreate,
    BlockTypeCreate,
    BlockTypeUpdate,
)
from orchestration.selectors.blocks import (
    block_capabilities,
    block_document_get,
    block_documents_count,
    block_documents_list,
    block_documents_of_type,
    block_schema_by_checksum,
    block_schema_get,
    block_schemas_list,
    block_type_get,
    block_types_list,
)
from orchestration.services.blocks import (
    block_document_create,
    block_document_delete,
    block_document_update,
    block_schema_create,
    block_schema_delete,
    block_secrets_read,
    block_type_create,
    block_type_delete,
    block_type_update,
    system_blocks_ensure,
    system_blocks_ensure_if_named,
)

SEE = "see_blocks"
MANAGE = "manage_blocks"


class _SecretsQuery(PrefectModel):
    include_secrets: bool = False


class _SecretsBody(PrefectModel):
    include_secrets: bool = False


class _ChecksumQuery(PrefectModel):
    version: str | None = Field(default=None, max_length=255)


class BlocksApiView(PrefectApiView):
    def include_secrets(self, *, from_body: bool = False) -> bool:
        """Whether to answer secret values: asked for, and the caller may see them."""
        if from_body:
            asked = self.parse(_SecretsBody, self.body()).include_secrets
        else:
            asked = self.parse(_SecretsQuery, self.request.query_params.dict()).include_secrets
        return asked and self.access.has("see_secret_blocks")

    def answer(self, documents: list, *, include_secrets: bool) -> list[dict]:
        """The documents' wire shapes; reading secrets in clear is recorded in the audit log."""
        if include_secrets:
            block_secrets_read(workspace=self.workspace, documents=documents, actor=self.request.user)
        return [block_document_to_wire(d) for d in documents]


# --- block types -------------------------------------------------------------------------------------


class BlockTypeCreateApi(BlocksApiView):
    required_scopes = {"POST": MANAGE}

    def post(self, request):
        return created(block_type_to_wire(block_type_create(data=self.parse(BlockTypeCreate))))


class BlockTypeFilterApi(BlocksApiView):
    required_scopes = {"POST": SEE}

    def post(self, request):
        page = block_types_list(self.body())
        system_blocks_ensure()
        return Response([block_type_to_wire(t) for t in page])


class BlockTypeInstallSystemApi(BlocksApiView):
    required_scopes = {"POST": MANAGE}

    def post(self, request):
        system_blocks_ensure(force=True)
        return HttpResponse(b"null", status=200, content_type="application/json")


class BlockTypeBySlugApi(BlocksApiView):
    required_scopes = {"GET": SEE}

    def get(self, request, slug: str):
        system_blocks_ensure_if_named(slug=slug)
        return Response(block_type_to_wire(block_type_get(slug=slug)))


class BlockTypeDetailApi(BlocksApiView):
    required_scopes = {"GET": SEE, "PATCH": MANAGE, "DELETE": MANAGE}

    def get(self, request, block_type_id: str):
        return Response(block_type_to_wire(block_type_get(id=parse_id(block_type_id, "Block type"))))

    def patch(self, request, block_type_id: str):
        data = self.parse(BlockTypeUpdate)
        block_type_update(block_type_id=parse_id(block_type_id, "Block type"), data=data)
        return no_content()

    def delete(self, request, block_type_id: str):
        block_type_delete(block_type_id=parse_id(block_type_id, "Block type"))
        return no_content()


class BlockDocumentsOfTypeApi(BlocksApiView):
    required_scopes = {"GET": SEE}

    def get(self, request, slug: str):
        include = self.include_secrets()
        system_blocks_ensure_if_named(slug=slug)
        documents = block_documents_of_type(slug, include_secrets=include)
        return Response(self.answer(documents, include_secrets=include))


class BlockDocumentByTypeAndNameApi(BlocksApiView):
    required_scopes = {"GET": SEE}

    def get(self, request, slug: str, name: str):
        include = self.include_secrets()
        document = block_document_get(include_secrets=include, block_type__slug=slug, name=name)
        return Response(self.answer([document], include_secrets=include)[0])


# --- block schemas -----------------------------------------------------------------------------------


class BlockSchemaCreateApi(BlocksApiView):
    required_scopes = {"POST": MANAGE}

    def post(self, request):
        block_schema, is_new = block_schema_create(data=self.parse(BlockSchemaCreate))
        return Response(block_schema_to_wire(block_schema), status=201 if is_new else 200)


class BlockSchemaFilterApi(BlocksApiView):
    required_scopes = {"POST": SEE}

    def post(self, request):
        page = block_schemas_list(self.body())
        system_blocks_ensure()
        return Response([block_schema_to_wire(s) for s in page])


class BlockSchemaByChecksumApi(BlocksApiView):
    required_scopes = {"GET": SEE}

    def get(self, request, checksum: str):
        version = self.parse(_ChecksumQuery, request.query_params.dict()).version
        system_blocks_ensure_if_named(checksum=checksum)
        block_schema = block_schema_by_checksum(checksum, version)
        if block_schema is None:
            return Response({"detail": "Block schema not found"}, status=404)
        return Response(block_schema_to_wire(block_schema))


class BlockSchemaDetailApi(BlocksApiView):
    required_scopes = {"GET": SEE, "DELETE": MANAGE}

    def get(self, request, block_schema_id: str):
        return Response(block_schema_to_wire(block_schema_get(id=parse_id(block_schema_id, "Block schema"))))

    def delete(self, request, block_schema_id: str):
        block_schema_delete(block_schema_id=parse_id(block_schema_id, "Block schema"))
        return no_content()


# --- block documents ---------------------------------------------------------------------------------


class BlockDocumentCreateApi(BlocksApiView):
    required_scopes = {"POST": MANAGE}

    def post(self, request):
        return created(
            block_document_to_wire(
                block_document_create(data=self.parse(BlockDocumentCreate), actor=request.user)
            )
        )


class BlockDocumentFilterApi(BlocksApiView):
    required_scopes = {"POST": SEE}

    def post(self, request):
        include = self.include_secrets(from_body=True)
        documents = block_documents_list(self.body(), include_secrets=include)
        return Response(self.answer(documents, include_secrets=include))


class BlockDocumentCountApi(BlocksApiView):
    required_scopes = {"POST": SEE}

    def post(self, request):
        return Response(block_documents_count(self.body()))


class BlockDocumentDetailApi(BlocksApiView):
    required_scopes = {"GET": SEE, "PATCH": MANAGE, "DELETE": MANAGE}

    def get(self, request, block_document_id: str):
        include = self.include_secrets()
        document_id = parse_id(block_document_id, "Block document")
        document = block_document_get(include_secrets=include, id=document_id)
        return Response(self.answer([document], include_secrets=include)[0])

    def patch(self, request, block_document_id: str):
        data = self.parse(BlockDocumentUpdate)
        block_document_update(
            block_document_id=parse_id(block_document_id, "Block document"), data=data, actor=request.user
        )
        return no_content()

    def delete(self, request, block_document_id: str):
        block_document_delete(
            block_document_id=parse_id(block_document_id, "Block document"), actor=request.user
        )
        return no_content()


# --- capabilities ------------------------------------------------------------------------------------


class BlockCapabilitiesApi(BlocksApiView):
    required_scopes = {"GET": SEE}

    def get(self, request):
        system_blocks_ensure()
        return Response(block_capabilities())
