"""Tenants: Account (the tenant) and its Workspaces. A leaf: it imports no other app, only ``core``.

- ``models``: Account, Workspace; ``handles``: URL-safe handles.
- ``scoping``: fail-closed workspace scoping. ``WorkspaceScopedModel.objects`` raises outside a
  workspace scope; ``workspace_scope()``, ``.for_workspace(id)`` and ``.unscoped()`` are the
  explicit ways out.
- ``selectors``: ``resolve_account``/``resolve_workspace``, an account or workspace named in a URL
  by id or by handle (never a workspace of another account).

Creating and changing tenants involves memberships, plans and the audit log, so those services live
above, in ``accounts.tenancy``; the Django admin pages for Account and Workspace in
``accounts.admin``.
"""
