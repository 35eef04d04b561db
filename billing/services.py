"""Writes about billing. Each service runs in one transaction, records its audit event in it, and
calls Stripe only after commit (a Celery task) or before anything is written (starting a Checkout).

- ``seat_change``: THE way an account's seats change. Every door (invitations, SSO just-in-time,
  SCIM, the account API, the console, an operator) opens it around its membership change: it locks
  the account, checks the plan's seat limit, and after the change writes the seat ledger row and the
  ``billing.seats-changed`` audit event in the same transaction; the Stripe quantity follows after
  commit, prorated. Within a billing period the billed quantity never drops below the period's
  high-water mark, so adding and removing someone within a month is not a refund.
- ``checkout_start`` / ``portal_start``: an Owner or Admin upgrades (the account stays on its plan,
  marked pending, until the signed webhook confirms) or manages payment methods, invoices and
  cancellation in Stripe's portal. A plan the account's use exceeds is refused before Stripe is
  called, with what must change first.
- ``stripe_event_receive`` / ``stripe_event_process``: a verified webhook is stored once by its id
  (a replay is a no-op) and processed after commit; processing re-reads the subscription from Stripe,
  so deliveries in any order leave the same state (``subscription_sync``).
- Dunning: ``past_due`` starts the grace period (``billing.selectors`` says what each phase allows);
  paying brings the account back at once; a cancellation drops to Hobby only when the account fits
  it, otherwise the account goes read-only with the reason.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import events
from audit.actors import SYSTEM, SystemActor, actor_kind, actor_label
from audit.services import audit_record
from billing import stripe_client
from billing.entitlements import ensure_seat, seats_used
from billing.models import BillingStatus, Door, SeatLedgerEntry, StripeEvent, Subscription
from billing.plans import get_plan
from billing.prices import plan_of_price, prices_for, seat_price_ids
from billing.selectors import ENDED, account_by_customer, grace_until, plan_change_problems
from core.errors import AppError, Conflict, InvalidInput, Unprocessable
from core.ids import as_uuid
from tenants.models import Account

logger = logging.getLogger(__name__)

STRIPE_BILLING = SystemActor("Stripe")
"""Stripe, acting through a signed webhook."""

# The accounts whose seat change is open in this context: account id → the locked account. A
# door nested in another (an invitation's acceptance adds a membership) records once, in the
# outermost change.
_open_changes: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "billing_seat_changes", default=None
)


def _lock(account: Account) -> Account:
    return Account.objects.select_for_update().get(pk=account.pk)


# --- seats --------------------------------------------------------------------------------------------


@contextmanager
def seat_change(*, account: Account, actor, door: str, reason: str, adding: int = 0) -> Iterator[Account]:
    """Open around a change of the account's members or pending invitations::

        with seat_change(account=account, actor=actor, door=Door.API, reason="added x", adding=1):
            AccountMembership.objects.create(...)

    Locks the account row, refuses (``PlanLimitExceeded``) when ``adding`` seats would exceed the
    plan before anything is written, and after the block records the change, if the seats used
    changed, in the seat ledger and the audit log, in the same transaction. Yields the locked
    account."""
    door = Door(door)
    opened = _open_changes.get() or {}
    if account.pk in opened:
        locked = opened[account.pk]
        if adding > 0:
            ensure_seat(locked, adding=adding)
        yield locked
        return
    with transaction.atomic():
        locked = _lock(account)
        before = seats_used(locked)
        if adding > 0:
            ensure_seat(locked, adding=adding)
        token = _open_changes.set({**opened, locked.pk: locked})
        try:
            yield locked
        finally:
            _open_changes.reset(token)
        after = seats_used(locked)
        if after != before:
            _seat_ledger_record(
                account=locked, actor=actor, door=door, reason=reason, before=before, after=after
            )
        if after < before and locked.billing_status == BillingStatus.READ_ONLY:
            read_only_recheck(account=locked, actor=actor)  # it may fit the free plan now


def seats_released(*, account: Account, actor, door: str, reason: str, released: int) -> None:
    """Record ``released`` seats that left without a write inside ``seat_change``: pending
    invitations whose time ran out (``seats_used`` stopped counting them when they expired). Called
    with the account locked (``seat_change`` yields it), in the transaction that marks them."""
    if released <= 0:
        return
    after = seats_used(account)
    _seat_ledger_record(
        account=account, actor=actor, door=Door(door), reason=reason, before=after + released, after=after
    )


def _seat_ledger_record(*, account: Account, actor, door: Door, reason: str, before: int, after: int) -> None:
    subscription = Subscription.objects.select_for_update().filter(account=account).first()
    billed_before = subscription.seats_billed if subscription else 0
    billed_after = billed_before
    if subscription is not None and subscription.stripe_subscription_id:
        subscription.seats_high_water = max(subscription.seats_high_water, after)
        # Within the period the quantity billed never drops below the high-water mark.
        billed_after = max(subscription.seats_high_water, after, 1)
        subscription.seats_billed = billed_after
        subscription.save(update_fields=["seats_high_water", "seats_billed", "updated"])
    # Every change of seats is a billing change in the audit log, with Stripe on or off (the plan's
    # seat limit holds either way); the ledger row names its record.
    record = audit_record(
        event=events.BILLING_SEATS_CHANGED,
        actor=actor,
        account=account,
        target=account,
        payload={
            "door": door.value,
            "reason": reason,
            "seats_before": before,
            "seats_after": after,
            "billed_before": billed_before,
            "billed_after": billed_after,
        },
    )
    entry = SeatLedgerEntry.objects.create(
        account=account,
        actor_kind=actor_kind(actor),
        actor_label=actor_label(actor)[:254],
        door=door,
        reason=reason[:255],
        seats_before=before,
        seats_after=after,
        billed_before=billed_before,
        billed_after=billed_after,
        audit_entry_id=record.pk,
    )
    if billed_after != billed_before and stripe_client.enabled():
        _push_quantity_on_commit(account_id=account.pk, entry_id=entry.pk)


def _push_quantity_on_commit(*, account_id, entry_id=None, cause: str = "") -> None:
    """After commit, send the billed quantity to Stripe. ``entry_id`` (a ledger row) or ``cause``
    (a Stripe event's id) makes the write's idempotency key: a retry of the same push never applies
    twice, and a later push of the same quantity is not mistaken for it."""
    from billing.tasks import push_seat_quantity  # the tasks module imports this one

    cause = cause or f"t{int(timezone.now().timestamp() * 1000)}"
    # robust: the change has committed; a broker that does not answer is logged, not turned into
    # an error for a write that happened (the next push sends the newest quantity).
    transaction.on_commit(
        lambda: push_seat_quantity.delay(str(account_id), str(entry_id or ""), cause), robust=True
    )


def _seat_item(stripe_subscription: dict[str, Any]) -> dict[str, Any] | None:
    items = (stripe_subscription.get("items") or {}).get("data") or []
    seat_prices = seat_price_ids()
    for item in items:
        if _price_id(item) in seat_prices:
            return item
    return None


def _price_id(item: dict[str, Any]) -> str:
    return ((item.get("price") or {}).get("id")) or ((item.get("plan") or {}).get("id")) or ""


def subscription_quantity_push(*, account_id, entry_id: str = "", cause: str = "") -> bool:
    """Send the billed quantity to Stripe (prorated), if it differs from Stripe's. Runs after
    commit (``billing.tasks.push_seat_quantity``); the newest quantity wins whatever the order the
    tasks run in. True when Stripe was changed."""
    subscription = Subscription.objects.filter(account_id=account_id).first()
    if subscription is None or not subscription.stripe_subscription_id or not stripe_client.enabled():
        return False
    remote = stripe_client.subscription_retrieve(subscription.stripe_subscription_id)
    item = _seat_item(remote)
    if item is None or remote.get("status") in ENDED:
        return False
    quantity = subscription.seats_billed
    changed = False
    if quantity and item.get("quantity") != quantity:
        stripe_client.subscription_items_update(
            subscription_id=subscription.stripe_subscription_id,
            items=[{"id": item["id"], "quantity": quantity}],
            idempotency_key=f"seats:{subscription.stripe_subscription_id}:{entry_id or cause}:{quantity}",
        )
        changed = True
    if entry_id:
        SeatLedgerEntry.objects.filter(pk=entry_id, stripe_synced_at__isnull=True).update(
            stripe_synced_at=timezone.now()
        )
    return changed


# --- checkout and portal --------------------------------------------------------------------------------


def _subscription_for(account: Account) -> Subscription:
    subscription, _ = Subscription.objects.select_for_update().get_or_create(account=account)
    return subscription


def checkout_start(
    *, account: Account, plan: str, actor, success_url: str, cancel_url: str, email: str = ""
) -> dict[str, Any]:
    """Start buying ``plan``: ``{"url": …}`` of Stripe Checkout with the current seat count, or, for
    an account that already pays, the subscription's prices changed in place (prorated). Either way
    the account stays on its plan, marked pending, until the signed webhook confirms.

    Three steps, so no row stays locked while Stripe answers: check (the plan must fit what the
    account uses, before Stripe is called), call Stripe (idempotent writes), record."""
    if not stripe_client.enabled():
        raise Conflict(
            "Billing through Stripe is not configured here; an operator sets plans.", code="billing_off"
        )
    try:
        target = get_plan(plan)
    except ValueError as error:
        raise InvalidInput(str(error), code="invalid_plan") from None
    prices = prices_for(target.key)
    if not target.self_serve or prices is None:
        raise Unprocessable(
            f"The {target.name} plan is not sold here; talk to the operator (Enterprise is set by sales).",
            code="plan_not_offered",
        )
    with transaction.atomic():
        account = _lock(account)
        if account.plan == target.key and account.billing_status == BillingStatus.ACTIVE:
            raise Conflict(f"This account is already on the {target.name} plan.", code="same_plan")
        problems = plan_change_problems(account, target.key)
        if problems:
            raise Conflict(
                f"This account does not fit the {target.name} plan. " + " ".join(problems),
                code="plan_does_not_fit",
                extra={"problems": problems},
            )
        subscription = _subscription_for(account)
        seats = max(seats_used(account), 1)

    customer_id = subscription.stripe_customer_id
    if not customer_id:
        customer_id = stripe_client.customer_create(
            name=account.name,
            email=email,
            metadata={"account_id": str(account.pk), "account_handle": account.handle},
            idempotency_key=f"customer:{account.pk}",
        )["id"]
    nonce = f"{account.pk}:{target.key}:{seats}:{subscription.stripe_subscription_id or 'new'}"
    url = None
    if subscription.stripe_subscription_id and subscription.stripe_status in (
        "active",
        "trialing",
        "past_due",
    ):
        _change_prices(subscription, prices, seats=seats, idempotency_key=f"plan:{nonce}")
    else:
        session = stripe_client.checkout_session_create(
            customer_id=customer_id,
            line_items=prices.line_items(seats=seats),
            success_url=success_url,
            cancel_url=cancel_url,
            client_reference_id=str(account.pk),
            metadata={"account_id": str(account.pk), "plan": target.key},
            idempotency_key=f"checkout:{nonce}:{int(timezone.now().timestamp()) // 600}",
        )
        url = session.get("url")

    with transaction.atomic():
        account = _lock(account)
        subscription = _subscription_for(account)
        subscription.stripe_customer_id = subscription.stripe_customer_id or customer_id
        subscription.pending_plan = target.key
        subscription.pending_since = timezone.now()
        subscription.save(update_fields=["stripe_customer_id", "pending_plan", "pending_since", "updated"])
        audit_record(
            event=events.BILLING_CHECKOUT_STARTED,
            actor=actor,
            account=account,
            target=account,
            payload={"plan": target.key, "old_plan": account.plan, "seats": seats},
        )
    return {"url": url, "pending_plan": target.key}


def _change_prices(subscription: Subscription, prices, *, seats: int, idempotency_key: str) -> None:
    remote = stripe_client.subscription_retrieve(subscription.stripe_subscription_id)
    items = (remote.get("items") or {}).get("data") or []
    seat_item = _seat_item(remote)
    base_items = [item for item in items if item is not seat_item]
    changes: list[dict[str, Any]] = []
    for item, price, quantity in (
        (seat_item, prices.seat, seats),
        (base_items[0] if base_items else None, prices.base, 1),
    ):
        if item is not None and price:
            changes.append({"id": item["id"], "price": price, "quantity": quantity})
        elif item is not None:
            changes.append({"id": item["id"], "deleted": True})
        elif price:
            changes.append({"price": price, "quantity": quantity})
    stripe_client.subscription_items_update(
        subscription_id=subscription.stripe_subscription_id, items=changes, idempotency_key=idempotency_key
    )


def portal_start(*, account: Account, actor, return_url: str) -> dict[str, Any]:
    """A link to Stripe's customer portal (payment methods, invoices, cancellation)."""
    subscription = Subscription.objects.filter(account=account).first()
    if subscription is None or not subscription.stripe_customer_id:
        raise Conflict(
            "This account has no billing customer yet; start a checkout first.", code="no_customer"
        )
    session = stripe_client.portal_session_create(
        customer_id=subscription.stripe_customer_id,
        return_url=return_url,
        idempotency_key=f"portal:{account.pk}:{int(timezone.now().timestamp()) // 60}",
    )
    return {"url": session.get("url")}


# --- webhooks -------------------------------------------------------------------------------------------

HANDLED_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.expired",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.payment_action_required",
    }
)


