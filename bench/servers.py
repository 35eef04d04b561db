"""Start and stop the two servers under test, their databases, and every child process.

Everything this module starts is recorded in ``REGISTRY`` so that ``cleanup()`` (called from a
``finally`` in run.py, on SIGTERM, and at exit) stops each process group it started, by id, and
drops each database it created.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# The project's venv; a git worktree without its own .venv uses the interpreter running the bench.
VENV_BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin").is_dir() else Path(sys.executable).parent
PY = str(VENV_BIN / "python")
PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"


#: Optional fixed names and ports, for a machine shared with other people's servers and databases:
#: ``DB_PREFIX`` names the databases ``<prefix>_prefect`` / ``<prefix>_ours`` (run.py ``--db-prefix``),
#: ``PORT_RANGE`` is where servers listen (``--ports 4500-4599``). Unset: fresh names, any free port.
DB_PREFIX: str | None = None
#: ``--reuse-databases``: a database of that prefix an earlier ``--keep`` run left is used as it is
#: (migrated again, which changes nothing, and never dropped).
REUSE_DATABASES = False
PORT_RANGE: tuple[int, int] | None = None


def db_name(tag: str, server: str) -> str:
    return f"{DB_PREFIX}_{server}" if DB_PREFIX else f"bench_{tag}_{server}"


@dataclass
class Registry:
    processes: list[subprocess.Popen] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)
    cleaned: bool = False


REGISTRY = Registry()


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    if PORT_RANGE is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    for port in range(PORT_RANGE[0], PORT_RANGE[1] + 1):
        if port in REGISTRY.ports:
            continue
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            REGISTRY.ports.add(port)
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE[0]}-{PORT_RANGE[1]}")


def spawn(argv: list[str], *, env: dict[str, str], log_path: Path, cwd: Path = ROOT) -> subprocess.Popen:
    """Start ``argv`` in its own session (so a stop reaches all its children) with output to a file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    out.close()
    REGISTRY.processes.append(proc)
    return proc


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # The group may hold children that outlived the leader (uvicorn workers, prefect services).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    if proc in REGISTRY.processes:
        REGISTRY.processes.remove(proc)


def clean_env(**extra: str) -> dict[str, str]:
    """The parent environment without any PREFECT_* / Django settings that could leak in."""
    drop_prefixes = ("PREFECT_",)
    drop = {
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "CELERY_BROKER_URL",
        "PUBLIC_URL",
        "DJANGO_SETTINGS_MODULE",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes) and k not in drop}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------------


def psql(sql: str, db: str = "postgres") -> str:
    result = subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", db, "-Atqc", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def database_exists(name: str) -> bool:
    return psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"  # noqa: S608 - our own database names


def create_database(name: str) -> None:
    if REUSE_DATABASES and database_exists(name):
        log(f"reusing the database {name}")
        return
    if DB_PREFIX:  # a fixed name of our own: a run that was killed may have left it behind
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{name}"')
    REGISTRY.databases.append(name)


def drop_database(name: str) -> None:
    try:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except subprocess.CalledProcessError as exc:
        log(f"could not drop database {name}: {exc.stderr.strip()}")
        return
    if name in REGISTRY.databases:
        REGISTRY.databases.remove(name)


def dsn(db: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


# --------------------------------------------------------------------------------------------------
# Cleanup
# --------------------------------------------------------------------------------------------------


def cleanup(keep_databases: bool = False) -> None:
    if REGISTRY.cleaned:
        return
    REGISTRY.cleaned = True
    # Ignore further Ctrl-C while tearing down, so a second press does not leave leftovers.
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for proc in list(reversed(REGISTRY.processes)):
        stop_process(proc)
    if not keep_databases:
        for name in list(REGISTRY.databases):
            drop_database(name)
    elif REGISTRY.databases:
        log(f"kept databases: {', '.join(REGISTRY.databases)}")


def install_signal_handlers() -> None:
    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    atexit.register(cleanup)


_EXC_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Warning|Exit)\b.*")


