from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView

from accounts.api.account import AccountDetailApi
from accounts.api.api_keys import UserApiKeyApi, UserApiKeysApi
from accounts.api.billing import CheckoutReturnPage
from accounts.api.catalogues import AccountPermissionsApi, WorkspaceScopesApi
from accounts.api.invitations import InvitationAcceptApi
from accounts.api.me import MeApi, MyWorkspacesApi
from accounts.sso import views as sso_views
from accounts.sso.saml import metadata as saml_metadata
from accounts.views import SignInView
from audit import views as audit_views
from billing.views import stripe_webhook
from config.health import health
from console.ui import WorkspaceUiPage, WorkspaceUiSettings, WorkspaceUiV2Page, bundle_root_file
from console.views import home
from orchestration.api.webhooks.views import webhook_receive_view

handler400 = "core.errors.json_bad_request"
handler404 = "core.errors.json_not_found"
handler500 = "core.errors.json_server_error"

ACCOUNT_PREFIX = "api/accounts/<str:account_ref>/"
WORKSPACE_PREFIX = f"{ACCOUNT_PREFIX}workspaces/<str:workspace_ref>/"
# Prefect's UI of a workspace, at the base Prefect Cloud's UI uses (console.ui).
UI_PREFIX = "account/<str:account_ref>/workspace/<str:workspace_ref>/"

urlpatterns = [
    path("", home, name="home"),
    # Files Prefect's UIs name from the root, not from their base (console.ui).
    re_path(r"^(?:ico/)?(?P<name>favicon(?:-dark)?\.ico|[a-z]+\.svg)$", bundle_root_file),
    path("console/", include("console.urls")),
    path("login/", SignInView.as_view(), name="login"),
    path("logout/", sso_views.logout_view, name="logout"),
    path("admin/", admin.site.urls),
    path("api/health", health, name="health"),
    # The OpenAPI document (config.schema): JSON, or YAML with ?format=yaml.
    path(
        "api/schema/",
        SpectacularAPIView.as_view(renderer_classes=[OpenApiJsonRenderer, OpenApiYamlRenderer]),
        name="api-schema",
    ),
    path("api/audit/signing_key", audit_views.signing_key, name="audit-signing-key"),
    path("api/me/", MeApi.as_view()),
    path("api/me/workspaces", MyWorkspacesApi.as_view()),
    path("api/accounts/permissions", AccountPermissionsApi.as_view()),
    path("api/workspace_scopes", WorkspaceScopesApi.as_view()),
    path("api/invitations/<str:invitation_id>/accept", InvitationAcceptApi.as_view()),
    path("api/users/<str:user_id>/api_keys", UserApiKeysApi.as_view()),
    path("api/users/<str:user_id>/api_keys/<str:key_id>", UserApiKeyApi.as_view()),
    path(WORKSPACE_PREFIX, include("accounts.workspace_urls")),
    path(WORKSPACE_PREFIX, include("orchestration.urls")),
    path(ACCOUNT_PREFIX, include("accounts.urls")),
    path("api/accounts/<str:account_ref>", AccountDetailApi.as_view()),
    path("scim/v2/accounts/<str:account_id>/", include("accounts.api.scim_v2.urls")),
    path("sso/saml/<uuid:provider_id>/metadata", saml_metadata, name="saml-metadata"),
    path("sso/saml/<uuid:provider_id>/acs", sso_views.saml_acs, name="saml-acs"),
    path("sso/saml/<uuid:provider_id>/sls", sso_views.saml_sls, name="saml-sls"),
    path("sso/oidc/<uuid:provider_id>/callback", sso_views.oidc_callback, name="oidc-callback"),
    path("sso/oidc/<uuid:provider_id>/signed-out", sso_views.oidc_signed_out, name="oidc-signed-out"),
    path("sso/login/<uuid:provider_id>/", sso_views.sso_start, name="sso-start"),
    path("billing/stripe/webhook", stripe_webhook, name="stripe-webhook"),
    # Incoming webhooks, at the root as Prefect Cloud serves them (api.prefect.cloud/hooks/<slug>).
    path("hooks/<str:slug>", webhook_receive_view, name="webhook-receive"),
    path("billing/accounts/<str:account_ref>/return", CheckoutReturnPage.as_view(), name="billing-return"),
    path(f"{UI_PREFIX}ui-settings", WorkspaceUiSettings.as_view(), name="workspace-ui-settings"),
    path(f"{UI_PREFIX}v2", WorkspaceUiV2Page.as_view()),
    path(f"{UI_PREFIX}v2/", WorkspaceUiV2Page.as_view()),
    path(f"{UI_PREFIX}v2/<path:route>", WorkspaceUiV2Page.as_view()),
    path(UI_PREFIX, WorkspaceUiPage.as_view(), name="workspace-ui"),
    path(f"{UI_PREFIX}<path:route>", WorkspaceUiPage.as_view()),
]
