"""Outbound calls are not a way into the network: loopback, private, link-local and metadata
addresses are refused after DNS resolution and on every redirect, unless the operator allows a
range; timeouts and a response-size limit hold. Against a real local HTTP server."""

from __future__ import annotations

import ipaddress
import socketserver
import threading
import time

import pytest

from core import outbound
from core.outbound import OutboundFailed, OutboundRefused, outbound_request
from tests.peers.http_receiver import Receiver


@pytest.fixture
def receiver():
    peer = Receiver()
    yield peer
    peer.close()


@pytest.fixture
def local_allowed(settings):
    settings.OUTBOUND_WEBHOOK_ALLOWED_CIDRS = ["127.0.0.1/32"]


def test_an_allowed_local_receiver_gets_the_call(receiver, local_allowed):
    response = outbound_request("POST", f"{receiver.url}/hook?token=s3cret", content='{"a": 1}',
                                headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 200 and response.text == "ok"
    (request,) = receiver.requests
    assert request["method"] == "POST" and request["body"] == b'{"a": 1}'
    assert request["path"] == "/hook?token=s3cret"
    assert request["headers"]["Host"] == f"127.0.0.1:{receiver.port}"
    assert "s3cret" not in response.url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",  # resolved first: loopback
        "http://10.0.0.1/",
        "http://192.168.1.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://0.0.0.0:{port}/",
        "http://100.64.0.1/",
        # IPv6 forms that carry an internal IPv4 address: 6to4, NAT64, IPv4-compatible, mapped.
        "http://[2002:7f00:1::1]:{port}/",
        "http://[2002:a9fe:a9fe::1]/latest/meta-data/",
        "http://[64:ff9b::7f00:1]:{port}/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[::127.0.0.1]:{port}/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fec0::1]/",  # site-local
    ],
)
def test_internal_addresses_are_refused_without_a_call(receiver, url):
    with pytest.raises(OutboundRefused, match="which the server does not call"):
        outbound_request("GET", url.format(port=receiver.port))
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:a00:1::1", "a private address (10.0.0.1)"),
        ("2002:7f00:1::1", "a loopback address (127.0.0.1)"),
        ("64:ff9b::a00:1", "a private address (10.0.0.1)"),
        ("64:ff9b::a9fe:a9fe", "a link-local address (169.254.169.254)"),
        ("::ffff:10.0.0.1", "a private address (10.0.0.1)"),
        ("::10.0.0.1", "a private address (10.0.0.1)"),
        ("::8.8.8.8", "not a public address"),  # IPv4-compatible addresses are deprecated
        ("fec0::1", "a private address"),
        # Public IPv4 addresses in these forms are called: DNS64 answers 64:ff9b::/96 for every
        # public host on an IPv6-only network.
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
        ("::ffff:8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_ipv6_forms_are_judged_by_the_ipv4_address_they_carry(address, reason):
    assert outbound.address_refusal(ipaddress.ip_address(address)) == reason


def test_an_allowed_ipv4_range_covers_its_ipv6_forms(settings):
    settings.OUTBOUND_WEBHOOK_ALLOWED_CIDRS = ["10.0.0.0/8"]
    for address in ("64:ff9b::a00:1", "2002:a00:1::1", "::ffff:10.0.0.1"):
        assert outbound.address_refusal(ipaddress.ip_address(address)) is None
    assert (
        outbound.address_refusal(ipaddress.ip_address("64:ff9b::7f00:1")) == "a loopback address (127.0.0.1)"
    )


def test_only_the_allowed_range_is_opened(receiver, settings):
    settings.OUTBOUND_WEBHOOK_ALLOWED_CIDRS = ["127.0.0.2/32"]
    with pytest.raises(OutboundRefused, match="127.0.0.1, a loopback address"):
        outbound_request("GET", f"{receiver.url}/")


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://[::1]/",
        "http://127.0.0.2:{port}/",
    ],
)
def test_a_redirect_to_an_internal_address_is_refused(receiver, local_allowed, location):
    receiver.route("/go", status=302, headers={"Location": location.format(port=receiver.port)})
    with pytest.raises(OutboundRefused):
        outbound_request("POST", f"{receiver.url}/go", content="x")
    assert [r["path"] for r in receiver.requests] == ["/go"]