def stripe_event_receive(*, event: dict[str, Any]) -> tuple[StripeEvent, bool]:
    """Store a verified event once by its id and process it after commit: ``(event, created)``;
    a replay finds the stored one and does nothing."""
    existing = StripeEvent.objects.filter(pk=event["id"]).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            stored = StripeEvent.objects.create(
                id=event["id"], type=str(event.get("type"))[:100], payload=event
            )
            if stored.type in HANDLED_EVENTS:
                from billing.tasks import process_stripe_event  # the tasks module imports this one

                # robust: stored is enough; an event the broker did not take is processed by the
                # sweep of pending events (process_pending_stripe_events).
                transaction.on_commit(lambda: process_stripe_event.delay(stored.pk), robust=True)
    except IntegrityError:  # a concurrent delivery of the same event won
        return StripeEvent.objects.get(pk=event["id"]), False
    return stored, True


#: An event still unprocessed this long after it arrived is tried again by the sweep.
PENDING_RETRY_AFTER = dt.timedelta(minutes=5)


def stripe_events_pending_process(*, now: dt.datetime | None = None, limit: int = 100) -> int:
    """Process the handled events still waiting (a lost task, a Stripe outage that outlasted the
    task's retries), oldest first; each records its error and waits for the next sweep if it fails
    again. How many were processed."""
    cutoff = (now or timezone.now()) - PENDING_RETRY_AFTER
    pending = StripeEvent.objects.filter(
        processed__isnull=True, received__lte=cutoff, type__in=HANDLED_EVENTS
    )
    done = 0
    for event_id in pending.order_by("received").values_list("pk", flat=True)[:limit]:
        try:
            stripe_event_process(event_id=event_id)
        except AppError as error:
            StripeEvent.objects.filter(pk=event_id).update(error=error.message[:2000])
            continue
        done += 1
    return done


