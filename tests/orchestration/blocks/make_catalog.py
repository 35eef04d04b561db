"""Builds ``orchestration/schemas/block_catalog.json`` from the installed ``prefect``: the block types
and schemas Prefect's server registers at startup (``prefect.server.models.block_registration``:
the protected system blocks, the client's block registry, the collections' blocks).

The server does not import ``prefect`` at run time, so the catalogue is data. Rebuild it when the
``prefect`` pin moves: ``python -m tests.orchestration.blocks.make_catalog``;
``test_catalog.py`` fails while the file and the installed package disagree.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

CATALOG_PATH = Path(__file__).resolve().parents[3] / "orchestration" / "schemas" / "block_catalog.json"


def build() -> list[dict]:
    import prefect.server.api.server  # noqa: F401 - the server's imports fill the block registry
    from prefect.blocks.core import Block
    from prefect.blocks.system import Secret
    from prefect.blocks.webhook import Webhook
    from prefect.filesystems import LocalFileSystem
    from prefect.server.models.block_registration import COLLECTIONS_BLOCKS_DATA_PATH
    from prefect.utilities.dispatch import get_registry_for_type

    def escaped(value):
        return html.escape(value, quote=False) if value is not None else None

    entries: dict[str, dict] = {}

    def add(block_type: dict, block_schema: dict, protected: bool) -> None:
        slug = block_type["slug"]
        if slug in entries:
            return
        entries[slug] = {
            "block_type": {
                "name": block_type["name"],
                "slug": slug,
                "logo_url": block_type.get("logo_url"),
                "documentation_url": block_type.get("documentation_url"),
                "description": escaped(block_type.get("description")),
                "code_example": escaped(block_type.get("code_example")),
                "is_protected": protected,
            },
            "block_schema": {
                "fields": block_schema["fields"],
                "capabilities": sorted(block_schema.get("capabilities") or []),
                "version": block_schema["version"],
            },
        }

    def from_class(cls, protected: bool) -> None:
        block_type = json.loads(cls._to_block_type().model_dump_json())
        block_schema = json.loads(cls._to_block_schema(block_type_id=None).model_dump_json())
        add(block_type, block_schema, protected)

    for cls in (Webhook, Secret, LocalFileSystem):
        from_class(cls, True)
    registry = get_registry_for_type(Block) or {}
    for slug in sorted(registry):
        from_class(registry[slug], False)
    collections = json.loads(Path(COLLECTIONS_BLOCKS_DATA_PATH).read_text())
    for collection in collections["collections"].values():
        for block_type in collection["block_types"].values():
            add(block_type, block_type["block_schema"], False)
    return list(entries.values())


def render(entries: list[dict]) -> str:
    return json.dumps(entries, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    CATALOG_PATH.write_text(render(build()))
    print(f"wrote {CATALOG_PATH}")
