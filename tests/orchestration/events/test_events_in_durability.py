"""``…/events/in`` never loses an event the client saw confirmed.

The client forgets every event a pong confirms (``prefect.events.clients``: it pings to checkpoint),
and the server's websocket layer answers a ping as soon as it has read the frames before it, stored
or not. So these tests speak the real protocol to the live server (uvicorn, real pings), take the
event store away for longer than any fixed retry budget while four sockets keep sending (two of them
hang up during the outage), and check that every confirmed event is stored, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import pytest
from django.db import connection
from websockets.asyncio.client import connect

from orchestration.models import Event
from tests.live import conftest as live
from tests.live.conftest import wait_for
from tests.orchestration.events.conftest import make_event

pytestmark = pytest.mark.django_db(transaction=True)

# The live harness's fixtures (a real uvicorn server: pings are answered by its websocket layer).
_live_server_session, asgi_server, live_tenant = live._live_server_session, live.asgi_server, live.live_tenant

CHECKPOINT_EVERY = 50  # the client pings after this many events (Prefect's default is 700)
OUTAGE_SECONDS = 4.0  # longer than the old fixed retry budget (about 3 s) that then closed with 1011


@contextlib.contextmanager
def event_store_down():
    """The event table is gone (renamed) until the block ends: every write to it fails, on SQLite
    and on PostgreSQL alike. Yields a function counting the rows in the table taken away."""
    table = Event._meta.db_table
    away = f"{table}_away"
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(away)}")

    def stored_meanwhile() -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {quote(away)}")
            return cursor.fetchone()[0]

    try:
        yield stored_meanwhile
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {quote(away)} RENAME TO {quote(table)}")


async def _emit(url: str, key: str, events: list[dict], confirmed: list[str], pace: float) -> None:
    """What ``PrefectEventsClient`` does: send, and every ``CHECKPOINT_EVERY`` events ping; the pong
    confirms (and the client forgets) everything sent before it. A final ping, then a normal close."""
    async with connect(
        url, additional_headers={"Authorization": f"bearer {key}"}, open_timeout=10, ping_interval=None
    ) as ws:
        unconfirmed: list[str] = []
        for event in events:
            await ws.send(json.dumps(event))
            unconfirmed.append(event["id"])
            if len(unconfirmed) >= CHECKPOINT_EVERY:
                await asyncio.wait_for(await ws.ping(), 60)
                confirmed.extend(unconfirmed)
                unconfirmed = []
            await asyncio.sleep(pace)
        await asyncio.wait_for(await ws.ping(), 60)
        confirmed.extend(unconfirmed)


def test_every_confirmed_event_is_stored_once_when_the_store_fails_for_a_while(asgi_server, live_tenant):
    url = f"{live_tenant.ws_url}/events/in"
    # Two short sockets that hang up during the outage, two long ones that send through it.
    plans = [([make_event(f"durable.short.{s}.{i}") for i in range(150)], 0.0015) for s in range(2)] + [
        ([make_event(f"durable.long.{s}.{i}") for i in range(1200)], 0.004) for s in range(2)
    ]
    confirmed: list[str] = []
    errors: list[BaseException] = []

    async def clients():
        results = await asyncio.gather(
            *(_emit(url, live_tenant.developer_key, events, confirmed, pace) for events, pace in plans),
            return_exceptions=True,
        )
        errors.extend(r for r in results if isinstance(r, BaseException))

    sender = threading.Thread(target=asyncio.run, args=(clients(),), name="emitters")
    sender.start()
    time.sleep(0.3)
    with event_store_down() as stored_meanwhile:
        confirmed_before_outage, stored_before_outage = len(confirmed), stored_meanwhile()
        time.sleep(OUTAGE_SECONDS)
        confirmed_during_outage = len(confirmed) - confirmed_before_outage
        # Nothing could be stored meanwhile: the outage was real.
        assert stored_meanwhile() == stored_before_outage
    sender.join(90)
    assert not sender.is_alive() and not errors, errors
    sent = {event["id"] for events, _ in plans for event in events}
    assert len(confirmed) == len(set(confirmed)) == len(sent)
    # Events were confirmed while none of them could be stored: the server held them.
    assert confirmed_during_outage > 0

    def stored():
        return list(
            Event.objects.for_workspace(live_tenant.workspace.id).values_list("id", flat=True).order_by("id")
        )

    rows = wait_for(stored, lambda ids: len(ids) >= len(sent), timeout=30)
    ids = [str(i) for i in rows]
    assert len(ids) == len(set(ids)) == len(sent), (len(ids), len(sent))
    assert set(ids) == set(confirmed)
    # No socket was given up on.
    closes = [ex.close_code for ex in asgi_server.exchanges if ex.path.endswith("/events/in")]
    assert closes and all(code in (1000, None) for code in closes), closes
