"""The account API, shaped like Prefect Cloud's (what its Terraform provider sends and reads):
``/api/accounts/<account>/`` account roles, workspace roles, memberships, bots (service accounts),
teams, invitations, workspaces, settings, the IP allowlist, the audit trail, SCIM and SSO;
``/api/users/<id>/api_keys``; ``/api/me`` and ``/api/me/workspaces``; the permission and scope
catalogues; and under each workspace ``user_access``, ``bot_access``, ``team_access`` and
``access/explain``.

Contracts:

- One module per resource; ``base`` holds what they share: the view base ``AccountApi`` and the one
  body parser, ``parse_body`` (a pydantic model whose fields say how a bad value is answered).
- A view parses, checks, calls one service or one selector, and serializes. It writes no ORM query
  (reads are selectors: ``accounts.selectors`` and the sub-apps' ``selectors``) and opens no
  transaction (a change that combines services is one service, e.g.
  ``rbac.service_account_create_with_key``), so nothing is half-written.
- Every view declares the account permission (``required_permissions``) or workspace scope
  (``required_scopes``) each method needs. Anything outside the caller's account answers 404; a bad
  value answers 422 with ``{"detail": …, "code": …}``.
- The package sits above ``access``; nothing else in ``accounts`` imports it but ``accounts.urls``
  and ``accounts.workspace_urls`` (``.importlinter``).
"""
