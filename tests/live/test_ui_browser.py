"""Prefect's own UI over a workspace the real client filled, in a real browser (Playwright driving
Debian's chromium): a person signs in with their password, opens the workspace from the landing
page and visits every page of the UI's navigation and the detail pages under them. Every API
request the pages make must answer 2xx and the browser console must show no error; each page's
screenshot is saved under the test's tmp dir (``screenshots/``) with the network log
(``network.jsonl``). A deployment run started from the UI (Run, then Quick run, on the deployment's
page of the V2 UI and again of the V1 UI) is executed by ``flow.serve`` and reaches Completed. Then: a Viewer's Run is refused (403) and creates nothing; a member of another workspace
gets none of this workspace's data; a write without the CSRF token is refused."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from accounts.permissions import WorkspaceRole
from orchestration.models import Artifact, BlockDocument, Event, TaskRun
from tests.conftest import make_tenant
from tests.factories import GrantFactory, MembershipFactory, UserFactory
from tests.live.browser import CHROMIUM, CHROMIUM_ARGS
from tests.live.conftest import FLOWS_DIR, wait_for
from tests.live.test_deployments_live import spawn, wait_deployment  # noqa: F401 - spawn is a fixture

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's
# Pages during which the test provokes a refusal on purpose (their 403s are the point).
EXPECTED_REFUSALS = ("csrf probe", "viewer quick run")

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@dataclass
class Recorder:
    """What the browser did on one page: the API requests and their answers, console errors."""

    api_prefix: str
    requests: list[dict] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    stray_links: list[str] = field(default_factory=list)
    links_in_base: int = 0
    all_links: list[str] = field(default_factory=list)
    page_name: str = ""

    def attach(self, page) -> None:
        page.on("response", self._response)
        page.on(
            "console",
            lambda msg: (
                msg.type == "error"
                and self.console_errors.append(f"{self.page_name}: {msg.text} ({msg.location.get('url')})")
            ),
        )
        page.on("pageerror", lambda exc: self.console_errors.append(f"{self.page_name}: pageerror {exc}"))

    def _response(self, response) -> None:
        url = response.url
        if "/api/" not in url:
            return
        request = response.request
        entry = {
            "page": self.page_name,
            "method": request.method,
            "url": url,
            "status": response.status,
            "body": request.post_data if request.method != "GET" else None,
        }
        if not 200 <= response.status < 300:
            try:
                entry["answer"] = response.text()[:500]
            except Exception:  # noqa: BLE001 - the body may be gone already
                entry["answer"] = "?"
        self.requests.append(entry)

    def failures(self) -> list[dict]:
        return [r for r in self.requests if not 200 <= r["status"] < 300]


# Outside the machine, stood in for at the HTTP boundary: the V2 UI's analytics library fetches its
# remote configuration at load whatever the server says (answered with an empty one; events would go
# to its upload hosts, which no page may ask, since admin/settings says analytics are off), and block
# types' logos live where Prefect's block catalog names them (answered with a 1x1 PNG).
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000000500010d0a2db40000000049454e44ae426082"
)
STAND_INS = {
    "https://sr-client-cfg.amplitude.com/": ("application/json", b"{}"),
    "https://raw.githubusercontent.com/PrefectHQ/prefect/": ("image/png", PIXEL),
    "https://images.ctfassets.net/": ("image/png", PIXEL),
}


def confine(context, server_url: str, outside: list[str]) -> None:
    """Requests to anywhere but this server are refused and listed (but the stand-ins above): the UI
    must need nothing else from outside the machine."""

    def handle(route) -> None:
        url = route.request.url
        if url.startswith(server_url):
            route.continue_()
            return
        for prefix, (content_type, body) in STAND_INS.items():
            if url.startswith(prefix):
                route.fulfill(status=200, content_type=content_type, body=body)
                return
        outside.append(url)
        route.abort()

    context.route("**/*", handle)


def signed_in_page(browser, server_url: str, email: str, outside: list[str], api_prefix: str):
    """A fresh browser context confined to this server, signed in as ``email``: ``(context, page,
    recorder)``."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    confine(context, server_url, outside)
    page = context.new_page()
    recorder = Recorder(api_prefix=api_prefix)
    recorder.attach(page)
    sign_in(page, server_url, email)
    return context, page, recorder