def _object(event: dict[str, Any]) -> dict[str, Any]:
    return ((event.get("data") or {}).get("object")) or {}


def _invoice_subscription_id(invoice: dict[str, Any]) -> str:
    parent = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    return parent or invoice.get("subscription") or ""


def _ts(value) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(value), tz=dt.UTC) if value else None


def stripe_event_process(*, event_id: str) -> None:
    """Apply a stored event: find the account, re-read the subscription from Stripe and bring the
    account in line with it. Deliveries in any order end in the same state."""
    stored = StripeEvent.objects.filter(pk=event_id, processed__isnull=True).first()
    if stored is None:
        return
    event = stored.payload
    obj = _object(event)
    kind = stored.type
    customer_id = obj.get("customer") or ""
    if isinstance(customer_id, dict):
        customer_id = customer_id.get("id", "")
    account = account_by_customer(customer_id)
    subscription_id = ""
    if kind == "checkout.session.completed":
        account = account or Account.objects.filter(pk=as_uuid(obj.get("client_reference_id"))).first()
        subscription_id = obj.get("subscription") or ""
        if account is not None:
            with transaction.atomic():
                subscription = _subscription_for(_lock(account))
                if not subscription.stripe_customer_id and customer_id:
                    subscription.stripe_customer_id = customer_id
                if subscription_id:
                    subscription.stripe_subscription_id = subscription_id
                subscription.save(update_fields=["stripe_customer_id", "stripe_subscription_id", "updated"])
    elif kind == "checkout.session.expired":
        account = account or Account.objects.filter(pk=as_uuid(obj.get("client_reference_id"))).first()
        if account is not None:
            _checkout_expired(account=account, session=obj)
    elif kind.startswith("customer.subscription."):
        subscription_id = obj.get("id") or ""
    elif kind.startswith("invoice."):
        subscription_id = _invoice_subscription_id(obj)
    if account is None:
        StripeEvent.objects.filter(pk=stored.pk).update(
            processed=timezone.now(), error="No account has this customer."
        )
        return
    if subscription_id:
        remote = stripe_client.subscription_retrieve(subscription_id)
        subscription_sync(account=account, remote=remote, event=event)
    if kind == "invoice.payment_action_required":
        audit_record(
            event=events.BILLING_PAYMENT_ACTION_REQUIRED,
            actor=STRIPE_BILLING,
            account=account,
            target=account,
            payload={"invoice": obj.get("id"), "event": stored.pk},
        )
    StripeEvent.objects.filter(pk=stored.pk).update(processed=timezone.now(), account=account)