def test_a_redirect_within_the_origin_is_followed_with_the_callers_headers(receiver, local_allowed):
    receiver.route("/go", status=307, headers={"Location": "/there"})
    response = outbound_request("POST", f"{receiver.url}/go", content="x",
                                headers={"Authorization": "Bearer TOPSECRET"})  # fmt: skip
    assert response.status_code == 200
    assert [(r["method"], r["path"], r["body"]) for r in receiver.requests] == [
        ("POST", "/go", b"x"), ("POST", "/there", b"x"),
    ]  # fmt: skip
    assert receiver.requests[1]["headers"]["Authorization"] == "Bearer TOPSECRET"


@pytest.fixture
def other_receiver():
    peer = Receiver()
    yield peer
    peer.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_is_not_followed(receiver, other_receiver, local_allowed, status):
    # The second receiver is another origin (another port): the block's credentials, headers and
    # body must not reach it, whatever the redirect.
    receiver.route("/go", status=status, headers={"Location": f"{other_receiver.url}/catch/SECRETPATH"})
    headers = {"Authorization": "Bearer TOPSECRET", "Proxy-Authorization": "Basic cHc=", "Cookie": "s=TOPSECRET",
               "X-Api-Key": "TOPSECRET", "Content-Type": "application/json"}  # fmt: skip
    with pytest.raises(OutboundFailed, match="another origin, which is not followed") as failed:
        outbound_request(
            "POST", f"{receiver.url}/go", headers=headers, content='{"routing_key": "TOPSECRET"}'
        )
    assert other_receiver.requests == []
    assert [r["path"] for r in receiver.requests] == ["/go"]
    assert f"http://127.0.0.1:{other_receiver.port}/…" in str(failed.value)
    assert "TOPSECRET" not in str(failed.value) and "SECRETPATH" not in str(failed.value)


def test_only_an_https_upgrade_of_the_same_host_counts_as_the_same_origin():
    same = outbound._same_origin
    assert same("http://hooks.example.com/a", "https://hooks.example.com/b")
    assert same("http://hooks.example.com:80/a", "https://hooks.example.com:443/b")
    assert same("https://Hooks.Example.com/a", "https://hooks.example.com:443/b?c")
    assert not same("https://hooks.example.com/a", "http://hooks.example.com/b")  # a downgrade
    assert not same("http://hooks.example.com:8080/a", "https://hooks.example.com/b")
    assert not same("https://hooks.example.com/a", "https://hooks.example.com:8443/b")
    assert not same("https://hooks.example.com/a", "https://evil.example.com/b")


@pytest.mark.parametrize(
    ("status", "method", "then", "body_kept"),
    [
        (301, "POST", "GET", False),
        (301, "PUT", "PUT", True),
        (302, "POST", "GET", False),
        (302, "PUT", "GET", False),
        (303, "POST", "GET", False),
        (303, "PUT", "GET", False),
        (307, "PUT", "PUT", True),
        (308, "POST", "POST", True),
    ],
)
def test_redirects_change_the_method_as_httpx_and_requests_do(
    receiver, local_allowed, status, method, then, body_kept
):
    receiver.route("/go", status=status, headers={"Location": "/there"})
    outbound_request(method, f"{receiver.url}/go", content='{"a": 1}',
                     headers={"Content-Type": "application/json", "Authorization": "Bearer t"})  # fmt: skip
    second = receiver.requests[1]
    assert (second["method"], second["path"]) == (then, "/there")
    assert second["body"] == (b'{"a": 1}' if body_kept else b"")
    assert ("Content-Type" in second["headers"]) is body_kept
    assert second["headers"]["Authorization"] == "Bearer t"  # the same origin


