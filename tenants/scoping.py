"""Fail-closed workspace scoping.

``WorkspaceScopedModel.objects`` only answers inside a workspace scope: without one it raises
``WorkspaceScopeMissing`` instead of returning every tenant's rows. The ways out are explicit and
visible in review:

* ``workspace_scope(workspace_id)``: a context manager that sets the scope (the API view mixin and
  background tasks use it);
* ``Model.objects.for_workspace(workspace_id)``: one query for a named workspace;
* ``Model.objects.unscoped()``: every tenant's rows, for cross-tenant sweeps and the operator admin.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

from django.db import models

_current_workspace_id: ContextVar[uuid.UUID | None] = ContextVar("current_workspace_id", default=None)


class WorkspaceScopeMissing(RuntimeError):
    """A workspace-scoped model was queried without a workspace scope."""


def current_workspace_id() -> uuid.UUID | None:
    return _current_workspace_id.get()


def enter_workspace_scope(workspace_id: uuid.UUID | str) -> Token:
    """Set the scope until ``leave_workspace_scope(token)`` (for code that cannot use a ``with``
    block, such as a view's ``initial``/``dispatch`` pair)."""
    value = workspace_id if isinstance(workspace_id, uuid.UUID) else uuid.UUID(str(workspace_id))
    return _current_workspace_id.set(value)


def leave_workspace_scope(token: Token) -> None:
    _current_workspace_id.reset(token)


@contextmanager
def workspace_scope(workspace_id: uuid.UUID | str) -> Iterator[uuid.UUID]:
    token = enter_workspace_scope(workspace_id)
    try:
        yield _current_workspace_id.get()
    finally:
        leave_workspace_scope(token)


class WorkspaceScopedQuerySet(models.QuerySet):
    pass


class WorkspaceScopedManager(models.Manager.from_queryset(WorkspaceScopedQuerySet)):
    def get_queryset(self) -> WorkspaceScopedQuerySet:
        workspace_id = _current_workspace_id.get()
        if workspace_id is None:
            raise WorkspaceScopeMissing(
                f"{self.model.__name__}.objects used outside a workspace scope; use workspace_scope(), "
                ".for_workspace() or .unscoped()"
            )
        return super().get_queryset().filter(workspace_id=workspace_id)

    def for_workspace(self, workspace_id: uuid.UUID | str) -> WorkspaceScopedQuerySet:
        return super().get_queryset().filter(workspace_id=workspace_id)

    def unscoped(self) -> WorkspaceScopedQuerySet:
        return super().get_queryset()

    def create(self, **kwargs):
        """Create a row in the current scope, or in the workspace named explicitly; a workspace
        other than the current scope is refused."""
        workspace_id = _current_workspace_id.get()
        given = kwargs.get("workspace_id") or getattr(kwargs.get("workspace"), "pk", None)
        if given is None:
            if workspace_id is None:
                raise WorkspaceScopeMissing(f"{self.model.__name__} created without a workspace")
            kwargs["workspace_id"] = workspace_id
        elif workspace_id is not None and str(given) != str(workspace_id):
            raise WorkspaceScopeMissing(
                "refusing to create a row in a workspace other than the current scope"
            )
        return self.unscoped().create(**kwargs)


class WorkspaceScopedModel(models.Model):
    """Base for every row owned by a workspace. Unique constraints must include ``workspace``."""

    workspace = models.ForeignKey("tenants.Workspace", on_delete=models.CASCADE, related_name="+")

    objects = WorkspaceScopedManager()

    class Meta:
        abstract = True
        # Related-object access and cascades use Django's plain base manager: they start from a row
        # already reached through a scope.
