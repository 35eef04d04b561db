"""Placeholders in parameters and run input, expanded as Prefect's server expands them when it creates
a run from a deployment or resumes a paused run: ``hydrate`` with a context built with
``raise_on_error``, ``render_jinja`` and ``render_workspace_variables`` (Prefect's
``prefect/utilities/schema_tools/hydration.py``). The kinds themselves are
``orchestration.schemas.hydration``'s; this renders templates (Jinja's sandbox, empty context,
undefined names render as nothing), reads the workspace's variables and raises on the first problem
with Prefect's message (``Invalid JSON: …``, ``Variable 'x' not found in workspace.``,
``Missing 'template' key in __prefect object``). A raw ``{{ prefect.variables.x }}`` string is not
a server-side placeholder: the client resolves those when it deploys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestration.schemas import hydration


class HydrationError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def has_placeholders(value: Any) -> bool:
    if isinstance(value, dict):
        return "__prefect_kind" in value or any(has_placeholders(item) for item in value.values())
    if isinstance(value, list):
        return any(has_placeholders(item) for item in value)
    return False


def hydrate(parameters: dict[str, Any], *, variables: Mapping[str, Any]) -> dict[str, Any]:
    """``parameters`` with every placeholder expanded; ``variables`` maps the workspace's variable
    names to their values. Raises :class:`HydrationError`."""
    context = hydration.HydrationContext(
        workspace_variables=dict(variables), render_workspace_variables=True, render_jinja=True
    )
    result = hydration.hydrate(parameters, context)
    error = hydration.first_error(result)
    if error is not None:
        raise HydrationError(error.message)
    return result


__all__ = ["HydrationError", "has_placeholders", "hydrate"]