def test_redirect_loops_end(receiver, local_allowed):
    receiver.route("/loop", status=302, headers={"Location": "/loop"})
    with pytest.raises(OutboundFailed, match="redirects"):
        outbound_request("GET", f"{receiver.url}/loop")
    assert len(receiver.requests) == outbound.MAX_REDIRECTS + 1


def test_a_large_answer_is_cut_at_the_limit(receiver, local_allowed):
    receiver.route("/big", body=b"x" * 100_000)
    response = outbound_request("GET", f"{receiver.url}/big", max_bytes=1000)
    assert response.truncated and len(response.content) == 1000


def test_a_slow_answer_times_out(receiver, local_allowed):
    receiver.route("/slow", delay=2.0)
    with pytest.raises(OutboundFailed, match="ReadTimeout"):
        outbound_request("GET", f"{receiver.url}/slow?token=s3cret", timeout=0.3)


class Trickler:
    """A receiver that answers a byte every ``every`` seconds, in its body or in its headers:
    each read gets a byte well within the read timeout, so only a deadline ends the call."""

    def __init__(self, *, where: str, every: float = 0.1, count: int = 60) -> None:
        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                    pass
                head = b"HTTP/1.1 200 OK\r\n"
                head += b"X-Pad: " if where == "headers" else f"Content-Length: {count}\r\n\r\n".encode()
                try:
                    self.wfile.write(head)
                    for _ in range(count):
                        time.sleep(every)
                        self.wfile.write(b"x")
                        self.wfile.flush()
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickled_answer_ends_at_the_deadline(local_allowed, settings, where):
    settings.OUTBOUND_WEBHOOK_DEADLINE_SECONDS = 1.0
    trickler = Trickler(where=where)  # 6 s in all without a deadline
    try:
        started = time.monotonic()
        with pytest.raises(OutboundFailed, match="took longer than its 1 s deadline") as failed:
            outbound_request("GET", f"{trickler.url}/hook/T0KEN", timeout=0.5)
        assert time.monotonic() - started < 2.5
        assert "Timeout" in str(failed.value) and "T0KEN" not in str(failed.value)
    finally:
        trickler.close()


def test_the_deadline_spans_the_redirects(receiver, local_allowed, settings):
    settings.OUTBOUND_WEBHOOK_DEADLINE_SECONDS = 1.0
    receiver.route("/loop", status=302, headers={"Location": "/loop"}, delay=0.3)  # 1.8 s for six calls
    receiver.server.handle_error = lambda request, address: None  # the call it was answering gave up
    started = time.monotonic()
    with pytest.raises(OutboundFailed, match="deadline"):
        outbound_request("GET", f"{receiver.url}/loop")
    assert time.monotonic() - started < 1.6
    assert len(receiver.requests) < outbound.MAX_REDIRECTS + 1


def test_the_deadline_has_a_default_of_thirty_seconds():
    assert outbound.DEADLINE_SECONDS == 30.0


def test_an_unparsable_url_is_refused_without_a_call():
    with pytest.raises(OutboundRefused, match="not a URL the server can call"):
        outbound_request("POST", "http://hooks.example.com:99999/T0KEN")


def test_other_schemes_are_refused():
    with pytest.raises(OutboundRefused, match="'file'"):
        outbound_request("GET", "file:///etc/passwd")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@hooks.slack.com/services/T0/B0/XYZ?x=1", "https://hooks.slack.com/…"),
        ("https://hooks.example.com/T0KEN", "https://hooks.example.com/…"),
        ("https://hooks.example.com/?token=T0KEN", "https://hooks.example.com/…"),
        ("https://hooks.example.com#T0KEN", "https://hooks.example.com/…"),
        ("https://T0KEN@hooks.example.com:8443", "https://hooks.example.com:8443"),
        ("https://hooks.example.com/", "https://hooks.example.com"),
        ("http://[::1]:8080/T0KEN", "http://[::1]:8080/…"),
        ("http://hooks.example.com:99999/T0KEN", "(not a valid URL)"),
    ],
)
def test_redacted_urls_keep_only_scheme_host_and_port(url, shown):
    assert outbound.redacted(url) == shown
