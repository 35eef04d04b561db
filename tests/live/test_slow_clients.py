"""A slow or stalled upload costs its own connection, never one of the threads that run Django.

32 connections announce a 1 MB body, send 1 KB and stall (no credentials needed: the invitation
route reads its body first); meanwhile ``/api/health`` and an authenticated Prefect route answer
within a second, as they do with no such clients. Headers that trickle in or never come cost a
connection for ``HTTP_HEADER_TIMEOUT_SECONDS`` at most, then get 408.
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


def _read_until_closed(sock: socket.socket, within: float) -> bytes:
    sock.settimeout(within)
    received = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return received
        received += chunk


def _read_response(sock: socket.socket) -> bytes:
    """One response of a kept-alive connection (its headers and ``content-length`` bytes)."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return received


@pytest.mark.parametrize(
    "opening",
    [
        b"",  # connects and says nothing
        b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers that never end
    ],
)
def test_headers_that_do_not_arrive_in_time_get_408_and_the_connection_closes(asgi_server, settings, opening):
    settings.HTTP_HEADER_TIMEOUT_SECONDS = 1.0
    sock = socket.create_connection(("127.0.0.1", asgi_server.port), timeout=5)
    try:
        started = time.monotonic()
        sock.sendall(opening)
        for _ in range(3):  # a header line now and then does not extend the deadline
            time.sleep(0.3)
            sock.sendall(b"X-Trickle: 1\r\n" if opening else b"")
        answer = _read_until_closed(sock, within=5)
        assert time.monotonic() - started < 3
        assert answer.startswith(b"HTTP/1.1 408 ")
    finally:
        sock.close()


def test_a_kept_alive_connection_gets_the_deadline_again_for_each_request(asgi_server, settings):
    settings.HTTP_HEADER_TIMEOUT_SECONDS = 1.0
    sock = socket.create_connection(("127.0.0.1", asgi_server.port), timeout=5)
    try:
        for _ in range(3):  # three requests, 0.6 s apart: each within its own deadline
            time.sleep(0.6)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert _read_response(sock).startswith(b"HTTP/1.1 200 ")
    finally:
        sock.close()
