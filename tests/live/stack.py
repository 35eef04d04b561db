"""Our server as production runs it, for the live tests whose proof needs the background work real:
two web processes (uvicorn, each on a port of its own, as two replicas behind a load balancer), two
Celery workers and Celery beat.

The session's in-thread server (``conftest.asgi_server``) runs Celery tasks eagerly and no beat:
nothing there takes a task off a broker, runs the proactive clock or calls out from a worker. Here
each process is started with the product's own command line (as ``bench/servers.py`` starts them;
not through ``deploy/entrypoint.sh``, whose settings check costs each process one more Django
start), on:

* the **test database** (``test_<name>``, migrated by pytest-django): the test makes its tenants
  with the factories and reads what the stack wrote with the ORM. ``stack`` lets its module's tests
  use the database in autocommit for the module's duration and flushes it once, after the stack has
  stopped: a flush after each test (``transaction=True``) would race the beat's tasks for the
  tables' locks;
* a **private** ``redis-server`` (``tests.faults.harness.PrivateRedis``): the broker, the cache and
  the beat lock are the stack's alone. The suite's own Redis database is flushed by tests
  (``cache.clear()``), and ``tests/test_beat_lock.py`` runs beats and counts the tasks in its queue.

``StackClient`` runs the unmodified ``prefect`` client and CLI against one of the web processes,
as ``conftest.run_prefect`` does against the in-thread server.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.faults.harness import PrivateRedis, Process, free_port
from tests.live.conftest import SUBPROCESS_TIMEOUT, LiveTenant, PrefectRun, _argv, _client_env
from tests.live.test_deployments_live import Spawned

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
PROACTIVE_TICK = re.compile(r"Task orchestration\.evaluate_proactive_triggers\[[^\]]+\] succeeded")


def database_url(settings_dict: dict) -> str:
    """``DATABASE_URL`` for the database Django's connection uses (the test database)."""
    user = quote(settings_dict["USER"] or "", safe="")
    password = settings_dict["PASSWORD"] or ""
    auth = f"{user}:{quote(password, safe='')}" if password else user
    host = settings_dict["HOST"] or "localhost"
    port = settings_dict["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{settings_dict['NAME']}"


@dataclass
class Stack:
    directory: Path
    database_url: str
    secret_key: str
    redis: PrivateRedis = field(init=False)
    urls: list[str] = field(default_factory=list)  # the web processes' base URLs
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.redis = PrivateRedis(self.directory)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PYTEST_"))}
        # The test settings' own (DATABASE_POOL=false among them) are not the stack's: it runs with
        # the connection pool, as production does. VAR_DIR is the suite's: the UI bundle prepared
        # there at start-up is reused.
        for name in ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "PUBLIC_URL", "DATABASE_POOL"):
            env.pop(name, None)
        env.update(
            {
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "DJANGO_SETTINGS_MODULE": "config.settings.base",
                "DATABASE_URL": self.database_url,
                # The test process mints the API keys: the same secret.
                "SECRET_KEY": self.secret_key,
                "REDIS_URL": self.redis.url,
                "RATE_LIMIT_SCALE": "0",
                "AUTH_THROTTLE_FAILURES": "0",
                # The notification receiver of the tests listens on loopback.
                "OUTBOUND_WEBHOOK_ALLOWED_CIDRS": "127.0.0.1/32",
                "METRICS_PORT": "0",
                "BEAT_LOCK_TTL_SECONDS": "5",
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        env.update(extra)
        return env

    def _start(self, name: str, argv: list[str], **env: str) -> None:
        log = self.directory / f"{name}.log"
        with open(log, "ab") as handle:
            popen = subprocess.Popen(
                [sys.executable, "-m", *argv],
                cwd=ROOT,
                env=self.env(**env),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes[name] = Process(name, popen, log)

    def start(self) -> None:
        self.redis.start()
        for name in ("web-a", "web-b"):
            port = free_port()
            self.urls.append(f"http://127.0.0.1:{port}")
            self._start(
                name,
                ["uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                 "--lifespan", "off", "--no-access-log", "--http", "core.serving:HttpProtocol",
                 "--log-level", "warning"],
            )  # fmt: skip
        for name in ("worker-1", "worker-2"):
            self._start(
                name,
                ["celery", "-A", "config", "worker", "-P", "solo", "-n", f"{name}@%h", "-l", "INFO",
                 "--without-heartbeat", "--without-mingle", "--without-gossip"],
                LOG_LEVEL="INFO",
            )  # fmt: skip
        self._start(
            "beat",
            ["celery", "-A", "config", "beat", "-l", "INFO", "-s", str(self.directory / "beat-schedule")],
            LOG_LEVEL="INFO",
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        ready = {
            "worker-1": lambda: " ready." in self.log("worker-1"),
            "worker-2": lambda: " ready." in self.log("worker-2"),
            "beat": lambda: "beat lock taken" in self.log("beat"),
            "web-a": lambda: self._healthy(self.urls[0]),
            "web-b": lambda: self._healthy(self.urls[1]),
        }
        deadline = time.monotonic() + START_TIMEOUT
        while ready:
            for name, check in list(ready.items()):
                if self.processes[name].popen.poll() is not None:
                    raise RuntimeError(f"{name} exited while starting\n{self.describe()}")
                if check():
                    del ready[name]
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready within {START_TIMEOUT} s: {sorted(ready)}\n{self.describe()}")
            time.sleep(0.2)

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        for process in self.processes.values():  # all asked at once, then waited for
            if process.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, 15)
        for process in self.processes.values():
            try:
                process.popen.wait(15)
            except subprocess.TimeoutExpired:
                process.kill_all()
        self.redis.kill()

    # --- what the processes logged --------------------------------------------------------------

    def log(self, name: str) -> str:
        try:
            return (self.directory / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def proactive_ticks(self) -> int:
        """How many times a worker has finished the proactive clock's task."""
        return sum(len(PROACTIVE_TICK.findall(self.log(name))) for name in ("worker-1", "worker-2"))

    def tasks_run(self, worker: str, task: str) -> int:
        return len(re.findall(rf"Task {re.escape(task)}\[[^\]]+\] succeeded", self.log(worker)))

    def describe(self, tail: int = 2500) -> str:
        """Each process's state and the end of its log, without the workers' routine lines."""
        parts = []
        for name, process in self.processes.items():
            state = "running" if process.popen.poll() is None else f"exited {process.popen.returncode}"
            lines = [
                line
                for line in self.log(name).splitlines()
                if not re.search(r"\] (received|succeeded in)|Scheduler: Sending due task", line)
            ]
            parts.append(f"--- {name} ({state}) ---\n" + "\n".join(lines)[-tail:])
        return "\n".join(parts)


class StackClient:
    """The real client against the stack, for one tenant: ``run`` waits for it, ``spawn`` leaves it
    running (killed, with every process it started, at ``close``). ``web`` picks the web process
    its ``PREFECT_API_URL`` names."""

    def __init__(self, stack: Stack, tenant: LiveTenant, directory: Path):
        self.stack = stack
        self.tenant = tenant
        self.directory = directory
        self.spawned: list[Spawned] = []
        self._counter = iter(range(1, 1000))

    def env(self, web: int, extra: dict | None, key: Any = None) -> tuple[dict[str, str], Path]:
        n = next(self._counter)
        home = self.directory / f"prefect-home-{n}"
        home.mkdir(parents=True)
        workdir = self.directory / f"cwd-{n}"
        workdir.mkdir()
        base = self.stack.urls[web]
        env = _client_env(
            home=home,
            api_url=f"{base}{self.tenant.prefix}",
            cloud_api_url=f"{base}/api",
            key=key or self.tenant.developer_key,
            extra=extra,
        )
        return env, workdir

    def run(self, script_or_args, env: dict | None = None, *, web: int = 0,
            timeout: float = SUBPROCESS_TIMEOUT) -> PrefectRun:  # fmt: skip
        argv = _argv(script_or_args)
        client_env, workdir = self.env(web, env)
        started = time.monotonic()
        try:
            done = subprocess.run(argv, env=client_env, cwd=workdir, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"$ {' '.join(argv)} timed out after {timeout}s\n{exc.stdout}\n{exc.stderr}\n"
                        f"{self.stack.describe()}")  # fmt: skip
        return PrefectRun(
            argv=argv,
            returncode=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
            duration=time.monotonic() - started,
            trail=self.stack.describe(),
        )

    def spawn(self, script_or_args, env: dict | None = None, *, web: int = 0, name: str = "") -> Spawned:
        argv = _argv(script_or_args)
        client_env, workdir = self.env(web, env)
        log_path = workdir / "output.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(argv, env=client_env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        spawned = Spawned(name=name or argv[-1], argv=argv, popen=popen, log_path=log_path)
        self.spawned.append(spawned)
        return spawned

    def close(self) -> None:
        for spawned in self.spawned:
            spawned.kill()
