"""End to end: a process work pool and ``prefect worker start`` with the unmodified client, against
the live server. ``prefect work-pool create --type process``, ``flow.from_source(<dir>, …).deploy()``
and the worker run a deployment; the worker's heartbeats make it ONLINE and their absence OFFLINE;
the scheduler creates runs ahead, exactly once, for the worker to execute; a run whose worker is
killed is crashed by the zombie sweep and gives its concurrency slot back.

The sweeps (``scheduler_tick``, ``zombie_runs_mark_crashed``) are called directly, as Celery beat
would call them. Long-running clients run under the ``spawn`` fixture of
``tests/live/test_deployments_live.py``: all are killed by id at the end of each test.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from orchestration.models import (
    ConcurrencyLease,
    ConcurrencyLimitV2,
    Deployment,
    DeploymentSchedule,
    FlowRun,
    Worker,
    WorkPool,
    WorkQueue,
)
from tests.live import test_deployments_live
from tests.live.conftest import FLOWS_DIR, wait_for
from tests.live.test_deployments_live import (
    DEPLOY_SCRIPT,
    FLOW_NAME,
    api,
    create_flow_run_body,
    explain,
    flow_states,
    get_run,
    pid_alive,
    read_marker,
    run_id_from_cli,
    state_names,
    wait_run,
)

#: The fixture that starts long-running clients and kills them all at teardown.
spawn = test_deployments_live.spawn

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def create_pool(run_prefect, workspace, name: str) -> WorkPool:
    created = run_prefect(["prefect", "work-pool", "create", name, "--type", "process"])
    assert created.returncode == 0, created.describe()
    pool = WorkPool.objects.for_workspace(workspace.id).filter(name=name).first()
    assert pool is not None, created.describe()
    return pool


def source_dir(tmp_path: Path) -> Path:
    """A local directory holding the flow, as ``from_source`` takes it (no git)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    shutil.copy(FLOWS_DIR / "live_job.py", src / "live_job.py")
    return src


def deploy(run_prefect, workspace, src: Path, name: str, pool: str, *extra: str) -> Deployment:
    deployed = run_prefect(
        [DEPLOY_SCRIPT, "deploy", "--name", name, "--source", str(src), "--pool", pool, *extra]
    )
    assert deployed.returncode == 0 and deployed.result and "deployment_id" in deployed.result, (
        deployed.describe()
    )
    deployment = (
        Deployment.objects.for_workspace(workspace.id)
        .select_related("work_queue__work_pool", "flow")
        .filter(id=deployed.result["deployment_id"])
        .first()
    )
    assert deployment is not None, deployed.describe()
    return deployment


def start_worker(
    spawn, pool: str, name: str, *, heartbeat_seconds: float | None = None, limit: int | None = None
):
    env = {"PREFECT_WORKER_QUERY_SECONDS": "1"}
    if heartbeat_seconds is not None:
        env["PREFECT_WORKER_HEARTBEAT_SECONDS"] = str(heartbeat_seconds)
    argv = ["prefect", "worker", "start", "--pool", pool, "--name", name]
    if limit is not None:
        argv += ["--limit", str(limit)]
    return spawn(argv, env=env, name=f"worker {name}")


def workers_by_status(live_tenant, pool: str) -> dict[str, str]:
    """``POST work_pools/{pool}/workers/filter``, as ``deploy()`` asks it: name → status."""
    with api(live_tenant) as client:
        answer = client.post(
            f"/work_pools/{pool}/workers/filter", json={"workers": None, "offset": None, "limit": None}
        )
    assert answer.status_code == 200, (answer.status_code, answer.text)
    return {w["name"]: w["status"] for w in answer.json()}


def online_workers(live_tenant, pool: str) -> list[str]:
    with api(live_tenant) as client:
        answer = client.post(
            f"/work_pools/{pool}/workers/filter",
            json={"workers": {"status": {"any_": ["ONLINE"]}}, "offset": None, "limit": None},
        )
    assert answer.status_code == 200, (answer.status_code, answer.text)
    return [w["name"] for w in answer.json()]


