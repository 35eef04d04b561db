"""``/events/in`` over the account's logs + events limit: the batch waits, it is never dropped."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from access.limits import Bucket, limit_of, retry_after_for
from core import ratelimit
from orchestration.models import Event
from tests.orchestration.events.conftest import events_path, make_event, open_prefect, run

pytestmark = pytest.mark.django_db(transaction=True)


def test_events_over_the_limit_wait_and_are_stored_once_allowed(settings, tenant):
    ratelimit.reset()
    settings.RATE_LIMIT_SCALE = 0.008  # a few hundred logs + events a minute at most
    if 60 - time.time() % 60 < 8:  # the check below needs the minute not to turn for a while
        time.sleep(60 - time.time() % 60 + 0.1)
    # The minute's allowance is spent.
    plan = tenant.account.plan
    allowance = limit_of(plan, Bucket.LOGS_EVENTS)
    assert (
        retry_after_for(account_id=tenant.account.pk, plan=plan, bucket=Bucket.LOGS_EVENTS, amount=allowance)
        is None
    )
    event = make_event()

    async def scenario():
        ws = await open_prefect(events_path(tenant, "in"), tenant.service_key)
        await ws.send_to(text_data=json.dumps(event))
        await asyncio.sleep(1.0)
        held = await _count()
        settings.RATE_LIMIT_SCALE = 0  # limits lifted: the waiting batch goes in at its next try
        for _ in range(80):
            if await _count():
                break
            await asyncio.sleep(0.1)
        stored = await _count()
        await ws.disconnect()
        return held, stored

    held, stored = run(scenario)
    assert (held, stored) == (0, 1)
    ratelimit.reset()


async def _count() -> int:
    from asgiref.sync import sync_to_async

    return await sync_to_async(lambda: Event.objects.unscoped().count(), thread_sensitive=False)()
