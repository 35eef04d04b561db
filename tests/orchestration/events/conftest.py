"""Helpers for the events tests: captured client events, websocket clients for both handshakes,
and a way to run a coroutine from a (transactional) sync test."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from tests.websockets import WebsocketCommunicator  # noqa: E402, F401

CAPTURED = json.loads((Path(__file__).parent / "captured_events.json").read_text())


@pytest.fixture(scope="session", autouse=True)
def _end_thread_connections(django_db_setup, django_db_blocker):
    """Events are stored from worker threads, each with its own connection; PostgreSQL will not drop
    the test database while those are open, so end them when the session is over."""
    yield
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


def captured(name: str):
    """A fresh copy of captured client frames (``task_retry``, ``seq``, ``flow_run_cancelling``)."""
    return copy.deepcopy(CAPTURED[name])


def now_iso(delta: dt.timedelta = dt.timedelta(0)) -> str:
    return (dt.datetime.now(dt.UTC) + delta).isoformat().replace("+00:00", "Z")


def make_event(
    name: str = "test.event", *, occurred: str | None = None, resource_id: str | None = None, **extra
):
    """A minimal valid event occurring now."""
    event = {
        "id": str(uuid.uuid4()),
        "occurred": occurred or now_iso(),
        "event": name,
        "resource": {"prefect.resource.id": resource_id or f"test.resource.{uuid.uuid4()}"},
        "related": [],
        "payload": {},
    }
    event.update(extra)
    return event


def run(coro_fn, *args, **kwargs):
    """Run ``coro_fn(*args, **kwargs)`` from a sync test."""
    return async_to_sync(coro_fn)(*args, **kwargs)


def application():
    from config.asgi import application as app

    return app


def events_path(tenant, direction: str, *, by: str = "id") -> str:
    prefix = tenant.prefix if by == "id" else tenant.handle_prefix
    return f"{prefix}/events/{direction}"


def communicator(path: str, *, subprotocols=None, authorization: str | None = None) -> WebsocketCommunicator:
    headers = [(b"user-agent", b"prefect/3.9.1 (API 0.8.4)")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    return WebsocketCommunicator(application(), path, headers=headers, subprotocols=subprotocols or [])


async def open_prefect(
    path: str, token: str | None, *, authorization: str | None = None
) -> WebsocketCommunicator:
    """The self-hosted handshake: subprotocol ``prefect`` and an auth message; asserts success."""
    ws = communicator(path, subprotocols=["prefect"], authorization=authorization)
    connected, subprotocol = await ws.connect()
    assert connected and subprotocol == "prefect"
    await ws.send_json_to({"type": "auth", "token": token})
    assert await ws.receive_json_from() == {"type": "auth_success"}
    return ws


async def open_cloud(path: str, key: str, *, scheme: str = "bearer") -> WebsocketCommunicator:
    """Cloud mode: no subprotocol, no auth message, the key in the upgrade header."""
    ws = communicator(path, authorization=f"{scheme} {key}")
    connected, subprotocol = await ws.connect()
    assert connected and subprotocol is None
    return ws


async def refused(ws: WebsocketCommunicator, *, auth_token=..., expect_close_code: int = 1008) -> None:
    """Assert the socket is refused: before accepting, or (prefect handshake) after the auth
    message, with nothing but a close."""
    connected, detail = await ws.connect()
    if not connected:
        assert detail == expect_close_code
        return
    assert detail == "prefect"
    await ws.send_json_to({"type": "auth", "token": None if auth_token is ... else auth_token})
    output = await ws.receive_output(timeout=2)
    assert output["type"] == "websocket.close", output
    assert output.get("code") == expect_close_code
