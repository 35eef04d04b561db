"""``core.asgi.BufferedBody``: the whole body before the application, within a deadline and a cap."""

from __future__ import annotations

import asyncio
import json

from core.asgi import BufferedBody


def _call(messages, *, headers=(), timeout=0.2, max_bytes=100, stall=False):
    seen: dict = {}
    sent: list[dict] = []

    async def app(scope, receive, send):
        seen["message"] = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def run():
        queue = list(messages)

        async def receive():
            if queue:
                return queue.pop(0)
            if stall:
                await asyncio.sleep(10)
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/x", "headers": list(headers)}
        await BufferedBody(app, timeout=timeout, max_bytes=max_bytes)(scope, receive, send)

    asyncio.run(run())
    status = sent[0]["status"] if sent else None
    body = json.loads(sent[1]["body"]) if status and status != 200 else None
    return seen.get("message"), status, body


def test_the_application_gets_the_whole_body_in_one_message():
    parts = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd"},
    ]
    message, status, _ = _call(parts)
    assert status == 200 and message == {"type": "http.request", "body": b"abcd", "more_body": False}


def test_a_stalled_body_is_answered_408_and_never_reaches_the_application():
    message, status, body = _call([{"type": "http.request", "body": b"a", "more_body": True}], stall=True)
    assert message is None and status == 408 and "did not arrive" in body["detail"]


def test_an_announced_or_sent_body_over_the_cap_is_413():
    assert _call([], headers=[(b"content-length", b"1000")])[1] == 413
    parts = [
        {"type": "http.request", "body": b"x" * 80, "more_body": True},
        {"type": "http.request", "body": b"x" * 80},
    ]
    message, status, _ = _call(parts)
    assert message is None and status == 413


def test_a_client_that_goes_away_gets_no_answer_and_the_application_is_not_called():
    message, status, _ = _call([{"type": "http.request", "body": b"a", "more_body": True}])
    assert message is None and status is None
