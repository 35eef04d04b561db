"""Live harness: the real ``prefect`` client against this server, end to end.

* ``asgi_server``: ``config.asgi.application`` (HTTP and websockets) under uvicorn in a background
  thread of the test process, on a free port of 127.0.0.1. One server serves the whole session; each
  test that uses it runs with ``transactional_db`` (mark it ``django_db(transaction=True)``), so what
  the test writes is committed and the server's threads, which open their own connections to the
  same test database (a file on SQLite, ``test_<name>`` on PostgreSQL), see it. The server is wrapped
  in a recorder that keeps every request it answered (method, path, status, bodies, websocket
  frames): failure messages print that trail, so a red test says which request got which answer.
* ``live_tenant``: an account with a workspace, a Developer service account and a Viewer service
  account, each with a ``pnb_`` key.
* ``run_prefect``: runs the real client in a subprocess (a flow script of ``tests/live/flows`` or
  ``["prefect", …]`` CLI arguments) with a fresh ``PREFECT_HOME`` and the settings that put it in
  Cloud mode against the live server; returns stdout, stderr, returncode and the server trail.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from django.db import connection
from django.db.backends.signals import connection_created

from accounts.api_keys.services import api_key_create
from accounts.permissions import WorkspaceRole
from audit.actors import SYSTEM
from tests.conftest import Tenant, make_tenant
from tests.factories import GrantFactory, ServiceAccountFactory

LIVE_DIR = Path(__file__).resolve().parent
FLOWS_DIR = LIVE_DIR / "flows"
VENV_BIN = Path(sys.executable).parent
PREFECT_BIN = VENV_BIN / "prefect"

SUBPROCESS_TIMEOUT = 120.0
_BODY_CAP = 4000
_UNSET = object()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "live: end-to-end tests that run the real prefect client against a live server "
        "(select with -m live, skip with -m 'not live')",
    )


# --------------------------------------------------------------------------------------------------
# The recording ASGI wrapper
# --------------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One HTTP request or websocket connection the server saw."""

    kind: str  # "http" or "websocket"
    method: str
    path: str
    query: str
    has_authorization: bool
    subprotocols: list[str] = field(default_factory=list)
    status: int | None = None  # HTTP status; 101 for an accepted websocket
    request_body: bytes = b""
    response_body: bytes = b""
    frames_in: list[str] = field(default_factory=list)
    frames_out: list[str] = field(default_factory=list)
    close_code: int | None = None
    exception: str | None = None
    done: bool = False
    response_headers: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)  # when the server saw the request

    def request_json(self) -> Any:
        try:
            return json.loads(self.request_body)
        except ValueError:
            return None

    def response_json(self) -> Any:
        try:
            return json.loads(self.response_body)
        except ValueError:
            return None

    def line(self, prefix: str = "") -> str:
        path = self.path.replace(prefix, "W") if prefix else self.path
        if self.kind == "websocket":
            out = f"WS {path} -> {self.status}"
            out += f" auth={'header' if self.has_authorization else 'none'}"
            if self.subprotocols:
                out += f" subprotocols={self.subprotocols}"
            out += f" in={len(self.frames_in)} out={[f[:160] for f in self.frames_out[:3]]}"
            if self.close_code is not None:
                out += f" close={self.close_code}"
        else:
            out = f"{self.method} {path}{'?' + self.query if self.query else ''} -> {self.status}"
            if self.status is None or self.status >= 300 or path.endswith("/set_state"):
                if path.endswith("/set_state"):
                    proposed = (self.request_json() or {}).get("state") or {}
                    out += f" [proposed {proposed.get('type')}/{proposed.get('name')}]"
                out += " " + self.response_body[:400].decode("utf-8", "replace")
        if self.exception:
            out += f" EXCEPTION {self.exception}"
        return out


