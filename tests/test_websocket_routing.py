from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from config.asgi import application
from tests.websockets import WebsocketCommunicator


@pytest.mark.parametrize(
    "path", ["/api/nowhere", "/api/accounts/a/workspaces/b/work_pools/p/workers/connect", "/"]
)
def test_unknown_websocket_paths_are_refused(path):
    async def attempt():
        communicator = WebsocketCommunicator(application, path)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(attempt)() is False
