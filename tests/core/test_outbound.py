"""Outbound calls are not a way into the network: loopback, private, link-local and metadata
addresses are refused after DNS resolution and on every redirect, unless the operator allows a
range; timeouts and a response-size limit hold. Against a real local HTTP server."""

from __future__ import annotations

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
    ],
)
def test_internal_addresses_are_refused_without_a_call(receiver, url):
    with pytest.raises(OutboundRefused, match="which the server does not call"):
        outbound_request("GET", url.format(port=receiver.port))
    assert receiver.requests == []


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


def test_a_redirect_to_an_allowed_address_is_followed(receiver, local_allowed):
    receiver.route("/go", status=307, headers={"Location": "/there"})
    response = outbound_request("POST", f"{receiver.url}/go", content="x")
    assert response.status_code == 200
    assert [(r["method"], r["path"], r["body"]) for r in receiver.requests] == [
        ("POST", "/go", b"x"), ("POST", "/there", b"x"),
    ]  # fmt: skip


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


def test_other_schemes_are_refused():
    with pytest.raises(OutboundRefused, match="'file'"):
        outbound_request("GET", "file:///etc/passwd")


def test_redacted_urls_keep_no_secret():
    assert outbound.redacted("https://user:pw@hooks.slack.com/services/T0/B0/XYZ?x=1") == (
        "https://hooks.slack.com/services/…"
    )
