"""The console's routes, mounted under ``/console/``. Account pages name the account by handle or
id (``<account>``), as the APIs do (a different parameter name from the APIs' ``account_ref``: these are pages, not API routes); each page declares the permission every method needs."""

from __future__ import annotations

from django.urls import path

from console.pages.api_keys import ApiKeyRevokePage, ApiKeysPage
from console.pages.audit_log import AuditExportPage, AuditLogPage, AuditVerifyPage
from console.pages.billing import BillingPage, CheckoutPage, PortalPage
from console.pages.connect import ConnectPage
from console.pages.index import AccountHomePage, console_index
from console.pages.invitations import InvitationAcceptPage
from console.pages.ip_allowlist import IpAllowlistEnforcementPage, IpAllowlistPage, IpAllowlistRemovePage
from console.pages.members import InvitationRevokePage, MemberRemovePage, MemberRolePage, MembersPage
from console.pages.roles import RoleDeletePage, RoleGrantPage, RolePage, RolesPage
from console.pages.scim import ScimPage, ScimSettingsPage, ScimTokenRevokePage
from console.pages.service_accounts import (
    ServiceAccountDeletePage,
    ServiceAccountRotatePage,
    ServiceAccountsPage,
)
from console.pages.sso import (
    IdentityProviderCreatePage,
    IdentityProviderDeletePage,
    IdentityProviderDiscoveryPage,
    IdentityProviderPage,
    IdentityProviderTestPage,
    SsoDomainRemovePage,
    SsoDomainVerifyPage,
    SsoEnforcementPage,
    SsoGroupMappingAddPage,
    SsoGroupMappingRemovePage,
    SsoPage,
)
from console.pages.teams import (
    TeamDeletePage,
    TeamGrantPage,
    TeamMemberAddPage,
    TeamMemberRemovePage,
    TeamPage,
    TeamsPage,
)
from console.pages.workspaces import (
    WorkspaceAccessPage,
    WorkspaceAccessRevokePage,
    WorkspacePage,
    WorkspacesPage,
)

ACCOUNT = "accounts/<str:account>/"

