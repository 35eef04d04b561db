"""Account-level routes under ``/api/accounts/<account_ref>/`` (Prefect Cloud's shapes)."""

from __future__ import annotations

from django.urls import path

from accounts import account_api as api
from accounts.scim import account_api as scim_api
from accounts.sso import account_api as sso_api

urlpatterns = [
    path("", api.AccountDetailApi.as_view()),
    path("account_roles/filter", api.AccountRolesFilterApi.as_view()),
    path("account_roles/<str:role_id>", api.AccountRoleApi.as_view()),
    path("workspace_roles/", api.WorkspaceRolesApi.as_view()),
    path("workspace_roles/filter", api.WorkspaceRolesFilterApi.as_view()),
    path("workspace_roles/<str:role_id>", api.WorkspaceRoleApi.as_view()),
    path("account_memberships/filter", api.MembershipsFilterApi.as_view()),
    path("account_memberships/<str:membership_id>", api.MembershipApi.as_view()),
    path("bots/", api.BotsApi.as_view()),
    path("bots/filter", api.BotsFilterApi.as_view()),
    path("bots/<str:bot_id>", api.BotApi.as_view()),
    path("bots/<str:bot_id>/rotate_api_key", api.BotRotateKeyApi.as_view()),
    path("teams", api.TeamsApi.as_view()),
    path("teams/", api.TeamsApi.as_view()),
    path("teams/filter", api.TeamsFilterApi.as_view()),
    path("teams/<str:team_id>", api.TeamApi.as_view()),
    path("teams/<str:team_id>/members", api.TeamMembersApi.as_view()),
    path("teams/<str:team_id>/members/<str:actor_id>", api.TeamMemberApi.as_view()),
    path("workspaces/", api.WorkspacesApi.as_view()),
    path("workspaces/filter", api.WorkspacesFilterApi.as_view()),
    path("workspaces/<str:workspace_id>", api.AccountWorkspaceApi.as_view()),
    path("invitations/", api.InvitationsApi.as_view()),
    path("invitations/filter", api.InvitationsFilterApi.as_view()),
    path("invitations/<str:invitation_id>", api.InvitationApi.as_view()),
    path("invitations/<str:invitation_id>/revoke", api.InvitationRevokeApi.as_view()),
    path("settings", api.AccountSettingsApi.as_view()),
    path("ip_allowlist", api.IpAllowlistApi.as_view()),
    path("ip_allowlist/my_access", api.IpAllowlistMyAccessApi.as_view()),
    path("ip_allowlist/dry_run", api.IpAllowlistDryRunApi.as_view()),
    path("audit_events", api.AuditEventsApi.as_view()),
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
