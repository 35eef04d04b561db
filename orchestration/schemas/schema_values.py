"""Values checked against a JSON schema the way Prefect's UI asks (``ui/schemas/validate``, from
``prefect.utilities.schema_tools.validation``): Draft 2020-12 with Prefect's fixes to pydantic v1
schemas, hydration placeholders (``__prefect_kind``) reported as errors of their own, and the
errors as Prefect's nested ``{"errors": [...], "valid": …}`` object. Nothing is fetched."""

from __future__ import annotations

import copy
from collections import defaultdict, deque
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
from jsonschema.exceptions import ValidationError as SchemaValidationError
from jsonschema.validators import Draft202012Validator, create

from orchestration.schemas.hydration import HydrationError, Placeholder
from orchestration.schemas.parameters import fix_properties

PLACEHOLDERS = "_placeholders"


class CircularSchemaRefError(Exception):
    pass


class SchemaValuesError(Exception):
    pass


def _placeholders(validator, _property, instance, _schema):
    if isinstance(instance, HydrationError):
        yield SchemaValidationError(instance.message)


def _applicable(schema):
    return {**schema, PLACEHOLDERS: None}.items()


_VALIDATOR = create(
    meta_schema=Draft202012Validator.META_SCHEMA,
    validators={**Draft202012Validator.VALIDATORS, PLACEHOLDERS: _placeholders},
    version="prefect",
    type_checker=Draft202012Validator.TYPE_CHECKER,
    format_checker=Draft202012Validator.FORMAT_CHECKER,
    id_of=Draft202012Validator.ID_OF,
    applicable_validators=_applicable,
)


_BLOCK_REFERENCE = {
    "type": "object",
    "properties": {
        "$ref": {
            "oneOf": [
                {"type": "string", "format": "uuid"},
                {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1},
            ]
        }
    },
    "required": ["$ref"],
}


def preprocess_schema(schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    if isinstance(schema.get("properties"), dict):
        fix_properties(schema["properties"], schema.get("required", []) or [])
    definitions = schema.get("definitions")
    if isinstance(definitions, dict):
        for definition in list(definitions.values()):
            if not isinstance(definition, dict):
                continue
            if isinstance(definition.get("properties"), dict):
                fix_properties(definition["properties"], definition.get("required", []) or [])
            if "block_type_slug" in definition and "title" in definition:
                definitions[definition["title"]] = {"oneOf": [definition, _BLOCK_REFERENCE]}
    return schema


def schema_check(schema: dict[str, Any]) -> None:
    try:
        _VALIDATOR.check_schema(schema, format_checker=_VALIDATOR.FORMAT_CHECKER)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"Invalid schema: {exc.message}") from None


def schema_errors(values: Any, schema: dict[str, Any]) -> list[SchemaValidationError]:
    try:
        validator = _VALIDATOR(
            schema, format_checker=_VALIDATOR.FORMAT_CHECKER, registry=referencing.Registry()
        )
        return list(validator.iter_errors(values))
    except RecursionError:
        raise CircularSchemaRefError from None
    except referencing.exceptions.Unresolvable as exc:
        raise SchemaValuesError(f"Validation failed. Failure reason: {exc}") from None


def _prioritize_placeholder_errors(errors: list[SchemaValidationError]) -> list[SchemaValidationError]:
    by_path: dict[str, list[SchemaValidationError]] = defaultdict(list)
    for error in errors:
        by_path["->".join(str(p) for p in error.relative_path)].append(error)
    kept: list[SchemaValidationError] = []
    for grouped in by_path.values():
        placeholder_errors = [e for e in grouped if e.validator == PLACEHOLDERS]
        kept.extend(placeholder_errors or grouped)
    return kept


def error_object(errors: list[SchemaValidationError]) -> dict[str, Any]:
    """Prefect's ``build_error_obj``."""
    response: dict[str, Any] = {"errors": []}
    for error in _prioritize_placeholder_errors(errors):
        if isinstance(error.instance, Placeholder) and not error.instance.is_error:
            continue
        path = deque(error.relative_path)
        if error.validator == "required":
            path.append(error.message.partition(" ")[0].strip("'"))
        current: list[Any] = response["errors"]
        if not path:
            current.append(error.message)
        while path:
            part = path.popleft()
            key = "index" if isinstance(part, int) else "property"
            if not path:
                current.append({key: part, "errors": [error.message]})
                continue
            for entry in current:
                if isinstance(entry, dict) and entry.get(key) == part:
                    current = entry.setdefault("errors", [])
                    break
            else:
                entry = {key: part, "errors": []}
                current.append(entry)
                current = entry["errors"]
    response["valid"] = not response["errors"]
    return response


def variable_names(values: Any) -> set[str]:
    """The workspace variables ``values`` names (to read only those)."""
    names: set[str] = set()
    stack = [values]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("__prefect_kind") == "workspace_variable" and isinstance(
                item.get("variable_name"), str
            ):
                names.add(item["variable_name"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return names