# A Checkout started again later has its own session: an older session's expiry leaves it pending.
_CHECKOUT_CLOCK_SKEW = dt.timedelta(minutes=5)


def _checkout_expired(*, account: Account, session: dict[str, Any]) -> None:
    """A Checkout session ended unpaid (the person left it or cancelled it, and Stripe expired it):
    the upgrade it was for is no longer pending, unless a later Checkout is."""
    plan = (session.get("metadata") or {}).get("plan")
    created = _ts(session.get("created"))
    with transaction.atomic():
        subscription = _subscription_for(_lock(account))
        if not subscription.pending_plan or subscription.pending_plan != plan:
            return
        later = (
            subscription.pending_since
            and created
            and subscription.pending_since > created + _CHECKOUT_CLOCK_SKEW
        )
        if later:
            return
        subscription.pending_plan, subscription.pending_since = "", None
        subscription.save(update_fields=["pending_plan", "pending_since", "updated"])


def _period(remote: dict[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    items = (remote.get("items") or {}).get("data") or []
    start = remote.get("current_period_start") or (items[0].get("current_period_start") if items else None)
    end = remote.get("current_period_end") or (items[0].get("current_period_end") if items else None)
    return _ts(start), _ts(end)


def _plan_of(remote: dict[str, Any]) -> str | None:
    for item in (remote.get("items") or {}).get("data") or []:
        plan = plan_of_price(_price_id(item))
        if plan is not None:
            return plan
    return (remote.get("metadata") or {}).get("plan")


def subscription_sync(*, account: Account, remote: dict[str, Any], event: dict | None = None) -> None:
    """Bring the account in line with its subscription as Stripe has it now."""
    status = remote.get("status") or ""
    with transaction.atomic():
        account = _lock(account)
        subscription = _subscription_for(account)
        replaced = subscription.stripe_subscription_id not in ("", remote["id"])
        if replaced and status not in ("active", "trialing", "past_due", "unpaid"):
            return  # an older subscription ending: the current one decides
        subscription.stripe_subscription_id = remote["id"]
        subscription.stripe_status = status
        # A subscription that has ended has nothing left to end (Stripe keeps the flag on it).
        subscription.cancel_at_period_end = bool(remote.get("cancel_at_period_end")) and status not in ENDED
        start, end = _period(remote)
        if start is not None and start != subscription.current_period_start:
            # A new billing period: the high-water mark starts again from today's seats.
            subscription.seats_high_water = seats_used(account)
        subscription.current_period_start, subscription.current_period_end = start, end
        plan = _plan_of(remote)
        if status in ("active", "trialing"):
            if plan is not None:
                _plan_set(account, plan)
            _status_set(account, BillingStatus.ACTIVE, payload={"invoice": _invoice_of(event)})
            if subscription.pending_plan and subscription.pending_plan == plan:
                subscription.pending_plan, subscription.pending_since = "", None
            subscription.read_only_reason = ""
        elif status in ("past_due", "unpaid"):
            if plan is not None:
                _plan_set(account, plan)
            _status_set(account, BillingStatus.PAST_DUE, payload={"invoice": _invoice_of(event)})
        elif status in ENDED:
            subscription.pending_plan, subscription.pending_since = "", None
            _cancellation_apply(account, subscription)
        seat_item = _seat_item(remote)
        seats = seats_used(account)
        subscription.seats_high_water = max(subscription.seats_high_water, seats)
        if seat_item is not None and status in ("active", "trialing", "past_due"):
            subscription.seats_billed = max(subscription.seats_high_water, seats, 1)
            if seat_item.get("quantity") != subscription.seats_billed:
                _push_quantity_on_commit(account_id=account.pk, cause=(event or {}).get("id", ""))
        subscription.save()


def _invoice_of(event: dict | None) -> str | None:
    if not event or not str(event.get("type", "")).startswith("invoice."):
        return None
    return _object(event).get("id")


def _plan_set(account: Account, plan: str) -> None:
    if account.plan == plan:
        return
    old_plan = account.plan
    account.plan = plan
    account.save(update_fields=["plan", "updated"])
    audit_record(
        event=events.BILLING_PLAN_CHANGED,
        actor=STRIPE_BILLING,
        account=account,
        target=account,
        payload={"plan": plan, "old_plan": old_plan},
    )


def _status_set(account: Account, status: BillingStatus, *, payload: dict | None = None) -> None:
    old = account.billing_status
    if old == status:
        return
    account.billing_status = status
    account.billing_status_since = timezone.now()
    account.save(update_fields=["billing_status", "billing_status_since", "updated"])
    payload = {k: v for k, v in (payload or {}).items() if v is not None}
    if status == BillingStatus.PAST_DUE:
        audit_record(
            event=events.BILLING_PAYMENT_FAILED,
            actor=STRIPE_BILLING,
            account=account,
            target=account,
            payload={**payload, "grace_until": grace_until(account).isoformat()},
        )
    elif old == BillingStatus.PAST_DUE and status == BillingStatus.ACTIVE:
        audit_record(
            event=events.BILLING_PAYMENT_SUCCEEDED,
            actor=STRIPE_BILLING,
            account=account,
            target=account,
            payload={"invoice": payload.get("invoice") or "", **payload},
        )
    audit_record(
        event=events.BILLING_STATUS_CHANGED,
        actor=STRIPE_BILLING,
        account=account,
        target=account,
        payload={"status": status.value, "old_status": old},
    )


def _cancellation_apply(account: Account, subscription: Subscription) -> None:
    """The subscription ended: Hobby when the account fits it, else read-only with the reason."""
    problems = plan_change_problems(account, "hobby")
    if problems:
        subscription.read_only_reason = (
            "The subscription ended and the account does not fit the Hobby plan. " + " ".join(problems)
        )
        _status_set(account, BillingStatus.READ_ONLY)
        return
    subscription.read_only_reason = ""
    _plan_set(account, "hobby")
    _status_set(account, BillingStatus.ACTIVE)


def read_only_recheck_on_commit(*, account: Account, actor) -> None:
    """After the current transaction (which freed a workspace, a deployment, …), recheck an account
    that is read-only: it may fit the free plan now."""
    if account.billing_status == BillingStatus.READ_ONLY:
        transaction.on_commit(lambda: read_only_recheck(account=account, actor=actor))


def read_only_accounts_recheck() -> int:
    """Every read-only account rechecked (beat): what was freed through a door that does not call
    ``read_only_recheck`` itself (a feature switched off, an identity provider removed) counts within
    a minute. How many moved to Hobby."""
    accounts = Account.objects.filter(billing_status=BillingStatus.READ_ONLY).order_by("pk")
    return sum(read_only_recheck(account=account, actor=SYSTEM) for account in accounts.iterator())


def read_only_recheck(*, account: Account, actor) -> bool:
    """A read-only account that now fits Hobby moves to it (called after it frees what it must).
    True when it changed."""
    with transaction.atomic():
        account = _lock(account)
        if account.billing_status != BillingStatus.READ_ONLY or plan_change_problems(account, "hobby"):
            return False
        subscription = _subscription_for(account)
        subscription.read_only_reason = ""
        subscription.save(update_fields=["read_only_reason", "updated"])
        _plan_set(account, "hobby")
        _status_set(account, BillingStatus.ACTIVE)
    return True
