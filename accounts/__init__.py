"""People, their memberships and roles, and everything an account administers.

Contracts:

- ``permissions.py`` is THE roles-to-scopes table; ``roles.py`` resolves built-in and custom roles.
- Services write, selectors read. ``services.py``, ``rbac.py``, ``tenancy.py``, ``api_keys/services``,
  ``scim/services``, ``sso/…`` are the only writers: each is keyword-only, takes the actor, runs in
  one transaction and records its audit event in it (a change with a before and an after goes
  through ``audit.services.audited_update``). ``selectors.py``, ``api_keys/selectors``,
  ``scim/selectors`` and ``sso/selectors`` are the reads, each scoped to the account or workspace
  it is given.
- ``api/`` is the account API, one module per resource, above ``access`` (whose view bases it stands
  on): nothing else in ``accounts`` imports it but the route tables that mount it (``urls``,
  ``workspace_urls``), as ``.importlinter`` holds and ``tests/test_architecture.py`` checks.
"""
