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


WebsocketCommunicator = _import_websocket_communicator()
