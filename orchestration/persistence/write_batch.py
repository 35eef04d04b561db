"""The rows a state change writes, sent to PostgreSQL as one statement.

A flow run's state change inserts the new state row and its event and updates the run: three
statements, each a round trip and a trip through the ORM's SQL compiler. Inside
``deferred_inserts()`` the inserts are collected instead (``insert_or_defer``) and ``flush`` sends
them with the run's update as one statement of data-modifying CTEs. Values are prepared by each
field exactly as the ORM prepares them for a save (``pre_save`` then ``get_db_prep_save``), so
defaults, ``auto_now`` stamps and JSON encoding are the same. Outside PostgreSQL, or outside the
block, rows are saved at once as before.

Rules that change a state row after it was proposed (``save_fields``) change the pending row when
it has not been written yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import connection
from django.db.models import Model

_pending: ContextVar[list[Model] | None] = ContextVar("deferred_inserts", default=None)


@contextmanager
def deferred_inserts() -> Iterator[list[Model] | None]:
    """Collect ``insert_or_defer`` rows while inside (on PostgreSQL); yields the list, or None
    where rows are written at once."""
    if connection.vendor != "postgresql":
        yield None
        return
    pending: list[Model] = []
    token = _pending.set(pending)
    try:
        yield pending
    finally:
        _pending.reset(token)


def insert_or_defer(obj: Model, write_now: Callable[[], object]) -> None:
    """Hold ``obj`` for ``flush`` inside ``deferred_inserts()``; elsewhere ``write_now()``."""
    pending = _pending.get()
    if pending is None:
        write_now()
        return
    pending.append(obj)


def save_fields(obj: Model, fields: Sequence[str]) -> None:
    """``obj.save(update_fields=fields)``, or nothing when ``obj`` is still waiting to be inserted
    (its insert will carry the new values)."""
    pending = _pending.get()
    if pending is not None and any(row is obj for row in pending):
        return
    obj.save(update_fields=list(fields))


def _insert_sql(obj: Model) -> tuple[str, list]:
    meta = obj._meta
    fields = [f for f in meta.concrete_fields if not getattr(f, "generated", False)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    placeholders = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(meta.db_table)
    # Identifiers from the model's metadata, quoted; every value is a parameter.
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", values  # noqa: S608


def _update_sql(obj: Model, field_names: Sequence[str]) -> tuple[str, list]:
    meta = obj._meta
    fields = [meta.get_field(name) for name in field_names]
    assignments = ", ".join(f"{connection.ops.quote_name(f.column)} = %s" for f in fields)
    values = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in fields]
    pk = meta.pk
    where = f"{connection.ops.quote_name(pk.column)} = %s"
    where_params = [pk.get_db_prep_value(obj.pk, connection)]
    workspace_id = getattr(obj, "workspace_id", None)
    if workspace_id is not None:  # the tenant bound, as every scoped query carries it
        where += f" AND {connection.ops.quote_name('workspace_id')} = %s"
        where_params.append(meta.get_field("workspace").get_db_prep_value(workspace_id, connection))
    sql = f"UPDATE {connection.ops.quote_name(meta.db_table)} SET {assignments} WHERE {where}"  # noqa: S608
    return sql, [*values, *where_params]


def flush(pending: list[Model], *, update: Model | None = None, update_fields: Sequence[str] = ()) -> None:
    """Write the pending inserts, and ``update``'s ``update_fields`` if given, in one statement."""
    statements = [_insert_sql(obj) for obj in pending]
    if update is not None:
        statements.append(_update_sql(update, update_fields))
    if not statements:
        return
    *first, (last_sql, last_params) = statements
    parts, params = [], []
    for i, (sql, values) in enumerate(first):
        parts.append(f"w{i} AS ({sql})")
        params.extend(values)
    sql = (f"WITH {', '.join(parts)} " if parts else "") + last_sql
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *last_params])
    for obj in pending:
        obj._state.adding = False
        obj._state.db = connection.alias
    pending.clear()
