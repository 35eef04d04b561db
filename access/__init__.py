"""The one access gate: authentication and authorization for every surface.

- Credentials are read off requests by the one bearer parser, ``core.credentials`` (below every
  app, so the SCIM endpoints' token reading uses it too).
- ``gate``: ``authenticate_key`` and ``authorize_workspace``/``authorize_account``/``authorize_token``
  (resolve the tenant from the path, the principal's access there, the account's door — IP
  allowlist, then SSO enforcement for browser sessions — and the scope or permission needed), plus
  a memory-only mode that answers ALLOW or UNKNOWN, never a refusal of its own, for paths that
  answer before Django (the worker poll). ``workspaces_open_to`` is the same door for listings.
- ``authentication``: the DRF authentication classes: bearer keys, and browser sessions whose
  writes pass a CSRF check first (Prefect's UI protocol, ``csrf``, or Django's).
- ``csrf``: the tokens of Prefect's CSRF protocol for the UI, bound to the browser session.
- ``views``: the API view bases (``WorkspaceApiView``, ``AccountApiView``) that turn the gate's
  decision into 404/403 and enter the workspace scope; ``middleware``: what a browser session's
  requests carry into the audit context.

Contracts: every surface — the HTTP view bases, the event websockets' handshake, the poll fast
path, the console — asks this gate and nothing else; a new rule lands here once. A principal
without access to a tenant gets the same 404 as for one that does not exist. ``access`` stands on
``accounts`` (keys, memberships, grants, the allowlist, SSO enforcement) and ``tenants``; the apps
that serve requests stand on it (see ``.importlinter``).
"""
