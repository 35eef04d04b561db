"""The product run as its own processes, for fault tests that kill and restart its parts.

``Stack`` starts what production runs, each as a subprocess: the web role (``deploy/entrypoint.sh
web``: uvicorn with the product's HTTP protocol) and the Celery worker role, against a PostgreSQL
database of its own (created, migrated and dropped here; only its backends are ever terminated)
and a private ``redis-server`` on a free port in a temporary directory (killing or restarting it
touches nothing else). Nothing here shares a server, a database or a Redis with the rest of the
suite. The real ``prefect`` client drives it from subprocesses (``run_client``).

The migrated schema is copied from a template database (``faults_template_<hash of the
migrations>``), made once per PostgreSQL server and kept: migrating on every run would cost most of
the time these tests take.

What a test asserts about the server's answers comes from the web process's own access lines (one
JSON line per request: ``status``) and its error lines.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = Path(__file__).resolve().parent / "clients"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], object], *, timeout: float, what: str, every: float = 0.1):
    """Poll ``check`` until it returns something true; its last value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)


def postgres_server() -> dict | None:
    """Connection settings of the suite's PostgreSQL server (None on SQLite)."""
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        return None
    return {
        "host": db["HOST"] or "localhost",
        "port": int(db["PORT"] or 5432),
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
    }


class PrivateRedis:
    """``redis-server`` on a free port, persistence off, in its own directory."""

    def __init__(self, directory: Path):
        self.binary = shutil.which("redis-server")
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.directory / "redis.log", "a")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.answers, timeout=20, what="redis-server answering")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen one too
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and new ones are accepted by the kernel, but nothing is
        answered (a hung Redis, or one behind a half-open connection)."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (children, their children, ...), read from ``/proc``."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(15)

    def kill_all(self) -> None:
        """SIGKILL the process and every process under it at once (a Celery worker's pool
        children with it), as a lost machine or container ends them."""
        if self.popen.poll() is not None:
            return
        family = [self.popen.pid, *descendants(self.popen.pid)]
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.popen.wait(15)

    def kill_children(self) -> list[int]:
        """SIGKILL every process under this one and leave it alive (a Celery worker's pool
        processes, as the out-of-memory killer ends them); the pids killed."""
        family = descendants(self.popen.pid)
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return family

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class DatabaseRelay:
    """A TCP relay between the web process and PostgreSQL. ``outage()`` is what a PostgreSQL
    restart looks like from the web process (the shared server itself is never restarted): every
    open connection cut, new ones refused, until ``resume()`` accepts them again."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: the outage
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                self._close(end)

    def _close(self, end: socket.socket) -> None:
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            end.close()
        with self._lock:
            self._open.discard(end)

    def outage(self) -> int:
        """Refuse new connections and cut the open ones; how many connections were cut."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._listener.close()
            self._listener = None
        with self._lock:
            cut = list(self._open)
        for end in cut:
            self._close(end)
        return len(cut) // 2

    def resume(self) -> None:
        self.start()


