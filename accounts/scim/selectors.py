"""Reads of an account's SCIM configuration: its tokens and its activity journal."""

from __future__ import annotations

from accounts.models import ScimActivity, ScimToken


def scim_token_list(*, account):
    return ScimToken.objects.filter(account=account).order_by("-created")


def scim_token_get(*, account, token_id) -> ScimToken | None:
    return ScimToken.objects.filter(account=account, id=token_id).first()


def scim_activity_list(*, account, limit: int, offset: int = 0) -> list[ScimActivity]:
    """A page of the SCIM journal, newest first."""
    rows = ScimActivity.objects.filter(account=account).order_by("-occurred", "-id")
    return list(rows[offset : offset + limit])
