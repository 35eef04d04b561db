"""Minting and checking key material. Nothing here touches the database."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

_ALPHABET = string.ascii_letters + string.digits
LOOKUP_LENGTH = 12
SECRET_LENGTH = 44  # 44 * log2(62) ≈ 262 bits
KEY_RE = re.compile(rf"^(pnu|pnb)_([A-Za-z0-9]{{{LOOKUP_LENGTH}}})([A-Za-z0-9]{{{SECRET_LENGTH}}})$")


@dataclass(frozen=True)
class ParsedKey:
    prefix: str
    lookup_id: str
    raw: str


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def mint(prefix: str) -> tuple[str, str, str]:
    """A new key: ``(plaintext, lookup_id, secret_hash)``."""
    lookup_id = _random(LOOKUP_LENGTH)
    plaintext = f"{prefix}_{lookup_id}{_random(SECRET_LENGTH)}"
    return plaintext, lookup_id, hash_key(plaintext)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def parse(candidate: str) -> ParsedKey | None:
    match = KEY_RE.fullmatch(candidate)
    if match is None:
        return None
    return ParsedKey(prefix=match.group(1), lookup_id=match.group(2), raw=candidate)


def matches(candidate: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_key(candidate), secret_hash)
