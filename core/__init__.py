"""What every app may use and that uses no app of this project.

``errors`` (the application error hierarchy and its renderers), ``parsers`` (request-body parsing
shared by every API surface), ``ids`` (identifier parsing), ``credentials`` (the one bearer-header parser) and ``serverloop`` (the ASGI server's
event loop for synchronous code). Nothing here imports ``config``, ``tenants``, ``accounts``,
``access``, ``audit``, ``billing`` or ``orchestration``; the import contracts in ``.importlinter``
hold that line.
"""
