"""A task worker: ``prefect.task_worker.serve`` for ``background_add`` (until it is stopped, or
``BACKGROUND_TIMEOUT`` seconds)."""

from __future__ import annotations

import os

from background_tasks import background_add
from prefect.task_worker import serve

if __name__ == "__main__":
    print("TASK_KEY " + background_add.task_key, flush=True)
    serve(background_add, timeout=float(os.environ.get("BACKGROUND_TIMEOUT", "60")))
