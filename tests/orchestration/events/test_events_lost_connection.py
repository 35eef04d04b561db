"""A lost database connection on the events sockets: a retryable refusal, never a 500, and never a
transaction left behind.

* The handshake's gate read (the key, the workspace, the access) that loses its connection decided
  nothing: the socket is closed with 1013 "try again later" (Cloud mode: accepted, then closed, which
  the client retries), not answered 500 (an exception before accepting) or refused as a bad key.
* An event batch is always its own outermost transaction: a writer thread's connection left inside
  a transaction (the symptom: a batch's ``RELEASE SAVEPOINT`` never followed by a commit, its rows
  locked for the next writer) is discarded before the batch; and a backend terminated at any
  statement of a batch, or at its commit, leaves the connection clean for the next batch, which
  commits.
"""

from __future__ import annotations

import contextlib
import queue
import threading

import psycopg
import pytest
from django.db import InterfaceError, close_old_connections, connection, connections, transaction

from accounts import authcache
from orchestration.events import consumers
from orchestration.events.schemas import EventIn
from orchestration.models import Event
from tests.orchestration.events.conftest import communicator, events_path, make_event, open_cloud, run

pytestmark = pytest.mark.django_db(transaction=True)


class _LoseTheConnection:
    """Once armed, the first ``times`` statements fail as on a connection the server closed."""

    def __init__(self, times: int = 1, *, armed: bool = True):
        self.left = times
        self.armed = armed
        self.refused: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        if self.armed and self.left:
            self.left -= 1
            self.refused.append(sql)
            raise InterfaceError("connection already closed")
        return execute(sql, params, many, context)


def _stored(workspace_id, ids) -> set[str]:
    found = Event.objects.unscoped().filter(workspace_id=workspace_id, id__in=list(ids))
    return {str(pk) for pk in found.values_list("id", flat=True)}


class TestHandshake:
    def test_cloud_mode_is_told_to_try_again_later_then_connects(self, tenant):
        path = events_path(tenant, "in")
        breaker = _LoseTheConnection()

        async def attempt():
            ws = communicator(path, authorization=f"bearer {tenant.service_key}")
            connected, _ = await ws.connect()
            output = await ws.receive_output(timeout=2)
            await ws.wait()
            return connected, output

        # Thread-sensitive database work of the socket runs in this thread (async_to_sync).
        with connection.execute_wrapper(breaker):
            connected, output = run(attempt)
        assert breaker.refused, "the handshake read nothing"
        assert connected, "a lost connection is not a refused key (HTTP 403) nor a 500"
        assert output["type"] == "websocket.close" and output["code"] == 1013, output
        assert "retry" in output.get("reason", "")

        event = make_event()

        async def emit():
            ws = await open_cloud(path, tenant.service_key)
            await ws.send_json_to(event)
            await ws.disconnect()

        run(emit)
        assert _stored(tenant.workspace.id, [event["id"]]) == {event["id"]}

    def test_the_prefect_handshake_is_told_to_try_again_later(self, tenant):
        breaker = _LoseTheConnection()

        async def attempt():
            ws = communicator(events_path(tenant, "in"), subprotocols=["prefect"])
            connected, subprotocol = await ws.connect()
            assert connected and subprotocol == "prefect"
            await ws.send_json_to({"type": "auth", "token": tenant.service_key})
            output = await ws.receive_output(timeout=2)
            await ws.wait()
            return output

        with connection.execute_wrapper(breaker):
            output = run(attempt)
        assert breaker.refused
        assert output["type"] == "websocket.close" and output["code"] == 1013, output

    def test_a_due_reauthorization_that_cannot_read_keeps_the_batch(self, tenant, monkeypatch):
        """The socket's periodic check of its key finds the database gone: the events it holds are
        stored (once it answers), not dropped with a closed socket."""
        path = events_path(tenant, "in")
        event = make_event()
        breaker = _LoseTheConnection(armed=False)

        async def emit():
            ws = await open_cloud(path, tenant.service_key)
            monkeypatch.setattr(consumers, "REAUTHORIZE_EVERY", 0.0)
            authcache.clear()  # the check reads the key again
            breaker.armed = True
            await ws.send_json_to(event)
            await ws.disconnect()

        with connection.execute_wrapper(breaker):
            run(emit)
        assert breaker.refused
        assert _stored(tenant.workspace.id, [event["id"]]) == {event["id"]}


