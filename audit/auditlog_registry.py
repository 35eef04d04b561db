"""Field-level change history (django-auditlog) for governance models, beside the event trail."""

from __future__ import annotations

from auditlog.registry import auditlog
from django.apps import apps

for label in (
    "tenants.Account",
    "tenants.Workspace",
    "accounts.AccountMembership",
    "accounts.ServiceAccount",
    "accounts.WorkspaceRoleGrant",
    "accounts.CustomRole",
    "accounts.Team",
    "accounts.TeamMember",
    "accounts.WorkspaceDefaultRole",
):
    auditlog.register(apps.get_model(label))
auditlog.register(
    apps.get_model("accounts.ApiKey"), exclude_fields=["secret_hash", "last_used_at", "last_used_ip"]
)
auditlog.register(apps.get_model("accounts.User"), exclude_fields=["password", "last_login"])
auditlog.register(apps.get_model("accounts.Invitation"), exclude_fields=["token_hash"])
auditlog.register(apps.get_model("accounts.IpAllowlistEntry"), exclude_fields=["last_seen"])
