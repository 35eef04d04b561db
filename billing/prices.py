"""Which Stripe prices sell which plan, from settings by id (nothing hard-coded).

A self-serve plan has a flat base price and a per-seat price; either may be left out, not both, for
the plan to be offered through Checkout. The per-seat item's quantity is the account's billed seats.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

#: plan key → (base price setting, per-seat price setting)
SELF_SERVE_PRICE_SETTINGS: dict[str, tuple[str, str]] = {
    "starter": ("STRIPE_PRICE_STARTER", "STRIPE_SEAT_PRICE_STARTER"),
    "team": ("STRIPE_PRICE_TEAM", "STRIPE_SEAT_PRICE_TEAM"),
}


@dataclass(frozen=True)
class PlanPrices:
    plan: str
    base: str  # "" when the plan has no flat price
    seat: str  # "" when seats are not priced

    def line_items(self, *, seats: int) -> list[dict]:
        items = []
        if self.base:
            items.append({"price": self.base, "quantity": 1})
        if self.seat:
            items.append({"price": self.seat, "quantity": max(seats, 1)})
        return items


def prices_for(plan_key: str) -> PlanPrices | None:
    """The plan's prices, or None when it is not sold through Stripe."""
    names = SELF_SERVE_PRICE_SETTINGS.get(plan_key)
    if names is None:
        return None
    base, seat = (getattr(settings, name) for name in names)
    if not base and not seat:
        return None
    return PlanPrices(plan=plan_key, base=base, seat=seat)


def plan_of_price(price_id: str) -> str | None:
    """The plan a Stripe price sells (base or seat), or None."""
    for plan_key, names in SELF_SERVE_PRICE_SETTINGS.items():
        if price_id and price_id in (getattr(settings, name) for name in names):
            return plan_key
    return None


def seat_price_ids() -> set[str]:
    return {getattr(settings, seat) for _, seat in SELF_SERVE_PRICE_SETTINGS.values()} - {""}
