"""The audit log: what happened, who did it, where, from which address, hash-chained per account.

- ``events``/``registry``: every event type registered once (stable id, dotted ``api_name``,
  message template); a duplicate is refused at start.
- ``services.audit_record()``: writes an entry inside the caller's transaction (the change and its
  record commit or roll back together), with the request facts the middleware set
  (``context``: request id, client address by the trusted-proxy rules, user agent, credential).
- The hash chain (``services``), retention (``audit_purge_expired``, how long by
  ``settings.AUDIT_RETENTION_POLICY``, the billing plan's answer), signed exports (``export``,
  ``signing``) and ``audit_verify``.

Contracts: audit stands below accounts and billing and knows them not. Actors are recognised by
a protocol (``actors.Actor``: an ``audit_actor_kind`` and a label), targets by their model meta;
the apps above call ``audit_record``. PostgreSQL triggers keep the log append-only (migrations).
"""
