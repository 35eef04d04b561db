"""The client process of part (h): ``Secret.load`` round trips with the real client.

Saves a ``Secret`` (the client registers the block type and schema on the fly), then times
``Secret.load(name)`` ``N`` times (default 200, after 5 untimed): each call opens the client's
sync ``PrefectClient`` and reads the block document by its type's slug and its name with secrets
(``GET block_types/slug/secret/block_documents/name/<name>?include_secrets=true``), then builds
the block. Each loaded value is checked. Also times the read alone on one shared sync client (no
client set-up per call), to separate the server's share from the client's.

Prints one JSON line with the sorted latencies in ms. The client settings come from the environment.
"""

from __future__ import annotations

import json
import secrets
import sys
import time

from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client

NAME = "bench-secret"


def main(n: int) -> int:
    value = secrets.token_urlsafe(24)
    Secret(value=value).save(NAME, overwrite=True)
    for _ in range(5):
        assert Secret.load(NAME).get() == value
    load_ms: list[float] = []
    for _ in range(n):
        t = time.perf_counter()
        got = Secret.load(NAME).get()
        load_ms.append((time.perf_counter() - t) * 1000)
        if got != value:
            print(f"wrong value loaded: {got!r}", file=sys.stderr)
            return 3
    read_ms: list[float] = []
    with get_client(sync_client=True) as client:
        for _ in range(5):
            client.read_block_document_by_name(name=NAME, block_type_slug="secret")
        for _ in range(n):
            t = time.perf_counter()
            doc = client.read_block_document_by_name(name=NAME, block_type_slug="secret")
            read_ms.append((time.perf_counter() - t) * 1000)
            if doc.data.get("value") != value:
                print(f"wrong value read: {doc.data!r}", file=sys.stderr)
                return 3
    out = {"load_ms": sorted(round(x, 3) for x in load_ms), "read_ms": sorted(round(x, 3) for x in read_ms)}
    print("BENCH_RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