class RecordingApp:
    """Pass-through ASGI wrapper keeping an ``Exchange`` per request and websocket."""

    def __init__(self, app):
        self.app = app
        self.exchanges: list[Exchange] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        ex = Exchange(
            kind=scope["type"],
            method=scope.get("method", "WS"),
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            has_authorization="authorization" in headers,
            subprotocols=list(scope.get("subprotocols") or []),
        )
        self.exchanges.append(ex)

        async def recording_receive():
            message = await receive()
            kind = message["type"]
            if kind == "http.request" and len(ex.request_body) < _BODY_CAP:
                ex.request_body += message.get("body", b"")[: _BODY_CAP - len(ex.request_body)]
            elif kind == "websocket.receive":
                text = message.get("text")
                if text is None and message.get("bytes") is not None:
                    text = message["bytes"].decode("utf-8", "replace")
                ex.frames_in.append((text or "")[:_BODY_CAP])
            elif kind == "websocket.disconnect" and ex.close_code is None:
                ex.close_code = message.get("code")
            return message

        async def recording_send(message):
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                ex.status = message["status"]
                ex.response_headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])
                }
            elif kind in ("http.response.body", "websocket.http.response.body"):
                if len(ex.response_body) < _BODY_CAP:
                    ex.response_body += message.get("body", b"")[: _BODY_CAP - len(ex.response_body)]
            elif kind == "websocket.accept":
                ex.status = 101
                if message.get("subprotocol"):
                    ex.subprotocols = [f"accepted:{message['subprotocol']}"]
            elif kind == "websocket.send":
                ex.frames_out.append((message.get("text") or repr(message.get("bytes")))[:_BODY_CAP])
            elif kind == "websocket.close":
                ex.close_code = message.get("code", 1000)
                if ex.status is None:
                    ex.status = 403  # closed before accepting: the server sends HTTP 403
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        except BaseException as exc:
            ex.exception = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            ex.done = True


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class LiveServer:
    def __init__(self):
        from config.asgi import application

        self.recorder = RecordingApp(application)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.recorder,
            lifespan="off",
            ws="auto",  # as `make run` (uvicorn picks its websockets implementation)
            http="core.serving:HttpProtocol",  # as `make run`
            log_config=None,  # leave logging alone: uvicorn's errors reach pytest's log capture
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, name="live-asgi", daemon=True
        )

    @property
    def exchanges(self) -> list[Exchange]:
        return self.recorder.exchanges

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise RuntimeError("the live ASGI server thread died while starting")
            if self.server.started:
                try:
                    # Any HTTP answer means the server is up (the database may be blocked here).
                    httpx.get(f"{self.url}/api/live-harness-probe", timeout=2.0)
                    return
                except httpx.HTTPError as exc:
                    last_error = exc
            time.sleep(0.05)
        raise RuntimeError(f"the live ASGI server did not answer within {timeout}s: {last_error!r}")

    def quiesce(self, timeout: float = 10.0, linger: float = 1.0) -> None:
        """Wait until every HTTP request the server saw has been answered, so a test's teardown
        (which flushes the database) does not race the server; then give open connections and
        websockets ``linger`` seconds to close. A connection that stays open (an idle keep-alive,
        or the websocket of a process that is still running, which may belong to an earlier test)
        does not hold every later test up for the whole timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(ex.done for ex in self.exchanges if ex.kind == "http"):
                break
            time.sleep(0.05)
        settle = min(deadline, time.monotonic() + linger)
        while time.monotonic() < settle:
            state = self.server.server_state
            if not state.connections and not state.tasks and all(ex.done for ex in self.exchanges):
                return
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def mark(self) -> int:
        return len(self.exchanges)

    def since(self, mark: int = 0) -> list[Exchange]:
        return list(self.exchanges[mark:])

    def trail(self, mark: int = 0, prefix: str = "", limit: int = 80) -> str:
        exchanges = self.since(mark)
        lines = [ex.line(prefix) for ex in exchanges]
        if len(lines) > limit:
            lines = [f"... {len(lines) - limit} earlier exchanges ..."] + lines[-limit:]
        return "server saw:\n  " + ("\n  ".join(lines) if lines else "(nothing)")


class _ServerConnections:
    """PostgreSQL refuses to drop the test database while connections to it are open, and the
    server's threads open their own. Note the backend pid of each connection opened outside the
    main thread (by this process's live server) and end exactly those at the end of the session."""

    def __init__(self):
        self.backend_pids: set[int] = set()

    def on_created(self, sender, connection, **kwargs):
        if connection.vendor == "postgresql" and threading.current_thread() is not threading.main_thread():
            self.backend_pids.add(connection.connection.info.backend_pid)

    def terminate(self) -> None:
        if connection.vendor != "postgresql" or not self.backend_pids:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid = ANY(%s) AND datname = current_database()",
                [sorted(self.backend_pids)],
            )


