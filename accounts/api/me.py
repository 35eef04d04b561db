"""Principal-scoped routes: who am I, and which workspaces can I reach (what ``prefect cloud login``
asks)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from access.gate import workspaces_open_to
from access.views import caller_of
from accounts.models import ServiceAccount


class MeApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        principal = request.user
        if isinstance(principal, ServiceAccount):
            return Response(
                {
                    "id": str(principal.id),
                    "actor_type": "bot",
                    "name": principal.name,
                    "account_id": str(principal.account_id),
                }
            )
        return Response(
            {
                "id": str(principal.id),
                "actor_type": "user",
                "email": principal.email,
                "first_name": principal.first_name,
                "last_name": principal.last_name,
                "handle": principal.email.split("@", 1)[0],
            }
        )


# One entry of ``/api/me/workspaces``: the answer is a list of these.
MY_WORKSPACE = inline_serializer(
    "MyWorkspace",
    fields={
        "account_id": serializers.UUIDField(),
        "account_name": serializers.CharField(),
        "account_handle": serializers.CharField(),
        "workspace_id": serializers.UUIDField(),
        "workspace_name": serializers.CharField(),
        "workspace_description": serializers.CharField(allow_blank=True),
        "workspace_handle": serializers.CharField(),
        "roles": serializers.ListField(child=serializers.CharField()),
    },
    many=True,
)


class MyWorkspacesApi(APIView):
    # The workspaces of the person (or service account) the request authenticates.
    @extend_schema(responses=MY_WORKSPACE)
    def get(self, request):
        return Response(
            [
                {
                    "account_id": str(workspace.account_id),
                    "account_name": workspace.account.name,
                    "account_handle": workspace.account.handle,
                    "workspace_id": str(workspace.id),
                    "workspace_name": workspace.name,
                    "workspace_description": workspace.description or "",
                    "workspace_handle": workspace.handle,
                    "roles": sorted(access.roles),
                }
                # Not those of accounts whose IP allowlist refuses this address (nor, for a browser
                # session, of accounts enforcing SSO it did not come from), as in the console.
                for workspace, access in workspaces_open_to(caller_of(request))[0]
            ]
        )
