"""Fault tests run the product as processes of their own (``harness.Stack``)."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "faults: kill and restart parts of a deployment of their own (its database's backends, its "
        "Redis, its web and worker processes) under the real prefect client",
    )
