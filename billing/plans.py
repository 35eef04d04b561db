"""The plan catalogue, as data. ``None`` means unlimited.

From the product sheet: Hobby (free, 2 users, 5 workflows), Team ($400/month, up to 8 seats,
1 workspace, 50 deployments, audit log retention, service accounts) and Enterprise (unlimited;
SSO, SCIM, custom roles, granular RBAC, IP allowlist). Where the sheet gives no number the figure
here is ours: Starter sits between Hobby and Team for a small team deploying to its own
infrastructure.

Rate limits and run retention are Prefect Cloud's published figures per plan (API requests and
logs + events per minute; 7, 7 and 14 days of run history); Prefect Cloud's Enterprise figures are
"custom", so Enterprise takes its Pro figures (5,000 and 40,000 a minute, 30 days).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Feature = Literal[
    "service_accounts",  # non-human principals with pnb_ keys
    "audit_log",  # the audit log is visible and exportable to the account
    "sso",  # SAML 2.0 and OIDC login
    "scim",  # SCIM 2.0 provisioning
    "custom_roles",  # custom workspace roles
    "teams",  # teams and granular, per-team grants
    "ip_allowlist",  # restrict access to listed networks
]
FEATURES: tuple[Feature, ...] = (
    "service_accounts", "audit_log", "sso", "scim", "custom_roles", "teams", "ip_allowlist",
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    price_usd_month: int | None  # None: priced per contract
    max_seats: int | None
    max_workspaces: int | None
    max_deployments: int | None
    audit_log_retention_days: int
    features: frozenset[Feature]
    # Prefect Cloud's two rate-limit buckets, per account and minute: every call to a workspace's
    # API; every log and every event written.
    api_requests_per_minute: int
    logs_events_per_minute: int
    # Days flow runs, task runs, logs, events and artifacts are kept (runs from their end).
    run_retention_days: int
    self_serve: bool = True
    # Incoming webhooks per account: every plan has them, as every Prefect Cloud plan does.
    max_webhooks: int | None = None

    def has(self, feature: Feature) -> bool:
        return feature in self.features


PLANS: dict[str, Plan] = {
    plan.key: plan
    for plan in (
        Plan(
            key="hobby",
            name="Hobby",
            price_usd_month=0,
            max_seats=2,
            max_workspaces=1,
            max_deployments=5,
            audit_log_retention_days=7,
            api_requests_per_minute=625,
            logs_events_per_minute=2_000,
            run_retention_days=7,
            features=frozenset(),
            max_webhooks=1,
        ),
        Plan(
            key="starter",
            name="Starter",
            price_usd_month=100,
            max_seats=3,
            max_workspaces=1,
            max_deployments=20,
            audit_log_retention_days=30,
            api_requests_per_minute=1_250,
            logs_events_per_minute=2_800,
            run_retention_days=7,
            features=frozenset({"service_accounts"}),
            max_webhooks=5,
        ),
        Plan(
            key="team",
            name="Team",
            price_usd_month=400,
            max_seats=8,
            max_workspaces=1,
            max_deployments=50,
            audit_log_retention_days=90,
            api_requests_per_minute=2_500,
            logs_events_per_minute=8_000,
            run_retention_days=14,
            features=frozenset({"service_accounts", "audit_log"}),
            max_webhooks=20,
        ),
        Plan(
            key="enterprise",
            name="Enterprise",
            price_usd_month=None,
            max_seats=None,
            max_workspaces=None,
            max_deployments=None,
            audit_log_retention_days=365,
            api_requests_per_minute=5_000,
            logs_events_per_minute=40_000,
            run_retention_days=30,
            features=frozenset(FEATURES),
            self_serve=False,
        ),
    )
}
PLAN_CHOICES = [(plan.key, plan.name) for plan in PLANS.values()]


def get_plan(key: str) -> Plan:
    try:
        return PLANS[key]
    except KeyError:
        raise ValueError(f"Unknown plan {key!r}; choose one of {', '.join(PLANS)}.") from None


# What an operator may set for one account on a plan sold by contract (Enterprise, not self-serve):
# each key absent from the account's ``plan_limits`` keeps the plan's figure. ``None`` is unlimited
# for the ``max_`` limits; the audit log always has a number of days.
CONTRACT_LIMITS: tuple[str, ...] = (
    "max_seats",
    "max_workspaces",
    "max_deployments",
    "max_webhooks",
    "audit_log_retention_days",
    "api_requests_per_minute",
    "logs_events_per_minute",
    "run_retention_days",
)
_UNLIMITABLE = {
    "audit_log_retention_days", "api_requests_per_minute", "logs_events_per_minute", "run_retention_days",
}  # fmt: skip


def contract_limits_problems(limits: object) -> list[str]:
    """Why ``limits`` cannot be an account's contract limits: one sentence each; empty when it can."""
    if not isinstance(limits, dict):
        return ['Limits must be an object such as {"max_seats": 250}.']
    problems = []
    for key, value in limits.items():
        if key not in CONTRACT_LIMITS:
            problems.append(f"Unknown limit {key!r}; the limits are {', '.join(CONTRACT_LIMITS)}.")
        elif value is None and key not in _UNLIMITABLE:
            continue
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(
                f"{key} must be a whole number of at least 1"
                + ("." if key in _UNLIMITABLE else ", or null for unlimited.")
            )
    return problems


def with_contract_limits(plan: Plan, limits: dict | None) -> Plan:
    """``plan`` with an account's contract limits applied; a self-serve plan keeps its own."""
    if not limits or plan.self_serve:
        return plan
    return replace(plan, **{key: limits[key] for key in CONTRACT_LIMITS if key in limits})