def sign_in(page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", email)
    page.click("button[type=submit]")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#signed-in")


def visit(page, recorder: Recorder, url: str, name: str, shots: Path) -> None:
    recorder.page_name = name
    # Every page asks the workspace's API for something: wait for its first answer at least.
    with page.expect_response(lambda r: "/api/" in r.url, timeout=15000):
        page.goto(url)
    # A page that polls is never idle; what it asked meanwhile is recorded either way.
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_load_state("networkidle", timeout=2000)
    page.screenshot(path=str(shots / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.png"))
    # The UI's own links stay inside the workspace's base (links as the browser resolves them).
    origin, base_path = re.match(r"(https?://[^/]+)(/account/[^/]+/workspace/[^/]+/)", url).groups()
    # getAttribute, not a.href: an SVG <a> (the run graph draws some) has an SVGAnimatedString there.
    hrefs = page.eval_on_selector_all(
        "a[href]", "links => links.map(a => new URL(a.getAttribute('href'), document.baseURI).href)"
    )
    recorder.all_links += hrefs
    inside = [h for h in hrefs if h.startswith(origin + "/")]
    recorder.stray_links += [f"{name}: {h}" for h in inside if not h.startswith(origin + base_path)]
    recorder.links_in_base += sum(1 for h in inside if h.startswith(origin + base_path))


def prefect_refuses_too(entry: dict) -> bool:
    """A request Prefect's own server refuses the same way: its body fails Prefect's own filter
    model. (The V2 artifact page asks for the task run of an artifact made outside any task run with
    ``id.any_ == [""]``, which Prefect's server answers 422 as this one does.)"""
    from prefect.server.schemas import filters

    if entry["status"] != 422 or not entry["url"].endswith("/task_runs/filter") or not entry["body"]:
        return False
    body = json.loads(entry["body"])
    try:
        filters.TaskRunFilter.model_validate(body.get("task_runs") or {})
    except ValueError:
        return True
    return False


def browser_fetch(page, method: str, url: str, body: dict | None = None, headers: dict | None = None) -> dict:
    """A request from the page's own JavaScript, with its cookies: ``{"status", "text"}``."""
    return page.evaluate(
        """async ([method, url, body, headers]) => {
            const answer = await fetch(url, {method, credentials: "same-origin",
                headers: {"Content-Type": "application/json", ...headers},
                body: body === null ? undefined : JSON.stringify(body)});
            return {status: answer.status, text: await answer.text()};
        }""",
        [method, url, body, headers or {}],
    )


def quick_run(page) -> None:
    """The deployment page's Run button, then Quick run (Prefect's V2 UI)."""
    page.get_by_role("button", name="Run", exact=False).first.click()
    page.get_by_role("menuitem", name="Quick run").click()


def quick_run_v1(page) -> None:
    """The deployment page's Run button, then Quick run (Prefect's V1 UI: ``RunMenu`` of
    prefect-ui-library, a pop-over with an overflow menu)."""
    page.locator(".run-menu__run-button").first.click()
    page.locator(".run-menu__overflow-menu").get_by_text("Quick run").click()


def test_prefects_ui_over_a_real_workspace(asgi_server, live_tenant, run_prefect, spawn, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    made = run_prefect("ui_workspace.py")
    assert made.returncode == 0 and made.result and made.result["type"] == "COMPLETED", made.describe()
    served = spawn(
        [str(FLOWS_DIR / "ui_serve.py"), "--name", "ui-dep"], env={"PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    )
    # A process worker in the pool, so the pool's pages show one.
    worker = spawn(["prefect", "worker", "start", "--pool", "ui-pool", "--type", "process"], name="worker")
    workspace = live_tenant.workspace
    deployment = wait_deployment(workspace, "ui-dep", served)
    assert deployment is not None, served.describe()
    ws = workspace.id
    flow_run_id = made.result["flow_run_id"]
    # What the client prints after the run: the Cloud-style link, which must open the run.
    view_at = re.search(r"View at (\S+/runs/flow-run/\S+)", made.output)
    assert view_at, made.output[-3000:]
    view_at = view_at.group(1)
    assert view_at.startswith(f"{asgi_server.url}/account/{live_tenant.account.id}/workspace/{ws}/")
    task_run = TaskRun.objects.for_workspace(ws).filter(flow_run_id=flow_run_id).first()
    artifact = Artifact.objects.for_workspace(ws).filter(key="ui-report").first()
    block = BlockDocument.objects.for_workspace(ws).filter(name="ui-secret").first()
    event = wait_for(
        lambda: Event.objects.for_workspace(ws).filter(event="ui.test.happened").first(),
        lambda e: e is not None,
    )
    base = f"{asgi_server.url}/account/{live_tenant.account.id}/workspace/{ws}"
    api = f"{asgi_server.url}{live_tenant.prefix}"
    person = live_tenant.tenant.member
    viewer = UserFactory()
    MembershipFactory(account=live_tenant.account, user=viewer)
    GrantFactory(workspace=workspace, user=viewer, role=WorkspaceRole.VIEWER)
    elsewhere = make_tenant()
    shots = tmp_path / "screenshots"
    shots.mkdir()

    v2_pages = {
        "dashboard": "/dashboard",
        "runs": "/runs",
        "flow run": f"/runs/flow-run/{flow_run_id}",
        "subflow run": f"/runs/flow-run/{made.result['child_flow_run_id']}",
        "task run": f"/runs/task-run/{task_run.id}",
        "flows": "/flows",
        "flow": f"/flows/flow/{deployment.flow_id}",
        "deployments": "/deployments",
        "deployment": f"/deployments/deployment/{deployment.id}",
        "work pools": "/work-pools",
        "work pool": "/work-pools/work-pool/ui-pool",
        "work queue": "/work-pools/work-pool/ui-pool/queue/default",
        "blocks": "/blocks",
        "block": f"/blocks/block/{block.id}",
        "block catalog": "/blocks/catalog",
        "variables": "/variables",
        "automations": "/automations",
        "automation": f"/automations/automation/{made.result['automation_id']}",
        "events": "/events",
        "event": f"/events/event/{event.occurred.date().isoformat()}/{event.id}",
        "artifacts": "/artifacts",
        "artifact key": "/artifacts/key/ui-report",
        "artifact": f"/artifacts/artifact/{artifact.id}",
        "concurrency limits": "/concurrency-limits",
        "settings": "/settings",
    }
    v1_pages = {
        "v1 dashboard": "/dashboard",
        "v1 runs": "/runs",
        "v1 flows": "/flows",
        "v1 deployments": "/deployments",
        "v1 deployment": f"/deployments/deployment/{deployment.id}",
        "v1 work pools": "/work-pools",
        "v1 blocks": "/blocks",
        "v1 variables": "/variables",
        "v1 automations": "/automations",
        "v1 events": "/events",
        "v1 artifacts": "/artifacts",
        "v1 concurrency": "/concurrency-limits",
        "v1 settings": "/settings",
    }

    keyed = httpx.Client(base_url=api + "/", headers={"Authorization": f"Bearer {live_tenant.developer_key}"})

    workers = wait_for(
        lambda: keyed.post("work_pools/ui-pool/workers/filter", json={}).json(),
        lambda found: len(found) > 0,
        timeout=30,
    )
    assert workers, worker.describe()

    def runs_of_deployment() -> int:
        body = {"deployments": {"id": {"any_": [str(deployment.id)]}}}
        return keyed.post("flow_runs/count", json=body).json()

    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # --- A Developer walks the UI ----------------------------------------------------------
            context, page, recorder = signed_in_page(
                browser, asgi_server.url, person.email, outside, live_tenant.prefix
            )
            page.click("a.workspace-ui")  # the landing page's link to the workspace's UI
            page.wait_for_url(re.compile(r".*/v2/.*"))
            for name, path in v2_pages.items():
                visit(page, recorder, f"{base}/v2{path}", name, shots)
            visit(page, recorder, view_at, "v1 flow run (the client's View at link)", shots)
            assert page.url == view_at and page.get_by_text("ui-parent").first.is_visible()
            for name, path in v1_pages.items():
                visit(page, recorder, f"{base}{path}", name, shots)

            # Run the deployment from the UI; flow.serve executes it to Completed.
            visit(
                page, recorder, f"{base}/v2/deployments/deployment/{deployment.id}", "deployment (run)", shots
            )
            recorder.page_name = "quick run"
            with page.expect_response(lambda r: r.url.endswith("/create_flow_run")) as created:
                quick_run(page)
            assert created.value.status == 201, created.value.text()
            run_id = created.value.json()["id"]
            # (Through the API with a key: the ORM may not run beside Playwright's event loop.)
            done = wait_for(
                lambda: keyed.get(f"flow_runs/{run_id}").json(),
                lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED"),
                timeout=60,
            )
            assert done["state_type"] == "COMPLETED", served.describe()
            visit(page, recorder, f"{base}/v2/runs/flow-run/{run_id}", "started from the UI", shots)
            page.get_by_text("Completed").first.wait_for(timeout=10000)

            # The same from the V1 UI's deployment page.
            visit(
                page, recorder, f"{base}/deployments/deployment/{deployment.id}", "v1 deployment (run)", shots
            )
            recorder.page_name = "v1 quick run"
            with page.expect_response(lambda r: r.url.endswith("/create_flow_run")) as created:
                quick_run_v1(page)
            assert created.value.status == 201, created.value.text()
            v1_run_id = created.value.json()["id"]
            assert v1_run_id != run_id
            done = wait_for(
                lambda: keyed.get(f"flow_runs/{v1_run_id}").json(),
                lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED"),
                timeout=60,
            )
            assert done["state_type"] == "COMPLETED", served.describe()
            visit(page, recorder, f"{base}/runs/flow-run/{v1_run_id}", "v1 started from the UI", shots)
            page.get_by_text("Completed").first.wait_for(timeout=10000)

            # Without Prefect's CSRF token, a write from the session is refused and stores nothing.
            recorder.page_name = EXPECTED_REFUSALS[0]
            refused = browser_fetch(page, "POST", f"{api}/variables/", {"name": "no_token", "value": 1})
            assert refused["status"] == 403, refused
            bogus = {"Prefect-Csrf-Token": "9999999999.bogus", "Prefect-Csrf-Client": "me"}
            refused = browser_fetch(
                page, "POST", f"{api}/variables/", {"name": "no_token", "value": 1}, bogus
            )
            assert refused["status"] == 403, refused
            assert keyed.get("variables/name/no_token").status_code == 404
            context.close()

            # --- A Viewer: Run answers 403 and creates nothing ---------------------------------------
            context, page, viewer_recorder = signed_in_page(
                browser, asgi_server.url, viewer.email, outside, live_tenant.prefix
            )
            before = runs_of_deployment()
            visit(
                page,
                viewer_recorder,
                f"{base}/v2/deployments/deployment/{deployment.id}",
                "viewer deployment",
                shots,
            )
            viewer_recorder.page_name = EXPECTED_REFUSALS[1]
            with page.expect_response(lambda r: r.url.endswith("/create_flow_run")) as attempted:
                quick_run(page)
            assert attempted.value.status == 403, attempted.value.text()
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / "viewer-run-refused.png"))
            assert runs_of_deployment() == before
            context.close()

            # --- A member of another workspace only: none of this workspace's data ------------------
            context, page, _ = signed_in_page(
                browser, asgi_server.url, elsewhere.member.email, outside, elsewhere.prefix
            )
            bodies: list[tuple[str, str]] = []
            page.on("response", lambda r: "/api/" in r.url and bodies.append((r.url, _text(r))))
            other_base = (
                f"{asgi_server.url}/account/{elsewhere.account.id}/workspace/{elsewhere.workspace.id}"
            )
            for path in ("/v2/dashboard", "/v2/runs", "/v2/deployments", "/v2/events", "/runs"):
                page.goto(other_base + path)
                page.wait_for_timeout(1500)
            for path in ("/v2/dashboard", f"/runs/flow-run/{flow_run_id}", "/ui-settings"):
                answer = page.goto(base + path)
                assert answer.status == 404, (path, answer.status)
            probe = browser_fetch(page, "GET", f"{api}/flow_runs/{flow_run_id}")
            assert probe["status"] == 404, probe
            page.screenshot(path=str(shots / "other-workspace-member.png"))
            context.close()
        finally:
            browser.close()

    (tmp_path / "network.jsonl").write_text("\n".join(json.dumps(r) for r in recorder.requests))
    secrets = [str(ws), flow_run_id, str(deployment.id), "ui-parent", "ui-dep", "ui_var", "ui-secret"]
    leaked = [(url, s) for url, text in bodies for s in secrets if s in text]
    assert leaked == []
    assert bodies, "the other member's UI made no API request"
    (tmp_path / "console-errors.json").write_text(
        json.dumps(recorder.console_errors + viewer_recorder.console_errors)
    )
    assert outside == []
    # Every request the pages made answered 2xx, but the refusals the test provoked (403s).
    failures = [
        r
        for r in recorder.failures() + viewer_recorder.failures()
        if not prefect_refuses_too(r) and not (r["page"] in EXPECTED_REFUSALS and r["status"] == 403)
    ]
    assert failures == [], json.dumps(failures, indent=1)
    errors = [
        e
        for e in recorder.console_errors + viewer_recorder.console_errors
        if not e.startswith(EXPECTED_REFUSALS) and not _prefect_refuses_too_logged(e)
    ]
    assert errors == [], errors
    (tmp_path / "links.json").write_text(json.dumps(sorted(set(recorder.all_links))))
    assert recorder.stray_links == [] and recorder.links_in_base > 100


def _prefect_refuses_too_logged(error: str) -> bool:
    """The browser's console line for the 422 ``prefect_refuses_too`` accepts (the request is
    checked there; the console line names only its address)."""
    return "status of 422" in error and error.endswith("/task_runs/filter)")


def _text(response) -> str:
    try:
        return response.text()
    except Exception:  # noqa: BLE001 - a redirect or a body already gone
        return ""
