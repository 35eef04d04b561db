"""Blocks in Prefect's vocabulary: request bodies (``schemas/actions.py``), the schema checksum
(``Block._calculate_schema_checksum``), how secret fields are obfuscated
(``BlockDocument.from_orm_model``) and the catalogue of system block types every workspace has.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from orchestration.schemas.base import PrefectModel

OBFUSCATED = "********"
DEFAULT_BLOCK_SCHEMA_VERSION = "non-versioned"
_BANNED = re.compile(r"[/%&><]")
_SLUG = re.compile(r"^[a-z0-9-]*$")
CATALOG_PATH = Path(__file__).resolve().parent / "block_catalog.json"


def _name(value: str) -> str:
    if not value or _BANNED.search(value):
        raise ValueError("Name must not be empty nor contain '/', '%', '&', '>' or '<'.")
    return value


def _lower_dashes(value: str, field_name: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"{field_name} must only contain lowercase letters, numbers, and dashes.")
    return value


class BlockTypeCreate(PrefectModel):
    name: str = Field(max_length=255)
    slug: str = Field(max_length=255)
    logo_url: str | None = None
    documentation_url: str | None = None
    description: str | None = None
    code_example: str | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value)

    @field_validator("slug")
    @classmethod
    def _valid_slug(cls, value: str) -> str:
        return _lower_dashes(value, "Block type slug")


class BlockTypeUpdate(PrefectModel):
    logo_url: str | None = None
    documentation_url: str | None = None
    description: str | None = None
    code_example: str | None = None


class BlockSchemaCreate(PrefectModel):
    fields: dict[str, Any] = Field(default_factory=dict)
    block_type_id: uuid.UUID
    capabilities: list[str] = Field(default_factory=list)
    version: str = Field(default=DEFAULT_BLOCK_SCHEMA_VERSION, max_length=255)


class BlockDocumentCreate(PrefectModel):
    name: str | None = Field(default=None, max_length=255)
    data: dict[str, Any] = Field(default_factory=dict)
    block_schema_id: uuid.UUID
    block_type_id: uuid.UUID
    is_anonymous: bool = False

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        return None if value is None else _lower_dashes(_name(value), "Block document name")

    @model_validator(mode="after")
    def _named_unless_anonymous(self) -> BlockDocumentCreate:
        if not self.is_anonymous and not self.name:
            raise ValueError("Names must be provided for block documents.")
        return self


class BlockDocumentUpdate(PrefectModel):
    block_schema_id: uuid.UUID | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    merge_existing_data: bool = True


# --- the schema checksum ------------------------------------------------------------------------------


def _without_keys(keys: set[str], obj: Any) -> Any:
    if not isinstance(obj, dict):
        return obj
    return {k: _without_keys(keys, v) for k, v in obj.items() if k not in keys}


def _references(obj: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(obj, dict):
        if ref := obj.get("$ref"):
            found.append(ref)
        for value in obj.values():
            found.extend(_references(value))
    if isinstance(obj, list):
        for item in obj:
            found.extend(_references(item))
    return found


def _non_block_definitions(obj: Any, definitions: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    if depth > 64:
        raise ValueError("Block schema definitions nest too deeply.")
    result: dict[str, Any] = {}
    for ref in _references(obj):
        if isinstance(ref, str):
            key = ref.replace("#/definitions/", "")
            definition = definitions.get(key)
            if definition and isinstance(definition, dict) and definition.get("block_type_slug") is None:
                result = {
                    **result,
                    key: definition,
                    **_non_block_definitions(definition, definitions, depth + 1),
                }
    return result


def schema_checksum(fields: dict[str, Any]) -> str:
    """Prefect's ``Block._calculate_schema_checksum``: sha256 of the sorted JSON of the fields
    without ``secret_fields`` and without the definitions of nested blocks."""
    for_checksum = _without_keys({"secret_fields"}, fields)
    definitions = for_checksum.get("definitions")
    if definitions:
        if not isinstance(definitions, dict):
            raise ValueError("Block schema definitions must be an object.")
        non_block = _non_block_definitions(for_checksum, definitions)
        if non_block:
            for_checksum["definitions"] = non_block
        else:
            for_checksum.pop("definitions")
    payload = json.dumps([[for_checksum], {}], sort_keys=True)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


# --- secret fields ---------------------------------------------------------------------------------


def _flatten(data: dict, prefix: tuple = ()) -> dict[tuple, Any]:
    flat: dict[tuple, Any] = {}
    for key, value in data.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, path))
        else:
            flat[path] = value
    return flat


def _unflatten(flat: dict[tuple, Any]) -> dict:
    result: dict = {}
    for path, value in flat.items():
        node = result
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return result


def _secret_paths(secret_fields: list[str], flat: dict[tuple, Any]) -> list[tuple]:
    """The keys of ``flat`` that the schema's ``secret_fields`` name (``a.b``, or ``a.*``), and every
    key under a secret field that holds an object. Prefect's server stops at the first two, so a
    ``Secret`` whose value is a JSON object is answered in the clear without ``include_secrets``;
    here a key without ``see_secret_blocks`` must not read it, so its leaves are hidden too (the
    shape stays: ``{"value": {"token": "********"}}``)."""
    paths: list[tuple] = []
    for secret_field in secret_fields:
        if not isinstance(secret_field, str):
            continue
        key = tuple(secret_field.split("."))
        if flat.get(key) is not None:
            paths.append(key)
        elif "*" in key:
            index = key.index("*")
            paths.extend(k for k in flat if k[:index] == key[:index])
        else:
            paths.extend(k for k in flat if len(k) > len(key) and k[: len(key)] == key)
    return paths


def obfuscate_secrets(data: dict, secret_fields: list[str]) -> dict:
    """``data`` with every secret field's value replaced by ``********``."""
    if not secret_fields:
        return data
    flat = _flatten(data)
    for path in _secret_paths(secret_fields, flat):
        flat[path] = OBFUSCATED
    return _unflatten(flat)


def keep_unchanged_secrets(update: dict, current: dict, secret_fields: list[str]) -> dict:
    """An update that posts back ``********`` for a secret keeps the stored value (Prefect's
    ``update_block_document``)."""
    if not secret_fields:
        return update
    flat_update, flat_current = _flatten(update), _flatten(current)
    for path in _secret_paths(secret_fields, flat_current):
        if flat_update.get(path) == OBFUSCATED:
            flat_update[path] = flat_current[path]
    return _unflatten(flat_update)


# --- the system catalogue ---------------------------------------------------------------------------


@functools.cache
def system_catalog() -> tuple[dict, ...]:
    """The block types and schemas Prefect's server registers at startup, each with its checksum."""
    entries = json.loads(CATALOG_PATH.read_text())
    for entry in entries:
        entry["block_schema"]["checksum"] = schema_checksum(entry["block_schema"]["fields"])
    return tuple(entries)
