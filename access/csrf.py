"""CSRF tokens for Prefect's UI, in Prefect's protocol, bound to the browser session.

With ``csrf_enabled`` in ``ui-settings``, the UI asks the workspace's ``csrf-token?client=<id>`` for
a token and sends it back on every write as ``Prefect-Csrf-Token`` with ``Prefect-Csrf-Client``
(Prefect's ``CsrfMiddleware``). Prefect's server stores one token per client; here a token is
``<expiry>.<HMAC(SECRET_KEY, session key, client, expiry)>``, so nothing is stored and a token dies
with its session: signing out (or a new sign-in, which cycles the session key) voids every token
issued to it. Tokens last as long as Prefect's default (``PREFECT_SERVER_CSRF_TOKEN_EXPIRATION``,
one hour); the UI fetches a new one before its token expires.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

from django.utils.crypto import salted_hmac

TOKEN_LIFETIME = timedelta(hours=1)
MAX_CLIENT_LENGTH = 255
TOKEN_HEADER = "HTTP_PREFECT_CSRF_TOKEN"
CLIENT_HEADER = "HTTP_PREFECT_CSRF_CLIENT"
_SALT = "access.csrf.prefect-ui"


def _digest(session_key: str, client: str, expires: int) -> str:
    return salted_hmac(_SALT, f"{session_key}\x00{client}\x00{expires}", algorithm="sha256").hexdigest()


def csrf_token_issue(*, session_key: str, client: str, now: datetime | None = None) -> tuple[str, datetime]:
    """A token for ``client`` in the session ``session_key``, and when it expires."""
    expiration = (now or datetime.now(UTC)).replace(microsecond=0) + TOKEN_LIFETIME
    expires = int(expiration.timestamp())
    return f"{expires}.{_digest(session_key, client, expires)}", expiration


def csrf_token_valid(*, session_key: str | None, client: str | None, token: str | None) -> bool:
    """Whether ``token`` was issued to ``client`` in this session and has not expired."""
    if not session_key or not client or not token:
        return False
    expires_text, _, digest = token.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires < datetime.now(UTC).timestamp():
        return False
    return hmac.compare_digest(digest, _digest(session_key, client, expires))


def csrf_refusal(request) -> str | None:
    """None when a browser session's write carries a valid Prefect CSRF token; else why not, in
    Prefect's words. Only for requests that carry Prefect's CSRF headers (see
    ``access.authentication``)."""
    token = request.META.get(TOKEN_HEADER)
    client = request.META.get(CLIENT_HEADER)
    if token is None:
        return "Missing CSRF token."
    if client is None:
        return "Missing client identifier."
    session = getattr(request, "session", None)
    if not csrf_token_valid(session_key=getattr(session, "session_key", None), client=client, token=token):
        return "Invalid CSRF token or client identifier."
    return None