def pool_status(live_tenant, pool: str) -> str | None:
    with api(live_tenant) as client:
        answer = client.get(f"/work_pools/{pool}")
    assert answer.status_code == 200, (answer.status_code, answer.text)
    return answer.json()["status"]


# --------------------------------------------------------------------------------------------------
# 2. work-pool create; from_source().deploy(); worker start; ONLINE, then OFFLINE
# --------------------------------------------------------------------------------------------------


def test_process_worker_runs_deployment_and_goes_offline(
    asgi_server, live_tenant, run_prefect, spawn, tmp_path
):
    workspace = live_tenant.workspace
    pool = create_pool(run_prefect, workspace, "proc-pool")
    assert pool.type == "process"
    assert "job_configuration" in pool.base_job_template and "variables" in pool.base_job_template
    assert list(
        WorkQueue.objects.for_workspace(workspace.id).filter(work_pool=pool).values_list("name", flat=True)
    ) == ["default"]

    src = source_dir(tmp_path)
    deployment = deploy(run_prefect, workspace, src, "worker-dep", "proc-pool")
    assert deployment.flow.name == FLOW_NAME
    assert deployment.work_queue is not None and deployment.work_queue.work_pool_id == pool.id
    assert deployment.work_queue_name == "default"
    assert deployment.entrypoint == "live_job.py:live_job"
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(src)}}
    ], deployment.pull_steps
    assert pool_status(live_tenant, "proc-pool") == "NOT_READY"

    worker = start_worker(spawn, "proc-pool", "live-worker", heartbeat_seconds=2)
    online = wait_for(
        lambda: online_workers(live_tenant, "proc-pool"), lambda names: "live-worker" in names, 40
    )
    assert online == ["live-worker"], explain(asgi_server, live_tenant, worker)
    row = Worker.objects.for_workspace(workspace.id).get(work_pool=pool, name="live-worker")
    assert row.heartbeat_interval_seconds == 2 and row.last_heartbeat_time is not None
    assert pool_status(live_tenant, "proc-pool") == "READY"

    launched = run_prefect(["prefect", "deployment", "run", f"{FLOW_NAME}/worker-dep", "--param", "x=4"])
    assert launched.returncode == 0, launched.describe()
    run_id = run_id_from_cli(launched.output)
    assert run_id, launched.describe()
    run = wait_run(workspace, run_id, TERMINAL, timeout=45)
    trail = explain(asgi_server, live_tenant, worker, extra=str(state_names(workspace, run_id)))
    assert run.state_type == "COMPLETED", trail
    assert run.parameters == {"x": 4}
    assert run.work_pool_name == "proc-pool" and str(run.work_pool_id) == str(pool.id), trail
    assert run.work_queue_name == "default", trail
    assert run.infrastructure_pid, trail
    assert run.labels.get("prefect.worker.name") == "live-worker", run.labels
    assert run.labels.get("prefect.work-pool.name") == "proc-pool", run.labels
    names = state_names(workspace, run_id)
    assert names[0] == "Scheduled" and names[-1] == "Completed", names
    assert names.index("Pending") < names.index("Running"), names

    # Still ONLINE after the run; then the worker dies without a word (SIGINT does not stop it,
    # REPORT gotcha 13) and, two 2-second heartbeats × the offline multiple later, is OFFLINE.
    assert "live-worker" in online_workers(live_tenant, "proc-pool"), trail
    worker.kill()
    killed_at = time.monotonic()
    statuses = wait_for(
        lambda: workers_by_status(live_tenant, "proc-pool"), lambda s: s.get("live-worker") == "OFFLINE", 20
    )
    assert statuses == {"live-worker": "OFFLINE"}, explain(asgi_server, live_tenant, worker)
    # (A heartbeat already in flight when the worker died may still land: up to 2 s + 3 × 2 s.)
    assert time.monotonic() - killed_at < 15
    assert online_workers(live_tenant, "proc-pool") == []
    assert pool_status(live_tenant, "proc-pool") == "NOT_READY"


# --------------------------------------------------------------------------------------------------
# 3. schedules: runs created ahead (bounded), exactly once, and executed by the worker
# --------------------------------------------------------------------------------------------------


