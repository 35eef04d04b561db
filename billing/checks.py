"""Start-up validation of the Stripe settings (a Django system check, run by ``check``, ``migrate``
and, through ``manage.py check`` in ``deploy/entrypoint.sh``, before the web, worker and beat roles
start). Without ``STRIPE_SECRET_KEY`` there is nothing to validate: billing is off."""

from __future__ import annotations

from urllib.parse import urlparse

from django.conf import settings
from django.core import checks

from billing.prices import SELF_SERVE_PRICE_SETTINGS


@checks.register("billing")
def stripe_settings_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    if settings.BILLING_GRACE_DAYS < 0 or settings.BILLING_SUSPEND_AFTER_DAYS < 0:
        problems.append(
            checks.Error(
                "BILLING_GRACE_DAYS and BILLING_SUSPEND_AFTER_DAYS cannot be negative.", id="billing.E001"
            )
        )
    key = settings.STRIPE_SECRET_KEY
    if not key:
        return problems
    if not key.startswith(("sk_", "rk_")):
        problems.append(
            checks.Error(
                "STRIPE_SECRET_KEY must be a secret or restricted key (sk_… or rk_…).", id="billing.E002"
            )
        )
    if not settings.STRIPE_WEBHOOK_SECRET:
        problems.append(
            checks.Error(
                "STRIPE_WEBHOOK_SECRET is required with STRIPE_SECRET_KEY: without it no payment is ever "
                "confirmed.",
                id="billing.E003",
            )
        )
    if settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS <= 0:
        problems.append(checks.Error("STRIPE_WEBHOOK_TOLERANCE_SECONDS must be positive.", id="billing.E004"))
    base = settings.STRIPE_API_BASE
    if base and (urlparse(base).scheme not in ("http", "https") or not urlparse(base).netloc):
        problems.append(
            checks.Error(f"STRIPE_API_BASE is not an http(s) address: {base!r}.", id="billing.E005")
        )
    if settings.STRIPE_TIMEOUT_SECONDS <= 0 or settings.STRIPE_MAX_NETWORK_RETRIES < 0:
        problems.append(
            checks.Error(
                "STRIPE_TIMEOUT_SECONDS must be positive and STRIPE_MAX_NETWORK_RETRIES not negative.",
                id="billing.E006",
            )
        )
    offered = []
    for plan_key, (base_name, seat_name) in SELF_SERVE_PRICE_SETTINGS.items():
        for name in (base_name, seat_name):
            value = getattr(settings, name)
            if value and (value != value.strip() or " " in value):
                problems.append(checks.Error(f"{name} is not a Stripe id: {value!r}.", id="billing.E007"))
        if getattr(settings, base_name) or getattr(settings, seat_name):
            offered.append(plan_key)
    if not offered:
        problems.append(
            checks.Error(
                "STRIPE_SECRET_KEY is set but no plan has a Stripe price: set STRIPE_PRICE_<PLAN> and/or "
                "STRIPE_SEAT_PRICE_<PLAN> for starter or team.",
                id="billing.E008",
            )
        )
    return problems
