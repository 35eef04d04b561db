"""Stripe for the billing tests: ``localstripe`` (a stateful fake of Stripe's API, from PyPI) started
as a subprocess on 127.0.0.1, behind a small HTTP front that fakes only what localstripe lacks:

- ``POST /v1/checkout/sessions`` and ``POST /v1/billing_portal/sessions`` (localstripe has neither):
  answered here with a session whose ``url`` is recorded, so a test can "complete" the Checkout the
  way Stripe would (customer and subscription created in localstripe, then a signed webhook);
- ``proration_behavior`` on a subscription update (localstripe answers 500 for it; it prorates
  anyway): dropped on the way through, after being recorded so tests can assert it was sent;
- ``items[n][price]`` (localstripe has plans, not prices; a plan id is a valid price id in Stripe):
  renamed to ``items[n][plan]``;
- a subscription's ``status`` (localstripe cannot make a renewal fail): a test may override what
  ``GET /v1/subscriptions/<id>`` answers, to play a failed and then a paid invoice.

Everything else (customers, products, plans, payment methods, subscriptions, quantity changes,
cancellation) is localstripe's own state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.test import override_settings

WEBHOOK_SECRET = "whsec_test_" + "a" * 24
SEAT_PRICE_TEAM = "price_team_seat"
SEAT_PRICE_STARTER = "price_starter_seat"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class FakeStripe:
    """The front: what it recorded and what it overrides."""

    localstripe: str
    base: str = ""
    checkout_sessions: list[dict] = field(default_factory=list)
    portal_sessions: list[dict] = field(default_factory=list)
    prorations: list[str] = field(default_factory=list)
    status_override: dict[str, str] = field(default_factory=dict)
    idempotency_keys: list[str] = field(default_factory=list)

    # --- driving localstripe as Stripe's own side would --------------------------------------------

    def call(self, method: str, path: str, **data):
        response = requests.request(
            method, f"{self.localstripe}{path}", data=data or None, auth=("sk_test_fixture", ""), timeout=10
        )
        body = response.json()
        assert "error" not in body, body
        return body

    def complete_checkout(self, session: dict) -> dict:
        """What Stripe does when the person pays on the Checkout page: a card on the customer and the
        subscription with the session's line items. Returns the subscription."""
        customer = session["customer"]
        method = self.call(
            "POST",
            "/v1/payment_methods",
            type="card",
            **{"card[number]": "4242424242424242", "card[exp_month]": "12", "card[exp_year]": "2030"},
            **{"card[cvc]": "123"},
        )
        self.call("POST", f"/v1/payment_methods/{method['id']}/attach", customer=customer)
        self.call(
            "POST", f"/v1/customers/{customer}", **{"invoice_settings[default_payment_method]": method["id"]}
        )
        items = {}
        for index, item in enumerate(session["line_items"]):
            items[f"items[{index}][plan]"] = item["price"]
            items[f"items[{index}][quantity]"] = item["quantity"]
        metadata = {f"metadata[{k}]": v for k, v in session["metadata"].items()}
        subscription = self.call("POST", "/v1/subscriptions", customer=customer, **items, **metadata)
        assert subscription["status"] == "active", subscription
        session["subscription"] = subscription["id"]
        return subscription

    def subscription(self, subscription_id: str) -> dict:
        return self.call("GET", f"/v1/subscriptions/{subscription_id}")


