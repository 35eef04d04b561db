"""Writes ``prefect_body_fields.json`` (read by ``test_property_sweep.py``): per route of Prefect's
server, the field names its request body schema names, read off the pinned package's OpenAPI.
Run it after upgrading ``prefect``: ``.venv/bin/python tests/hardening/prefect_body_fields.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path

FIELDS_FILE = Path(__file__).with_name("prefect_body_fields.json")


def write_fields_file() -> None:
    """Read the request-body field names of every route off Prefect's own OpenAPI."""
    from prefect.server.api.server import create_api_app

    spec = create_api_app().openapi()
    components = spec["components"]["schemas"]

    def names(schema, depth: int, seen: frozenset[str]) -> set[str]:
        if depth > 3 or not isinstance(schema, dict):
            return set()
        if ref := schema.get("$ref"):
            key = ref.rsplit("/", 1)[1]
            return set() if key in seen else names(components[key], depth, seen | {key})
        found: set[str] = set()
        for prop, sub in (schema.get("properties") or {}).items():
            found |= {prop} | names(sub, depth + 1, seen)
        for combination in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(combination, []):
                found |= names(sub, depth, seen)
        for nested in (schema.get("items"), schema.get("additionalProperties")):
            found |= names(nested, depth, seen)
        return found

    result = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if body:
                generic = re.sub(r"\{[^}]+\}", "{}", path.removeprefix("/api"))
                result[f"{method.upper()} {generic}"] = sorted(names(body["schema"], 0, frozenset()))
    lines = [f"{json.dumps(key)}: {json.dumps(value)}" for key, value in sorted(result.items())]
    FIELDS_FILE.write_text("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    write_fields_file()
