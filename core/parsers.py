"""Request bodies, for every API surface.

``loads`` is the one JSON reader of what clients send (HTTP bodies through ``JSONParser``, the
events websocket's frames, SCIM bodies). It refuses, at the door, what could be stored but not
rendered back or stored at all: the NUL character (PostgreSQL keeps none in text or jsonb), lone
surrogates (``"\\ud800"``: no UTF-8 encoder takes them, so every later read of the row fails),
non-finite numbers (``1e999``, ``NaN``), integers beyond 64 bits, and nesting deeper than
``MAX_DEPTH``. Each is a ``BadJson`` (a ``ValueError``), which the DRF parser turns into the
surfaces' usual answer for a body it cannot take (422; SCIM's 400)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from core.errors import Unprocessable

# The escape itself, not an escaped backslash followed by "u0000" ("\\u0000" is fine).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def has_nul_escape(raw: bytes) -> bool:
    """Whether the JSON text ``raw`` holds a string with the NUL character."""
    return b"\\u0000" in raw and _NUL_ESCAPE.search(raw) is not None


#: Deeper JSON is refused (Prefect's bodies nest a few levels; parameter schemas a few dozen).
MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Text that may hold something ``unrenderable`` finds: a surrogate escape, a long exponent, a long
# run of digits. Text without any is checked no further (the events socket's hot path).
_SUSPECT = re.compile(rb"\\[uU][dD][89a-fA-F]|[eE][+-]?[0-9]{3,}|[0-9]{19,}|NaN|Infinity")


class BadJson(ValueError):
    """JSON this server refuses to take (see the module)."""


class NotJson(BadJson):
    """Text that is not JSON at all."""


def _refuse_constant(name: str):
    raise BadJson(f"{name} is not a number JSON allows.")


def unrenderable(value: Any) -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored and read back, or None when it can."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return "text may not contain unpaired surrogates (such as \\ud800)"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return "integers must fit in 64 bits"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "numbers must be finite"
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return f"JSON may nest at most {MAX_DEPTH} levels deep"
            if isinstance(item, dict):
                stack.extend((key, depth + 1) for key in item)
                stack.extend((entry, depth + 1) for entry in item.values())
            else:
                stack.extend((entry, depth + 1) for entry in item)
    return None


def suspect(raw: bytes | str) -> bool:
    """Whether JSON text might hold what ``unrenderable`` refuses (a cheap scan, no parse)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    return (
        _SUSPECT.search(data) is not None
        or has_nul_escape(data)
        or data.count(b"[") + data.count(b"{") > MAX_DEPTH
    )


def loads(raw: bytes | str) -> Any:
    """Parse JSON a client sent, refusing what cannot be stored and read back (``BadJson``)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if has_nul_escape(data):
        raise BadJson("text may not contain the NUL character (\\u0000)")
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadJson(f"JSON may nest at most {MAX_DEPTH} levels deep") from None
    except UnicodeDecodeError:
        raise NotJson("the body is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise NotJson(str(error)) from None
    problem = unrenderable(value)
    if problem is not None:
        raise BadJson(problem)
    return value


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any, *, limit: int | None = None) -> Any:
    """Text the server itself keeps from outside (a receiver's answer, an error naming it), made
    storable: the NUL character and lone surrogates become U+FFFD, and each string, a dict's
    keys too, is cut at ``limit`` characters; dicts and lists are copied with their strings made
    so, anything else is kept."""
    if isinstance(value, str):
        text = value[:limit] if limit is not None else value
        return _UNSTORABLE.sub("\ufffd", text)
    if isinstance(value, dict):
        return {storable(k, limit=limit): storable(v, limit=limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item, limit=limit) for item in value]
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, through ``loads``."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return loads(stream.read())
        except BadJson as error:
            raise ParseError(f"JSON parse error - {error}") from None


def json_object(data) -> dict:
    """A parsed request body that must be a JSON object (an empty body is ``{}``): 422 otherwise."""
    if data in (None, b"", ""):
        return {}
    if not isinstance(data, dict):
        raise Unprocessable("The request body must be a JSON object.", code="invalid_body")
    return data