@pytest.fixture(scope="session")
def _live_server_session(django_db_setup, django_db_blocker) -> Iterator[LiveServer]:
    server_connections = _ServerConnections()
    connection_created.connect(server_connections.on_created, weak=False)
    server = LiveServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        connection_created.disconnect(server_connections.on_created)
        with django_db_blocker.unblock():
            server_connections.terminate()


@pytest.fixture
def asgi_server(transactional_db, _live_server_session) -> Iterator[LiveServer]:
    """The live server, for a test whose writes are committed (``transaction=True``)."""
    server = _live_server_session
    server.recorder.exchanges = []
    yield server
    server.quiesce()


# --------------------------------------------------------------------------------------------------
# The tenant
# --------------------------------------------------------------------------------------------------


@dataclass
class LiveTenant:
    tenant: Tenant
    viewer_service_account: object
    viewer_key: str
    base_url: str

    @property
    def account(self):
        return self.tenant.account

    @property
    def workspace(self):
        return self.tenant.workspace

    @property
    def developer_key(self) -> str:
        return self.tenant.service_key

    @property
    def prefix(self) -> str:
        """The workspace path prefix, ``/api/accounts/<id>/workspaces/<id>``."""
        return self.tenant.prefix

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{self.prefix}"

    @property
    def ws_url(self) -> str:
        return self.api_url.replace("http://", "ws://", 1)

    @property
    def cloud_api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def full_handle(self) -> str:
        return f"{self.account.handle}/{self.workspace.handle}"


def make_live_tenant(base_url: str) -> LiveTenant:
    tenant = make_tenant()
    viewer = ServiceAccountFactory(account=tenant.account)
    GrantFactory(workspace=tenant.workspace, service_account=viewer, role=WorkspaceRole.VIEWER)
    _, viewer_key = api_key_create(owner=viewer, name="live viewer", actor=SYSTEM)
    return LiveTenant(tenant=tenant, viewer_service_account=viewer, viewer_key=viewer_key, base_url=base_url)


@pytest.fixture
def live_tenant(asgi_server) -> LiveTenant:
    """Account, workspace, a Developer service account key (``developer_key``) and a Viewer one
    (``viewer_key``), committed so the live server sees them."""
    return make_live_tenant(asgi_server.url)


# --------------------------------------------------------------------------------------------------
# Running the real client
# --------------------------------------------------------------------------------------------------