def _scheduled_runs(workspace, deployment_id) -> list[FlowRun]:
    return list(
        FlowRun.objects.for_workspace(workspace.id)
        .filter(deployment_id=deployment_id, auto_scheduled=True)
        .order_by("expected_start_time")
    )


def test_scheduler_creates_runs_once_and_worker_runs_a_due_one(
    asgi_server, live_tenant, run_prefect, spawn, tmp_path, settings
):
    from orchestration.services.scheduler import scheduler_tick

    settings.SCHEDULER_MAX_RUNS = 10
    workspace = live_tenant.workspace
    create_pool(run_prefect, workspace, "sched-pool")
    deployment = deploy(
        run_prefect,
        workspace,
        source_dir(tmp_path),
        "scheduled-dep",
        "sched-pool",
        "--interval",
        "5",
        "--cron",
        "* * * * *",
        "--parameters",
        '{"x": 7}',
    )
    schedules = {
        ("interval" if "interval" in s.schedule else "cron"): s
        for s in DeploymentSchedule.objects.for_workspace(workspace.id).filter(deployment=deployment)
    }
    assert set(schedules) == {"interval", "cron"}, [s.schedule for s in schedules.values()]
    assert schedules["interval"].schedule["interval"] == 5 and schedules["interval"].active
    assert schedules["cron"].schedule["cron"] == "* * * * *" and schedules["cron"].active
    assert _scheduled_runs(workspace, deployment.id) == []

    # One tick: ten runs per schedule (SCHEDULER_MAX_RUNS bounds the hour ahead Prefect fills).
    t0 = timezone.now()
    created = scheduler_tick(now=t0)
    runs = _scheduled_runs(workspace, deployment.id)
    assert created == 20 and len(runs) == 20, (created, [(r.expected_start_time, r.created_by) for r in runs])
    by_schedule: dict[str, list[FlowRun]] = {}
    for run in runs:
        by_schedule.setdefault(run.created_by["id"], []).append(run)
    interval_runs = by_schedule[str(schedules["interval"].id)]
    cron_runs = by_schedule[str(schedules["cron"].id)]
    assert len(interval_runs) == 10 and len(cron_runs) == 10
    interval_times = [r.expected_start_time for r in interval_runs]
    assert all(b - a == dt.timedelta(seconds=5) for a, b in zip(interval_times, interval_times[1:])), (
        interval_times
    )
    assert t0 <= interval_times[0] <= t0 + dt.timedelta(seconds=5), (t0, interval_times[0])
    cron_times = [r.expected_start_time for r in cron_runs]
    assert all(t.second == 0 and t.microsecond == 0 for t in cron_times), cron_times
    assert all(b - a == dt.timedelta(minutes=1) for a, b in zip(cron_times, cron_times[1:])), cron_times
    assert t0 <= cron_times[0] <= t0 + dt.timedelta(minutes=1), (t0, cron_times[0])
    for run in runs:
        assert run.state_type == "SCHEDULED" and run.state_name == "Scheduled"
        assert run.parameters == {"x": 7}
        assert run.work_pool_name == "sched-pool" and run.work_queue_name == "default"
        assert "auto-scheduled" in run.tags
        assert [s.name for s in flow_states(workspace, run.id)] == ["Scheduled"]

    # Again, at the same moment: nothing new.
    assert scheduler_tick(now=t0) == 0
    assert len(_scheduled_runs(workspace, deployment.id)) == 20

    # A minute on, two schedulers at once: the new runs (ten of the interval, one of the cron)
    # are made once between them.
    t1 = t0 + dt.timedelta(seconds=60)
    barrier = threading.Barrier(2)
    results: list[int | BaseException] = []

    def tick() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(scheduler_tick(now=t1))
        except BaseException as exc:  # reported below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(r, int) for r in results) and len(results) == 2, results
    runs = _scheduled_runs(workspace, deployment.id)
    assert sum(results) == 11 and len(runs) == 31, (results, len(runs))
    keys = [(r.created_by["id"], r.expected_start_time) for r in runs]
    assert len(set(keys)) == len(keys)
    assert len({r.idempotency_key for r in runs}) == len(runs)
    assert all(len(flow_states(workspace, r.id)) == 1 for r in runs)

    # The worker executes the first due run (the next ones are due every 5 s and may run too).
    first = interval_runs[0]
    worker = start_worker(spawn, "sched-pool", "sched-worker", limit=2)
    run = wait_run(workspace, first.id, TERMINAL, timeout=50)
    trail = explain(asgi_server, live_tenant, worker, extra=str(state_names(workspace, first.id)))
    assert run.state_type == "COMPLETED", trail
    assert run.auto_scheduled and run.parameters == {"x": 7}
    states = flow_states(workspace, first.id)
    assert states[0].name == "Scheduled" and states[-1].name == "Completed", trail
    running = [s for s in states if s.type == "RUNNING"]
    assert len(running) == 1, trail
    # It did not start before its time (the client stamps its proposal just before sending it).
    assert running[0].timestamp >= first.expected_start_time - dt.timedelta(seconds=1), (
        running[0].timestamp,
        first.expected_start_time,
    )


