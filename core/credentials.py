"""Reading credentials off a request, once for every surface.

``Authorization: Bearer <key>`` is the one credential of the APIs and websockets; the scheme word is
case-insensitive (the ``prefect`` client sends both ``Bearer`` and ``bearer``).
"""

from __future__ import annotations


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization`` value with the bearer scheme ('' when nothing follows the
    scheme, which no key matches); None when there is no value or another scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def asgi_header(scope: dict, name: str) -> str | None:
    """A header of an ASGI connection scope (HTTP or websocket), by case-insensitive name."""
    wanted = name.lower().encode("latin-1")
    for key, value in scope.get("headers") or ():
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None
