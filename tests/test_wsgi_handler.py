"""``config.wsgi``: a bearer-key request to ``/api/`` is served without the browser-only middleware,
whatever cookies come with it."""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from config.wsgi import application

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    # Keep the test's connection (and its transaction) across requests, as Django's test client does.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=application), base_url="http://localhost") as c:
            yield c
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize(
    "path", ["/api/me/", "/api/accounts/{account}", "/api/accounts/{account}/bots/filter"]
)
def test_a_key_request_with_a_session_cookie_is_served_by_the_key(client, tenant, path):
    """A key request that also carries a session cookie (a browser's, or a client that keeps
    cookies) was a 500: the session middleware that reads the session user ran without the
    authentication middleware that sets it. Found by the schemathesis run."""
    headers = {"Authorization": f"Bearer {tenant.member_key}"}
    cookies = {settings.SESSION_COOKIE_NAME: "not-a-session"}
    url = path.format(account=tenant.account.id)
    method = client.post if path.endswith("filter") else client.get
    answer = method(url, headers=headers, cookies=cookies, **({"json": {}} if method == client.post else {}))
    assert answer.status_code < 500, answer.text
    assert answer.status_code == method(url, headers=headers).status_code
    assert method(url, cookies=cookies).status_code in (401, 403, 404)
