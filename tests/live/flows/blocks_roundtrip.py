"""Blocks from inside a flow: a Secret (a string and a JSON value), and a custom Block subclass
defined here (its type and schema are registered on the fly), each saved and loaded back."""

from __future__ import annotations

import os

from _common import SEEN, main, note_run
from prefect import flow
from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from pydantic import SecretStr


class BlocksLiveCreds(Block):
    _block_type_name = "Blocks Live Creds"
    user: str
    password: SecretStr
    options: dict = {}


class BlocksLiveService(Block):
    """A block that nests a saved block: saved as a reference to it."""

    _block_type_name = "Blocks Live Service"
    endpoint: str
    creds: BlocksLiveCreds


@flow(name="live-blocks")
def roundtrip() -> None:
    note_run()
    Secret(value=os.environ["BLOCK_SECRET"]).save("db-pass")
    SEEN["secret"] = Secret.load("db-pass").get()
    Secret(value={"host": "db", "port": 5432, "tags": ["a"]}).save("db-json")
    SEEN["json"] = Secret.load("db-json").get()
    BlocksLiveCreds(user="svc", password=os.environ["BLOCK_SECRET"], options={"ssl": True}).save("svc")
    loaded = BlocksLiveCreds.load("svc")
    SEEN["custom"] = {
        "user": loaded.user,
        "password": loaded.password.get_secret_value(),
        "options": loaded.options,
    }
    BlocksLiveService(endpoint="https://svc.example", creds=loaded).save("svc-with-creds")
    service = BlocksLiveService.load("svc-with-creds")
    SEEN["nested"] = {"endpoint": service.endpoint, "password": service.creds.password.get_secret_value()}


if __name__ == "__main__":
    main(roundtrip)
