"""Parameters and job variables checked against their JSON schemas (Draft 2020-12), as Prefect's
``utilities/schema_tools`` checks them. Each check raises ``ValueError`` with Prefect's message."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import referencing
import referencing.exceptions


def fix_properties(properties: dict[str, Any], required: list[str]) -> None:
    """Pydantic v1 schemas are not valid Draft 2020-12 for optional fields and tuples (Prefect's
    ``preprocess_schema``)."""
    for key, schema in properties.items():
        if not isinstance(schema, dict):
            continue
        if (
            key not in required
            and "type" in schema
            and schema.get("type") != "null"
            and "default" not in schema
        ):
            schema["anyOf"] = [{"type": schema["type"]}, {"type": "null"}]
            del schema["type"]
        if isinstance(schema.get("items"), list) and not schema.get("prefixItems"):
            schema["prefixItems"] = schema.pop("items")
        if isinstance(schema.get("properties"), dict):
            fix_properties(schema["properties"], schema.get("required") or [])


def _without_required(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_required(item)
            for key, item in value.items()
            if not (key == "required" and isinstance(item, list))
        }
    if isinstance(value, list):
        return [_without_required(item) for item in value]
    return value


def _prepared(schema: dict[str, Any], *, ignore_required: bool) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    if isinstance(schema.get("properties"), dict):
        fix_properties(schema["properties"], schema.get("required") or [])
    for section in ("definitions", "$defs"):
        for definition in (schema.get(section) or {}).values():
            if isinstance(definition, dict) and isinstance(definition.get("properties"), dict):
                fix_properties(definition["properties"], definition.get("required") or [])
    return _without_required(schema) if ignore_required else schema


def parameter_schema_check(schema: dict[str, Any] | None) -> None:
    """``ValueError`` unless ``schema`` is a valid JSON schema (Draft 2020-12)."""
    if schema is None:
        return
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise ValueError(
            f"The provided schema is not a valid json schema. Schema error: {error.message}"
        ) from None


def parameters_check(
    parameters: dict[str, Any], schema: dict[str, Any] | None, *, ignore_required: bool = False
) -> None:
    """``ValueError`` naming the first field that does not conform to ``schema``. References are
    resolved inside the schema only (nothing is fetched)."""
    if schema is None:
        return
    validator = jsonschema.Draft202012Validator(
        _prepared(schema, ignore_required=ignore_required), registry=referencing.Registry()
    )
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(parameters))
    except RecursionError:
        raise ValueError("Invalid schema: Unable to validate schema with circular references.") from None
    except referencing.exceptions.Unresolvable as exc:
        raise ValueError(f"Validation failed. Failure reason: {exc}") from None
    if error is None:
        return
    where = (
        "Validation failed."
        if error.json_path == "$"
        else (f"Validation failed for field {error.json_path.replace('$.', '')!r}.")
    )
    raise ValueError(f"{where} Failure reason: {error.message}")


def job_variables_check(pool, *job_variables: dict | None, ignore_required: bool) -> None:
    """``ValueError`` when the job variables (the pool's defaults overlaid by each of
    ``job_variables`` in turn) do not conform to the variables schema of the pool's base job
    template, as Prefect validates them: a default that is itself invalid is left out (and then
    required fields are not enforced); ``None`` stands for an optional field that has a default."""
    template = (pool.base_job_template or {}) if pool is not None else {}
    schema = template.get("variables") if isinstance(template, dict) else None
    if not isinstance(schema, dict) or not schema:
        return
    properties = schema.get("properties") or {}
    merged: dict[str, Any] = {}
    invalid_defaults = False
    for name, attrs in properties.items():
        if not isinstance(attrs, dict) or "default" not in attrs:
            continue
        default = attrs["default"]
        if isinstance(default, dict) and "$ref" in default:
            continue  # a block reference, resolved by the worker
        try:
            parameters_check({name: default}, {**schema, "properties": {name: attrs}}, ignore_required=True)
        except ValueError:
            invalid_defaults = True
            continue
        merged[name] = default
    for overlay in job_variables:
        if isinstance(overlay, dict):
            merged.update(overlay)
    merged = {
        name: value
        for name, value in merged.items()
        if not (value is None and isinstance(properties.get(name), dict) and "default" in properties[name])
    }
    parameters_check(merged, schema, ignore_required=ignore_required or invalid_defaults)
