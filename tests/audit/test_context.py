"""The client address django-auditlog records comes from the trusted-proxy rules, not from the
first ``X-Forwarded-For`` value a client can forge."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from audit.middleware import AuditlogMiddleware


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        ([], "203.0.113.7", "127.0.0.1", "203.0.113.7"),
        (["10.0.0.0/8"], "10.0.0.2", "1.2.3.4, 198.51.100.9", "198.51.100.9"),
        (["10.0.0.0/8"], "203.0.113.7", "10.0.0.9", "203.0.113.7"),
    ],
)
def test_auditlog_remote_addr_follows_the_trusted_proxies(settings, trusted, peer, forwarded, expected):
    settings.TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    assert AuditlogMiddleware._get_remote_addr(request) == expected
