"""The key that signs audit export manifests: Ed25519, so that an auditor checks a manifest with the
public key alone (``audit_verify --manifest … --public-key …``), never with a server secret.

The private key is ``AUDIT_SIGNING_KEY`` (a base64 32-byte seed; ``manage.py audit_signing_key
--generate`` makes one) or, without it, derived from ``SECRET_KEY`` with HKDF-SHA256, so that every
process of one deployment signs with the same key. ``GET /api/audit/signing_key`` and ``manage.py
audit_signing_key`` publish the public key."""

from __future__ import annotations

import base64
import functools

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

ALGORITHM = "ed25519"
_INFO = b"controlplane audit export manifest signing key v1"


class SigningKeyError(ValueError):
    pass


@functools.cache
def _private_key(seed_setting: str, secret_key: str) -> Ed25519PrivateKey:
    if seed_setting:
        try:
            seed = base64.b64decode(seed_setting, validate=True)
        except ValueError:
            seed = b""
        if len(seed) != 32:
            raise SigningKeyError("AUDIT_SIGNING_KEY must be 32 bytes in base64.")
    else:
        seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
    return Ed25519PrivateKey.from_private_bytes(seed)


def private_key() -> Ed25519PrivateKey:
    return _private_key(getattr(settings, "AUDIT_SIGNING_KEY", "") or "", settings.SECRET_KEY)


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64() -> str:
    """This deployment's public key: base64 of the 32 raw bytes."""
    return base64.b64encode(_raw(private_key().public_key())).decode()


def sign(message: bytes) -> str:
    return base64.b64encode(private_key().sign(message)).decode()


def verify(message: bytes, signature_b64: str, public_key_b64_: str) -> bool:
    """Whether ``signature_b64`` is the signature of ``message`` under ``public_key_b64_``."""
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64_, validate=True))
        public.verify(base64.b64decode(signature_b64, validate=True), message)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def generate_seed() -> str:
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()
