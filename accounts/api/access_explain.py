"""``access/explain`` under a workspace: why an actor holds (or lacks) a scope."""

from __future__ import annotations

from rest_framework.response import Response

from access.views import WorkspaceApiView
from accounts.api.base import ApiMixin, body_uuid
from accounts.models import User
from accounts.permissions import SCOPES_BY_NAME, AccountRole
from accounts.selectors import account_actor_get, workspace_access_sources
from core.errors import NotFound, Unprocessable


class AccessExplainApi(ApiMixin, WorkspaceApiView):
    """Whether an actor (user or bot of the account) holds a scope in this workspace, and through
    which grants: its account role, direct grants, its teams, the workspace default role."""

    required_scopes = {"GET": "see_workspace_users"}

    def get(self, request):
        actor_id = body_uuid(request.query_params.get("actor"), "actor")
        scope = request.query_params.get("scope")
        if scope is not None and scope not in SCOPES_BY_NAME:
            raise Unprocessable(f"Unknown workspace scope: {scope}.", code="unknown_scope")
        actor = account_actor_get(account=self.workspace.account, actor_id=actor_id)
        if actor is None:
            raise NotFound("No such user or bot in this account.")
        account_role, sources = workspace_access_sources(actor, self.workspace)
        granting = [source for source in sources if scope is None or scope in source.scopes]
        scopes = frozenset().union(*(source.scopes for source in sources)) if sources else frozenset()
        return Response(
            {
                "actor_id": str(actor.pk),
                "actor_type": "user" if isinstance(actor, User) else "bot",
                "workspace_id": str(self.workspace.pk),
                "scope": scope,
                "account_role": AccountRole(account_role).label if account_role else None,
                "has_access": bool(sources),
                "allowed": (scope in scopes) if scope is not None else bool(sources),
                "granted_by": [source.as_wire() for source in granting],
                "sources": [source.as_wire() for source in sources],
                "scopes": sorted(scopes),
            }
        )
