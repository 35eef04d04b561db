"""Start-up for the embedded default: create on disk what the settings point at.

Importing the settings writes nothing: they read the environment, and on the embedded default (no
``DATABASE_URL``) the secret key from ``VAR_DIR/secret_key`` if it is there. ``prepare()`` is the one
step that writes: ``VAR_DIR`` itself, the secret key (generated once, mode 0600) and the filesystem
Celery broker's folders. Every entry point that starts a process calls it before Django reads its
settings: ``manage.py``, ``config.asgi`` / ``config.wsgi``, the Celery worker and beat (when the
Celery app loads its configuration) and ``deploy/run.py``. It is idempotent, and in a server
deployment (``DATABASE_URL``, ``SECRET_KEY`` and ``REDIS_URL`` set) it creates nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import sys
import tempfile
from pathlib import Path

from django.conf import settings

DEFAULT_SETTINGS_MODULE = "config.settings.base"
SETTINGS_PACKAGE = "config.settings"

# The filesystem broker's folders, as kombu's transport options name them.
BROKER_FOLDER_OPTIONS = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")


def read_secret_key(path: Path) -> str:
    """The key kept in ``path``, or "" while none has been generated."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def prepare() -> None:
    """Create ``VAR_DIR``, the secret key and the broker folders that the settings expect.

    Runs before Django reads its settings: when it generates the key, the settings modules it read
    are forgotten again, so that Django's own import reads the new key.
    """
    name = os.environ.get("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS_MODULE)
    conf = importlib.import_module(name)
    if conf.EMBEDDED:
        Path(conf.VAR_DIR).mkdir(parents=True, exist_ok=True)
    for option in BROKER_FOLDER_OPTIONS:
        folder = conf.CELERY_BROKER_TRANSPORT_OPTIONS.get(option)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    if conf.EMBEDDED and not conf.SECRET_KEY:
        _create_secret_key(Path(conf.SECRET_KEY_FILE))
        _forget_settings(name)


def _create_secret_key(path: Path) -> None:
    """Write a new key to ``path`` unless one is there; concurrent starts agree on one key, and the
    file is never seen partly written (a private temporary file, linked into place)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(64))
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _forget_settings(name: str) -> None:
    if settings.configured:
        raise RuntimeError("config.embedded.prepare() must run before Django reads its settings.")
    for module in [m for m in sys.modules if m == name or m.startswith(f"{SETTINGS_PACKAGE}.")]:
        del sys.modules[module]
