"""``task_runs/subscriptions/scheduled``: the websocket task workers (``prefect.task_worker.serve``)
listen on for background task runs (``task.delay()``), as Prefect's server serves it
(``api/task_runs.py`` ``scheduled_task_subscription``).

The handshake and the access gate are the events websockets' (``events.consumers``): the
``prefect`` subprotocol and an ``auth`` message (or Cloud mode's upgrade header); a task worker
needs ``run_tasks`` or the Worker role's ``write_workers``. Then:

* the worker sends ``{"type": "subscribe", "keys": [...], "client_id": "..."}`` (anything else
  closes the socket with 4001 and a reason);
* the server sends each queued run of those task keys (a ``TaskRun``) to one subscribed worker
  (a conditional update claims it), and waits for ``{"type": "ack"}`` before the next; ``quit``
  closes; anything else is a protocol violation;
* a run sent to a worker that goes away before acknowledging it goes back to the queue (Prefect's
  retry queue), and a claim left unacknowledged by a server process that died expires
  (``services.task_runs.DELIVERY_ACK_TIMEOUT``);
* the connected worker is recorded for ``task_workers/filter`` while the socket is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import ClassVar

from channels.db import database_sync_to_async

from core.parsers import loads
from orchestration.api.task_runs.wire import task_run_to_wire
from orchestration.events import hub
from orchestration.events.consumers import _PrefectSocket
from orchestration.models import TaskRunState
from orchestration.services.task_runs import (
    task_run_claim_delivery,
    task_run_delivery_acknowledged,
    task_run_delivery_release,
    task_worker_forget,
    task_worker_observe,
)
from tenants.rls import database_workspace
from tenants.scoping import workspace_scope

logger = logging.getLogger(__name__)

#: Any one of these lets a principal subscribe (Prefect Cloud's worker scope, or running tasks).
TASK_WORKER_SCOPES = ("run_tasks", "write_workers")
CLOSE_PROTOCOL_VIOLATION = 4001
MAX_KEYS = 1000


def _claim(workspace_id, task_keys: list[str], client_id: str) -> tuple[uuid.UUID, str] | None:
    with workspace_scope(workspace_id), database_workspace(workspace_id):
        run = task_run_claim_delivery(task_keys=task_keys, client_id=client_id)
        if run is None:
            return None
        state = TaskRunState.objects.filter(id=run.state_id).first() if run.state_id else None
        return run.id, json.dumps(task_run_to_wire(run, state=state))


def _in_scope(workspace_id, function, **kwargs) -> None:
    with workspace_scope(workspace_id), database_workspace(workspace_id):
        function(**kwargs)


_claim_async = database_sync_to_async(_claim, thread_sensitive=False)
_call_async = database_sync_to_async(_in_scope, thread_sensitive=False)


class ScheduledTaskSubscriptionConsumer(_PrefectSocket):
    scopes = TASK_WORKER_SCOPES
    channel_layer_alias = "__task_subscriptions_have_no_channel__"

    # Queued runs are announced through the hub (``hub.TASK_RUNS``); a worker also looks this often
    # on its own, for claims that expired and announcements it missed.
    LOOK_AGAIN_EVERY: ClassVar[float] = 2.0
    OBSERVE_EVERY: ClassVar[float] = 5.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_keys: list[str] = []
        self.client_id: str | None = None
        self._loop: asyncio.Task | None = None
        self._ack: asyncio.Future | None = None
        self._in_flight: uuid.UUID | None = None

    async def on_authenticated(self) -> None:
        self.phase = "subscribe"

    async def on_text(self, text: str) -> None:
        try:
            message = loads(text)
        except ValueError:
            message = None
        message = message if isinstance(message, dict) else {}
        if self.phase == "subscribe":
            await self._subscribe(message)
            return
        waiting = self._ack
        if message.get("type") == "ack" and waiting is not None and not waiting.done():
            waiting.set_result("ack")
        elif message.get("type") == "quit":
            if waiting is not None and not waiting.done():
                waiting.set_result("quit")
            await self.close_once(1000)
        else:
            if waiting is not None and not waiting.done():
                waiting.set_result("violation")
            await self.close_once(CLOSE_PROTOCOL_VIOLATION, "Protocol violation: expected 'ack' message")

    async def _subscribe(self, message: dict) -> None:
        if message.get("type") != "subscribe":
            await self.close_once(
                CLOSE_PROTOCOL_VIOLATION, "Protocol violation: expected 'subscribe' message"
            )
            return
        keys = message.get("keys")
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
            await self.close_once(
                CLOSE_PROTOCOL_VIOLATION, "Protocol violation: expected 'keys' in subscribe message"
            )
            return
        client_id = message.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            await self.close_once(
                CLOSE_PROTOCOL_VIOLATION, "Protocol violation: expected 'client_id' in subscribe message"
            )
            return
        self.task_keys = [key[:255] for key in keys[:MAX_KEYS]]
        self.client_id = client_id[:255]
        self.phase = "delivering"
        logger.info("Task worker %r subscribed to task keys %r", self.client_id, self.task_keys)
        self._loop = asyncio.create_task(self._deliver())

    async def _deliver(self) -> None:
        assert self.grant is not None and self.client_id is not None
        workspace_id = self.grant.workspace_id
        observed_at = 0.0
        wakeups: hub.Subscription | None = None
        try:
            while not self._closing:
                if wakeups is None:
                    # Subscribe before looking, so a run queued in between still wakes this worker.
                    with contextlib.suppress(hub.Lost):
                        wakeups = await hub.subscribe(workspace_id, hub.TASK_RUNS)
                if not await self.reauthorize_if_due():
                    return
                if time.monotonic() - observed_at >= self.OBSERVE_EVERY:
                    await _call_async(
                        workspace_id, task_worker_observe, identifier=self.client_id, task_keys=self.task_keys
                    )
                    observed_at = time.monotonic()
                claimed = await _claim_async(workspace_id, self.task_keys, self.client_id)
                if claimed is None:
                    wakeups = await self._wait_for_work(wakeups)
                    continue
                run_id, payload = claimed
                self._in_flight = run_id
                self._ack = asyncio.get_running_loop().create_future()
                await self.send(text_data=payload)
                answer = await self._ack
                if answer != "ack":
                    return  # released on disconnect
                await _call_async(
                    workspace_id, task_run_delivery_acknowledged, task_run_id=run_id, client_id=self.client_id
                )
                self._in_flight = None
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Delivering task runs to %r failed", self.client_id)
            await self.close_once(1011)
        finally:
            if wakeups is not None:
                await hub.unsubscribe(wakeups)

    async def _wait_for_work(self, wakeups: hub.Subscription | None) -> hub.Subscription | None:
        """Until a run is announced or it is time to look again; the subscription, or None when it
        was lost (the next round subscribes again)."""
        if wakeups is None:
            await asyncio.sleep(self.LOOK_AGAIN_EVERY)
            return None
        try:
            await asyncio.wait_for(wakeups.get(), self.LOOK_AGAIN_EVERY)
            wakeups.clear()  # one look serves every announcement so far
        except TimeoutError:
            pass
        except hub.Lost:
            await hub.unsubscribe(wakeups)
            return None
        return wakeups

    async def disconnect(self, code):
        if self._ack is not None and not self._ack.done():
            self._ack.set_result("gone")
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop  # it logged its own failure
        if self.grant is None or self.client_id is None:
            return
        workspace_id = self.grant.workspace_id
        try:
            if self._in_flight is not None:
                await _call_async(
                    workspace_id,
                    task_run_delivery_release,
                    task_run_id=self._in_flight,
                    client_id=self.client_id,
                )
            await _call_async(workspace_id, task_worker_forget, identifier=self.client_id)
        except Exception:
            logger.exception("Cleaning up after task worker %r failed", self.client_id)