# --------------------------------------------------------------------------------------------------
# 5. a worker killed mid-run: the zombie sweep crashes the run and frees its concurrency slot
# --------------------------------------------------------------------------------------------------


def test_killed_worker_run_is_crashed_and_releases_its_slot(
    asgi_server, live_tenant, run_prefect, spawn, tmp_path, settings
):
    from orchestration.services.lifecycle import zombie_runs_mark_crashed

    workspace = live_tenant.workspace
    create_pool(run_prefect, workspace, "zombie-pool")
    deployment = deploy(
        run_prefect, workspace, source_dir(tmp_path), "zombie-dep", "zombie-pool", "--concurrency-limit", "1"
    )
    assert deployment.concurrency_limit == 1
    worker = start_worker(spawn, "zombie-pool", "zombie-worker")

    marker = tmp_path / "zombie-marker.json"
    with api(live_tenant) as client:
        answer = client.post(
            f"/deployments/{deployment.id}/create_flow_run",
            json=create_flow_run_body({"sleep": 120, "marker": str(marker)}),
        )
    assert answer.status_code == 201, (answer.status_code, answer.text)
    run_id = answer.json()["id"]
    started = wait_for(lambda: read_marker(marker), lambda m: m is not None, timeout=45)
    assert started is not None, explain(
        asgi_server, live_tenant, worker, extra=str(state_names(workspace, run_id))
    )
    child = started["pid"]
    worker.adopt(child)
    run = wait_run(workspace, run_id, {"RUNNING"}, timeout=10)
    assert run.state_type == "RUNNING", state_names(workspace, run_id)

    # The run holds the deployment's slot under a lease named in its state.
    lease_id = run.state.state_details.get("deployment_concurrency_lease_id")
    assert lease_id, run.state.state_details
    assert ConcurrencyLease.objects.for_workspace(workspace.id).filter(id=lease_id).exists()
    (limit,) = ConcurrencyLimitV2.objects.for_workspace(workspace.id)
    assert limit.limit == 1 and limit.active_slots == 1

    # SIGKILL the worker's process group and the flow-run process (adopted above, in case it left
    # the group): nobody reports anything.
    worker.kill()
    assert wait_for(lambda: pid_alive(child), lambda alive: not alive, 10) is False
    assert get_run(workspace, run_id).state_type == "RUNNING"

    # With the default timeout (600 s) the run is not a zombie yet.
    assert zombie_runs_mark_crashed() == 0
    assert get_run(workspace, run_id).state_type == "RUNNING"

    settings.FLOW_RUN_HEARTBEAT_TIMEOUT_SECONDS = 2
    time.sleep(3)
    assert zombie_runs_mark_crashed() == 1, explain(asgi_server, live_tenant, worker)
    run = get_run(workspace, run_id)
    assert run.state_type == "CRASHED" and run.state_name == "Crashed", state_names(workspace, run_id)
    assert "heartbeat" in (run.state.message or ""), run.state.message
    assert run.end_time is not None

    assert not ConcurrencyLease.objects.for_workspace(workspace.id).filter(id=lease_id).exists()
    assert ConcurrencyLease.objects.for_workspace(workspace.id).count() == 0
    limit.refresh_from_db()
    assert limit.active_slots == 0

    # Idempotent: a second sweep finds nothing.
    assert zombie_runs_mark_crashed() == 0
