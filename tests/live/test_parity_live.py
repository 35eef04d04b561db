"""API parity, proved with the unmodified ``prefect`` client and CLI against the live server, and
where it is cheap against Prefect's own server (``prefect server start`` on a port of its own, a
temporary ``PREFECT_HOME``) with the same scripts:

1. subflows two levels deep, with ``.submit`` and ``.map`` in every level and results (and futures)
   handed up and down: the run tree on the server (parent task runs, ``parent_task_run_id``, task
   runs' ``flow_run_id``, task inputs, final states) is the one Prefect's server records;
2. ``prefect deploy`` from a ``prefect.yaml`` whose values use ``{{ prefect.blocks.secret.… }}`` and
   ``{{ prefect.variables.… }}``: the client reads the block document with its secrets and the
   variable, and the deployment stored on the server carries the resolved values;
3. two workspaces' keys: B can neither read, list, count nor load A's blocks, block schemas,
   secrets, flow-run inputs, saved searches or automations, by id or by filter.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestration.models import Deployment, FlowRun, TaskRun
from tests.live.conftest import (
    FLOWS_DIR,
    SUBPROCESS_TIMEOUT,
    PrefectRun,
    _argv,
    _client_env,
    make_live_tenant,
    wait_for,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _ok(run: PrefectRun) -> dict:
    result = run.result
    assert run.returncode == 0 and result is not None and "error" not in result, run.describe()
    return result


# --------------------------------------------------------------------------------------------------
# Prefect's own server, for the comparisons
# --------------------------------------------------------------------------------------------------


class PrefectServer:
    """``prefect server start`` in a subprocess of its own session; stopped by its pid only."""

    def __init__(self, home: Path):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.home = home
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = home / "server.log"
        env = _client_env(home=home, api_url=None, cloud_api_url="http://127.0.0.1:9/api", key=None, extra={})
        env.pop("PREFECT_CLOUD_API_URL", None)
        env["PREFECT_SERVER_UI_ENABLED"] = "false"
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*_argv(["prefect"]), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        pytest.fail(f"prefect server did not start in {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def run(self, script_or_args, *, cwd: Path | None = None, env: dict | None = None) -> PrefectRun:
        argv = _argv(script_or_args)
        client_env = _client_env(
            home=self.home / "client", api_url=self.api_url, cloud_api_url="", key=None, extra=env
        )
        client_env.pop("PREFECT_CLOUD_API_URL", None)
        (self.home / "client").mkdir(exist_ok=True)
        started = time.monotonic()
        done = subprocess.run(
            argv,
            env=client_env,
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        return PrefectRun(
            argv=argv,
            returncode=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
            duration=time.monotonic() - started,
            trail=f"(Prefect's server on {self.api_url})",
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)  # the session this fixture started, by its id
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=5)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory) -> Iterator[PrefectServer]:
    server = PrefectServer(tmp_path_factory.mktemp("prefect-server"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------
# 1. Subflows two levels deep, with .submit and .map in each level
# --------------------------------------------------------------------------------------------------

#: Task runs per flow run of ``parity_subflows.py``: tasks submitted and mapped, plus the parent
#: task run of the subflow each level calls.
TASK_RUNS = {"parity-top": 6, "parity-mid": 4, "parity-leaf": 3}


def _flow_run(workspace, flow_name: str) -> FlowRun:
    [run] = FlowRun.objects.for_workspace(workspace.id).filter(flow__name=flow_name)
    return run


def test_subflows_two_levels_deep_with_submit_and_map(asgi_server, live_tenant, run_prefect):
    run = run_prefect("parity_subflows.py")
    result = _ok(run)
    assert result["type"] == "COMPLETED" and result["value"] == 1697, run.describe()
    workspace = live_tenant.workspace
    top, mid, leaf = (_flow_run(workspace, f"parity-{n}") for n in ("top", "mid", "leaf"))
    assert str(top.id) == result["flow_run_id"] and top.parent_task_run_id is None

    def settled():
        rows = list(TaskRun.objects.for_workspace(workspace.id).values_list("flow_run_id", "state_type"))
        return rows

    rows = wait_for(
        settled,
        lambda rows: len(rows) == sum(TASK_RUNS.values()) and all(s in TERMINAL for _, s in rows),
        timeout=20,
    )
    # Every task run belongs to the flow run that ran it, and all completed.
    counts = {run.flow.name: sum(1 for f, _ in rows if f == run.id) for run in (top, mid, leaf)}
    assert counts == TASK_RUNS, (rows, run.trail)
    assert {s for _, s in rows} == {"COMPLETED"}, rows

    # Each subflow hangs under a task run of its parent flow run, which mirrors the child's state.
    for child, parent in ((mid, top), (leaf, mid)):
        assert child.state_type == "COMPLETED" and child.parent_task_run_id is not None
        task_run = TaskRun.objects.for_workspace(workspace.id).get(id=child.parent_task_run_id)
        assert task_run.flow_run_id == parent.id and task_run.name.startswith(child.flow.name)
        assert task_run.state_type == "COMPLETED"
    assert top.state_type == "COMPLETED"

    # Read back through the client, ids left out: the tree Prefect's server records (see below).
    tree = _ok(run_prefect([str(FLOWS_DIR / "parity_tree.py"), str(top.id)]))
    assert tree == EXPECTED_TREE, json.dumps(tree, indent=1, sort_keys=True)


def _task(name: str, **inputs) -> dict:
    return {"name": name, "state": "COMPLETED", "inputs": inputs}


#: What ``parity_tree.py`` reads back from Prefect's own server after ``parity_subflows.py``
#: (checked by ``test_subflow_tree_matches_prefects_server``).
EXPECTED_TREE = {
    "parity-top": {
        "state": "COMPLETED",
        "parent_flow": None,
        "parent_task": None,
        "task_runs": [
            _task("add", a=["flow_run:parity-mid"], b=[]),
            _task("parity-mid", x=["task_run:square"]),
            *[_task("square", x=[])] * 4,
        ],
    },
    "parity-mid": {
        "state": "COMPLETED",
        "parent_flow": "parity-top",
        "parent_task": {
            "child": True,
            "flow": "parity-top",
            "inputs": {"x": ["task_run:square"]},
            "name": "parity-mid",
            "state": "COMPLETED",
        },
        "task_runs": [
            _task("add", a=["flow_run:parity-leaf"], b=[]),
            _task("parity-leaf", y=[]),
            *[_task("square", x=[])] * 2,
        ],
    },
    "parity-leaf": {
        "state": "COMPLETED",
        "parent_flow": "parity-mid",
        "parent_task": {
            "child": True,
            "flow": "parity-mid",
            "inputs": {"y": []},
            "name": "parity-leaf",
            "state": "COMPLETED",
        },
        "task_runs": [
            _task("add", a=["task_run:square"], b=["task_run:square"]),
            *[_task("square", x=[])] * 2,
        ],
    },
}


def test_subflow_tree_matches_prefects_server(prefect_server):
    run = prefect_server.run("parity_subflows.py")
    result = _ok(run)
    assert result["type"] == "COMPLETED" and result["value"] == 1697, run.describe()
    tree = _ok(prefect_server.run([str(FLOWS_DIR / "parity_tree.py"), result["flow_run_id"]]))
    assert tree == EXPECTED_TREE, json.dumps(tree, indent=1, sort_keys=True)


# --------------------------------------------------------------------------------------------------
# 2. prefect deploy from a prefect.yaml with block and variable placeholders
# --------------------------------------------------------------------------------------------------

SECRET = "hunter2-parity-0123"
DEPLOYED_FIELDS = ("name", "description", "tags", "parameters", "job_variables", "pull_steps",
                   "work_pool_name", "work_queue_name", "entrypoint", "enforce_parameter_schema")  # fmt: skip

#: The deployment ``parity_prefect.yaml`` gives, placeholders resolved by the client (what Prefect's
#: server stores, checked by ``test_deploy_with_placeholders_matches_prefects_server``).
EXPECTED_DEPLOYMENT = {
    "name": "parity-deploy",
    "description": "owned by data-eng",
    "tags": ["parity", "data-eng"],
    "parameters": {
        "region": "eu-west-1",
        "limits": {"cpu": 2, "memory": "4Gi"},
        "label": "data-eng-eu-west-1",
        "config": {"token": SECRET, "retries": 3},
    },
    "job_variables": {"env": {"DB_PASSWORD": SECRET, "DSN": f"postgres://svc:{SECRET}@db/app"}},
    "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/parity"}}],
    "work_pool_name": "parity-pool",
    "work_queue_name": "default",
    "entrypoint": "parity_job.py:parity_job",
    "enforce_parameter_schema": True,
}
BAD_ENV = "Validation failed for field 'env.API_CONFIG'"


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "parity-project"
    project.mkdir(exist_ok=True)
    (project / "parity_job.py").write_text((FLOWS_DIR / "parity_job.py").read_text())
    (project / "prefect.yaml").write_text((FLOWS_DIR / "parity_prefect.yaml").read_text())
    return project


def _deploy_steps(run, project: Path) -> tuple[PrefectRun, PrefectRun]:
    """Blocks and variables saved, a process pool, then ``prefect deploy`` of the good deployment
    and of the one the pool's job template refuses. No worker runs."""
    setup = run("parity_deploy_setup.py", env={"PARITY_SECRET": SECRET})
    assert setup.returncode == 0 and setup.result == {"saved": True}, setup.describe()
    pool = run(["prefect", "work-pool", "create", "parity-pool", "--type", "process"])
    assert pool.returncode == 0, pool.describe()
    cli_in = str(FLOWS_DIR / "parity_cli_in.py")
    good = run([cli_in, str(project), "deploy", "-n", "parity-deploy"])
    bad = run([cli_in, str(project), "deploy", "-n", "parity-bad-env"])
    return good, bad


