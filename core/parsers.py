"""Request bodies, for every API surface.

``JSONParser`` is the JSON parser of every DRF view: DRF's, refusing text with the NUL character.

PostgreSQL stores no NUL in text or jsonb, so a body carrying one (as the escape ``\\u0000``) would
otherwise get as far as the database and fail there as a 500. It is refused up front, in the API's
usual shape for a body it cannot take."""

from __future__ import annotations

import io
import re

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from core.errors import Unprocessable

# The escape itself, not an escaped backslash followed by "u0000" ("\\u0000" is fine).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def has_nul_escape(raw: bytes) -> bool:
    """Whether the JSON text ``raw`` holds a string with the NUL character."""
    return b"\\u0000" in raw and _NUL_ESCAPE.search(raw) is not None


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read()
        if has_nul_escape(raw):
            raise ParseError("JSON parse error - text may not contain the NUL character (\\u0000).")
        return super().parse(io.BytesIO(raw), media_type, parser_context)


def json_object(data) -> dict:
    """A parsed request body that must be a JSON object (an empty body is ``{}``): 422 otherwise."""
    if data in (None, b"", ""):
        return {}
    if not isinstance(data, dict):
        raise Unprocessable("The request body must be a JSON object.", code="invalid_body")
    return data