def log_size(path: str | Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def log_digest(path: str | Path, offset: int) -> dict:
    """What a server logged since ``offset``: dropped-message warnings, errors and exception lines
    (most frequent first), so a failure in the table can be traced to the server's own words."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return {}
    drops = 0
    errors: Counter[str] = Counter()
    exceptions: Counter[str] = Counter()
    for line in text.splitlines():
        if "dropping message" in line:
            drops += 1
        elif " ERROR " in line or "| ERROR" in line:
            errors[re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", line.split("ERROR", 1)[1].strip())[:300]] += 1
        elif _EXC_LINE.match(line):
            exceptions[line.strip()[:400]] += 1
    return {
        "dropped_messages": drops,
        "error_lines": sum(errors.values()),
        "top_errors": errors.most_common(3),
        "top_exceptions": exceptions.most_common(5),
    }


class ConnectionSampler:
    """Samples pg_stat_activity every second in a thread: the most connections each benchmark
    database (and everything else on the PostgreSQL server) held, per part. The servers share one
    PostgreSQL (max_connections is usually 100) with each other and with whatever else runs."""

    def __init__(self, databases: dict[str, str]):
        import threading

        self.databases = databases  # db name -> label
        self.peaks: dict[str, int] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psycopg

        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(dsn("postgres"), autocommit=True)
                rows = conn.execute(
                    "SELECT datname, count(*) FROM pg_stat_activity GROUP BY datname"
                ).fetchall()
                totals: dict[str, int] = {}
                for datname, count in rows:
                    label = self.databases.get(datname, "other")
                    totals[label] = totals.get(label, 0) + count
                totals["total"] = sum(c for _, c in rows)
                for label, count in totals.items():
                    self.peaks[label] = max(self.peaks.get(label, 0), count)
            except Exception:  # noqa: BLE001 - e.g. "too many clients" itself
                self.errors += 1
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
            self._stop.wait(1.0)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def result(self) -> dict:
        out: dict = {"peak": dict(self.peaks)}
        if self.errors:
            out["sample_errors"] = self.errors
        with contextlib.suppress(Exception):
            out["max_connections"] = int(psql("SHOW max_connections"))
        return out


def wait_http(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}:\n{tail}")
        try:
            r = httpx.get(url, timeout=2.0)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s (last: {last})")


# --------------------------------------------------------------------------------------------------
# The two servers
# --------------------------------------------------------------------------------------------------


@dataclass
class Target:
    """What the benchmark parts need to talk to one server."""

    name: str  # "prefect" or "ours"
    db: str
    api_url: str  # PREFECT_API_URL for the client
    http_headers: dict[str, str]
    client_env: dict[str, str]  # PREFECT_* for a client process
    ws_in_url: str
    ws_cloud_mode: bool  # True: Authorization header, no subprotocol/auth frame
    api_key: str | None
    procs: list[subprocess.Popen]
    info: dict
    # Table names to poll for part (b)
    events_table: str
    task_run_table: str
    # The server process's own environment (for subprocesses that talk to its database, e.g. the
    # scheduler in part (d)); never written to the results (it holds SECRET_KEY).
    env: dict[str, str] = field(default_factory=dict, repr=False)


def start_prefect(
    tag: str, workdir: Path, *, workers: int = 1, extra_env: dict[str, str] | None = None
) -> Target:
    db = db_name(tag, "prefect")
    create_database(db)
    port = free_port()
    home = workdir / "prefect-server-home"
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
    )
    env.update(extra_env or {})
    log_path = workdir / "logs" / "prefect-server.log"
    argv = [
        str(VENV_BIN / "prefect"),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-ui",
        "--analytics-off",
    ]
    if workers != 1:
        argv += ["--workers", str(workers)]
    log(f"starting Prefect server on :{port} (db {db}, {workers} worker)")
    t0 = time.monotonic()
    proc = spawn(argv, env=env, log_path=log_path)
    base = f"http://127.0.0.1:{port}/api"
    wait_http(f"{base}/health", proc, log_path)
    log(f"Prefect server up in {time.monotonic() - t0:.1f}s")
    version = httpx.get(f"{base}/admin/version").json()
    return Target(
        name="prefect",
        db=db,
        api_url=base,
        http_headers={},
        client_env={"PREFECT_API_URL": base},
        ws_in_url=f"ws://127.0.0.1:{port}/api/events/in",
        ws_cloud_mode=False,
        api_key=None,
        procs=[proc],
        info={"port": port, "workers": workers, "version": version, "log": str(log_path)},
        events_table="events",
        task_run_table="task_run",
        env=env,
    )


def start_ours(
    tag: str,
    workdir: Path,
    *,
    workers: int = 2,
    extra_env: dict[str, str] | None = None,
    redis_url: str = "redis://127.0.0.1:6379/0",
    celery: bool = False,
    celery_broker_url: str | None = None,
    celery_beat: bool = False,
    celery_concurrency: int = 1,
    celery_workers: int = 1,
    multiproc_dir: Path | None = None,
    http_protocol: str | None = None,
) -> Target:
    """Our stack: uvicorn with ``workers`` processes, and with ``celery`` that many Celery worker
    instances (``celery_workers``, each with ``celery_concurrency`` pool processes), beat with
    ``celery_beat``. ``multiproc_dir`` (emptied here) is every server process's
    ``PROMETHEUS_MULTIPROC_DIR``, so ``/metrics`` sums all of them, as the image's entrypoint does;
    ``http_protocol`` is uvicorn's ``--http`` (the image runs ``core.serving:HttpProtocol``)."""
    db = db_name(tag, "ours")
    create_database(db)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    django_env = clean_env(
        DATABASE_URL=f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}",
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_urlsafe(50),
        PUBLIC_URL=public,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        # The plan's rate limits stay on (their cost is measured) but 1,000 times as high, so they
        # never refuse: the bench measures the server, not the Hobby plan's 625 requests a minute.
        RATE_LIMIT_SCALE="1000",
    )
    if celery_broker_url:
        django_env["CELERY_BROKER_URL"] = celery_broker_url
    django_env.update(extra_env or {})
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log(f"migrating our database {db}")
    t0 = time.monotonic()
    mig = subprocess.run(
        [PY, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=django_env,
        capture_output=True,
        text=True,
    )
    if mig.returncode != 0:
        raise RuntimeError(f"migrate failed ({mig.returncode}):\n{mig.stdout[-2000:]}\n{mig.stderr[-3000:]}")
    account = f"Bench {tag}"
    if REUSE_DATABASES:
        # The account an earlier run generated its rows in (bootstrap finds it and mints a key).
        account = (
            psql("SELECT name FROM tenants_account WHERE name LIKE 'Bench %' ORDER BY created LIMIT 1", db=db)
            or account
        )
    boot = subprocess.run(
        [
            PY,
            "manage.py",
            "bootstrap",
            "--account",
            account,
            "--workspace",
            "Bench",
            "--owner",
            f"bench-{tag}@example.com",
            "--json",
        ],
        cwd=ROOT,
        env=django_env,
        capture_output=True,
        text=True,
    )
    if boot.returncode != 0:
        raise RuntimeError(
            f"bootstrap failed ({boot.returncode}):\n{boot.stdout[-2000:]}\n{boot.stderr[-3000:]}"
        )
    info = json.loads(boot.stdout)
    log(f"migrate + bootstrap took {time.monotonic() - t0:.1f}s")
    argv = [
        PY,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if http_protocol:
        argv += ["--http", http_protocol]
    if multiproc_dir is not None:
        # prometheus-client's files must start empty with the processes that write them; migrate
        # and bootstrap above ran without it.
        shutil.rmtree(multiproc_dir, ignore_errors=True)
        multiproc_dir.mkdir(parents=True)
        django_env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    log_path = log_dir / "ours-uvicorn.log"
    log(f"starting our server on :{port} (db {db}, uvicorn --workers {workers})")
    proc = spawn(argv, env=django_env, log_path=log_path)
    procs = [proc]
    wait_http(f"{info['cloud_api_url']}/health", proc, log_path, timeout=90)
    for i in range(celery_workers if celery else 0):
        log(f"starting a Celery worker for our server (concurrency {celery_concurrency})")
        argv = [PY, "-m", "celery", "-A", "config", "worker", "-l", "WARNING"]
        argv += ["--concurrency", str(celery_concurrency)]
        if celery_workers > 1:
            argv += ["-n", f"bench{i + 1}@%h"]
        name = "ours-celery.log" if i == 0 else f"ours-celery-{i + 1}.log"
        procs.append(spawn(argv, env=django_env, log_path=log_dir / name))
    if celery_beat:
        # Proactive triggers are evaluated by beat's 5 s task (part k needs it).
        log("starting Celery beat for our server")
        procs.append(
            spawn(
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "beat",
                    "-l",
                    "WARNING",
                    "-s",
                    str(log_dir / "celerybeat-schedule"),
                ],
                env=django_env,
                log_path=log_dir / "ours-celery-beat.log",
            )
        )
    key = info["api_key"]
    api_url = info["api_url"]
    ws_base = api_url.replace("http://", "ws://", 1)
    return Target(
        name="ours",
        db=db,
        api_url=api_url,
        http_headers={"Authorization": f"Bearer {key}"},
        client_env={
            "PREFECT_API_URL": api_url,
            "PREFECT_CLOUD_API_URL": info["cloud_api_url"],
            "PREFECT_API_KEY": key,
        },
        ws_in_url=f"{ws_base}/events/in",
        ws_cloud_mode=True,
        api_key=key,
        procs=procs,
        info={
            "port": port,
            "workers": workers,
            "celery_worker": celery,
            "celery_concurrency": celery_concurrency if celery else None,
            "celery_workers": celery_workers if celery else 0,
            "public_url": public,
            "celery_beat": celery_beat,
            "extra_env": extra_env or {},
            "account_id": info.get("account_id"),
            "account_name": f"Bench {tag}",
            "owner": f"bench-{tag}@example.com",
            "workspace_id": info.get("workspace_id"),
            "log": str(log_path),
        },
        events_table="orchestration_event",
        task_run_table="orchestration_taskrun",
        env=django_env,
    )
