"""Placeholders in parameters, expanded as Prefect's server expands them when a run is created from
a deployment (``prefect/utilities/schema_tools/hydration.py``, ``hydrate`` with a context built
with ``raise_on_error``, ``render_jinja`` and ``render_workspace_variables``).

A placeholder is an object with ``__prefect_kind``:

* ``{"__prefect_kind": "json", "value": "[1, 2]"}``: the value parsed as JSON (a value that is not
  a string is kept as it is); without ``value`` the key is dropped;
* ``{"__prefect_kind": "jinja", "template": "…"}``: the template rendered in a sandbox with an empty
  context (undefined names render as nothing);
* ``{"__prefect_kind": "workspace_variable", "variable_name": "x"}``: the workspace variable's
  value; without ``variable_name`` the key is dropped;
* ``{"__prefect_kind": "none", "value": …}``: the value, itself hydrated;
* any other kind: its ``value`` (or ``None``).

Placeholders nest (a ``json`` value may itself be a placeholder). Problems raise
:class:`HydrationError` with Prefect's message (``Invalid JSON: …``, ``Variable 'x' not found in
workspace.``, ``Missing 'template' key in __prefect object``). A raw ``{{ prefect.variables.x }}``
string is not a server-side placeholder: the client resolves those when it deploys.

This module renders (Jinja in a sandbox, variables from the workspace) and raises on the first
problem, as Prefect's server does when it creates a run; it needs ``jinja2`` at run time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import ChainableUndefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEMPLATE_RANGE = 100
MAX_LOOP_COUNT = 10
MAX_NESTED_LOOP_DEPTH = 2


class HydrationError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class _Remove:
    """A placeholder that removes its key (or list item) from the parent."""


_REMOVE = _Remove()


def _check_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_TEMPLATE_RANGE:
        raise OverflowError(
            f"Range too big. The sandbox blocks ranges larger than MAX_TEMPLATE_RANGE={MAX_TEMPLATE_RANGE}."
        )
    return rng


_environment = ImmutableSandboxedEnvironment(undefined=ChainableUndefined)
_environment.globals["range"] = _check_range


def _loop_depth(node: nodes.Node, depth: int = 0) -> int:
    if isinstance(node, nodes.For):
        depth += 1
    children = list(node.iter_child_nodes())
    return max((_loop_depth(child, depth) for child in children), default=depth)


def _validate_template(template: str) -> None:
    root = _environment.parse(template)
    loops = list(root.find_all(nodes.For))
    if len(loops) > MAX_LOOP_COUNT:
        raise HydrationError(
            f"Invalid jinja: Contains {len(loops)} for loops. Templates can contain no more than "
            f"{MAX_LOOP_COUNT} for loops."
        )
    deepest = max((_loop_depth(loop) for loop in loops), default=0)
    if deepest > MAX_NESTED_LOOP_DEPTH:
        raise HydrationError(
            f"Invalid jinja: Contains nested for loops at a depth of {deepest}. Templates can nest for "
            f"loops no more than {MAX_NESTED_LOOP_DEPTH} loops deep."
        )


def _render(template: str) -> str:
    if "{{" not in template and "{%" not in template:
        return template
    try:
        return _environment.from_string(template).render({})
    except Exception as error:  # noqa: BLE001 - any failure of a user's template is its problem
        raise HydrationError(
            f"Invalid jinja: Failed to render template due to the following error: {error!r}"
        ) from None


def _jinja(obj: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
    if "template" not in obj:
        raise HydrationError("Missing 'template' key in __prefect object")
    template = obj["template"]
    if isinstance(template, dict):
        template = _hydrate(template, variables)
    if not isinstance(template, str):
        raise HydrationError(f"Invalid jinja: Can't compile non template nodes: {template!r}")
    try:
        _validate_template(template)
    except jinja2.TemplateSyntaxError as error:
        raise HydrationError(f"Invalid jinja: {error}") from None
    return _render(template)


def _json(obj: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
    if "value" not in obj:
        return _REMOVE
    value = obj["value"]
    if isinstance(value, dict):
        value = _hydrate(value, variables)
    if value is _REMOVE or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError) as error:
        raise HydrationError(f"Invalid JSON: {error}") from None


def _workspace_variable(obj: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
    if "variable_name" not in obj:
        return _REMOVE
    name = obj["variable_name"]
    if isinstance(name, dict):
        name = _hydrate(name, variables)
    if name is _REMOVE:
        return name
    if isinstance(name, str) and name in variables:
        return variables[name]
    raise HydrationError(f"Variable '{name}' not found in workspace.")


def _none(obj: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
    if "value" not in obj:
        raise HydrationError("Missing 'value' key in __prefect object")
    return _hydrate(obj["value"], variables)


_HANDLERS = {"json": _json, "jinja": _jinja, "workspace_variable": _workspace_variable, "none": _none}


def _hydrate(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        if "__prefect_kind" in value:
            handler = _HANDLERS.get(value["__prefect_kind"])
            return handler(value, variables) if handler is not None else value.get("value")
        result = {}
        for key, item in value.items():
            hydrated = _hydrate(item, variables)
            if hydrated is not _REMOVE:
                result[key] = hydrated
        return result
    if isinstance(value, list):
        return [hydrated for item in value if (hydrated := _hydrate(item, variables)) is not _REMOVE]
    return value


def has_placeholders(value: Any) -> bool:
    if isinstance(value, dict):
        return "__prefect_kind" in value or any(has_placeholders(item) for item in value.values())
    if isinstance(value, list):
        return any(has_placeholders(item) for item in value)
    return False


def hydrate(parameters: dict[str, Any], *, variables: Mapping[str, Any]) -> dict[str, Any]:
    """``parameters`` with every placeholder expanded; ``variables`` maps the workspace's variable
    names to their values. Raises :class:`HydrationError`."""
    result = _hydrate(parameters, variables)
    return {} if result is _REMOVE else result


__all__ = ["HydrationError", "has_placeholders", "hydrate"]
