"""A custom block for ``prefect block register -f``."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import SecretStr


class BlocksRegisteredThing(Block):
    """A block registered from a file by the CLI."""

    _block_type_name = "Blocks Registered Thing"
    url: str
    token: SecretStr
