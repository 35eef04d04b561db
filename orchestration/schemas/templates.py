"""User-supplied Jinja templates (automation actions' subjects, bodies, payloads and parameters),
checked as Prefect's server checks them (``prefect.server.utilities.user_templates``) and rendered
in the one sandbox: Jinja's ``ImmutableSandboxedEnvironment``, no more than 10 ``for`` loops, nested
no more than 2 deep, ``range`` bounded, with Prefect's filters: the ``humanize_*`` filters of
``jinja2_humanize_extension`` and the event filters of ``prefect.server.events.jinja_filters``
(``ui_url``, ``ui_resource_events_url``, ``flow_run_id``).

Checking never renders, but it compiles as well as parses (stricter than Prefect, which only
parses): a filter or test this sandbox does not have is refused when the template is saved, not
when an action first renders it.

The URL filters link into the workspace's UI: the caller names its base with ``template_ui_base``
(outside it they give ``None``, as Prefect's do without ``PREFECT_UI_URL``). Objects they link are
``TemplateObject`` (a flow run, a deployment, the event, the automation…) and ``TemplateResource``
(an event's resource and related resources)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

from jinja2 import ChainableUndefined, nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_LOOP_COUNT = 10
MAX_NESTED_LOOP_DEPTH = 2
MAX_TEMPLATE_RANGE = 100


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_TEMPLATE_RANGE:
        raise OverflowError(
            f"Range too big. The sandbox blocks ranges larger than MAX_TEMPLATE_RANGE={MAX_TEMPLATE_RANGE}."
        )
    return numbers


class TemplateObject(dict):
    """A Prefect object in a template's context (a flow run, a deployment, the event…): its fields
    as a dict, and its kind (``flow-run``, ``received-event``…), which the URL filters read and
    templates cannot (the sandbox hides attributes starting with ``_``)."""

    __slots__ = ("_kind",)

    def __init__(self, kind: str, fields: dict[str, Any]) -> None:
        super().__init__(fields)
        self._kind = kind


class TemplateResource(dict):
    """An event's resource or related resource, as Prefect's ``Resource``: its labels by name,
    ``id``, ``name`` and ``role``, and iterated as ``(label, value)`` pairs (``{% for label, value
    in event.resource %}`` in the UI's default bodies)."""

    __slots__ = ()

    def __iter__(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        return iter(list(self.items()))

    @property
    def id(self) -> str:
        return str(self.get("prefect.resource.id") or "")

    @property
    def name(self) -> str | None:
        return self.get("prefect.resource.name")

    @property
    def role(self) -> str | None:
        return self.get("prefect.resource.role")


class TemplateLabels:
    """Labels as Prefect's ``LabelDiver`` presents them to templates: ``labels.prefect.resource.id``
    walks the dotted names (a node prints its own value, "" when it has none), ``labels["a.b"]``
    reads one, iterating gives ``(name, value)`` pairs, and ``tojson`` writes the labels."""

    __slots__ = ("_labels", "_value", "_divers")

    def __init__(self, labels: dict[str, str], value: str = "") -> None:
        self._labels = dict(labels)
        self._value = value
        divers: dict[str, dict[str, str]] = {}
        values: dict[str, str] = {}
        for key, label in labels.items():
            head, _, tail = key.partition(".")
            if tail:
                divers.setdefault(head, {})[tail] = label
            else:
                values[head] = label
        self._divers = {k: TemplateLabels(v, value=values.pop(k, "")) for k, v in divers.items()}
        self._divers.update({k: TemplateLabels({}, value=v) for k, v in values.items()})

    def __str__(self) -> str:
        return self._value or ""

    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._labels.items())

    def __getitem__(self, key: str) -> str:
        return self._labels[key]

    def __getattr__(self, name: str) -> TemplateLabels:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._divers[name]
        except KeyError:
            raise AttributeError(name) from None


_ui_base: ContextVar[str | None] = ContextVar("template_ui_base", default=None)


@contextmanager
def template_ui_base(url: str | None) -> Iterator[None]:
    """Templates rendered inside link to the UI at ``url`` (a workspace's UI base)."""
    token = _ui_base.set(url.rstrip("/") + "/" if url else None)
    try:
        yield
    finally:
        _ui_base.reset(token)


# Prefect's ``UI_URL_FORMATS`` (``prefect.utilities.urls``).
_UI_PATHS = {
    "flow": "flows/flow/{id}",
    "flow-run": "runs/flow-run/{id}",
    "task-run": "runs/task-run/{id}",
    "block": "blocks/block/{id}",
    "block-document": "blocks/block/{id}",
    "work-pool": "work-pools/work-pool/{id}",
    "work-queue": "work-queues/work-queue/{id}",
    "concurrency-limit": "concurrency-limits/concurrency-limit/{id}",
    "deployment": "deployments/deployment/{id}",
    "automation": "automations/automation/{id}",
    "received-event": "events/event/{occurred}/{id}",
}
# The objects ``ui_resource_events_url`` links (Prefect's ``model_to_kind`` and automations).
_EVENTS_OF = {"automation", "deployment", "flow", "flow-run", "task-run", "work-queue", "work-pool"}


def ui_url(obj: Any) -> str | None:
    """Prefect's ``ui_url`` filter: the object's page in the workspace's UI, or None."""
    base = _ui_base.get()
    if base is None:
        return None
    occurred = ""
    if isinstance(obj, TemplateResource):
        if not obj.id.startswith("prefect."):
            return None
        kind, obj_id = obj.id.split(".")[1], obj.id.rpartition(".")[2]
    elif isinstance(obj, TemplateObject):
        kind = obj._kind
        # Prefect links a work pool by its name (the UI's route), anything else by its id.
        obj_id = obj.get("name") if kind == "work-pool" else obj.get("id")
        if kind == "received-event":
            when = obj.get("occurred")
            occurred = when.strftime("%Y-%m-%d") if isinstance(when, dt.datetime) else str(when or "")[:10]
    else:
        return None
    path = _UI_PATHS.get(kind)
    if path is None:
        return None
    if not obj_id:
        return ""
    return base + path.format(id=quote(str(obj_id), safe=""), occurred=quote(occurred, safe=""))


def ui_resource_events_url(obj: Any) -> str | None:
    """Prefect's ``ui_resource_events_url`` filter: the UI's events page for the resource, or None."""
    base = _ui_base.get()
    resource_id = None
    if isinstance(obj, TemplateResource):
        resource_id = obj.id or None
    elif isinstance(obj, TemplateObject) and obj._kind in _EVENTS_OF and obj.get("id"):
        resource_id = f"prefect.{obj._kind}.{obj['id']}"
    if base is None or resource_id is None:
        return None
    return f"{base}events?resource={resource_id}"


_FLOW_RUN_ID = re.compile(r"flow-run/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def flow_run_id(text: str | None) -> str | None:
    """Prefect's ``flow_run_id`` filter: the flow run id in a text (a UI link in a PR body, say)."""
    match = _FLOW_RUN_ID.search(str(text)) if text else None
    return match.group(1) if match else None


def _json_default(value: Any) -> Any:
    """What ``tojson`` makes of values JSON lacks, as Prefect's (pydantic's JSON mode) does."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, TemplateLabels):
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_environment = ImmutableSandboxedEnvironment(
    undefined=ChainableUndefined, extensions=["jinja2_humanize_extension.HumanizeExtension"]
)
_environment.globals["range"] = _bounded_range
# These two switch humanize's language for the whole process, so for every workspace at once.
_environment.filters.pop("humanize_activate", None)
_environment.filters.pop("humanize_deactivate", None)
_environment.filters.update(
    {"ui_url": ui_url, "ui_resource_events_url": ui_resource_events_url, "flow_run_id": flow_run_id}
)
_environment.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": _json_default}


class TemplateSecurityError(Exception):
    def __init__(self, message: str, line_number: int = 0) -> None:
        self.lineno = line_number
        self.message = message
        super().__init__(message)


def _nested_loop_depth(node: nodes.Node, depth: int = 0) -> int:
    if isinstance(node, nodes.For):
        depth += 1
    children = list(node.iter_child_nodes())
    if not children:
        return depth
    return max(_nested_loop_depth(child, depth) for child in children)


def template_check(template: str) -> None:
    """Raise ``TemplateSyntaxError`` or ``TemplateSecurityError`` (both with ``lineno`` and
    ``message``) unless ``template`` is one Prefect would accept and this sandbox can render: it
    also compiles, so an unknown filter or test (``TemplateAssertionError``, a
    ``TemplateSyntaxError``) is refused here."""
    root = _environment.parse(template)
    _check_loops(root)
    try:
        _environment.compile(root)
    except SyntaxError:  # Python's: the generated code nests deeper than Python compiles
        raise TemplateSecurityError("template nesting too deep") from None


def _check_loops(root: nodes.Template) -> None:
    loops = list(root.find_all(nodes.For))
    if not loops:
        return
    if len(loops) > MAX_LOOP_COUNT:
        raise TemplateSecurityError(
            f"Contains {len(loops)} for loops. Templates can contain no more than {MAX_LOOP_COUNT} for loops."
        )
    depth = max(_nested_loop_depth(loop) for loop in loops)
    if depth > MAX_NESTED_LOOP_DEPTH:
        raise TemplateSecurityError(
            f"Contains nested for loops at a depth of {depth}. Templates can nest for loops no more "
            f"than {MAX_NESTED_LOOP_DEPTH} loops deep."
        )


def template_error(template: str) -> str | None:
    """The message Prefect's validators give for a bad template, or None."""
    try:
        template_check(template)
    except (TemplateSyntaxError, TemplateSecurityError) as exc:
        return str(exc)
    except RecursionError:
        return "template nesting too deep"
    return None


class TemplateRenderError(Exception):
    """A template that parses but fails to render (Prefect's ``TemplateRenderError``)."""


def template_render(template: str, context: dict) -> str:
    """Render an accepted template in the sandbox (Prefect's ``render_user_template_sync``)."""
    if not maybe_template(template):
        return template
    try:
        return _environment.from_string(template).render(context)
    except Exception as exc:  # noqa: BLE001 - the sandbox's refusals, undefined calls, type errors
        raise TemplateRenderError(f"Failed to render template due to the following error: {exc!r}") from None


def maybe_template(value: str) -> bool:
    return "{{" in value or "{%" in value


__all__ = [
    "TemplateObject",
    "TemplateRenderError",
    "TemplateResource",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "maybe_template",
    "template_check",
    "template_error",
    "template_render",
    "template_ui_base",
]
