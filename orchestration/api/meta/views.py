"""Workspace routes the ``prefect`` client calls before anything else."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from access.views import MEMBERS
from orchestration.api.base import PrefectApiView


class HealthApi(PrefectApiView):
    required_scopes = {"GET": MEMBERS}

    @extend_schema(responses=OpenApiTypes.BOOL)
    def get(self, request):
        return Response(True)


class AdminVersionApi(PrefectApiView):
    required_scopes = {"GET": MEMBERS}

    @extend_schema(responses=OpenApiTypes.STR)
    def get(self, request):
        return Response(settings.PREFECT_API_COMPAT_VERSION)


class CsrfTokenApi(PrefectApiView):
    """API keys make CSRF moot: answer as a Prefect server with CSRF protection off, which the
    client reads as "send no CSRF headers"."""

    required_scopes = {"GET": MEMBERS}

    @extend_schema(responses={422: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response({"detail": "CSRF protection is disabled."}, status=422)


class AdminStorageApi(PrefectApiView):
    required_scopes = {"GET": MEMBERS}

    @extend_schema(
        responses=inline_serializer(
            "ServerDefaultResultStorage",
            {"default_result_storage_block_id": serializers.UUIDField(allow_null=True)},
        )
    )
    def get(self, request):
        return Response({"default_result_storage_block_id": None})