class Stack:
    """One product deployment: a database, a Redis, web and worker processes."""

    def __init__(self, directory: Path, server: dict):
        self.directory = directory
        self.server = server
        self.database = f"faults_{uuid.uuid4().hex[:12]}"
        self.redis = PrivateRedis(directory)
        self.relay = DatabaseRelay(server["host"], server["port"])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, Process] = {}
        self.info: dict = {}

    # --- the database ----------------------------------------------------------------------------

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(dbname=dbname, autocommit=True, connect_timeout=10, **self.server)

    def query(self, sql: str, params=()) -> list[tuple]:
        with self.admin(self.database) as conn:
            return conn.execute(sql, params).fetchall()

    def terminate_backends(self) -> int:
        """End every backend of this stack's database (no other); how many were ended."""
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.database],
            ).fetchall()
        return sum(1 for (ended,) in rows if ended)

    @property
    def database_url(self) -> str:
        s = self.server
        auth = s["user"] + (f":{s['password']}" if s["password"] else "")
        return f"postgres://{auth}@{s['host']}:{s['port']}/{self.database}"

    @property
    def relayed_database_url(self) -> str:
        return self.database_url.replace(
            f"@{self.server['host']}:{self.server['port']}/", f"@127.0.0.1:{self.relay.port}/"
        )

    # --- processes -------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PYTEST_"))}
        env.update(
            {
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
                "DJANGO_SETTINGS_MODULE": "config.settings.base",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis.url,
                "SECRET_KEY": "fault-tests-secret-key-0123456789abcdef0123456789abcdef",
                "VAR_DIR": str(self.directory / "var"),
                "PUBLIC_URL": self.url,
                "PORT": str(self.port),
                "WEB_CONCURRENCY": "1",
                "WORKER_CONCURRENCY": "2",
                "RATE_LIMIT_SCALE": "0",
                "LOG_LEVEL": "INFO",
                "LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        env.pop("CELERY_BROKER_URL", None)
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        return env

    def manage(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
        return result.stdout

    def start_role(self, role: str, extra: dict | None = None, *, wait: bool = True) -> Process:
        log = self.directory / f"{role}.log"
        handle = open(log, "a")  # noqa: SIM115 (closed with the process)
        # The web process reaches PostgreSQL through the relay, whose outage stands for a restart.
        through = {"DATABASE_URL": self.relayed_database_url} if role == "web" else {}
        popen = subprocess.Popen(
            ["sh", str(ROOT / "deploy" / "entrypoint.sh"), role],
            cwd=ROOT,
            env=self.env() | through | {k: str(v) for k, v in (extra or {}).items()},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        process = self.processes[role] = Process(role, popen, log)
        if role == "web" and wait:
            wait_for(self.web_answers, timeout=90, what="the web process answering")
        return process

    def web_answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def _template(self) -> str:
        """A migrated database to copy, one per state of the migrations (named by their hash), made
        once per PostgreSQL server: migrating takes far longer than copying."""
        digest = hashlib.sha256()
        for path in sorted(ROOT.glob("*/migrations/*.py")):
            digest.update(path.name.encode() + path.read_bytes())
        name = f"faults_template_{digest.hexdigest()[:16]}"
        with self.admin() as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                return name
            building = f"{name}_{uuid.uuid4().hex[:6]}"
            conn.execute(f'CREATE DATABASE "{building}"')
        database, self.database = self.database, building
        try:
            self.manage("migrate", "--noinput")
        finally:
            self.database = database
        with self.admin() as conn:
            try:
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
            except psycopg.errors.DuplicateDatabase:  # another run made it meanwhile
                conn.execute(f'DROP DATABASE "{building}"')
        return name

    def start(self) -> None:
        (self.directory / "var").mkdir(parents=True, exist_ok=True)
        self.redis.start()
        self.relay.start()
        template = self._template()
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.database}" TEMPLATE "{template}"')
        # The web process starts while the deployment is bootstrapped (both spend their first
        # seconds importing Django).
        self.start_role("web", wait=False)
        self.info = json.loads(
            self.manage(
                "bootstrap",
                "--account=Faults",
                "--workspace=main",
                "--owner=owner@faults.example.test",
                f"--public-url={self.url}",
                "--json",
            )
        )
        wait_for(self.web_answers, timeout=90, what="the web process answering")

    def stop(self) -> None:
        # Nothing of this deployment is kept: its processes end at once, their children with them.
        for process in self.processes.values():
            with contextlib.suppress(Exception):
                process.kill_all()
        self.redis.kill()
        self.relay.outage()
        with contextlib.suppress(Exception), self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    # --- what the web process answered ----------------------------------------------------------

    def log_mark(self, role: str = "web") -> int:
        log = self.directory / f"{role}.log"
        return log.stat().st_size if log.exists() else 0

    def log_text(self, since: int = 0, role: str = "web") -> str:
        with open(self.directory / f"{role}.log", "rb") as handle:
            handle.seek(since)
            return handle.read().decode("utf-8", "replace")

    def answers(self, since: int = 0, role: str = "web") -> tuple[Counter, list[str]]:
        """Statuses of the requests the web process logged since ``since`` (a byte offset of its
        log), and its error lines."""
        text = self.log_text(since, role)
        statuses: Counter = Counter()
        errors: list[str] = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                if "Traceback" in line or "Exception in ASGI" in line:
                    errors.append(line)
                continue
            if not isinstance(record, dict):
                continue
            if "status" in record and "route" in record:
                statuses[record["status"]] += 1
            if record.get("level") in ("ERROR", "CRITICAL") and "status" not in record:
                errors.append(line[:600])
        return statuses, errors

    # --- the real client -------------------------------------------------------------------------

    def client_env(self, extra: dict | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PYTEST_"))}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        home = self.directory / f"prefect-home-{uuid.uuid4().hex[:6]}"
        home.mkdir()
        env.update(
            {
                "PREFECT_HOME": str(home),
                "PREFECT_API_URL": self.info["api_url"],
                "PREFECT_CLOUD_API_URL": self.info["cloud_api_url"],
                "PREFECT_API_KEY": self.info["api_key"],
                "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
                "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
                "DO_NOT_TRACK": "1",
                "PREFECT_CLIENT_MAX_RETRIES": "10",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        env.update({k: str(v) for k, v in (extra or {}).items()})
        return env

    def start_client(self, script: str | Path, extra: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(script)],
            cwd=ROOT,
            env=self.client_env(extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def client_result(popen: subprocess.Popen, timeout: float = 120) -> tuple[dict, str]:
    """The ``RESULT {json}`` a client script prints, and its output for failure messages."""
    stdout, stderr = popen.communicate(timeout=timeout)
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    described = f"returncode={popen.returncode}\n{stdout[-2000:]}\n{stderr[-6000:]}"
    assert popen.returncode == 0 and lines, described
    return json.loads(lines[-1].removeprefix("RESULT ")), described
