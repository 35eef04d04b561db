"""Block document data at rest: the whole ``data`` object as one Fernet token (AES-128-CBC +
HMAC-SHA256), as Prefect's server encrypts the whole blob, so every secret field is encrypted.

The key is derived by HKDF-SHA256 from ``BLOCKS_SECRET_KEY`` (settings, from the environment) or,
unset, from ``SECRET_KEY``: a development default that still differs per installation. Rotation:
put the new material first in ``BLOCKS_SECRET_KEY`` and the old after a comma; tokens written with
any listed key decrypt, new tokens use the first. Nothing here logs data or keys.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from core.errors import AppError


class BlockDataUnreadable(AppError):
    """A stored document that the configured keys cannot decrypt (the key material changed)."""

    status_code = 409
    default_code = "block_data_unreadable"


@functools.lru_cache(maxsize=4)
def _fernet(materials: tuple[str, ...]) -> MultiFernet:
    keys = []
    for material in materials:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"block-documents-v1").derive(
            material.encode()
        )
        keys.append(Fernet(base64.urlsafe_b64encode(key)))
    return MultiFernet(keys)


def _materials() -> tuple[str, ...]:
    configured = [
        m.strip() for m in (getattr(settings, "BLOCKS_SECRET_KEY", "") or "").split(",") if m.strip()
    ]
    return tuple(configured) or (settings.SECRET_KEY,)


def encrypt_data(data: dict[str, Any]) -> str:
    return _fernet(_materials()).encrypt(json.dumps(data).encode()).decode()


def decrypt_data(token: str) -> dict[str, Any]:
    try:
        return json.loads(_fernet(_materials()).decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise BlockDataUnreadable(
            "Block document data cannot be decrypted with the configured BLOCKS_SECRET_KEY."
        ) from None
