"""The background task shared by the task worker script and the script that defers runs (the
task key is derived from the function's code, so both must import the same one)."""

from __future__ import annotations

from prefect import task


@task
def background_add(a: int, b: int) -> int:
    return a + b