# --- The batch writer ---------------------------------------------------------------------------


class _Writer:
    """One long-lived thread running units of work, as the socket's executor threads do."""

    def __init__(self):
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            job, answer = self._jobs.get()
            if job is None:
                connections.close_all()
                answer.put(None)
                return
            try:
                answer.put((True, job()))
            except Exception as error:
                answer.put((False, error))

    def call(self, job):
        answer: queue.Queue = queue.Queue()
        self._jobs.put((job, answer))
        return answer.get(timeout=60)

    def stop(self):
        self._jobs.put((None, queue.Queue()))
        self._thread.join(10)


@contextlib.contextmanager
def _writer():
    writer = _Writer()
    try:
        yield writer
    finally:
        writer.stop()


def _batch(n: int = 3) -> list[EventIn]:
    return [EventIn.model_validate(make_event()) for _ in range(n)]


def _store(workspace_id, batch):
    """What the socket's executor thread runs for a batch (``database_sync_to_async``: stale
    connections closed before and after)."""
    close_old_connections()
    try:
        return consumers._store_and_render(workspace_id, batch)
    finally:
        close_old_connections()


def _clean() -> tuple:
    """This thread's connection, as the next unit of work finds it."""
    raw = connection.connection
    status = getattr(getattr(raw, "info", None), "transaction_status", None)
    return (
        connection.in_atomic_block,
        connection.needs_rollback,
        raw is not None and not connection.autocommit,
        status is not None and int(status) != 0,
    )


CLEAN = (False, False, False, False)


def _leave_atomic_open():
    transaction.atomic().__enter__()  # entered, never left
    Event.objects.unscoped().exists()


def test_a_batch_never_runs_inside_a_transaction_left_open(tenant):
    workspace_id = tenant.workspace.id
    batch = _batch()
    with _writer() as writer:
        assert writer.call(_leave_atomic_open)[0]
        ok, result = writer.call(lambda: _store(workspace_id, batch))
        assert ok, result
        # Committed: this thread's connection sees the batch.
        assert _stored(workspace_id, [str(e.id) for e in batch]) == {str(e.id) for e in batch}
        assert writer.call(_clean) == (True, CLEAN)


def _dsn() -> str:
    s = connection.settings_dict
    return f"host={s['HOST'] or 'localhost'} port={s['PORT'] or 5432} user={s['USER']} dbname={s['NAME']}"


def _terminate(pid: int) -> None:
    with psycopg.connect(
        _dsn(), autocommit=True, password=connection.settings_dict["PASSWORD"] or None
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(200):
            if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                return


# A batch of one event writes in four statements, then commits.
KILL_POINTS = ["statement-0", "statement-1", "statement-2", "statement-3", "commit"]


@pytest.mark.parametrize("where", KILL_POINTS)
def test_a_backend_terminated_inside_a_batch_leaves_the_next_batch_committing(tenant, where):
    if connection.vendor != "postgresql":
        pytest.skip("terminating a backend is PostgreSQL's")
    workspace_id = tenant.workspace.id
    seen = {"n": 0}

    def killer(execute, sql, params, many, context):
        index = seen["n"]
        seen["n"] += 1
        if where == f"statement-{index}":
            _terminate(connection.connection.info.backend_pid)
        result = execute(sql, params, many, context)
        if where == "commit" and index == 3:
            _terminate(connection.connection.info.backend_pid)
        return result

    def broken_batch():
        connection.ensure_connection()
        with connection.execute_wrapper(killer):
            return _store(workspace_id, _batch(1))

    nxt = _batch()
    with _writer() as writer:
        ok, error = writer.call(broken_batch)
        assert not ok, f"the backend was terminated at {where}, yet the batch stored"
        assert writer.call(_clean) == (True, CLEAN)
        ok, result = writer.call(lambda: _store(workspace_id, nxt))
        assert ok, result
        assert writer.call(_clean) == (True, CLEAN)
    assert _stored(workspace_id, [str(e.id) for e in nxt]) == {str(e.id) for e in nxt}
