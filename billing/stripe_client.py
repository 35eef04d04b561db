"""The one module that talks to Stripe (an import-linter contract forbids ``stripe`` anywhere else).

- One pinned API version (``API_VERSION``), whatever the SDK's default becomes.
- Every write carries an idempotency key the caller derives from what it is doing (a ledger row's
  id, an account and a plan), so a retry, ours or the SDK's, never charges twice.
- Each request has a timeout (``STRIPE_TIMEOUT_SECONDS``) and is retried by the SDK on connection
  errors, 409s and 5xx (``STRIPE_MAX_NETWORK_RETRIES``), with the same idempotency key.
- Stripe's errors come back as the product's own (``core.errors``): a declined card is a 402, a
  request Stripe refuses a 422, an outage, a rate limit or a key Stripe rejects a 503 with
  ``Retry-After`` (the person using the product cannot fix our key).
- Answers are plain dicts: nothing outside this module sees a Stripe type.

``STRIPE_API_BASE`` points the client at another Stripe-compatible server (a local fake in tests).
Nothing here runs unless ``STRIPE_SECRET_KEY`` is set (``enabled()``).
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import stripe
from django.conf import settings

from core.errors import Conflict, InvalidInput, PaymentRequired, Unprocessable, UpstreamUnavailable

logger = logging.getLogger(__name__)

#: The Stripe API version every request names. Changing it is a reviewed change: the fields this
#: module reads (a subscription's period on its items, an invoice's subscription under ``parent``)
#: move between versions.
API_VERSION = "2026-10-28.endive"


def enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


@functools.cache
def _client_for(key: str, base: str, timeout: float, retries: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        key,
        stripe_version=API_VERSION,
        base_addresses={"api": base} if base else None,
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def _client() -> stripe.StripeClient:
    if not enabled():
        raise UpstreamUnavailable("Billing through Stripe is not configured.", code="billing_disabled")
    return _client_for(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        settings.STRIPE_TIMEOUT_SECONDS,
        settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def _plain(obj: Any) -> dict[str, Any]:
    return json.loads(str(obj))


def _mapped(error: stripe.StripeError) -> Exception:
    message = error.user_message or "The payment provider refused the request."
    if isinstance(error, stripe.CardError):
        return PaymentRequired(message, code="card_declined")
    if isinstance(error, stripe.IdempotencyError):
        return Conflict(message, code="idempotency_conflict")
    if isinstance(error, stripe.InvalidRequestError):
        if error.http_status == 404:
            return Unprocessable(message, code="stripe_not_found")
        return Unprocessable(message, code="stripe_invalid_request")
    # Authentication, permission, rate limit, connection, Stripe's own 5xx: nothing the client can
    # change; logged with Stripe's request id for the operator.
    logger.warning("Stripe request failed: %s (request %s)", error, getattr(error, "request_id", None))
    return UpstreamUnavailable("The payment provider is unavailable; retry shortly.")


def _call(method, *args, **kwargs) -> dict[str, Any]:
    try:
        return _plain(method(*args, **kwargs))
    except stripe.StripeError as error:
        raise _mapped(error) from None


def _write_options(idempotency_key: str) -> dict[str, str]:
    if not idempotency_key:
        raise ValueError("Every write to Stripe names an idempotency key.")
    return {"idempotency_key": idempotency_key}


# --- reads ------------------------------------------------------------------------------------------


def subscription_retrieve(subscription_id: str) -> dict[str, Any]:
    return _call(_client().v1.subscriptions.retrieve, subscription_id)


def customer_retrieve(customer_id: str) -> dict[str, Any]:
    return _call(_client().v1.customers.retrieve, customer_id)


# --- writes -----------------------------------------------------------------------------------------


def customer_create(*, name: str, email: str, metadata: dict[str, str], idempotency_key: str) -> dict:
    params: dict[str, Any] = {"name": name, "metadata": metadata}
    if email:
        params["email"] = email
    return _call(_client().v1.customers.create, params, _write_options(idempotency_key))


def checkout_session_create(
    *,
    customer_id: str,
    line_items: list[dict[str, Any]],
    success_url: str,
    cancel_url: str,
    client_reference_id: str,
    metadata: dict[str, str],
    idempotency_key: str,
) -> dict[str, Any]:
    params = {
        "mode": "subscription",
        "customer": customer_id,
        "line_items": line_items,
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
    }
    return _call(_client().v1.checkout.sessions.create, params, _write_options(idempotency_key))


def portal_session_create(*, customer_id: str, return_url: str, idempotency_key: str) -> dict[str, Any]:
    params = {"customer": customer_id, "return_url": return_url}
    return _call(_client().v1.billing_portal.sessions.create, params, _write_options(idempotency_key))


def subscription_items_update(
    *, subscription_id: str, items: list[dict[str, Any]], idempotency_key: str
) -> dict[str, Any]:
    """Change the subscription's items (quantity, price), prorated."""
    params = {"items": items, "proration_behavior": "create_prorations"}
    return _call(_client().v1.subscriptions.update, subscription_id, params, _write_options(idempotency_key))


def subscription_cancel_at_period_end(
    *, subscription_id: str, cancel: bool, idempotency_key: str
) -> dict[str, Any]:
    params = {"cancel_at_period_end": cancel}
    return _call(_client().v1.subscriptions.update, subscription_id, params, _write_options(idempotency_key))


# --- webhooks ---------------------------------------------------------------------------------------


def webhook_event_verify(payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """The event a delivery carries, once its ``Stripe-Signature`` (``t=…,v1=…``: HMAC-SHA256 with
    the endpoint's secret over ``t.payload``) checks out and ``t`` is within the tolerance; a bad,
    missing or stale signature is an ``InvalidInput``."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise UpstreamUnavailable("Stripe webhooks are not configured.", code="billing_disabled")
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"),
            signature_header or "",
            secret,
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise InvalidInput("The webhook signature is invalid or too old.", code="bad_signature") from None
    try:
        event = json.loads(payload)
    except ValueError:
        raise InvalidInput("The webhook body is not JSON.", code="bad_payload") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or "type" not in event:
        raise InvalidInput("The webhook body is not a Stripe event.", code="bad_payload")
    return event
