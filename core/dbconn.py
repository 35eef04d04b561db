"""A unit of work on a long-lived thread starts and ends outside any transaction.

Threads that serve one short unit of work after another (the events socket's batch writers, run in
an executor's threads) keep their database connection between units. Should a unit ever leave that
connection inside a transaction, whether Django's atomic bookkeeping survived an error or the server
still has a transaction open, the next unit's ``transaction.atomic()`` would become a savepoint
inside it: its ``RELEASE SAVEPOINT`` commits nothing, the rows stay locked, and the writer that
re-sends the same ids waits on them. ``leave_no_transaction`` is called before and after each unit:
a connection found inside a transaction it does not own is rolled back where it can be and closed,
and the next statement opens a fresh one.
"""

from __future__ import annotations

import contextlib
import logging

from django.db import connections

logger = logging.getLogger(__name__)


def _server_in_transaction(raw) -> bool:
    """Whether the driver's connection has a transaction open (PostgreSQL's status, read locally)."""
    info = getattr(raw, "info", None)
    status = getattr(info, "transaction_status", None)
    return status is not None and int(status) != 0  # psycopg's TransactionStatus.IDLE


def leave_no_transaction(alias: str = "default") -> bool:
    """Make sure this thread's connection is outside any transaction; True when one was found (and
    the connection discarded)."""
    conn = connections[alias]
    leaked = conn.in_atomic_block or conn.closed_in_transaction or conn.needs_rollback
    if conn.connection is not None:
        leaked = leaked or not conn.autocommit or _server_in_transaction(conn.connection)
    if not leaked:
        return False
    logger.warning(
        "A database connection was left inside a transaction (atomic block: %s); discarding it",
        conn.in_atomic_block,
    )
    raw, conn.connection = conn.connection, None
    # Django's transaction bookkeeping starts over, as for a new connection.
    conn.in_atomic_block = False
    conn.savepoint_ids = []
    conn.atomic_blocks = []
    conn.needs_rollback = False
    conn.closed_in_transaction = False
    conn.commit_on_exit = True
    conn.run_on_commit = []
    conn.autocommit = conn.settings_dict["AUTOCOMMIT"]
    if raw is not None:
        with contextlib.suppress(Exception):  # a dead connection cannot roll back; closing ends it
            raw.rollback()
        with contextlib.suppress(Exception):
            pool = getattr(raw, "_pool", None)
            if pool is not None:
                pool.putconn(raw)  # the pool discards or resets it
            else:
                raw.close()
    return True
