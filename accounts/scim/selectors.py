"""Reads of an account's SCIM configuration: its tokens and its activity journal."""

from __future__ import annotations

from django.conf import settings

from accounts.models import ScimActivity, ScimToken


def scim_base_url(account_id) -> str:
    """The SCIM 2.0 base URL the account's identity provider is given."""
    return f"{settings.PUBLIC_URL.rstrip('/')}/scim/v2/accounts/{account_id}"


def scim_token_list(*, account):
    return ScimToken.objects.filter(account=account).order_by("-created")


def scim_token_get(*, account, token_id) -> ScimToken | None:
    return ScimToken.objects.filter(account=account, id=token_id).first()


def scim_activity_list(
    *,
    account,
    limit: int,
    offset: int = 0,
    method: str | None = None,
    status_class: int | None = None,
    token_id=None,
    since=None,
) -> list[ScimActivity]:
    """A page of the SCIM journal, newest first, with its token; optionally only one HTTP method,
    one class of answers (2 for 2xx, 4 for 4xx…), one token's requests, or those from ``since``."""
    rows = ScimActivity.objects.filter(account=account).select_related("token")
    if method:
        rows = rows.filter(method=method.upper())
    if status_class:
        rows = rows.filter(status__gte=status_class * 100, status__lt=(status_class + 1) * 100)
    if token_id:
        rows = rows.filter(token_id=token_id)
    if since is not None:
        rows = rows.filter(occurred__gte=since)
    return list(rows.order_by("-occurred", "-id")[offset : offset + limit])
