"""Walks the URL resolver so tests cover every route, including ones added later."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass(frozen=True)
class Route:
    template: str  # e.g. "api/accounts/<str:account_ref>/workspaces/<str:workspace_ref>/health"
    view_class: type | None
    callback: object

    @property
    def params(self) -> list[str]:
        return [m.group("name") for m in _PARAM.finditer(self.template)]

    def build(self, **values: str) -> str:
        def sub(match: re.Match) -> str:
            name = match.group("name")
            if name in values:
                return str(values[name])
            if match.group("converter") in ("int",):
                return "1"
            return str(uuid.uuid4())

        return "/" + _PARAM.sub(sub, self.template)

    def methods(self) -> list[str]:
        declared = getattr(self.view_class, "required_scopes", None) or getattr(
            self.view_class, "required_permissions", None
        )
        return sorted(declared) if declared else []


def iter_routes(patterns=None, prefix: str = "") -> Iterator[Route]:
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from iter_routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            callback = entry.callback
            yield Route(prefix + str(entry.pattern), getattr(callback, "view_class", None), callback)


def workspace_routes() -> list[Route]:
    return [r for r in iter_routes() if {"account_ref", "workspace_ref"} <= set(r.params)]


def account_routes() -> list[Route]:
    return [r for r in iter_routes() if "account_ref" in r.params and "workspace_ref" not in r.params]
