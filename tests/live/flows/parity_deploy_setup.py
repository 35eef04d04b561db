"""What the parity deploy reads: two Secret blocks (a string and a JSON object) and three variables
(two strings and a JSON object), saved with the client (``Secret.save``, ``Variable.set``)."""

from __future__ import annotations

import json
import os

from prefect.blocks.system import Secret
from prefect.variables import Variable

if __name__ == "__main__":
    Secret(value=os.environ["PARITY_SECRET"]).save("db-pass")
    Secret(value={"token": os.environ["PARITY_SECRET"], "retries": 3}).save("api-config")
    Variable.set("region", "eu-west-1")
    Variable.set("team", "data-eng")
    Variable.set("limits", {"cpu": 2, "memory": "4Gi"})
    print("RESULT " + json.dumps({"saved": True}), flush=True)