def _stored(answer: dict) -> dict:
    return {name: answer[name] for name in DEPLOYED_FIELDS}


def test_prefect_deploy_resolves_block_and_variable_placeholders(live_tenant, run_prefect, tmp_path):
    good, bad = _deploy_steps(run_prefect, _project(tmp_path))
    assert good.returncode == 0 and "parity-job/parity-deploy" in good.stdout, good.describe()
    # The client read each secret block with its secrets and each variable by name, once.
    for read in (
        "GET W/block_types/slug/secret/block_documents/name/db-pass?include_secrets=true -> 200",
        "GET W/block_types/slug/secret/block_documents/name/api-config?include_secrets=true -> 200",
        "GET W/variables/name/region -> 200",
        "GET W/variables/name/team -> 200",
        "GET W/variables/name/limits -> 200",
        "POST W/deployments/ -> 201",
    ):
        assert read in good.trail, (read, good.describe())

    headers = {"Authorization": f"Bearer {live_tenant.developer_key}"}
    answer = httpx.get(f"{live_tenant.api_url}/deployments/name/parity-job/parity-deploy", headers=headers)
    assert answer.status_code == 200, answer.text
    assert _stored(answer.json()) == EXPECTED_DEPLOYMENT
    deployment = Deployment.objects.for_workspace(live_tenant.workspace.id).get()
    assert deployment.parameters == EXPECTED_DEPLOYMENT["parameters"]
    assert deployment.job_variables == EXPECTED_DEPLOYMENT["job_variables"]
    assert deployment.work_queue.work_pool.name == "parity-pool"
    assert not FlowRun.objects.for_workspace(live_tenant.workspace.id).exists()

    # An object where the pool's job template wants a string: 422, as Prefect's server, nothing stored.
    assert bad.returncode != 0 and BAD_ENV in bad.output, bad.describe()
    assert "POST W/deployments/ -> 422" in bad.trail, bad.describe()
    assert Deployment.objects.for_workspace(live_tenant.workspace.id).count() == 1