urlpatterns = [
    path("", console_index, name="console-index"),
    path(
        "invitations/<uuid:invitation_id>/accept",
        InvitationAcceptPage.as_view(),
        name="console-invitation-accept",
    ),
    path("me/api-keys/", ApiKeysPage.as_view(), name="console-api-keys"),
    path("me/connect/", ConnectPage.as_view(), name="console-connect"),
    path("me/api-keys/<uuid:key_id>/revoke", ApiKeyRevokePage.as_view(), name="console-api-key-revoke"),
    path(ACCOUNT, AccountHomePage.as_view(), name="console-account"),
    path(f"{ACCOUNT}members/", MembersPage.as_view(), name="console-members"),
    path(f"{ACCOUNT}members/<uuid:membership_id>/role", MemberRolePage.as_view(), name="console-member-role"),
    path(
        f"{ACCOUNT}members/<uuid:object_id>/remove",
        MemberRemovePage.as_view(),
        name="console-member-remove",
    ),
    path(
        f"{ACCOUNT}invitations/<uuid:object_id>/revoke",
        InvitationRevokePage.as_view(),
        name="console-invitation-revoke",
    ),
    path(f"{ACCOUNT}service-accounts/", ServiceAccountsPage.as_view(), name="console-service-accounts"),
    path(
        f"{ACCOUNT}service-accounts/<uuid:bot_id>/rotate",
        ServiceAccountRotatePage.as_view(),
        name="console-service-account-rotate",
    ),
    path(
        f"{ACCOUNT}service-accounts/<uuid:object_id>/delete",
        ServiceAccountDeletePage.as_view(),
        name="console-service-account-delete",
    ),
    # Teams and roles
    path(f"{ACCOUNT}teams/", TeamsPage.as_view(), name="console-teams"),
    path(f"{ACCOUNT}teams/<uuid:team_id>/", TeamPage.as_view(), name="console-team"),
    path(
        f"{ACCOUNT}teams/<uuid:team_id>/members", TeamMemberAddPage.as_view(), name="console-team-member-add"
    ),
    path(
        f"{ACCOUNT}teams/<uuid:team_id>/members/<uuid:object_id>/remove",
        TeamMemberRemovePage.as_view(),
        name="console-team-member-remove",
    ),
    path(f"{ACCOUNT}teams/<uuid:team_id>/grants", TeamGrantPage.as_view(), name="console-team-grant"),
    path(f"{ACCOUNT}teams/<uuid:object_id>/delete", TeamDeletePage.as_view(), name="console-team-delete"),
    path(f"{ACCOUNT}roles/", RolesPage.as_view(), name="console-roles"),
    path(f"{ACCOUNT}roles/<uuid:role_id>/", RolePage.as_view(), name="console-role"),
    path(f"{ACCOUNT}roles/<uuid:role_id>/grants", RoleGrantPage.as_view(), name="console-role-grant"),
    path(f"{ACCOUNT}roles/<uuid:object_id>/delete", RoleDeletePage.as_view(), name="console-role-delete"),
    # Workspaces
    path(f"{ACCOUNT}workspaces/", WorkspacesPage.as_view(), name="console-workspaces"),
    path(f"{ACCOUNT}workspaces/<uuid:workspace_id>/", WorkspacePage.as_view(), name="console-workspace"),
    path(
        f"{ACCOUNT}workspaces/<uuid:workspace_id>/access",
        WorkspaceAccessPage.as_view(),
        name="console-workspace-access",
    ),
    path(
        f"{ACCOUNT}workspaces/<uuid:workspace_id>/access/<uuid:object_id>/revoke",
        WorkspaceAccessRevokePage.as_view(),
        name="console-workspace-access-revoke",
    ),
    # IP allowlist
    path(f"{ACCOUNT}ip-allowlist/", IpAllowlistPage.as_view(), name="console-ip-allowlist"),
    path(
        f"{ACCOUNT}ip-allowlist/enforcement",
        IpAllowlistEnforcementPage.as_view(),
        name="console-ip-allowlist-enforcement",
    ),
    path(
        f"{ACCOUNT}ip-allowlist/<uuid:object_id>/remove",
        IpAllowlistRemovePage.as_view(),
        name="console-ip-allowlist-remove",
    ),
    # Audit log
    path(f"{ACCOUNT}audit-log/", AuditLogPage.as_view(), name="console-audit-log"),
    path(f"{ACCOUNT}audit-log/export", AuditExportPage.as_view(), name="console-audit-export"),
    path(f"{ACCOUNT}audit-log/verify", AuditVerifyPage.as_view(), name="console-audit-verify"),
    # Billing
    path(f"{ACCOUNT}billing/", BillingPage.as_view(), name="console-billing"),
    path(f"{ACCOUNT}billing/checkout", CheckoutPage.as_view(), name="console-billing-checkout"),
    path(f"{ACCOUNT}billing/portal", PortalPage.as_view(), name="console-billing-portal"),
    path(f"{ACCOUNT}sso/", SsoPage.as_view(), name="console-sso"),
    path(
        f"{ACCOUNT}sso/domains/<uuid:domain_id>/verify",
        SsoDomainVerifyPage.as_view(),
        name="console-sso-domain-verify",
    ),
    path(
        f"{ACCOUNT}sso/domains/<uuid:object_id>/remove",
        SsoDomainRemovePage.as_view(),
        name="console-sso-domain-remove",
    ),
    path(f"{ACCOUNT}sso/group-mappings", SsoGroupMappingAddPage.as_view(), name="console-sso-mapping-add"),
    path(
        f"{ACCOUNT}sso/group-mappings/<uuid:object_id>/remove",
        SsoGroupMappingRemovePage.as_view(),
        name="console-sso-mapping-remove",
    ),
    path(f"{ACCOUNT}sso/enforcement", SsoEnforcementPage.as_view(), name="console-sso-enforcement"),
    path(
        f"{ACCOUNT}sso/providers/new", IdentityProviderCreatePage.as_view(), name="console-sso-provider-new"
    ),
    path(
        f"{ACCOUNT}sso/providers/<uuid:provider_id>/",
        IdentityProviderPage.as_view(),
        name="console-sso-provider",
    ),
    path(
        f"{ACCOUNT}sso/providers/<uuid:provider_id>/discovery",
        IdentityProviderDiscoveryPage.as_view(),
        name="console-sso-provider-discovery",
    ),
    path(
        f"{ACCOUNT}sso/providers/<uuid:provider_id>/test",
        IdentityProviderTestPage.as_view(),
        name="console-sso-provider-test",
    ),
    path(
        f"{ACCOUNT}sso/providers/<uuid:object_id>/delete",
        IdentityProviderDeletePage.as_view(),
        name="console-sso-provider-delete",
    ),
    path(f"{ACCOUNT}scim/", ScimPage.as_view(), name="console-scim"),
    path(f"{ACCOUNT}scim/settings", ScimSettingsPage.as_view(), name="console-scim-settings"),
    path(
        f"{ACCOUNT}scim/tokens/<uuid:object_id>/revoke",
        ScimTokenRevokePage.as_view(),
        name="console-scim-token-revoke",
    ),
]
