"""``billing.stripe_client`` against localstripe: Stripe's errors come back as the product's own,
answers are plain dicts, and every write names its idempotency key."""

from __future__ import annotations

import pytest
from django.test import override_settings

from billing import stripe_client
from core.errors import PaymentRequired, Unprocessable, UpstreamUnavailable


def test_answers_are_plain_dicts(stripe_fake):
    customer = stripe_client.customer_create(
        name="Acme", email="billing@acme.example", metadata={"account_id": "a"}, idempotency_key="customer:a"
    )
    assert type(customer) is dict and customer["id"].startswith("cus_")
    assert stripe_client.customer_retrieve(customer["id"])["metadata"] == {"account_id": "a"}
    assert stripe_fake.idempotency_keys == ["customer:a"]


def test_an_unknown_object_is_a_422(stripe_fake):
    with pytest.raises(Unprocessable) as error:
        stripe_client.subscription_retrieve("sub_missing")
    assert error.value.code == "stripe_not_found"


def test_a_key_stripe_rejects_is_a_503_not_the_clients_fault(stripe_fake):
    with override_settings(STRIPE_SECRET_KEY="sk_x"), pytest.raises(UpstreamUnavailable) as error:
        stripe_client.subscription_retrieve("sub_missing")
    assert error.value.status_code == 503 and error.value.headers == {"Retry-After": "30"}


def test_an_unreachable_stripe_is_a_503(stripe_fake):
    with override_settings(STRIPE_API_BASE="http://127.0.0.1:9"), pytest.raises(UpstreamUnavailable):
        stripe_client.customer_retrieve("cus_x")


def test_a_declined_card_is_a_402(stripe_fake):
    """localstripe declines Stripe's test card 4000000000000002 as Stripe does: attaching it answers
    402 ``card_declined``. No write of this module attaches a card (Checkout and the portal take
    cards on Stripe's pages), so the SDK's own call goes through the module's one request path
    (``_call``, which every function here uses) to prove the mapping on a real SDK error."""
    customer = stripe_client.customer_create(
        name="Acme", email="", metadata={"account_id": "d"}, idempotency_key="customer:d"
    )
    card = stripe_fake.call(
        "POST",
        "/v1/payment_methods",
        type="card",
        **{
            "card[number]": "4000000000000002",
            "card[exp_month]": "12",
            "card[exp_year]": "2030",
            "card[cvc]": "123",
        },
    )
    attach = stripe_client._client().v1.payment_methods.attach
    with pytest.raises(PaymentRequired) as error:
        stripe_client._call(attach, card["id"], {"customer": customer["id"]})
    assert error.value.status_code == 402 and error.value.code == "card_declined"
    assert error.value.message == "Your card was declined."
    # A card that is not declined attaches: the 402 was the card's, not the request's.
    good = stripe_fake.call(
        "POST",
        "/v1/payment_methods",
        type="card",
        **{
            "card[number]": "4242424242424242",
            "card[exp_month]": "12",
            "card[exp_year]": "2030",
            "card[cvc]": "123",
        },
    )
    assert stripe_client._call(attach, good["id"], {"customer": customer["id"]})["customer"] == customer["id"]
