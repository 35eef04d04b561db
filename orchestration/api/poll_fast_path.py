"""The worker's poll answered from memory, before Django, when everything it needs is remembered.

Every ``prefect worker`` polls ``work_pools/{name}/get_scheduled_flow_runs`` every few seconds with
the same key, and many workers poll one pool. After the first poll of a process has gone through
the full path (Django, the API key, the workspace access, the IP allowlist, the pool, the runs),
all of that is remembered (``accounts.authcache``, the pool memo and the poll answers in
``orchestration.selectors.work_pools``) and a poll can be answered on the event loop: the access
gate's memory-only mode (``access.gate.authorize_workspace_from_memory``, the same steps as the full
gate) and the pool and answer memos. Whatever would need I/O -- a key, access, allowlist policy, pool or answer not
remembered or expired, a ``last_used``/``last_seen``/``last_polled`` stamp due, a body that does not
parse, an account whose billing is not active, any refusal -- goes to the full path unchanged, which does the work, the writes and the
audit, and answers the errors in their usual shapes. So this path only ever says yes, and says it
exactly when the full path would say the same yes without writing anything.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections
from django.utils import timezone
from pydantic import ValidationError

from access import limits
from access.gate import Caller, Surface, authenticate_key_from_memory, authorize_workspace_from_memory
from accounts import authcache
from audit.context import new_request_id, scope_client_ip
from core.credentials import asgi_header, bearer_token
from core.errors import NotFound
from core.parsers import suspect
from orchestration.api.work_pools.views import (
    DEFAULT_LIMIT,
    GetScheduledFlowRuns,
    WorkPoolGetScheduledFlowRunsApi,
)
from orchestration.api.work_pools.wire import poll_answer_to_wire
from orchestration.selectors.work_pools import (
    polled_queues,
    scheduled_flow_runs_for_poll,
    scheduled_flow_runs_remembered,
    work_pool_with_queues_for_poll,
    work_pool_with_queues_remembered,
)
from orchestration.services.polls import work_queues_record_poll
from orchestration.services.work_pools import work_queues_poll_record_due
from tenants.rls import database_workspace
from tenants.scoping import workspace_scope

logger = logging.getLogger(__name__)

POLL_PATH = re.compile(
    r"^/api/accounts/([^/]+)/workspaces/([^/]+)/work_pools/([^/]+)/get_scheduled_flow_runs$"
)
MAX_BODY = 64 * 1024
REQUIRED_SCOPE = WorkPoolGetScheduledFlowRunsApi.required_scopes["POST"]

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


# Memos this path relies on are refreshed in the background this many seconds before they
# expire, so a busy process keeps answering from memory instead of sending a burst of polls
# through the full path at each expiry. The refresh runs the same code the full path runs.
REFRESH_AHEAD_SECONDS = 0.3

Refresh = tuple[tuple, Callable[[], None]]


def answer_from_memory(scope: dict, match: re.Match, body: bytes) -> tuple[bytes | None, list[Refresh]]:
    """The poll's JSON answer when the full path would give the same one without waiting on any
    I/O, else None; and the memos to refresh ahead."""
    refreshes: list[Refresh] = []
    if authcache.shared_generation_due(within=REFRESH_AHEAD_SECONDS):
        refreshes.append((("generation",), authcache.refresh_shared_generation))
    account_ref, workspace_ref, pool_name = match.groups()
    ip = scope_client_ip(scope)
    # The access gate, from memory: UNKNOWN (anything it would have to read, write or refuse)
    # hands the poll to the full path.
    key = authenticate_key_from_memory(bearer_token(asgi_header(scope, "authorization")), ip=ip)
    if key is None:
        return None, refreshes
    caller = Caller(principal=key.owner, ip=ip, surface=Surface.API, api_key=key)
    decision = authorize_workspace_from_memory(caller, account_ref, workspace_ref, REQUIRED_SCOPE)
    if not decision.allowed:
        return None, refreshes
    if not limits.charge_from_memory(decision.account, limits.Bucket.API):
        # The account's rate limit needs its shared counter (or is reached): the full path decides.
        return None, refreshes
    workspace = decision.workspace
    if workspace.account.billing_status != "active":
        # Billing may refuse the poll or warn on its answer (billing.selectors): the full path says.
        return None, refreshes
    if suspect(body):  # what the full path's parser may refuse: it decides
        return None, refreshes
    try:
        data = GetScheduledFlowRuns.model_validate_json(body or b"{}")
    except ValidationError:
        return None, refreshes
    workspace_id = workspace.pk
    with workspace_scope(workspace_id):
        remembered = work_pool_with_queues_remembered(name=pool_name, ahead=REFRESH_AHEAD_SECONDS)
        if remembered is None:
            return None, refreshes
        pool, queues, pool_soon = remembered
        if pool_soon:
            refreshes.append(
                (("pool", workspace_id, pool_name), _in_scope(workspace_id, _refresh_pool, name=pool_name))
            )
        try:
            polled = polled_queues(pool, queues, data.work_queue_names)
        except NotFound:  # an unknown queue: the full path answers the 404
            return None, refreshes
        now = timezone.now()
        if work_queues_poll_record_due(queues=polled, now=now):
            # Stamped in the background, as the full path would stamp it after answering.
            refreshes.append(
                (
                    ("record", workspace_id, pool.id, *(q.id for q in polled)),
                    _in_scope(workspace_id, work_queues_record_poll, queues=polled, now=now),
                )
            )
        query = {
            "pool": pool,
            "all_queues": queues,
            "polled_queues": polled,
            "scheduled_before": data.scheduled_before,
            "scheduled_after": data.scheduled_after,
            "limit": DEFAULT_LIMIT if data.limit is None else data.limit,
        }
        answer = scheduled_flow_runs_remembered(**query, ahead=REFRESH_AHEAD_SECONDS)
        if answer is None:
            return None, refreshes
        runs, answer_soon = answer
        if answer_soon:
            refreshes.append(
                (
                    ("answer", workspace_id, pool.id, *(q.id for q in polled), data.scheduled_after),
                    _in_scope(workspace_id, scheduled_flow_runs_for_poll, **query, refresh=True),
                )
            )
        wire = poll_answer_to_wire(runs, pool=pool, now=now)
    return json.dumps(wire, ensure_ascii=False, separators=(",", ":")).encode(), refreshes


def _refresh_pool(*, name: str) -> None:
    work_pool_with_queues_for_poll(name=name, refresh=True)


def _in_scope(workspace_id, fn, **kwargs) -> Callable[[], None]:
    def run() -> None:
        with workspace_scope(workspace_id), database_workspace(workspace_id):
            fn(**kwargs)

    return run


_refresher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="poll-refresh")
_refreshing: set[tuple] = set()


def _schedule(refreshes: list[Refresh]) -> None:
    """Run each refresh once at a time per key, on a small pool of its own (database connections
    are returned after each)."""
    for key, fn in refreshes:
        if key in _refreshing:
            continue
        _refreshing.add(key)
        _refresher.submit(_run_refresh, key, fn)


def _run_refresh(key: tuple, fn: Callable[[], None]) -> None:
    try:
        close_old_connections()
        fn()
    except Exception:
        logger.warning("refreshing %s for polls failed", key[0], exc_info=True)
    finally:
        close_old_connections()
        _refreshing.discard(key)


class PollFastPath:
    """ASGI middleware: answer a poll from memory when it can (see the module), else pass it on
    with its body intact."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        match = POLL_PATH.match(scope["path"])
        if match is None:
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        size = 0
        message: dict[str, Any] = {"more_body": True}
        while message.get("more_body"):
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                break
        body = b"".join(chunks)
        answer = None
        if message.get("type") == "http.request" and not message.get("more_body"):
            try:
                answer, refreshes = answer_from_memory(scope, match, body)
            except Exception:  # anything unexpected: the full path decides, and reports it
                answer, refreshes = None, []
            if refreshes:
                _schedule(refreshes)
        if answer is None:
            return await self.app(scope, _replay(body, message, receive), send)
        request_id = new_request_id(asgi_header(scope, "x-request-id"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _replay(body: bytes, last: dict, receive):
    """A ``receive`` that hands over the body already read, then the rest as it comes."""
    first = {"type": "http.request", "body": body, "more_body": bool(last.get("more_body"))}
    pending = [first]
    if last.get("type") not in (None, "http.request"):
        pending.append(last)  # the client went away while the body was read: pass that on

    async def replay():
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
