"""Subflows two levels deep, each level submitting and mapping tasks and handing its result up:
``parity-top`` → ``parity-mid`` → ``parity-leaf``. A future is passed into a subflow call and into
tasks, so the server sees task inputs. With ``n=2`` the flow returns 1697:

* top:  a = square.submit(2) = 4; b = square.map([1, 2, 3]) = 14 in all; mid(a) ; add(mid, 14)
* mid:  square.map([4, 5]) = 16 + 25 = 41; leaf(41); add.submit(leaf, 1)
* leaf: square.map([41, 1]) = [1681, 1]; add.submit(<future>, <future>) = 1682

The RESULT line carries the value and the final state, for the test to compare with the server's run
tree (and with Prefect's own server's, when run against it).
"""

from __future__ import annotations

import os

from _common import SEEN, main, note_run
from prefect import flow, task


@task
def square(x: int) -> int:
    return x * x


@task
def add(a: int, b: int) -> int:
    return a + b


@flow(name="parity-leaf")
def leaf(y: int) -> int:
    mapped = square.map([y, 1])
    return add.submit(mapped[0], mapped[1]).result()


@flow(name="parity-mid")
def mid(x: int) -> int:
    squares = square.map([x, x + 1])
    below = leaf(sum(f.result() for f in squares))
    return add.submit(below, 1).result()


@flow(name="parity-top")
def top(n: int) -> int:
    note_run()
    first = square.submit(n)
    mapped = square.map([1, 2, 3])
    below = mid(first)
    value = add.submit(below, sum(f.result() for f in mapped)).result()
    SEEN["value"] = value
    return value


if __name__ == "__main__":
    main(top, n=int(os.environ.get("PARITY_N", "2")))
