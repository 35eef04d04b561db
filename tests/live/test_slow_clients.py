"""A slow or stalled upload costs its own connection, never one of the threads that run Django.

32 connections announce a 1 MB body, send 1 KB and stall (no credentials needed: the invitation
route reads its body first); meanwhile ``/api/health`` and an authenticated Prefect route answer
within a second, as they do with no such clients.
"""

from __future__ import annotations

import socket
import time
import uuid

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

STALLED = 32


def _stall(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        f"POST /api/invitations/{uuid.uuid4()}/accept HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    sock.sendall(head.encode() + b" " * 1024)
    return sock


def test_stalled_uploads_leave_every_other_request_answered(asgi_server, live_tenant):
    stalled = [_stall(asgi_server.port) for _ in range(STALLED)]
    try:
        time.sleep(0.5)  # every stalled request is in the server by now
        with httpx.Client(timeout=5) as client:
            started = time.monotonic()
            health = client.get(f"{asgi_server.url}/api/health")
            assert health.status_code == 200 and time.monotonic() - started < 1.0
            started = time.monotonic()
            version = client.get(
                f"{live_tenant.api_url}/admin/version",
                headers={"Authorization": f"Bearer {live_tenant.developer_key}"},
            )
            assert version.status_code == 200 and time.monotonic() - started < 1.0
            started = time.monotonic()
            created = client.post(
                f"{live_tenant.api_url}/flows/",
                json={"name": "while-others-stall"},
                headers={"Authorization": f"Bearer {live_tenant.developer_key}"},
            )
            assert created.status_code in (200, 201) and time.monotonic() - started < 1.0
    finally:
        for sock in stalled:
            sock.close()
