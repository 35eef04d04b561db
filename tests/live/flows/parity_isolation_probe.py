"""Ask for workspace A's objects (ids and names in ``PARITY_IDS``) through the client, with
whatever key and workspace the environment names: by id, by name, by filter, by count. Prints one
outcome per probe: ``"found"``, ``"missing"`` (the client's not-found answer, or ``http 404``), the
A ids a list answer holds, or a count."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import httpx
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

A = json.loads(os.environ["PARITY_IDS"])


def _ids(items) -> list[str]:
    mine = {i for key in ("block_documents", "block_types", "block_schemas") for i in A[key]}
    mine |= {A["flow_run"], A["automation"], A["saved_search"]}
    return sorted(
        str(getattr(i, "id", None) or i.get("id"))
        for i in items
        if str(getattr(i, "id", None) or i.get("id")) in mine
    )


async def keys(call) -> dict:
    return {"keys": sorted(item.key for item in await call)}


async def outcome(call):
    try:
        value = await call
    except ObjectNotFound:
        return "missing"
    except ValueError as exc:  # Secret.load of a name that is not there
        return "missing" if "Unable to find block document" in str(exc) else f"error {exc}"
    except httpx.HTTPStatusError as exc:
        return "missing" if exc.response.status_code == 404 else f"http {exc.response.status_code}"
    if value is None:
        return "missing"
    if isinstance(value, dict):
        return value
    if isinstance(value, httpx.Response):
        if value.status_code == 404:
            return "missing"
        body = value.json()
        if isinstance(body, int):
            return body
        if isinstance(body, list):
            return _ids(body)
        return "found"
    if isinstance(value, list):
        return _ids(value)
    return "found"


async def main() -> dict:
    run_id = uuid.UUID(A["flow_run"])
    out = {}
    async with get_client() as client:
        r = client.request
        probes = {
            "secret_load": Secret.aload("iso-secret"),
            "block_document_by_id": client.read_block_document(A["block_documents"][0]),
            "custom_document_by_id": client.read_block_document(A["block_documents"][1]),
            "block_document_by_name": client.read_block_document_by_name("iso-secret", "secret"),
            "block_documents_list": client.read_block_documents(include_secrets=True),
            "block_documents_of_type": client.read_block_documents_by_type("secret", include_secrets=True),
            "block_documents_count": r("POST", "/block_documents/count", json={}),
            "block_documents_filter_by_id": r(
                "POST", "/block_documents/filter",
                json={"block_documents": {"id": {"any_": A["block_documents"]}}, "include_secrets": True},
            ),
            "block_documents_count_by_id": r(
                "POST", "/block_documents/count", json={"block_documents": {"id": {"any_": A["block_documents"]}}}
            ),
            "custom_block_type_by_slug": client.read_block_type_by_slug("parity-iso-creds"),
            "custom_block_type_by_id": r("GET", "/block_types/{id}", path_params={"id": A["block_types"][1]}),
            "block_types_filter": r("POST", "/block_types/filter", json={}),
            "custom_schema_by_checksum": client.read_block_schema_by_checksum(A["creds_checksum"]),
            "custom_schema_by_id": r("GET", "/block_schemas/{id}", path_params={"id": A["block_schemas"][1]}),
            "secret_schema_by_id": r("GET", "/block_schemas/{id}", path_params={"id": A["block_schemas"][0]}),
            "block_schemas_list": client.read_block_schemas(),
            "block_schemas_filter_by_type": r(
                "POST", "/block_schemas/filter", json={"block_schemas": {"block_type_id": {"any_": A["block_types"]}}}
            ),
            "flow_run_input": client.read_flow_run_input(run_id, "approval"),
            "flow_run_input_filter": keys(client.filter_flow_run_input(run_id, "app", 10, set())),
            "automation_by_id": client.read_automation(A["automation"]),
            "automation_find": client.find_automation(A["automation"]),
            "automations_by_name": client.read_automations_by_name("parity-iso-automation"),
            "automations_list": client.read_automations(),
            "automations_count": r("POST", "/automations/count", json={}),
            "saved_search_by_id": r("GET", "/saved_searches/{id}", path_params={"id": A["saved_search"]}),
            "saved_searches_filter": r("POST", "/saved_searches/filter", json={}),
        }  # fmt: skip
        for name, call in probes.items():
            out[name] = await outcome(call)
    return out


if __name__ == "__main__":
    print("RESULT " + json.dumps(asyncio.run(main()), sort_keys=True), flush=True)
