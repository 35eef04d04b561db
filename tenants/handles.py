"""Handles: the URL-safe names of accounts and workspaces (Prefect Cloud's rules)."""

from __future__ import annotations

import re
import secrets

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.text import slugify

HANDLE_MAX_LENGTH = 63
HANDLE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


HANDLE_MESSAGE = (
    "A handle uses lowercase letters, digits and dashes, starts and ends with a letter or digit, "
    "and is at most 63 characters long."
)
# A stock validator, so migrations reference Django rather than this module.
handle_validator = RegexValidator(HANDLE_RE.pattern, HANDLE_MESSAGE, code="invalid_handle")


def validate_handle(value: str) -> None:
    if not HANDLE_RE.fullmatch(value or ""):
        raise ValidationError(HANDLE_MESSAGE, code="invalid_handle")


def handle_from_name(name: str) -> str:
    """A valid handle derived from a display name (``"Acme Data"`` → ``"acme-data"``)."""
    handle = slugify(name).replace("_", "-").strip("-")[:HANDLE_MAX_LENGTH].strip("-")
    handle = re.sub(r"-{2,}", "-", handle)
    return handle or f"h-{secrets.token_hex(4)}"