def test_a_viewer_key_cannot_deploy_or_read_the_secret_and_b_cannot_resolve_as_blocks(
    asgi_server, live_tenant, run_prefect, tmp_path
):
    """The placeholders name A's blocks and variables. A's Viewer key (``see_blocks`` without
    ``see_secret_blocks``) is answered the secrets obfuscated and cannot create the deployment;
    from workspace B the blocks are not found. Either way nothing is stored."""
    project = _project(tmp_path)
    setup = run_prefect("parity_deploy_setup.py", env={"PARITY_SECRET": SECRET})
    assert setup.returncode == 0, setup.describe()
    pool = run_prefect(["prefect", "work-pool", "create", "parity-pool", "--type", "process"])
    assert pool.returncode == 0, pool.describe()
    cli_in = str(FLOWS_DIR / "parity_cli_in.py")
    mark = asgi_server.mark()
    viewer = run_prefect([cli_in, str(project), "deploy", "-n", "parity-deploy"], key=live_tenant.viewer_key)
    assert viewer.returncode != 0, viewer.describe()
    assert "db-pass?include_secrets=true -> 200" in viewer.trail, viewer.describe()
    assert "-> 403" in viewer.trail, viewer.describe()
    assert not [ex.path for ex in asgi_server.since(mark) if SECRET.encode() in ex.response_body]

    other = make_live_tenant(asgi_server.url)
    as_b = {"key": other.developer_key, "api_url": other.api_url}
    b_pool = run_prefect(["prefect", "work-pool", "create", "parity-pool", "--type", "process"], **as_b)
    assert b_pool.returncode == 0, b_pool.describe()
    from_b = run_prefect([cli_in, str(project), "deploy", "-n", "parity-deploy"], **as_b)
    # The client resolves the placeholders in no fixed order: the first block it asks for is missing.
    assert from_b.returncode != 0 and re.search(r"Block not found: '(db-pass|api-config)'", from_b.output), (
        from_b.describe()
    )
    assert re.search(r"(db-pass|api-config)\?include_secrets=true -> 404", from_b.trail), from_b.describe()
    for workspace in (live_tenant.workspace, other.workspace):
        assert not Deployment.objects.for_workspace(workspace.id).exists()


