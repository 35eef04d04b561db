#!/usr/bin/env python
"""Run the whole product on one machine: web (ASGI, HTTP + websockets), Celery worker and beat.

Prepares the embedded default (``config.embedded.prepare``), migrates, collects static files,
provisions the demo account (reusing it, and its service-account key while that works, on later
runs), starts the three processes and, once the web answers, prints how to connect last and saves
it to ``VAR_DIR/welcome.txt`` (readable by its owner only). Celery logs warnings and errors only, so
the banner stays in sight. Ctrl-C (or SIGTERM) stops all of them: each process gets SIGTERM (the
worker finishes its tasks and stops its own pool), and whatever is left after the grace period is
killed; if one of them dies, the others are stopped too.

Environment: HOST (127.0.0.1), PORT (8000), DEMO_ACCOUNT, DEMO_WORKSPACE, DEMO_OWNER_EMAIL, DEMO_PLAN,
RUN_CELERY_LOG_LEVEL (WARNING), plus everything in .env.example.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def prepare() -> None:
    """Create what the embedded default keeps under VAR_DIR, before any process reads the settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # Function-level import: this script runs from deploy/, and the project's packages are importable
    # only once ROOT is on the path.
    from config.embedded import prepare as prepare_embedded_default

    prepare_embedded_default()


def manage(*args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, check=True, text=True, stdout=subprocess.PIPE if capture else None
    )
    return result.stdout or ""


def var_dir() -> Path:
    path = Path(os.environ.get("VAR_DIR", ROOT / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_password() -> str:
    path = var_dir() / "demo-owner-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (it holds a password or a key)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def bootstrap_args(password: str, reuse_key: str = "") -> list[str]:
    # "--name=value" throughout: a generated password may begin with "-", which
    # argparse would otherwise take for an option.
    args = [
        "bootstrap",
        f"--account={os.environ.get('DEMO_ACCOUNT', 'Demo')}",
        f"--workspace={os.environ.get('DEMO_WORKSPACE', 'Default')}",
        f"--owner={os.environ.get('DEMO_OWNER_EMAIL', 'owner@example.com')}",
        f"--plan={os.environ.get('DEMO_PLAN', 'enterprise')}",
        f"--owner-password={password}",
        "--json",
    ]
    if reuse_key:
        args.append(f"--reuse-key={reuse_key}")
    return args


def provision() -> dict:
    os.environ.setdefault("PUBLIC_URL", f"http://{HOST}:{PORT}")
    manage("migrate", "--noinput", "-v0")
    manage("collectstatic", "--noinput", "-v0")
    password = demo_password()
    key_file = var_dir() / "demo-service-key"
    kept = key_file.read_text().strip() if key_file.exists() else ""
    output = manage(*bootstrap_args(password, kept), capture=True)
    result = json.loads(output)
    result["owner_password"] = password
    if result["api_key"] != kept:
        write_private(key_file, result["api_key"] + "\n")
    return result


def wait_until_serving(
    processes: dict[str, subprocess.Popen], stopping: Callable[[], bool], timeout: float = 120.0
) -> bool:
    """Until the web answers its health check (False if a process exited, a stop was asked for or
    time ran out)."""
    url = f"http://{HOST}:{PORT}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        if any(proc.poll() is not None for proc in processes.values()):
            return False
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return True
        time.sleep(0.5)
    return False


def banner(info: dict) -> str:
    return "\n".join(
        [
            "",
            "=" * 78,
            f" Console:          {info['console_url']}",
            f" Owner login:      {info['owner_email']} / {info['owner_password']}",
            f" Workspace:        {info['account_handle']}/{info['workspace_handle']}",
            f" Service-account key: {info['api_key']}",
            "",
            " Point the prefect client at the workspace (this shell):",
            f"   export PREFECT_API_URL={info['api_url']}",
            f"   export PREFECT_CLOUD_API_URL={info['cloud_api_url']}",
            f"   export PREFECT_API_KEY={info['api_key']}",
            " or once for every shell (a prefect profile):",
            f"   prefect config set PREFECT_API_URL={info['api_url']} \\",
            f"     PREFECT_CLOUD_API_URL={info['cloud_api_url']} PREFECT_API_KEY={info['api_key']}",
            "",
            f" Saved in {var_dir() / 'welcome.txt'}. Ctrl-C stops everything.",
            "=" * 78,
            "",
        ]
    )


def start(name: str, argv: list[str]) -> subprocess.Popen:
    print(f"[run] starting {name}: {' '.join(argv)}", flush=True)
    # Own process group each, so a stop reaches every child they spawn.
    return subprocess.Popen(argv, cwd=ROOT, start_new_session=True)


def stop(processes: dict[str, subprocess.Popen], grace: float = 10.0) -> None:
    # SIGTERM to each main process only: Celery's worker then finishes its tasks and stops its own
    # pool (a SIGTERM to the whole group would kill the pool under it, which it reports as errors).
    for proc in processes.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in processes.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    prepare()
    info = provision()
    celery_log_level = os.environ.get("RUN_CELERY_LOG_LEVEL", "WARNING")
    beat_schedule = str(var_dir() / "celerybeat-schedule")
    processes = {
        "web": start(
            "web",
            [
                PY,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                HOST,
                "--port",
                PORT,
                "--lifespan",
                "off",
                "--http",
                "core.serving:HttpProtocol",
            ],
        ),
        "worker": start(
            "worker",
            [PY, "-m", "celery", "-A", "config", "worker", "-l", celery_log_level, "--concurrency", "2"],
        ),
        "beat": start(
            "beat", [PY, "-m", "celery", "-A", "config", "beat", "-l", celery_log_level, "-s", beat_schedule]
        ),
    }
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if wait_until_serving(processes, lambda: stopping):
        text = banner(info)
        print(text, flush=True)
        write_private(var_dir() / "welcome.txt", text.strip("\n") + "\n")
    exit_code = 0
    while not stopping:
        for name, proc in processes.items():
            if proc.poll() is not None:
                print(f"[run] {name} exited with {proc.returncode}; stopping the rest", flush=True)
                exit_code = proc.returncode or 1
                stopping = True
                break
        time.sleep(0.5)
    print("[run] stopping", flush=True)
    stop(processes)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