class _Front(BaseHTTPRequestHandler):
    fake: FakeStripe

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: dict, status: int = 200) -> None:
        self._answer(status, json.dumps(data).encode())

    def _forward(self, method: str, body: bytes | None) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        response = requests.request(
            method, f"{self.fake.localstripe}{self.path}", data=body, headers=headers, timeout=10
        )
        content = response.content
        path = urllib.parse.urlsplit(self.path).path
        if method == "GET" and path.startswith("/v1/subscriptions/"):
            data = response.json()
            override = self.fake.status_override.get(data.get("id", ""))
            if override:
                data["status"] = override
                content = json.dumps(data).encode()
        self._answer(response.status_code, content)

    def do_GET(self):
        self._forward("GET", None)

    def do_DELETE(self):
        self._forward("DELETE", None)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if key := self.headers.get("Idempotency-Key"):
            self.fake.idempotency_keys.append(key)
        pairs = urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True)
        path = urllib.parse.urlsplit(self.path).path
        if path == "/v1/checkout/sessions":
            return self._checkout(dict(pairs))
        if path == "/v1/billing_portal/sessions":
            session = {"id": "bps_" + secrets.token_hex(8), "object": "billing_portal.session", **dict(pairs)}
            session["url"] = f"https://billing.stripe.test/p/{session['id']}"
            self.fake.portal_sessions.append(session)
            return self._json(session)
        kept = []
        for name, value in pairs:
            if name == "proration_behavior":
                self.fake.prorations.append(value)
                continue
            if name.startswith("items[") and name.endswith("][price]"):
                name = name[: -len("[price]")] + "[plan]"
            kept.append((name, value))
        self._forward("POST", urllib.parse.urlencode(kept).encode())

    def _checkout(self, form: dict) -> None:
        line_items = []
        index = 0
        while f"line_items[{index}][price]" in form:
            line_items.append(
                {
                    "price": form[f"line_items[{index}][price]"],
                    "quantity": int(form[f"line_items[{index}][quantity]"]),
                }
            )
            index += 1
        session = {
            "id": "cs_test_" + secrets.token_hex(8),
            "object": "checkout.session",
            "mode": form.get("mode"),
            "customer": form.get("customer"),
            "client_reference_id": form.get("client_reference_id"),
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "metadata": {k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")},
            "line_items": line_items,
            "subscription": None,
            "status": "open",
        }
        session["url"] = f"https://checkout.stripe.test/c/pay/{session['id']}"
        self.fake.checkout_sessions.append(session)
        self._json(session)


@pytest.fixture(scope="session")
def _localstripe_server():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(f"{base}/v1/customers", auth=("sk_test_fixture", ""), timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("localstripe did not start") from None
            time.sleep(0.1)
    fake = FakeStripe(localstripe=base)
    handler = type("Front", (_Front,), {"fake": fake})
    front = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=front.serve_forever, daemon=True)
    thread.start()
    fake.base = f"http://127.0.0.1:{front.server_address[1]}"
    for plan, price, amount in (("team", SEAT_PRICE_TEAM, 5000), ("starter", SEAT_PRICE_STARTER, 3000)):
        product = fake.call("POST", "/v1/products", name=plan.title(), type="service")
        fake.call(
            "POST",
            "/v1/plans",
            id=price,
            product=product["id"],
            amount=amount,
            currency="usd",
            interval="month",
        )
    yield fake
    front.shutdown()
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def stripe_fake(_localstripe_server, settings):
    """Stripe on, pointed at the front; each test starts with fresh records."""
    fake = _localstripe_server
    fake.checkout_sessions.clear()
    fake.portal_sessions.clear()
    fake.prorations.clear()
    fake.status_override.clear()
    fake.idempotency_keys.clear()
    with override_settings(
        STRIPE_SECRET_KEY="sk_test_fixture",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=fake.base,
        STRIPE_SEAT_PRICE_TEAM=SEAT_PRICE_TEAM,
        STRIPE_SEAT_PRICE_STARTER=SEAT_PRICE_STARTER,
        STRIPE_PRICE_TEAM="",
        STRIPE_PRICE_STARTER="",
        STRIPE_MAX_NETWORK_RETRIES=0,
        STRIPE_TIMEOUT_SECONDS=10,
    ):
        yield fake


def signed(payload: dict, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    """A webhook body and its ``Stripe-Signature`` header, as Stripe builds them."""
    body = json.dumps(payload).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={timestamp},v1={mac}"


def event(kind: str, obj: dict, *, event_id: str | None = None) -> dict:
    return {
        "id": event_id or "evt_" + secrets.token_hex(10),
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "data": {"object": obj},
    }


URL = "/billing/stripe/webhook"


def deliver(client, payload: dict, **sign):
    body, header = signed(payload, **sign)
    return client.post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def start_checkout(client, account, owner, plan):
    client.force_login(owner)
    return client.post(
        f"/api/accounts/{account.id}/billing/checkout", data={"plan": plan}, content_type="application/json"
    )


def checkout_paid(client, stripe_fake, account, owner, *, plan="team", capture):
    """Start a checkout as the owner, pay it in "Stripe", deliver the completion webhook."""
    response = start_checkout(client, account, owner, plan)
    assert response.status_code == 201, response.content
    session = stripe_fake.checkout_sessions[-1]
    subscription = stripe_fake.complete_checkout(session)
    completed = {**session, "status": "complete", "subscription": subscription["id"]}
    with capture(execute=True):
        assert deliver(client, event("checkout.session.completed", completed)).status_code == 200
    return subscription
