"""Every (method, path) of Prefect's own server API is served under the workspace prefix.

The reference is the OpenAPI of the pinned package's server (``create_api_app().openapi()``), read
at test time, with no exclusion list: a route Prefect adds in a release we upgrade to fails here
until it is served. Path parameters are compared by position, not by name.
"""

from __future__ import annotations

import re

from tests.routes import workspace_routes

_WORKSPACE_PREFIX = re.compile(r"^api/accounts/<[^>]+>/workspaces/<[^>]+>/?")
_OUR_PARAM = re.compile(r"<[^>]+>")
_THEIR_PARAM = re.compile(r"\{[^}]+\}")


def _ours() -> set[tuple[str, str]]:
    served = set()
    for route in workspace_routes():
        path = "/" + _OUR_PARAM.sub("{}", _WORKSPACE_PREFIX.sub("", route.template))
        for method in route.methods():
            served.add((method, path.rstrip("/") or "/"))
    return served


def _prefects() -> set[tuple[str, str]]:
    from prefect.server.api.server import create_api_app  # 20 s to build: only in this test

    spec = create_api_app().openapi()
    wanted = set()
    for path, operations in spec["paths"].items():
        generic = _THEIR_PARAM.sub("{}", path.removeprefix("/api")).rstrip("/") or "/"
        for method in operations:
            wanted.add((method.upper(), generic))
    return wanted


def test_every_route_of_prefects_server_is_served_under_the_workspace():
    wanted = _prefects()
    assert len(wanted) >= 188
    missing = sorted(wanted - _ours(), key=lambda pair: (pair[1], pair[0]))
    assert not missing, "\n".join(f"{method} {path}" for method, path in missing)