@dataclass
class PrefectRun:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    trail: str

    @property
    def output(self) -> str:
        return f"{self.stdout}\n{self.stderr}"

    @property
    def result(self) -> dict[str, Any] | None:
        """The JSON a flow script prints on its last ``RESULT`` line."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
        return None

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nreturncode={self.returncode} ({self.duration:.1f}s)\n"
            f"--- stdout (tail) ---\n{self.stdout[-3000:]}\n--- stderr (tail) ---\n{self.stderr[-5000:]}\n"
            f"{self.trail}"
        )


def _client_env(
    *, home: Path, api_url: str | None, cloud_api_url: str, key: str | None, extra: dict | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_CLOUD_API_URL": cloud_api_url,
            # Offline and quick: no ephemeral server, no telemetry, logs shipped often.
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
            "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
            "PREFECT_CLIENT_MAX_RETRIES": "2",
            "PREFECT_CLI_COLORS": "false",
            "PREFECT_CLI_WRAP_LINES": "false",
            "NO_COLOR": "1",
            "COLUMNS": "250",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    if key is not None:
        env["PREFECT_API_KEY"] = key
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def _argv(script_or_args: str | Path | list | tuple) -> list[str]:
    if isinstance(script_or_args, list | tuple):
        args = [str(a) for a in script_or_args]
        if args and args[0] == "prefect":
            return [str(PREFECT_BIN), *args[1:]]
        return [sys.executable, *args]
    path = Path(script_or_args)
    if not path.is_absolute():
        path = FLOWS_DIR / path
    if not path.exists():
        raise FileNotFoundError(path)
    return [sys.executable, str(path)]


@pytest.fixture
def run_prefect(asgi_server, live_tenant, tmp_path) -> Callable[..., PrefectRun]:
    """``run_prefect(script_or_args, env=None, *, key=…, api_url=…, home=None, timeout=…)``.

    ``script_or_args``: a flow script (``"seq40.py"``, under ``tests/live/flows``), or
    ``["prefect", "flow-run", "ls"]`` for the CLI, or other ``python`` arguments. By default the
    client talks to ``live_tenant``'s workspace with its Developer key; ``key=None`` /
    ``api_url=None`` leave ``PREFECT_API_KEY`` / ``PREFECT_API_URL`` unset. ``home`` reuses a
    ``PREFECT_HOME`` across calls (a fresh one otherwise); ``env`` adds or (with ``None``) removes
    variables.
    """
    counter = iter(range(1, 1000))

    def run(
        script_or_args,
        env: dict | None = None,
        *,
        key: Any = _UNSET,
        api_url: Any = _UNSET,
        home: Path | None = None,
        timeout: float = SUBPROCESS_TIMEOUT,
    ) -> PrefectRun:
        n = next(counter)
        if home is None:
            home = tmp_path / f"prefect-home-{n}"
        home.mkdir(parents=True, exist_ok=True)
        workdir = tmp_path / f"cwd-{n}"
        workdir.mkdir(exist_ok=True)
        argv = _argv(script_or_args)
        client_env = _client_env(
            home=home,
            api_url=live_tenant.api_url if api_url is _UNSET else api_url,
            cloud_api_url=live_tenant.cloud_api_url,
            key=live_tenant.developer_key if key is _UNSET else key,
            extra=env,
        )
        mark = asgi_server.mark()
        started = time.monotonic()
        try:
            completed = subprocess.run(
                argv,
                env=client_env,
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            pytest.fail(
                f"$ {' '.join(argv)} timed out after {timeout}s\n--- stdout ---\n{out[-3000:]}\n"
                f"--- stderr ---\n{err[-5000:]}\n{asgi_server.trail(mark, live_tenant.prefix)}"
            )
        # The client has exited; let the server finish what it was sent (event frames, logs).
        asgi_server.quiesce()
        return PrefectRun(
            argv=argv,
            returncode=completed.returncode,
            stdout=completed.stdout,
            stderr=completed.stderr,
            duration=time.monotonic() - started,
            trail=asgi_server.trail(mark, live_tenant.prefix),
        )

    return run


# --------------------------------------------------------------------------------------------------
# Small helpers for the tests
# --------------------------------------------------------------------------------------------------


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    """Poll ``fetch()`` until ``done(value)``, for work the server finishes after answering (event
    ingestion); returns the last value either way, for the caller to assert on."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = fetch()
    return value


def run_async(coro):
    """Run a coroutine from a sync test (the live server has its own loop in its own thread)."""
    return asyncio.run(coro)
