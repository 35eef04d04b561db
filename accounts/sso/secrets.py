"""Secrets at rest (the OIDC client secret): Fernet (AES-128-CBC + HMAC-SHA256) with a key derived
by HKDF from ``SSO_SECRET_KEY`` when set, else from ``SECRET_KEY``. A value that cannot be decrypted
(the key changed) reads as missing, so the admin is asked to enter it again instead of a 500."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _fernet() -> Fernet:
    material = (getattr(settings, "SSO_SECRET_KEY", "") or settings.SECRET_KEY).encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"sso-secrets-v1").derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def decrypt(token: str) -> str | None:
    if not token:
        return None
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None