def test_deploy_with_placeholders_matches_prefects_server(prefect_server, tmp_path):
    good, bad = _deploy_steps(prefect_server.run, _project(tmp_path))
    assert good.returncode == 0, good.describe()
    answer = httpx.get(f"{prefect_server.api_url}/deployments/name/parity-job/parity-deploy")
    assert answer.status_code == 200 and _stored(answer.json()) == EXPECTED_DEPLOYMENT, answer.text
    assert bad.returncode != 0 and BAD_ENV in bad.output, bad.describe()


# --------------------------------------------------------------------------------------------------
# 3. Two workspaces' keys: B reaches none of A's blocks, schemas, secrets, inputs, searches, automations
# --------------------------------------------------------------------------------------------------

ISO_SECRET = "iso-secret-value-4821"


#: What ``parity_isolation_probe.py`` answers for A's own key (checked against Prefect's server too):
#: every probe can find A's objects, so the same probe with B's key proves something.
def _found_by_a(ids: dict) -> dict:
    documents, types, schemas = ids["block_documents"], ids["block_types"], ids["block_schemas"]
    return {
        "secret_load": "found",
        "block_document_by_id": "found",
        "custom_document_by_id": "found",
        "block_document_by_name": "found",
        "block_documents_list": sorted(documents),
        "block_documents_of_type": [documents[0]],
        "block_documents_count_by_id": 2,
        "block_documents_filter_by_id": sorted(documents),
        "custom_block_type_by_slug": "found",
        "custom_block_type_by_id": "found",
        "block_types_filter": sorted(types),
        "custom_schema_by_checksum": "found",
        "custom_schema_by_id": "found",
        "secret_schema_by_id": "found",
        "block_schemas_list": sorted(schemas),
        "block_schemas_filter_by_type": sorted(schemas),
        "flow_run_input": "found",
        "flow_run_input_filter": {"keys": ["approval"]},
        "automation_by_id": "found",
        "automation_find": "found",
        "automations_by_name": [ids["automation"]],
        "automations_list": [ids["automation"]],
        "automations_count": 1,
        "saved_search_by_id": "found",
        "saved_searches_filter": [ids["saved_search"]],
    }


