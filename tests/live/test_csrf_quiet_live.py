"""The ``prefect`` client prints nothing about ``csrf-token`` against a workspace here, whether
``PREFECT_CLOUD_API_URL`` names this server (Cloud mode: the client asks for no CSRF token) or is
unset (server mode: the client asks ``csrf-token`` before its first write). To a key, ``csrf-token``
answers as Prefect's own server does with CSRF protection off (422, "CSRF protection is disabled."),
which the client takes as "send no CSRF headers", silently; browser sessions of the workspace's UI
get real tokens (``access.csrf``). Nor does the server's log warn about that expected answer."""

from __future__ import annotations

import logging

import pytest

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("cloud_mode", [True, False], ids=["cloud-api-url-set", "cloud-api-url-unset"])
def test_the_client_says_nothing_about_csrf(asgi_server, live_tenant, run_prefect, cloud_mode, caplog):
    caplog.set_level(logging.INFO)
    env = {} if cloud_mode else {"PREFECT_CLOUD_API_URL": None}
    mark = asgi_server.mark()
    # A write (POST variables/) and a read that is a POST too (flows/filter): both are "change
    # requests" to the client, which fetches a CSRF token first in server mode.
    runs = [
        run_prefect(["prefect", "variable", "set", "quiet_probe", "1"], env=env),
        run_prefect(["prefect", "flow", "ls"], env=env),
    ]
    for run in runs:
        assert run.returncode == 0, run.describe()
        assert "csrf" not in run.output.lower(), run.describe()
    asked = [e for e in asgi_server.since(mark) if e.path.endswith("/csrf-token")]
    if cloud_mode:
        assert asked == [], [e.line() for e in asked]
    else:
        # Each client process asked once, got Prefect's "disabled" answer, and sent its writes anyway.
        assert len(asked) == len(runs), [e.line() for e in asked]
        for exchange in asked:
            assert exchange.status == 422 and b"CSRF protection is disabled." in exchange.response_body
        written = [
            e for e in asgi_server.since(mark) if e.method == "POST" and e.path.endswith("/variables/")
        ]
        assert [e.status for e in written] == [201], [e.line() for e in written]
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "csrf-token" in r.getMessage()
    ]
    assert warned == []
