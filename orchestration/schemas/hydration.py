"""Prefect's ``__prefect_kind`` values (``prefect.utilities.schema_tools.hydration``): the UI and
automation actions send parameters as ``{"__prefect_kind": "json" | "jinja" | "workspace_variable"
| "none", ...}``. ``hydrate`` replaces each with its value, an error placeholder, or a placeholder
for what is filled in later (a template rendered when an action runs, a variable not read here)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestration.schemas.templates import TemplateRenderError, template_error, template_render


class Placeholder:
    is_error = False

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash(type(self))


class RemoveValue(Placeholder):
    pass


class HydrationError(Placeholder):
    is_error = True

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail

    @property
    def message(self) -> str:
        raise NotImplementedError


class _Missing(HydrationError):
    key = ""

    @property
    def message(self) -> str:
        return f"Missing '{self.key}' key in __prefect object"


class ValueNotFound(_Missing):
    key = "value"


class TemplateNotFound(_Missing):
    key = "template"


class InvalidJSON(HydrationError):
    @property
    def message(self) -> str:
        return "Invalid JSON" + (f": {self.detail}" if self.detail else "")


class InvalidJinja(HydrationError):
    @property
    def message(self) -> str:
        return "Invalid jinja" + (f": {self.detail}" if self.detail else "")


class WorkspaceVariableNotFound(HydrationError):
    @property
    def message(self) -> str:
        return f"Variable '{self.detail}' not found in workspace."


class WorkspaceVariable(Placeholder):
    def __init__(self, variable_name: Any) -> None:
        self.variable_name = variable_name


class ValidJinja(Placeholder):
    def __init__(self, template: str) -> None:
        self.template = template


@dataclass
class HydrationContext:
    workspace_variables: dict[str, Any] = field(default_factory=dict)
    render_workspace_variables: bool = False
    render_jinja: bool = False
    jinja_context: dict[str, Any] = field(default_factory=dict)


def _nested(value: Any, ctx: HydrationContext) -> Any:
    return _hydrate(value, ctx) if isinstance(value, dict) else value


def _kind(kind: Any, obj: dict, ctx: HydrationContext) -> Any:  # noqa: C901 - one branch per kind
    if kind == "none":
        return _hydrate(obj["value"], ctx) if "value" in obj else ValueNotFound()
    if kind == "json":
        if "value" not in obj:
            return RemoveValue()
        value = _nested(obj["value"], ctx)
        if isinstance(value, Placeholder) or not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except (json.JSONDecodeError, TypeError) as exc:
            return InvalidJSON(detail=str(exc))
    if kind == "jinja":
        if "template" not in obj:
            return TemplateNotFound()
        template = _nested(obj["template"], ctx)
        if isinstance(template, Placeholder):
            return template
        if not isinstance(template, str):
            return InvalidJinja(detail=f"Can't compile non template nodes: {template!r}")
        error = template_error(template)
        if error:
            return InvalidJinja(detail=error)
        if ctx.render_jinja:
            try:
                return template_render(template, ctx.jinja_context)
            except TemplateRenderError as exc:
                return InvalidJinja(detail=str(exc))
        return ValidJinja(template)
    if kind == "workspace_variable":
        if "variable_name" not in obj:
            return RemoveValue()
        name = _nested(obj["variable_name"], ctx)
        if isinstance(name, Placeholder):
            return name
        if not ctx.render_workspace_variables:
            return WorkspaceVariable(name)
        if isinstance(name, str) and name in ctx.workspace_variables:
            return ctx.workspace_variables[name]
        return WorkspaceVariableNotFound(detail=str(name))
    return obj.get("value")


def _hydrate(obj: Any, ctx: HydrationContext) -> Any:
    if isinstance(obj, dict) and "__prefect_kind" in obj:
        return _kind(obj["__prefect_kind"], obj, ctx)
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            hydrated = _hydrate(value, ctx)
            if not isinstance(hydrated, RemoveValue):
                out[key] = hydrated
        return out
    if isinstance(obj, list):
        return [h for h in (_hydrate(item, ctx) for item in obj) if not isinstance(h, RemoveValue)]
    return obj


def hydrate(obj: dict[str, Any], ctx: HydrationContext | None = None) -> Any:
    result = _hydrate(obj, ctx or HydrationContext())
    return {} if isinstance(result, RemoveValue) else result


def first_error(value: Any) -> HydrationError | None:
    """The first error placeholder, depth first, lists included (where Prefect, hydrating with
    ``raise_on_error``, raises)."""
    if isinstance(value, HydrationError):
        return value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        if (found := first_error(child)) is not None:
            return found
    return None


def needs_variables(value: Any) -> bool:
    """Does ``value`` name a workspace variable (so the caller must load them)?"""
    if isinstance(value, dict):
        return value.get("__prefect_kind") == "workspace_variable" or any(
            needs_variables(v) for v in value.values()
        )
    if isinstance(value, list):
        return any(needs_variables(v) for v in value)
    return False


def hydration_errors(hydrated: Any, prefix: str = "") -> dict[str, HydrationError]:
    """Every error placeholder in ``hydrated`` by its dotted path (Prefect's ``_collect_errors``)."""
    problems: dict[str, HydrationError] = {}
    if isinstance(hydrated, HydrationError):
        problems[prefix] = hydrated
    if isinstance(hydrated, Placeholder) or not isinstance(hydrated, dict):
        return problems
    for key, value in hydrated.items():
        if isinstance(value, dict):
            problems.update(hydration_errors(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            # Prefect's loop unpacks ``enumerate`` the wrong way round, so it never finds an error
            # inside a list; the same parameters are accepted here as there.
            continue
        elif isinstance(value, HydrationError):
            problems[f"{prefix}{key}"] = value
    return problems
