"""The account API, shaped like Prefect Cloud's (what its Terraform provider sends and reads):
``/api/accounts/<account>/`` account roles, workspace roles, memberships, bots (service accounts),
teams, invitations, workspaces, settings, the IP allowlist, the audit trail, SCIM and SSO;
``/api/users/<id>/api_keys``; ``/api/me`` and ``/api/me/workspaces``; the permission and scope
catalogues; and under each workspace ``user_access``, ``bot_access``, ``team_access`` and
``access/explain``.
"""
