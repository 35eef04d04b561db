"""Hydrating values the UI sends (Prefect's ``utilities/schema_tools/hydration.py``): an object
``{"__prefect_kind": …}`` stands for a value to compute. ``json`` parses its ``value`` string,
``workspace_variable`` is the named variable's value, ``none`` passes its ``value`` through, an
unknown kind is its ``value``; a ``json`` or ``workspace_variable`` object without its key is
dropped from its parent. ``jinja`` templates are not rendered here (that needs Jinja, which this
server does not carry): they are an error, as a template Prefect cannot render is."""

from __future__ import annotations

import json
from typing import Any

KIND = "__prefect_kind"


class HydrationError(ValueError):
    """Prefect's ``HydrationError``; its text is Prefect's message."""


class _Remove:
    pass


_REMOVE = _Remove()


def hydrate(value: Any, *, workspace_variables: dict[str, Any]) -> Any:
    """``value`` with every ``__prefect_kind`` object replaced; raises :class:`HydrationError`."""
    result = _hydrate(value, workspace_variables)
    return {} if result is _REMOVE else result


def _hydrate(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, dict) and KIND in value:
        return _kind(value, variables)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            hydrated = _hydrate(item, variables)
            if hydrated is not _REMOVE:
                out[key] = hydrated
        return out
    if isinstance(value, list):
        return [h for h in (_hydrate(item, variables) for item in value) if h is not _REMOVE]
    return value


def _kind(obj: dict[str, Any], variables: dict[str, Any]) -> Any:  # noqa: C901 - one branch per kind
    kind = obj[KIND]
    if kind == "none":
        if "value" not in obj:
            raise HydrationError("Missing 'value' key in __prefect object")
        return _hydrate(obj["value"], variables)
    if kind == "json":
        if "value" not in obj:
            return _REMOVE
        raw = _hydrate(obj["value"], variables) if isinstance(obj["value"], dict) else obj["value"]
        if not isinstance(raw, str):
            return raw
        try:
            return json.loads(raw)
        except ValueError as error:
            raise HydrationError(f"Invalid JSON: {error}") from None
    if kind == "workspace_variable":
        if "variable_name" not in obj:
            return _REMOVE
        name = obj["variable_name"]
        name = _hydrate(name, variables) if isinstance(name, dict) else name
        if isinstance(name, str) and name in variables:
            return variables[name]
        raise HydrationError(f"Variable '{name}' not found in workspace.")
    if kind == "jinja":
        if "template" not in obj:
            raise HydrationError("Missing 'template' key in __prefect object")
        raise HydrationError("Invalid jinja: templates are not rendered by this server")
    return obj.get("value")


def needs_variables(value: Any) -> bool:
    """Does ``value`` name a workspace variable (so the caller must load them)?"""
    if isinstance(value, dict):
        return value.get(KIND) == "workspace_variable" or any(needs_variables(v) for v in value.values())
    if isinstance(value, list):
        return any(needs_variables(v) for v in value)
    return False
