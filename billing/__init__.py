"""Plans, what they allow, and billing them through Stripe.

- ``plans``: the catalogue (Hobby, Starter, Team, Enterprise: seats, workspaces, deployments,
  features, audit retention); ``prices``: which Stripe prices sell which plan (settings, by id).
- ``entitlements``: the selectors every door a seat or object comes through asks (``check_*``
  answers a ``Decision``, ``ensure_*`` raises ``PlanLimitExceeded``), and the audit retention policy
  the audit log's purge follows.
- ``selectors``: where an account stands with billing (its phase after a failed payment, what it
  may start), plan changes it does not fit, the seat ledger, the billing summary.
- ``services``: ``seat_change`` (THE way seats change, whatever the door), Checkout and the customer
  portal, webhook events stored once and processed after commit, dunning and cancellation.
- ``stripe_client``: the only importer of ``stripe`` (an import-linter contract).
- ``views``: the webhook endpoint; ``tasks``: the Stripe calls that follow a commit.

Contracts: billing reads tenants and counts through reverse relations (deployments and incoming
webhooks through the counters ``settings.BILLING_DEPLOYMENT_COUNTER`` and
``BILLING_WEBHOOK_COUNTER`` name); it imports no app above ``audit``. Without
``STRIPE_SECRET_KEY`` nothing calls Stripe and the product runs as it did: the seat ledger is kept,
plans are set by operators. ``Account.billing_status`` is written only here.
"""
