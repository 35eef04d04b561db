"""The console's routes, mounted under ``/console/``. Account pages name the account by handle or
id (``<account>``), as the APIs do (a different parameter name from the APIs' ``account_ref``: these are pages, not API routes); each page declares the permission every method needs."""

from __future__ import annotations

from django.urls import path

from console.pages.api_keys import ApiKeyRevokePage, ApiKeysPage
from console.pages.connect import ConnectPage
from console.pages.index import AccountHomePage, console_index
from console.pages.invitations import InvitationAcceptPage
from console.pages.members import InvitationRevokePage, MemberRemovePage, MemberRolePage, MembersPage
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
    SsoDomainRemovePage,
    SsoDomainVerifyPage,
    SsoEnforcementPage,
    SsoGroupMappingAddPage,
    SsoGroupMappingRemovePage,
    SsoPage,
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
