"""Save a Secret block outside a flow, then load it: ``BLOCK_NAME``, ``BLOCK_VALUE``,
``BLOCK_OVERWRITE`` ("1" to overwrite), ``BLOCK_ONLY_LOAD`` ("1" to only load). Prints one
``RESULT {json}`` line: the loaded value, or the error."""

from __future__ import annotations

import json
import os

from prefect.blocks.system import Secret

if __name__ == "__main__":
    name = os.environ["BLOCK_NAME"]
    out: dict = {}
    try:
        if os.environ.get("BLOCK_ONLY_LOAD") != "1":
            out["id"] = str(
                Secret(value=os.environ["BLOCK_VALUE"]).save(
                    name, overwrite=os.environ.get("BLOCK_OVERWRITE") == "1"
                )
            )
        out["value"] = Secret.load(name).get()
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print("RESULT " + json.dumps(out, default=str), flush=True)
