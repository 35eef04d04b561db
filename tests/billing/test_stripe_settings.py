"""The Stripe settings are validated at start, and without them nothing calls Stripe."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from billing import stripe_client
from billing.checks import stripe_settings_check
from core.errors import UpstreamUnavailable

GOOD = dict(
    STRIPE_SECRET_KEY="sk_test_123",
    STRIPE_WEBHOOK_SECRET="whsec_abc",
    STRIPE_SEAT_PRICE_TEAM="price_team_seat",
)


def _ids(**overrides) -> set[str]:
    with override_settings(**{**GOOD, **overrides}):
        return {message.id for message in stripe_settings_check()}


def test_without_a_key_there_is_nothing_to_check_and_nothing_calls_stripe():
    with override_settings(STRIPE_SECRET_KEY="", STRIPE_WEBHOOK_SECRET=""):
        assert stripe_settings_check() == []
        assert not stripe_client.enabled()
        with pytest.raises(UpstreamUnavailable):
            stripe_client.subscription_retrieve("sub_123")


def test_a_complete_configuration_passes():
    assert _ids() == set()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"STRIPE_SECRET_KEY": "pk_test_123"}, "billing.E002"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "billing.E003"),
        ({"STRIPE_WEBHOOK_TOLERANCE_SECONDS": 0}, "billing.E004"),
        ({"STRIPE_API_BASE": "localhost:8420"}, "billing.E005"),
        ({"STRIPE_TIMEOUT_SECONDS": 0}, "billing.E006"),
        ({"STRIPE_SEAT_PRICE_TEAM": "price with space"}, "billing.E007"),
        ({"STRIPE_SEAT_PRICE_TEAM": ""}, "billing.E008"),
        ({"BILLING_GRACE_DAYS": -1}, "billing.E001"),
    ],
)
def test_each_bad_setting_is_named(overrides, error):
    assert error in _ids(**overrides)


def test_the_check_runs_with_djangos_own_checks():
    with (
        override_settings(**{**GOOD, "STRIPE_WEBHOOK_SECRET": ""}),
        pytest.raises(SystemCheckError, match="STRIPE_WEBHOOK_SECRET"),
    ):
        call_command("check")


def test_every_write_names_an_idempotency_key():
    with override_settings(**GOOD), pytest.raises(ValueError, match="idempotency"):
        stripe_client.customer_create(name="a", email="", metadata={}, idempotency_key="")
