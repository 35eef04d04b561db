"""Row-level security: the database half of workspace scoping, the last belt under a forgotten filter.

On PostgreSQL every workspace-owned table (each ``WorkspaceScopedModel``'s) carries one policy,
``workspace_isolation`` (``orchestration/migrations/0014_row_level_security``,
``accounts/migrations/0010_row_level_security``), with row-level security enabled and forced, so
the table's owner is held to it too (a superuser or a role with BYPASSRLS never is). A row is
visible and writable when the connection's setting ``controlplane.workspace_id`` is unset or empty
(the system context: Celery tasks, beat, management commands, migrations, the account-level pages
that span workspaces) or equals the row's ``workspace_id``. The policy reads the setting through a
scalar subquery, so PostgreSQL evaluates it once per statement (an InitPlan), not once per row; the
queries' own ``workspace_id = …`` conditions still lead their ``(workspace_id, …)`` indexes.

Who sets it: the surfaces that the access gate has authorized for one workspace, for as long as they
act for it: the API and UI view base (``access.views.WorkspaceApiView``, once per request), the
worker poll's database work, the event and task-run websockets' database work
(``database_workspace``).

Who resets it, so no connection carries a workspace to anything else:

* a pooled connection, when it goes back to the pool (``pool_reset``, psycopg_pool's ``reset``
  callback, run by the pool's worker thread before anyone else may take the connection);
* a connection kept open by its thread (``CONN_MAX_AGE`` above 0, or the test client's), when the
  request finishes (``release_after_request``, after the response has been sent);
* a unit of work in a thread of its own (a websocket's, the poll's refresh), when the unit ends
  (``database_workspace``);
* a connection that is closed carries nothing.

A reset that fails closes the connection instead (a pooled one is then discarded by the pool).
The statements go on the driver's connection, as Django's own session settings do, so they are not
among a request's counted queries. The value a connection carries is remembered on the connection itself, so a request that set none
costs nothing to release, and a setting made inside a transaction that is later rolled back (which
PostgreSQL undoes) is never trusted: the gate sets it outside any transaction in production, and a
reset is always sent when the connection was ever set.

``across_workspaces()`` is the visible way out for a deliberate cross-tenant read inside a
workspace's request (an account-wide plan count): it clears the setting for the block and puts it
back. Every function here does nothing on another database than PostgreSQL.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.operations.base import Operation

logger = logging.getLogger(__name__)

#: The connection setting the policies read.
SETTING = "controlplane.workspace_id"
#: The policy's name on every workspace-owned table.
POLICY = "workspace_isolation"

_SET = "SELECT set_config('controlplane.workspace_id', %s, false)"
_SET_LOCAL = "SELECT set_config('controlplane.workspace_id', %s, true)"
_RESET = "RESET controlplane.workspace_id"

# What each open psycopg connection was last told (a workspace id, as text). Keyed weakly by the
# driver's connection, so a closed and collected connection takes its entry with it.
_carried: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _postgres(using: str) -> bool:
    return connections[using].vendor == "postgresql"


def _session_statement(connection, sql: str, params: list | None = None) -> None:
    """A session setting sent on the driver's connection, as Django sends its own (the time zone):
    not one of the application's queries (a request's query count, ``execute_wrapper``), with
    Django's database errors (a lost connection is the usual retryable 503)."""
    connection.ensure_connection()
    with connection.wrap_database_errors:
        connection.connection.execute(sql, params)


def carried_by(raw_connection) -> str | None:
    """The workspace id a driver connection was pointed at and not yet reset, or None."""
    return _carried.get(raw_connection)


def database_workspace_set(workspace_id: uuid.UUID | str, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Point the current thread's connection at ``workspace_id`` (one round trip), until it is
    released (see the module)."""
    if not _postgres(using):
        return
    value = str(workspace_id if isinstance(workspace_id, uuid.UUID) else uuid.UUID(str(workspace_id)))
    connection = connections[using]
    _session_statement(connection, _SET, [value])
    _carried[connection.connection] = value


def database_workspace_release(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Reset the current thread's connection if it carries a workspace (no round trip otherwise).
    If the reset fails, the connection is closed, so it can carry nothing further."""
    if not _postgres(using):
        return
    connection = connections[using]
    raw = connection.connection
    if raw is None or raw not in _carried:
        return
    try:
        _session_statement(connection, _RESET)
    except Exception:
        # Closed (a pooled connection goes back through ``pool_reset``, which tries again or has
        # the pool discard it), so it carries nothing further.
        logger.warning(
            "resetting the row-level security workspace failed; closing the connection", exc_info=True
        )
        connection.close()
        return
    if not connection.in_atomic_block:
        _carried.pop(raw, None)
    # Inside a transaction (a test's), a rollback would undo the reset: the connection stays
    # remembered as carrying, so the next release resets it again.


@contextmanager
def database_workspace(workspace_id: uuid.UUID | str, *, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """The connection pointed at ``workspace_id`` for the block, and reset after it (a unit of
    work in a thread that serves other units: a websocket's, the poll's refresh)."""
    database_workspace_set(workspace_id, using=using)
    try:
        yield
    finally:
        database_workspace_release(using=using)


@contextmanager
def across_workspaces(*, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Every workspace's rows visible for the block, inside a request that set one: a deliberate
    cross-tenant read (an account-wide count for a plan limit). The setting is put back after."""
    if not _postgres(using):
        yield
        return
    connection = connections[using]
    raw = connection.connection
    value = _carried.get(raw) if raw is not None else None
    if value is None:
        yield
        return
    # Local to the transaction when in one, so a rollback of the block cannot undo the restore.
    statement = _SET_LOCAL if connection.in_atomic_block else _SET
    _session_statement(connection, statement, [""])
    try:
        yield
    finally:
        _session_statement(connection, statement, [value])


def release_after_request(**kwargs) -> None:
    """``request_finished``: a connection still open in this thread (persistent, or the test
    client's) carries no workspace into the next request. Django's own receiver runs first and has
    already returned a pooled connection (reset by ``pool_reset``) or closed a short-lived one."""
    for connection in connections.all(initialized_only=True):
        if connection.vendor == "postgresql" and connection.connection is not None:
            database_workspace_release(using=connection.alias)


def pool_reset(raw_connection) -> None:
    """psycopg_pool's ``reset`` callback: a connection coming back to the pool carries no
    workspace to its next user. Nothing is sent when it carries none."""
    if raw_connection in _carried:
        raw_connection.execute(_RESET)
        _carried.pop(raw_connection, None)


# --- The policy, as migrations add it ---------------------------------------------------------------

POLICY_WORKSPACE = "(SELECT NULLIF(current_setting('controlplane.workspace_id', true), '')::uuid)"


class WorkspaceRowLevelSecurity(Operation):
    """Enable, force and add the ``workspace_isolation`` policy on PostgreSQL tables (written to
    ``sqlmigrate`` too); nothing on another database."""

    reduces_to_sql = True
    reversible = True

    def __init__(self, tables):
        self.tables = tuple(tables)

    def deconstruct(self):
        return self.__class__.__name__, [], {"tables": self.tables}

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in self.tables:
            schema_editor.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
            schema_editor.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
            schema_editor.execute(
                f'CREATE POLICY workspace_isolation ON "{table}" '
                f"USING ({POLICY_WORKSPACE} IS NULL OR workspace_id = {POLICY_WORKSPACE})"
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in self.tables:
            schema_editor.execute(f'DROP POLICY IF EXISTS workspace_isolation ON "{table}"')
            schema_editor.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
            schema_editor.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')

    def describe(self):
        return f"Row-level security by workspace on {len(self.tables)} tables"
