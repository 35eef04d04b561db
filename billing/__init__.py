"""Plans and what they allow.

- ``plans``: the catalogue (Hobby, Starter, Team, Enterprise: seats, workspaces, deployments,
  features, audit retention).
- ``entitlements``: the selectors every door a seat or object comes through asks (``check_*``
  answers a ``Decision``, ``ensure_*`` raises ``PlanLimitExceeded``), and the audit retention policy
  the audit log's purge follows.

Contracts: billing reads tenants and counts through reverse relations; it writes nothing and
imports no app above ``audit``.
"""
