"""The control plane's OpenAPI document (drf-spectacular), served at ``GET /api/schema/``.

It describes this product's own API: the account API, the principal routes (``/api/me/``) and the
catalogues. Prefect's wire routes under a workspace (``PrefectApiView``: ``schema = None``) are
Prefect's contract, described by Prefect's own document, and stay out.

Views that read and write JSON without a DRF serializer are described as taking and answering any
JSON value; each operation says which account permission or workspace scope it needs (the view's
declaration, the same one the access gate enforces) and is tagged by the resource it serves.
"""

from __future__ import annotations

import inspect
import re

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_array_type, build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.generics import GenericAPIView

from access.views import AccountApiView, WorkspaceApiView

# Path prefixes that name the tenant rather than the resource.
_TENANT_PREFIX = re.compile(r"^/api/(accounts/\{account_ref\}/(workspaces/\{workspace_ref\}/)?)?")
_TENANT_PARAMETERS = {
    "account_ref": "The account's id or handle.",
    "workspace_ref": "The workspace's id or handle.",
}


class ControlPlaneAutoSchema(AutoSchema):
    def _has_serializer(self) -> bool:
        view = self.view
        return isinstance(view, GenericAPIView) or any(
            hasattr(view, name) for name in ("get_serializer", "get_serializer_class", "serializer_class")
        )

    def get_request_serializer(self):
        return super().get_request_serializer() if self._has_serializer() else OpenApiTypes.ANY

    def _is_collection_read(self) -> bool:
        """A GET on a path that also takes POST to create and ends in a name, not an id
        (``sso/domains``, ``users/{user_id}/api_keys``): it answers a list."""
        last = self.path.rstrip("/").rsplit("/", 1)[-1]
        return (
            self.method == "GET"
            and not self._has_serializer()
            and not last.startswith("{")
            and hasattr(self.view, "post")
        )

    def get_response_serializers(self):
        if self._has_serializer():
            return super().get_response_serializers()
        if self.method == "DELETE":
            return None  # 204, no body (drf-spectacular's answer for a missing serializer)
        if self._is_collection_read():
            return {200: build_array_type(build_basic_type(OpenApiTypes.ANY))}
        return OpenApiTypes.ANY

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        if self._is_collection_read():
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id

    def get_override_parameters(self):
        described = [
            OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.PATH, description=description)
            for name, description in _TENANT_PARAMETERS.items()
            if f"{{{name}}}" in self.path
        ]
        return [*described, *super().get_override_parameters()]

    def get_description(self) -> str:
        # The view's own docstring only: its bases' docstrings describe the machinery, not the route.
        own = self.view.__class__.__dict__.get("__doc__")
        parts = [inspect.cleandoc(own)] if own else []
        requirement = self._requirement()
        if requirement:
            parts.append(requirement)
        return "\n\n".join(parts)

    def _requirement(self) -> str | None:
        view = self.view
        if isinstance(view, WorkspaceApiView):
            kind = "workspace scope"
        elif isinstance(view, AccountApiView):
            kind = "account permission"
        else:
            return None
        needed = view.declared_requirement(self.method)
        return f"Requires the {kind} `{needed}`." if needed else None

    def get_tags(self) -> list[str]:
        rest = _TENANT_PREFIX.sub("", self.path).strip("/")
        first = rest.split("/", 1)[0]
        return ["accounts" if not first or first.startswith("{") else first]


def drop_trailing_slash_aliases(endpoints, **kwargs):
    """A route served with and without a trailing slash (``teams`` and ``teams/``) is one operation:
    the form without the slash is kept."""
    bare = {(path, method, _view_class(callback)) for path, _, method, callback in endpoints}
    return [
        (path, regex, method, callback)
        for path, regex, method, callback in endpoints
        if not (path.endswith("/") and (path.rstrip("/"), method, _view_class(callback)) in bare)
    ]


def _view_class(callback):
    return getattr(callback, "cls", callback)
