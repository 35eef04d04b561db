"""User-supplied Jinja templates (automation actions' subjects, bodies, payloads and parameters),
checked as Prefect's server checks them (``prefect.server.utilities.user_templates``): parsed by
Jinja's ``ImmutableSandboxedEnvironment`` (the one that will render them), no more than 10 ``for``
loops, nested no more than 2 deep. Checking never renders."""

from __future__ import annotations

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


_environment = ImmutableSandboxedEnvironment(undefined=ChainableUndefined)
_environment.globals["range"] = _bounded_range


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
    ``message``) unless ``template`` is one Prefect would accept."""
    root = _environment.parse(template)
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
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "maybe_template",
    "template_check",
    "template_error",
    "template_render",
]