#: The same probes from workspace B: nothing of A's, by id, name, filter or count.
MISSING_FOR_B = {
    "secret_load": "missing",
    "block_document_by_id": "missing",
    "custom_document_by_id": "missing",
    "block_document_by_name": "missing",
    "block_documents_list": [],
    "block_documents_of_type": [],
    "block_documents_count": 0,
    "block_documents_count_by_id": 0,
    "block_documents_filter_by_id": [],
    "custom_block_type_by_slug": "missing",
    "custom_block_type_by_id": "missing",
    "block_types_filter": [],
    "custom_schema_by_checksum": "missing",
    "custom_schema_by_id": "missing",
    "secret_schema_by_id": "missing",
    "block_schemas_list": [],
    "block_schemas_filter_by_type": [],
    "flow_run_input": "missing",
    # Prefect's server answers this filter 200 with a list for any flow run id, known or not.
    "flow_run_input_filter": {"keys": []},
    "automation_by_id": "missing",
    "automation_find": "missing",
    "automations_by_name": [],
    "automations_list": [],
    "automations_count": 0,
    "saved_search_by_id": "missing",
    "saved_searches_filter": [],
}


def _create_a(run) -> dict:
    created = run("parity_isolation_a.py", env={"PARITY_SECRET": ISO_SECRET})
    ids = created.result
    assert created.returncode == 0 and ids and "automation" in ids, created.describe()
    return ids


def _probe(run, ids: dict, **kwargs) -> dict:
    probed = run("parity_isolation_probe.py", env={"PARITY_IDS": json.dumps(ids)}, **kwargs)
    assert probed.returncode == 0 and probed.result is not None, probed.describe()
    return probed.result


def test_workspace_b_reaches_none_of_as_objects(asgi_server, live_tenant, run_prefect):
    ids = _create_a(run_prefect)
    found = _probe(run_prefect, ids)
    assert found.pop("block_documents_count") >= 2
    assert found == _found_by_a(ids)

    other = make_live_tenant(asgi_server.url)
    mark = asgi_server.mark()
    from_b = _probe(run_prefect, ids, key=other.developer_key, api_url=other.api_url)
    assert from_b == MISSING_FOR_B
    # B's key on A's workspace path is refused at the gate, for every probe.
    b_key_on_a = _probe(run_prefect, ids, key=other.developer_key)
    assert set(map(str, b_key_on_a.values())) <= {"missing", "http 403", "http 401"}, b_key_on_a

    # Writes from B by A's ids change nothing of A's.
    headers = {"Authorization": f"Bearer {other.developer_key}"}
    base = other.api_url
    run_id, document = ids["flow_run"], ids["block_documents"][0]
    attempts = [
        httpx.delete(f"{base}/automations/{ids['automation']}", headers=headers),
        httpx.patch(f"{base}/automations/{ids['automation']}", headers=headers, json={"enabled": False}),
        httpx.delete(f"{base}/saved_searches/{ids['saved_search']}", headers=headers),
        httpx.delete(f"{base}/block_documents/{document}", headers=headers),
        httpx.patch(f"{base}/block_documents/{document}", headers=headers, json={"data": {"value": "x"}}),
        httpx.delete(f"{base}/block_types/{ids['block_types'][1]}", headers=headers),
        httpx.delete(f"{base}/block_schemas/{ids['block_schemas'][1]}", headers=headers),
        httpx.post(f"{base}/flow_runs/{run_id}/input", headers=headers, json={"key": "k2", "value": "1"}),
        httpx.delete(f"{base}/flow_runs/{run_id}/input/approval", headers=headers),
    ]
    assert [a.status_code for a in attempts] == [404] * len(attempts), [(a.url, a.text) for a in attempts]
    # Not one answer to B carried A's secret.
    leaked = [ex.path for ex in asgi_server.since(mark) if ISO_SECRET.encode() in ex.response_body]
    assert leaked == []
    again = _probe(run_prefect, ids)
    assert again.pop("block_documents_count") >= 2 and again == _found_by_a(ids)


def test_the_isolation_probe_finds_as_objects_on_prefects_server(prefect_server):
    """The probe is the client's own calls: on Prefect's server (one workspace) they find it all."""
    created = prefect_server.run("parity_isolation_a.py", env={"PARITY_SECRET": ISO_SECRET})
    ids = created.result
    assert created.returncode == 0 and ids, created.describe()
    probed = prefect_server.run("parity_isolation_probe.py", env={"PARITY_IDS": json.dumps(ids)})
    assert probed.returncode == 0 and probed.result, probed.describe()
    found = probed.result
    assert found.pop("block_documents_count") >= 2 and found == _found_by_a(ids)
