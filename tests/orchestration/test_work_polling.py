"""A worker's poll: ``work_pools/{name}/get_scheduled_flow_runs`` (and ``work_queues/{id}/get_runs``):
due SCHEDULED runs, queue priority, pauses, concurrency limits, what a poll records, and its cost."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prefect.client.schemas.responses import WorkerFlowRunResponse

from accounts import authcache
from orchestration.models import Deployment, FlowRun, WorkQueue
from orchestration.selectors.work_pools import pool_memo_clear
from tests.orchestration.test_work_pools import make_deployment, make_pool, make_queue, make_run, rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool(tenant, dev):
    return make_pool(dev, tenant)


def _space(moment: dt.datetime) -> str:
    """How the client writes ``scheduled_before``: ``str(datetime)``, a space and ``+00:00``."""
    return str(moment.astimezone(dt.UTC))


def _poll(client, tenant, body=None, pool="proc-pool"):
    response = client.post(
        f"{tenant.prefix}/work_pools/{pool}/get_scheduled_flow_runs", body or {}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _ids(entries):
    return [entry["flow_run"]["id"] for entry in entries]


class TestWhatIsDue:
    def test_due_scheduled_runs_in_prefects_shape(self, tenant, dev, pool):
        now = timezone.now()
        due = make_run(tenant, pool["default_queue_id"], when=now - dt.timedelta(seconds=5))
        soon = make_run(tenant, pool["default_queue_id"], when=now + dt.timedelta(seconds=5))
        make_run(tenant, pool["default_queue_id"], when=now + dt.timedelta(minutes=5))  # not yet
        make_run(tenant, pool["default_queue_id"], state="RUNNING")
        make_run(tenant, None, when=now)  # in no queue
        body = {"work_queue_names": [], "scheduled_before": _space(now + dt.timedelta(seconds=10))}
        assert " " in body["scheduled_before"]
        entries = _poll(dev, tenant, body)
        assert _ids(entries) == [str(due), str(soon)]
        parsed = WorkerFlowRunResponse.model_validate(entries[0])
        assert (
            str(parsed.work_pool_id) == pool["id"] and str(parsed.work_queue_id) == pool["default_queue_id"]
        )
        assert parsed.flow_run.state.type.value == "SCHEDULED"
        assert parsed.flow_run.work_queue_id == parsed.work_queue_id

    def test_scheduled_after_limit_and_no_bounds(self, tenant, dev, pool):
        now = timezone.now()
        runs = [
            make_run(tenant, pool["default_queue_id"], when=now + dt.timedelta(minutes=i)) for i in range(3)
        ]
        assert _ids(_poll(dev, tenant)) == [str(r) for r in runs]
        after = {"scheduled_after": _space(now + dt.timedelta(seconds=30))}
        assert _ids(_poll(dev, tenant, after)) == [str(r) for r in runs[1:]]
        assert _ids(_poll(dev, tenant, {"limit": 2})) == [str(r) for r in runs[:2]]

    def test_a_run_awaiting_an_in_process_retry_is_not_handed_out(self, tenant, dev, pool):
        run = make_run(tenant, pool["default_queue_id"])
        rows(FlowRun, tenant).filter(id=run).update(empirical_policy={"retry_type": "in_process"})
        kept = make_run(tenant, pool["default_queue_id"])
        rows(FlowRun, tenant).filter(id=kept).update(empirical_policy={"retry_type": "reschedule"})
        assert _ids(_poll(dev, tenant)) == [str(kept)]

    def test_queue_names_select_queues_and_an_unknown_one_is_404(self, tenant, dev, pool):
        queue = make_queue(dev, tenant, name="gpu")
        make_run(tenant, pool["default_queue_id"])
        gpu_run = make_run(tenant, queue["id"])
        assert _ids(_poll(dev, tenant, {"work_queue_names": ["gpu"]})) == [str(gpu_run)]
        response = dev.post(
            f"{tenant.prefix}/work_pools/proc-pool/get_scheduled_flow_runs",
            {"work_queue_names": ["gpu", "nope"]},
            format="json",
        )
        assert response.status_code == 404
        assert response.json() == {"detail": "Work pool queue 'proc-pool/nope' not found."}

    @pytest.mark.parametrize(
        "body",
        [{"scheduled_before": "yesterday"}, {"limit": -1}, {"limit": 1000}, {"work_queue_names": "a"}, [1]],
    )
    def test_bad_bodies_are_422(self, tenant, dev, pool, body):
        response = dev.post(
            f"{tenant.prefix}/work_pools/proc-pool/get_scheduled_flow_runs", body, format="json"
        )
        assert response.status_code == 422

    def test_unknown_pool_is_404(self, tenant, dev):
        response = dev.post(f"{tenant.prefix}/work_pools/nope/get_scheduled_flow_runs", {}, format="json")
        assert response.status_code == 404 and response.json() == {"detail": 'Work pool "nope" not found.'}


class TestPriorityPauseAndLimits:
    def test_higher_priority_queues_first_then_earliest_start(self, tenant, dev, pool):
        now = timezone.now()
        low = make_queue(dev, tenant, name="low")  # priority 2
        high = make_queue(dev, tenant, name="high", priority=1)  # default moves to 2, low to 3
        early_low = make_run(tenant, low["id"], when=now - dt.timedelta(minutes=10))
        late_high = make_run(tenant, high["id"], when=now - dt.timedelta(minutes=1))
        early_high = make_run(tenant, high["id"], when=now - dt.timedelta(minutes=2))
        default_run = make_run(tenant, pool["default_queue_id"], when=now - dt.timedelta(minutes=20))
        assert _ids(_poll(dev, tenant)) == [str(early_high), str(late_high), str(default_run), str(early_low)]
        assert _ids(_poll(dev, tenant, {"limit": 1})) == [str(early_high)]

    def test_a_paused_pool_gives_nothing_and_a_paused_queue_is_skipped(self, tenant, dev, pool):
        other = make_queue(dev, tenant, name="other")
        make_run(tenant, pool["default_queue_id"])
        other_run = make_run(tenant, other["id"])
        p = f"{tenant.prefix}/work_pools/proc-pool"
        dev.patch(f"{p}/queues/default", {"is_paused": True}, format="json")
        assert _ids(_poll(dev, tenant)) == [str(other_run)]
        dev.patch(p, {"is_paused": True}, format="json")
        assert _poll(dev, tenant) == []
        dev.patch(p, {"is_paused": False}, format="json")
        assert len(_poll(dev, tenant)) == 1

    def test_pool_limit_counts_active_runs_of_every_queue(self, tenant, dev):
        pool = make_pool(dev, tenant, concurrency_limit=3)
        other = make_queue(dev, tenant, name="other")
        make_run(tenant, other["id"], state="RUNNING")
        make_run(tenant, pool["default_queue_id"], state="PENDING")
        for _ in range(3):
            make_run(tenant, pool["default_queue_id"])
        assert len(_poll(dev, tenant)) == 1
        make_run(tenant, other["id"], state="CANCELLING")
        assert _poll(dev, tenant) == []

    def test_queue_limit_caps_that_queue_only(self, tenant, dev, pool):
        now = timezone.now()
        capped = make_queue(dev, tenant, name="capped", concurrency_limit=2)
        make_run(tenant, capped["id"], state="RUNNING")
        capped_runs = [make_run(tenant, capped["id"], when=now - dt.timedelta(minutes=i)) for i in (3, 2, 1)]
        free_runs = [
            make_run(tenant, pool["default_queue_id"], when=now - dt.timedelta(minutes=i)) for i in (5, 4)
        ]
        # default (priority 1) first, then the one free slot of "capped": its earliest run.
        assert _ids(_poll(dev, tenant)) == [str(r) for r in free_runs] + [str(capped_runs[0])]
        dev.patch(
            f"{tenant.prefix}/work_pools/proc-pool/queues/capped", {"concurrency_limit": 1}, format="json"
        )
        assert _ids(_poll(dev, tenant)) == [str(r) for r in free_runs]

    def test_queue_limits_across_several_capped_queues(self, tenant, dev, pool):
        a = make_queue(dev, tenant, name="a", concurrency_limit=1)
        b = make_queue(dev, tenant, name="b", concurrency_limit=2)
        for queue in (a, b):
            for _ in range(3):
                make_run(tenant, queue["id"])
        counts = {}
        for entry in _poll(dev, tenant):
            counts[entry["work_queue_id"]] = counts.get(entry["work_queue_id"], 0) + 1
        assert counts == {a["id"]: 1, b["id"]: 2}


class TestWhatAPollRecords:
    def test_last_polled_on_polled_queues_and_their_deployments(self, tenant, dev, pool):
        other = make_queue(dev, tenant, name="other")
        deployment = make_deployment(tenant, pool["default_queue_id"])
        elsewhere = make_deployment(tenant, other["id"], name="elsewhere")
        before = timezone.now()
        _poll(dev, tenant, {"work_queue_names": ["default"]})
        queues = {q.name: q for q in rows(WorkQueue, tenant)}
        assert queues["default"].last_polled >= before and queues["other"].last_polled is None
        assert rows(Deployment, tenant).get(id=deployment.id).last_polled >= before
        assert rows(Deployment, tenant).get(id=elsewhere.id).last_polled is None
        read = dev.get(f"{tenant.prefix}/work_queues/{pool['default_queue_id']}").json()
        assert read["status"] == "READY" and read["last_polled"] is not None

    def test_a_recent_stamp_is_not_rewritten_but_an_older_one_is(self, tenant, dev, pool):
        _poll(dev, tenant)
        first = rows(WorkQueue, tenant).get().last_polled
        _poll(dev, tenant)
        assert rows(WorkQueue, tenant).get().last_polled == first
        rows(WorkQueue, tenant).update(last_polled=first - dt.timedelta(seconds=30))
        pool_memo_clear()  # thirty seconds on, the remembered pool has long expired
        _poll(dev, tenant)
        assert rows(WorkQueue, tenant).get().last_polled > first

    def test_a_paused_pool_is_still_polled(self, tenant, dev, pool):
        dev.patch(f"{tenant.prefix}/work_pools/proc-pool", {"is_paused": True}, format="json")
        _poll(dev, tenant)
        assert rows(WorkQueue, tenant).get().last_polled is not None


class TestCost:
    def _count(self, dev, tenant, body=None):
        with CaptureQueriesContext(connection) as ctx:
            entries = _poll(dev, tenant, body)
        return entries, [q["sql"] for q in ctx.captured_queries]

    def test_queries_do_not_grow_with_runs_queues_or_deployments(self, tenant, dev, monkeypatch):
        # The measured polls must not find a poll stamp due again, however slowly the machine runs.
        for module in ("orchestration.services.work_pools", "orchestration.services.deployments"):
            monkeypatch.setattr(f"{module}.POLL_RECORD_INTERVAL", dt.timedelta(hours=1))
        pool = make_pool(dev, tenant, concurrency_limit=100)
        queues = [pool["default_queue_id"]] + [
            make_queue(dev, tenant, name=f"q{i}", concurrency_limit=50)["id"] for i in range(3)
        ]
        for queue_id in queues:
            make_run(tenant, queue_id)
            make_deployment(tenant, queue_id, name=f"d-{queue_id}")
        _poll(dev, tenant)  # stamps last_polled, so both measured polls skip the writes
        # Both measured polls start from cold per-process memos (pool, key), so neither depends on
        # how long the machine takes between them.
        authcache.clear()
        pool_memo_clear()
        few, small = self._count(dev, tenant)
        for queue_id in queues:
            for _ in range(5):
                make_run(tenant, queue_id)
        authcache.clear()
        pool_memo_clear()
        many, large = self._count(dev, tenant)
        assert (len(few), len(many)) == (4, 24)
        assert len(large) == len(small)
        flow_run_queries = [sql for sql in large if "orchestration_flowrun" in sql]
        assert len(flow_run_queries) == 2  # the slots and the runs (with their states joined)
        assert len([sql for sql in large if "orchestration_flowrunstate" in sql]) == 1

    def test_a_poll_reads_with_three_queries_and_writes_only_when_a_stamp_is_due(self, tenant, dev, pool):
        make_queue(dev, tenant, name="q", concurrency_limit=5)
        for _ in range(10):
            make_run(tenant, pool["default_queue_id"])
        make_deployment(tenant, pool["default_queue_id"])
        with CaptureQueriesContext(connection) as ctx:
            assert dev.get(f"{tenant.prefix}/health").status_code == 200
        auth = len(ctx.captured_queries)
        # Pool with its queues, the slots, the runs with their states.
        entries, first = self._count(dev, tenant)
        assert len(entries) == 10
        writes = [
            sql for sql in first[auth + 3 :] if "SAVEPOINT" not in sql and "orchestration_event" not in sql
        ]
        # Lock and stamp the queues; find their deployments; lock and stamp those (events aside).
        assert len(writes) <= 6
        _, second = self._count(dev, tenant)
        # The pool and its queues are remembered for a moment: the slots and the runs.
        assert len(second) == auth + 2
        pool_memo_clear()
        _, third = self._count(dev, tenant)
        assert len(third) == auth + 3

    def test_a_pause_is_seen_by_the_next_poll(self, tenant, dev, pool):
        make_run(tenant, pool["default_queue_id"])
        assert len(_poll(dev, tenant)) == 1
        dev.patch(f"{tenant.prefix}/work_pools/proc-pool", {"is_paused": True}, format="json")
        assert _poll(dev, tenant) == []


class TestGetRunsOfAQueue:
    def test_get_runs_answers_flow_runs_and_records_the_poll(self, tenant, dev, pool):
        run = make_run(tenant, pool["default_queue_id"])
        make_run(tenant, pool["default_queue_id"], when=timezone.now() + dt.timedelta(hours=1))
        p = f"{tenant.prefix}/work_queues/{pool['default_queue_id']}/get_runs"
        body = {"scheduled_before": _space(timezone.now() + dt.timedelta(seconds=10))}
        response = dev.post(p, body, format="json", HTTP_X_PREFECT_UI="true")
        assert [r["id"] for r in response.json()] == [str(run)]
        assert rows(WorkQueue, tenant).get().last_polled is None
        dev.post(p, body, format="json")
        assert rows(WorkQueue, tenant).get().last_polled is not None


def test_queue_health_status(tenant, dev, pool):
    from prefect.client.schemas.objects import WorkQueueStatusDetail

    p = f"{tenant.prefix}/work_queues/{pool['default_queue_id']}/status"
    detail = dev.get(p).json()
    assert WorkQueueStatusDetail.model_validate(detail).healthy is False
    _poll(dev, tenant)
    assert dev.get(p).json()["healthy"] is True
    run = make_run(tenant, pool["default_queue_id"])
    rows(FlowRun, tenant).filter(id=run).update(state_name="Late")
    assert dev.get(p).json()["late_runs_count"] == 1 and dev.get(p).json()["healthy"] is False
