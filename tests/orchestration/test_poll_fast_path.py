"""The worker's poll answered from memory: only ever the answer the full path gives, and nothing
from memory once the key, the access, the pool or the runs behind it have changed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from django.utils import timezone

from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_revoke
from accounts.services import workspace_access_revoke
from audit.actors import SYSTEM
from orchestration.api.poll_fast_path import POLL_PATH, PollFastPath, answer_from_memory
from orchestration.models import FlowRun, WorkQueue
from orchestration.selectors import work_pools as selectors
from tenants.scoping import workspace_scope
from tests.conftest import make_tenant
from tests.orchestration.test_work_pools import make_pool, make_queue, make_run, rows

pytestmark = pytest.mark.django_db

POOL = "proc-pool"


@pytest.fixture
def pool(tenant, dev):
    return make_pool(dev, tenant)


def _body(**fields) -> dict:
    return {
        "work_queue_names": [],
        "scheduled_before": str(timezone.now() + dt.timedelta(seconds=10)),
        **fields,
    }


def _full(client, tenant, body, pool=POOL):
    response = client.post(f"{tenant.prefix}/work_pools/{pool}/get_scheduled_flow_runs", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _scope(tenant, key: str, pool=POOL) -> dict:
    path = f"{tenant.prefix}/work_pools/{pool}/get_scheduled_flow_runs"
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
    }


def _memory(tenant, body, key=None, pool=POOL):
    scope = _scope(tenant, key or tenant.service_key, pool)
    match = POLL_PATH.match(scope["path"])
    assert match is not None
    answer, _ = answer_from_memory(scope, match, json.dumps(body).encode())
    return None if answer is None else json.loads(answer)


def _without_clock(entries):
    """The answers compared without the one field that moves with the clock."""
    for entry in entries:
        entry["flow_run"].pop("estimated_start_time_delta")
    return entries


def _ids(entries):
    return [entry["flow_run"]["id"] for entry in entries]


class TestSameAnswer:
    def test_after_one_full_poll_the_same_answer_comes_from_memory(self, tenant, dev, pool):
        now = timezone.now()
        for i in range(3):
            make_run(tenant, pool["default_queue_id"], when=now - dt.timedelta(seconds=i))
        body = _body()
        assert _memory(tenant, body) is None  # nothing remembered yet
        full = _full(dev, tenant, body)
        remembered = _memory(tenant, body)
        assert len(full) == 3
        assert _without_clock(remembered) == _without_clock(full)

    def test_an_earlier_horizon_and_a_smaller_limit_are_answered_exactly(self, tenant, dev, pool):
        now = timezone.now()
        due = make_run(tenant, pool["default_queue_id"], when=now - dt.timedelta(seconds=5))
        later = make_run(tenant, pool["default_queue_id"], when=now + dt.timedelta(seconds=8))
        make_run(tenant, pool["default_queue_id"], when=now + dt.timedelta(minutes=5))
        _full(dev, tenant, {"scheduled_before": str(now + dt.timedelta(seconds=10))})
        assert _ids(_memory(tenant, {"scheduled_before": str(now)})) == [str(due)]
        assert _ids(_memory(tenant, {"scheduled_before": str(now + dt.timedelta(seconds=11))})) == [
            str(due),
            str(later),
        ]
        assert _ids(
            _memory(tenant, {"scheduled_before": str(now + dt.timedelta(seconds=11)), "limit": 1})
        ) == [str(due)]
        # Past the remembered horizon: only the full path can say.
        assert _memory(tenant, {"scheduled_before": str(now + dt.timedelta(minutes=10))}) is None

    def test_a_truncated_memory_never_answers_short(self, tenant, dev, pool):
        # More runs than were remembered lie between the horizons: memory must not answer.
        now = timezone.now()
        for i in range(60):
            make_run(tenant, pool["default_queue_id"], when=now + dt.timedelta(seconds=1, milliseconds=i))
        _full(dev, tenant, {"scheduled_before": str(now), "limit": 10})
        remembered = selectors._poll_answers
        assert remembered and not next(iter(remembered.values()))[2]  # not complete
        assert (
            _memory(tenant, {"scheduled_before": str(now + dt.timedelta(seconds=1, milliseconds=5))}) is None
        )
        full = _full(dev, tenant, {"scheduled_before": str(now + dt.timedelta(seconds=1, milliseconds=5))})
        assert len(full) == 6


class TestNothingStale:
    def test_a_run_taken_by_a_worker_is_not_handed_out_again(self, tenant, dev, pool):
        taken = make_run(tenant, pool["default_queue_id"], when=timezone.now() - dt.timedelta(seconds=1))
        other = make_run(tenant, pool["default_queue_id"], when=timezone.now())
        body = _body()
        assert _ids(_full(dev, tenant, body)) == [str(taken), str(other)]
        response = dev.post(
            f"{tenant.prefix}/flow_runs/{taken}/set_state",
            {"state": {"type": "PENDING", "name": "Pending"}},
            format="json",
        )
        assert response.json()["status"] == "ACCEPT"
        assert _memory(tenant, body) is None
        assert _ids(_full(dev, tenant, body)) == [str(other)]

    def test_a_deleted_run_is_forgotten(self, tenant, dev, pool):
        run = make_run(tenant, pool["default_queue_id"])
        body = _body()
        assert len(_full(dev, tenant, body)) == 1
        assert dev.delete(f"{tenant.prefix}/flow_runs/{run}").status_code == 204
        assert _memory(tenant, body) is None
        assert _full(dev, tenant, body) == []

    def test_a_revoked_key_goes_to_the_full_path_and_is_refused(self, tenant, dev, pool):
        make_run(tenant, pool["default_queue_id"])
        body = _body()
        _full(dev, tenant, body)
        api_key_revoke(key=ApiKey.objects.get(service_account=tenant.service_account), actor=SYSTEM)
        assert _memory(tenant, body) is None
        response = dev.post(f"{tenant.prefix}/work_pools/{POOL}/get_scheduled_flow_runs", body, format="json")
        assert response.status_code == 401

    def test_removed_access_goes_to_the_full_path(self, tenant, dev, pool):
        make_run(tenant, pool["default_queue_id"])
        body = _body()
        _full(dev, tenant, body)
        workspace_access_revoke(workspace=tenant.workspace, principal=tenant.service_account, actor=SYSTEM)
        assert _memory(tenant, body) is None

    def test_another_workspace_in_the_path_is_never_answered(self, tenant, dev, pool):
        make_run(tenant, pool["default_queue_id"])
        body = _body()
        _full(dev, tenant, body)
        other = make_tenant()
        assert _memory(other, body, key=tenant.service_key) is None
        response = dev.post(f"{other.prefix}/work_pools/{POOL}/get_scheduled_flow_runs", body, format="json")
        assert response.status_code == 404

    def test_an_account_behind_on_payment_goes_to_the_full_path_which_refuses_when_suspended(
        self, tenant, dev, pool
    ):
        make_run(tenant, pool["default_queue_id"])
        body = _body()
        _full(dev, tenant, body)
        assert _memory(tenant, body) is not None
        account = tenant.account
        account.billing_status = "past_due"
        account.billing_status_since = timezone.now() - dt.timedelta(days=1)  # grace
        account.save(update_fields=["billing_status", "billing_status_since", "updated"])
        assert _memory(tenant, body) is None
        url = f"{tenant.prefix}/work_pools/{POOL}/get_scheduled_flow_runs"
        grace = dev.post(url, body, format="json")
        assert grace.status_code == 200 and len(grace.json()) == 1
        assert grace["Warning"].startswith('299 - "A payment failed')
        account.billing_status_since = timezone.now() - dt.timedelta(days=60)  # suspended
        account.save(update_fields=["billing_status_since", "updated"])
        assert _memory(tenant, body) is None
        suspended = dev.post(url, body, format="json")
        assert suspended.status_code == 402 and "suspended" in suspended.json()["detail"]

    def test_a_paused_pool_or_queue_goes_to_the_full_path(self, tenant, dev, pool):
        make_run(tenant, pool["default_queue_id"])
        body = _body()
        _full(dev, tenant, body)
        assert (
            dev.patch(f"{tenant.prefix}/work_pools/{POOL}", {"is_paused": True}, format="json").status_code
            == 204
        )
        assert _memory(tenant, body) is None
        assert _full(dev, tenant, body) == []

    def test_a_pool_with_a_concurrency_limit_is_never_answered_from_memory(self, tenant, dev):
        pool = make_pool(dev, tenant, concurrency_limit=5)
        make_run(tenant, pool["default_queue_id"])
        body = _body()
        assert len(_full(dev, tenant, body)) == 1
        assert _memory(tenant, body) is None

    def test_an_unknown_queue_or_a_bad_body_goes_to_the_full_path(self, tenant, dev, pool):
        make_queue(dev, tenant, name="gpu")
        make_run(tenant, pool["default_queue_id"])
        _full(dev, tenant, _body())
        assert _memory(tenant, _body(work_queue_names=["nope"])) is None
        assert _memory(tenant, _body(limit="many")) is None

    def test_a_due_last_polled_stamp_is_refreshed_not_skipped(self, tenant, dev, pool):
        make_run(tenant, pool["default_queue_id"])
        body = _body()
        _full(dev, tenant, body)
        with workspace_scope(tenant.workspace.id):
            remembered = selectors.work_pool_with_queues_remembered(name=POOL)
        assert remembered is not None
        long_ago = timezone.now() - dt.timedelta(minutes=5)
        for queue in remembered[1]:
            queue.last_polled = long_ago
        rows(WorkQueue, tenant).update(last_polled=long_ago)
        scope = _scope(tenant, tenant.service_key)
        answer, refreshes = answer_from_memory(
            scope, POLL_PATH.match(scope["path"]), json.dumps(body).encode()
        )
        assert answer is not None
        (record,) = [fn for key, fn in refreshes if key[0] == "record"]
        record()
        assert rows(WorkQueue, tenant).get(id=pool["default_queue_id"]).last_polled > long_ago


class TestAsgi:
    def _run(self, app, scope, chunks):
        sent = []
        queue = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]

        async def receive():
            return queue.pop(0) if queue else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        asyncio.run(app(scope, receive, send))
        return sent

    def test_what_memory_cannot_answer_reaches_the_app_with_its_body_intact(self, tenant):
        seen = {}

        async def inner(scope, receive, send):
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            seen["body"] = body
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        scope = _scope(tenant, "pnb_not-a-key")
        sent = self._run(PollFastPath(inner), scope, [b'{"limit":', b" 3}"])
        assert seen["body"] == b'{"limit": 3}'
        assert sent[0]["status"] == 204

    def test_other_paths_pass_straight_through(self, tenant):
        calls = []

        async def inner(scope, receive, send):
            calls.append(scope["path"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        scope = {**_scope(tenant, "x"), "path": f"{tenant.prefix}/flow_runs/filter"}
        self._run(PollFastPath(inner), scope, [b"{}"])
        assert calls == [scope["path"]]

    def test_a_remembered_poll_is_answered_without_the_app(self, tenant, dev, pool):
        make_run(tenant, pool["default_queue_id"])
        body = _body()
        full = _full(dev, tenant, body)

        async def inner(scope, receive, send):  # pragma: no cover - must not be reached
            raise AssertionError("the poll went to the full path")

        sent = self._run(PollFastPath(inner), _scope(tenant, tenant.service_key), [json.dumps(body).encode()])
        assert sent[0]["status"] == 200
        headers = dict(sent[0]["headers"])
        assert headers[b"content-type"] == b"application/json" and headers[b"x-request-id"]
        assert _ids(json.loads(sent[1]["body"])) == _ids(full)


def test_flow_run_rows_written_in_bulk_drop_the_answers(tenant, dev, pool):
    make_run(tenant, pool["default_queue_id"])
    body = _body()
    _full(dev, tenant, body)
    assert _memory(tenant, body) is not None
    rows(FlowRun, tenant).filter(state_type="SCHEDULED").update(tags=["x"])  # no signal
    selectors.poll_answers_changed()
    assert _memory(tenant, body) is None
