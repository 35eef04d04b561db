"""Account-level routes under ``/api/accounts/<account_ref>/`` (Prefect Cloud's shapes)."""

from __future__ import annotations

from django.urls import path

from accounts.api import (
    account,
    account_roles,
    account_settings,
    audit_events,
    billing,
    bots,
    invitations,
    ip_allowlist,
    memberships,
    teams,
    workspace_roles,
    workspaces,
)
from accounts.api import scim as scim_api
from accounts.api import sso as sso_api

urlpatterns = [
    path("", account.AccountDetailApi.as_view()),
    path("billing", billing.AccountBillingApi.as_view()),
    path("billing/seat_ledger", billing.SeatLedgerApi.as_view()),
    path("billing/checkout", billing.CheckoutStartApi.as_view()),
    path("billing/portal", billing.PortalStartApi.as_view()),
    path("account_roles/filter", account_roles.AccountRolesFilterApi.as_view()),
    path("account_roles/<str:role_id>", account_roles.AccountRoleApi.as_view()),
    path("workspace_roles/", workspace_roles.WorkspaceRolesApi.as_view()),
    path("workspace_roles/filter", workspace_roles.WorkspaceRolesFilterApi.as_view()),
    path("workspace_roles/<str:role_id>", workspace_roles.WorkspaceRoleApi.as_view()),
    path("account_memberships/filter", memberships.MembershipsFilterApi.as_view()),
    path("account_memberships/<str:membership_id>", memberships.MembershipApi.as_view()),
    path("bots/", bots.BotsApi.as_view()),
    path("bots/filter", bots.BotsFilterApi.as_view()),
    path("bots/<str:bot_id>", bots.BotApi.as_view()),
    path("bots/<str:bot_id>/rotate_api_key", bots.BotRotateKeyApi.as_view()),
    path("teams", teams.TeamsApi.as_view()),
    path("teams/", teams.TeamsApi.as_view()),
    path("teams/filter", teams.TeamsFilterApi.as_view()),
    path("teams/<str:team_id>", teams.TeamApi.as_view()),
    path("teams/<str:team_id>/members", teams.TeamMembersApi.as_view()),
    path("teams/<str:team_id>/members/<str:actor_id>", teams.TeamMemberApi.as_view()),
    path("workspaces/", workspaces.WorkspacesApi.as_view()),
    path("workspaces/filter", workspaces.WorkspacesFilterApi.as_view()),
    path("workspaces/<str:workspace_id>", workspaces.AccountWorkspaceApi.as_view()),
    path("invitations/", invitations.InvitationsApi.as_view()),
    path("invitations/filter", invitations.InvitationsFilterApi.as_view()),
    path("invitations/<str:invitation_id>", invitations.InvitationApi.as_view()),
    path("invitations/<str:invitation_id>/revoke", invitations.InvitationRevokeApi.as_view()),
    path("settings", account_settings.AccountSettingsApi.as_view()),
    path("ip_allowlist", ip_allowlist.IpAllowlistApi.as_view()),
    path("ip_allowlist/my_access", ip_allowlist.IpAllowlistMyAccessApi.as_view()),
    path("ip_allowlist/dry_run", ip_allowlist.IpAllowlistDryRunApi.as_view()),
    path("audit_events", audit_events.AuditEventsApi.as_view()),
    path("scim", scim_api.ScimConfigApi.as_view()),
    path("scim/tokens", scim_api.ScimTokensApi.as_view()),
    path("scim/tokens/<str:token_id>", scim_api.ScimTokenApi.as_view()),
    path("scim/activity", scim_api.ScimActivityApi.as_view()),
    path("sso/domains", sso_api.SsoDomainsApi.as_view()),
    path("sso/domains/<str:domain_id>", sso_api.SsoDomainApi.as_view()),
    path("sso/domains/<str:domain_id>/verify", sso_api.SsoDomainVerifyApi.as_view()),
    path("sso/identity_providers", sso_api.IdentityProvidersApi.as_view()),
    path("sso/identity_providers/<str:provider_id>", sso_api.IdentityProviderApi.as_view()),
    path(
        "sso/identity_providers/<str:provider_id>/rotate_sp_certificate",
        sso_api.IdentityProviderRotateSpCertificateApi.as_view(),
    ),
    path("sso/group_mappings", sso_api.SsoGroupMappingsApi.as_view()),
]
