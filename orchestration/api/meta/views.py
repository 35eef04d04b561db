"""Workspace routes the ``prefect`` client calls before anything else, and the server's own:
health, hello, ready, version, settings, default result storage, integrations (collections)."""

from __future__ import annotations

import json
import uuid
from functools import cache
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from access.csrf import MAX_CLIENT_LENGTH, csrf_token_issue
from access.views import MEMBERS
from core.errors import NotFound
from orchestration.api.base import InvalidBody, PrefectApiView, no_content
from orchestration.schemas.saved_searches import ResultStorageUpdate
from orchestration.selectors.filters import DEFAULT_LIMIT
from orchestration.selectors.meta import database_ready, result_storage_default
from orchestration.services.saved_searches import result_storage_clear, result_storage_set

# The wire protocol's version (prefect.client.constants.SERVER_API_VERSION), which ``/version``
# answers; ``admin/version`` answers the Prefect release this server is compatible with.
SERVER_API_VERSION = "0.8.4"

COLLECTIONS_DIR = Path(__file__).resolve().parent / "collections"
# Prefect's server fetches these from the collection registry on GitHub and falls back to the
# copies its package ships; it ships only the worker metadata, served here from a copy of it.
KNOWN_VIEWS = (
    "aggregate-block-metadata",
    "aggregate-flow-metadata",
    "aggregate-worker-metadata",
    "demo-flows",
)


class HealthApi(PrefectApiView):
    required_scopes = {"GET": MEMBERS}

    @extend_schema(responses=OpenApiTypes.BOOL)
    def get(self, request):
        return Response(True)


class HelloApi(PrefectApiView):
    required_scopes = {"GET": MEMBERS}

    def get(self, request):
        return Response("👋")


class ReadyApi(PrefectApiView):
    required_scopes = {"GET": MEMBERS}

    def get(self, request):
        if database_ready():
            return Response({"message": "OK"})
        return Response({"message": "Database is not available"}, status=503)


class VersionApi(PrefectApiView):
    required_scopes = {"GET": MEMBERS}

    def get(self, request):
        return Response(SERVER_API_VERSION)


class AdminVersionApi(PrefectApiView):
    required_scopes = {"GET": MEMBERS}

    @extend_schema(responses=OpenApiTypes.STR)
    def get(self, request):
        return Response(settings.PREFECT_API_COMPAT_VERSION)


class AdminSettingsApi(PrefectApiView):
    """Prefect answers its server's settings with secrets obfuscated. A workspace has no server of
    its own: it sees the settings that shape its API's answers, and no secret, key or URL of the
    machinery behind it. Anyone with access reads it: Prefect's UI asks for it on its pages
    whatever the person's role (a Viewer's deployment page too), and it holds nothing a Viewer may
    not see."""

    required_scopes = {"GET": MEMBERS}

    def get(self, request):
        return Response(
            {
                "api": {"default_limit": DEFAULT_LIMIT},
                "server": {
                    "api": {"default_limit": DEFAULT_LIMIT},
                    # Prefect's UI is served under each workspace; it sends no analytics from a
                    # self-hosted control plane (it reads analytics_enabled here, default on) and
                    # shows no promotion of Prefect Cloud.
                    "ui": {"enabled": True, "show_promotional_content": False},
                    "analytics_enabled": False,
                    "csrf_protection_enabled": False,
                },
                "client": {"server_version": settings.PREFECT_API_COMPAT_VERSION},
                "experiments": {},
            }
        )


class CsrfTokenApi(PrefectApiView):
    """``csrf-token?client=<id>``: a browser session (Prefect's UI) gets a token for its writes, in
    Prefect's shape (``access.csrf``). API keys make CSRF moot: to a key this answers as a Prefect
    server with CSRF protection off, which the client reads as "send no CSRF headers", silently."""

    required_scopes = {"GET": MEMBERS}

    @extend_schema(responses={422: OpenApiTypes.OBJECT})
    def get(self, request):
        session = getattr(request._request, "session", None)
        if request.auth is not None or session is None or not session.session_key:
            disabled = Response({"detail": "CSRF protection is disabled."}, status=422)
            # Every client in server mode asks this before its first write and is meant to get it:
            # no "Unprocessable Entity" warning per ``prefect`` command in the server's log (Django's
            # request logger skips a response flagged as logged; the access log still has it).
            disabled._has_been_logged = True
            return disabled
        client = request.query_params.get("client")
        if not client or len(client) > MAX_CLIENT_LENGTH:
            raise InvalidBody(
                "Invalid request received.",
                extra={
                    "exception_detail": [
                        {
                            "type": "missing" if not client else "string_too_long",
                            "loc": ["query", "client"],
                            "msg": "Field required"
                            if not client
                            else f"String should have at most {MAX_CLIENT_LENGTH} characters",
                        }
                    ]
                },
            )
        token, expiration = csrf_token_issue(session_key=session.session_key, client=client)
        now = timezone.now()
        return Response(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"csrf:{client}:{token}")),
                "created": now.isoformat(),
                "updated": now.isoformat(),
                "token": token,
                "client": client,
                "expiration": expiration.isoformat(),
            }
        )


class AdminStorageApi(PrefectApiView):
    """The workspace's default result storage block (``prefect result-storage``). Setting it
    changes where every flow of the workspace keeps its results: a workspace setting."""

    required_scopes = {
        "GET": MEMBERS,
        "PUT": "write_workspace_settings",
        "DELETE": "write_workspace_settings",
    }

    @extend_schema(
        responses=inline_serializer(
            "ServerDefaultResultStorage",
            {"default_result_storage_block_id": serializers.UUIDField(allow_null=True)},
        )
    )
    def get(self, request):
        block_id = result_storage_default()
        return Response({"default_result_storage_block_id": str(block_id) if block_id else None})

    def put(self, request):
        block_id = result_storage_set(data=self.parse(ResultStorageUpdate))
        return Response({"default_result_storage_block_id": str(block_id)})

    def delete(self, request):
        result_storage_clear()
        return no_content()


@cache
def _view_text(view: str) -> bytes:
    data = json.loads((COLLECTIONS_DIR / f"{view}.json").read_text())
    if view == "aggregate-worker-metadata":
        data.get("prefect", {}).pop("prefect-agent", None)
    return json.dumps(data).encode()


class CollectionViewApi(PrefectApiView):
    required_scopes = {"GET": MEMBERS}

    def get(self, request, view: str):
        if view not in KNOWN_VIEWS:
            raise NotFound(f"View {view} not found in registry")
        if not (COLLECTIONS_DIR / f"{view}.json").is_file():
            raise NotFound(f"Requested content missing for view {view}")
        return HttpResponse(_view_text(view), content_type="application/json")
