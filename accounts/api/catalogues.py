"""The vocabularies: ``GET /api/accounts/permissions`` and ``GET /api/workspace_scopes``."""

from __future__ import annotations

from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.base import ApiMixin
from accounts.permissions import (
    ACCOUNT_PERMISSIONS,
    SCOPES_BY_NAME,
    WORKSPACE_SCOPES,
    expand_scopes,
)


class AccountPermissionsApi(ApiMixin, APIView):
    """``GET /api/accounts/permissions``: the account permission vocabulary."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response(sorted(ACCOUNT_PERMISSIONS))


class WorkspaceScopesApi(ApiMixin, APIView):
    """``GET /api/workspace_scopes``: every workspace scope with what it includes."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        result = []
        for scope in WORKSPACE_SCOPES:
            noun = scope.name.split("_", 1)[1]
            see = f"see_{noun}"
            result.append(
                {
                    "name": scope.name,
                    "title": scope.title,
                    "feature_group": noun,
                    "includes_scopes": sorted(expand_scopes([scope.name]) - {scope.name}),
                    "see_scope": see if see in SCOPES_BY_NAME and see != scope.name else None,
                }
            )
        return Response(result)
