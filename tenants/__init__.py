"""Tenants: Account (the tenant) and its Workspaces. A leaf: it imports no other app, only ``core``.

- ``models``: Account, Workspace; ``handles``: URL-safe handles.
- ``scoping``: fail-closed workspace scoping. ``WorkspaceScopedModel.objects`` raises outside a
  workspace scope; ``workspace_scope()``, ``.for_workspace(id)`` and ``.unscoped()`` are the
  explicit ways out.
- ``rls``: the same line in PostgreSQL (row-level security on every workspace-owned table): the
  connection's workspace, set for what the gate authorized and reset before the connection serves
  anything else; ``across_workspaces()`` is the visible way out inside a request.
- ``selectors``: ``resolve_account``/``resolve_workspace``, an account or workspace named in a URL
  by id or by handle (never a workspace of another account).

Creating and changing tenants involves memberships, plans and the audit log, so those services live
above, in ``accounts.tenancy``; the Django admin pages for Account and Workspace in
``accounts.admin``.
"""
