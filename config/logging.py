"""JSON log lines, each with the request it belongs to, and never a secret.

``LOG_FORMAT=json`` (the default outside the embedded default) writes one JSON object per line:
``time``, ``level``, ``logger``, ``message``, the request's ``request_id`` (the caller's
``X-Request-Id`` when it is a sane one, else a new id, returned on the response), the ``account``
and ``workspace`` the path names (id or handle, as the caller wrote them), the ``workspace_id`` whose
scope is entered, any ``extra`` the call passed, and the exception's traceback. ``plain`` keeps
one line of text.

What keeps secrets out: the access log writes the path without its query string and no header; no
code logs a request body, a key or a token; and, as a last belt, every message is scrubbed of
anything shaped like a key this product issues (``pnu_``/``pnb_`` API keys, ``scim_`` tokens) or a
bearer credential.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar, Token
from datetime import UTC, datetime

from django.apps import apps

from audit.context import current_request_context

_EMPTY: dict[str, str] = {}
_context: ContextVar[dict[str, str]] = ContextVar("log_context", default=_EMPTY)


def enter() -> Token:
    """Start a request's log context (left with ``leave``: a server thread serves many requests)."""
    return _context.set({})


def leave(token: Token) -> None:
    _context.reset(token)


def update(**values: str | None) -> None:
    current = _context.get()
    if current is _EMPTY:
        return
    current.update({name: str(value) for name, value in values.items() if value})


_SECRET = re.compile(
    r"(?:\b(?:pnu|pnb|scim)_[A-Za-z0-9_\-]{8,})|(?:(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,})",
)


def scrub(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


# The attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class ContextFilter(logging.Filter):
    """Adds the request id, account, workspace and entered workspace scope to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_context().request_id
        if request_id:
            record.request_id = request_id
        for name, value in _context.get().items():
            setattr(record, name, value)
        if apps.ready:
            workspace_id = _current_workspace_id()
            if workspace_id is not None:
                record.workspace_id = str(workspace_id)
        return True


_workspace_id_getter = None


def _current_workspace_id():
    global _workspace_id_getter
    if _workspace_id_getter is None:
        # Function-level import: logging is configured before the app registry is ready, and
        # tenants.scoping defines models.
        from tenants.scoping import current_workspace_id

        _workspace_id_getter = current_workspace_id
    return _workspace_id_getter()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                line[name] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = scrub(self.formatStack(record.stack_info))
        return json.dumps(line, default=str)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
