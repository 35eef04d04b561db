"""Defers ``background_add`` runs with ``.delay()`` and waits for their results (a task worker
serves them); prints one ``RESULT {json}`` line."""

from __future__ import annotations

import json
import os
import sys
import traceback

from background_tasks import background_add

if __name__ == "__main__":
    count = int(os.environ.get("BACKGROUND_COUNT", "1"))
    try:
        futures = [background_add.delay(i, 10) for i in range(count)]
        results = [
            future.result(timeout=float(os.environ.get("BACKGROUND_WAIT", "60"))) for future in futures
        ]
    except Exception as exc:
        traceback.print_exc()
        print("RESULT " + json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        sys.exit(2)
    out = {
        "task_run_ids": [str(f.task_run_id) for f in futures],
        "results": results,
        "task_key": background_add.task_key,
    }
    print("RESULT " + json.dumps(out), flush=True)
