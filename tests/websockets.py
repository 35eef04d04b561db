"""The channels websocket test client, without the daphne dependency ``channels.testing`` pulls in."""

from __future__ import annotations

import sys
import types
from pathlib import Path


def _import_websocket_communicator():
    """``channels.testing`` imports daphne (for its live-server test case), which this project does
    not install; load the communicators without it."""
    try:
        from channels.testing import WebsocketCommunicator

        return WebsocketCommunicator
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("daphne"):
            raise
    import channels

    sys.modules.pop("channels.testing", None)
    package = types.ModuleType("channels.testing")
    package.__path__ = [str(Path(channels.__file__).parent / "testing")]
    sys.modules["channels.testing"] = package
    from channels.testing.application import ApplicationCommunicator
    from channels.testing.http import HttpCommunicator
    from channels.testing.websocket import WebsocketCommunicator

    package.ApplicationCommunicator = ApplicationCommunicator
    package.HttpCommunicator = HttpCommunicator
    package.WebsocketCommunicator = WebsocketCommunicator
    return WebsocketCommunicator


_WebsocketCommunicator = _import_websocket_communicator()

#: channels waits 1 s by default for a connect, a disconnect or a frame: enough on an idle machine,
#: not while the whole suite runs on every core (a disconnect flushes the socket's events to the
#: database). Nothing here waits for a timeout on purpose (``receive_nothing`` keeps its own).
PATIENCE_SECONDS = 10


class WebsocketCommunicator(_WebsocketCommunicator):
    async def connect(self, timeout=PATIENCE_SECONDS):
        return await super().connect(timeout=timeout)

    async def disconnect(self, code=1000, timeout=PATIENCE_SECONDS):
        return await super().disconnect(code=code, timeout=timeout)

    async def receive_output(self, timeout=PATIENCE_SECONDS):
        return await super().receive_output(timeout=timeout)

    async def receive_from(self, timeout=PATIENCE_SECONDS):
        return await super().receive_from(timeout=timeout)

    async def receive_json_from(self, timeout=PATIENCE_SECONDS):
        return await super().receive_json_from(timeout=timeout)
