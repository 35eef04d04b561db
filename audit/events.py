"""Every audit event type the product records. Append; never renumber."""

from __future__ import annotations

from audit.registry import register

ACCOUNT_CREATED = register(
    id=1, name="ACCOUNT_CREATED", api_name="account.created", template="{actor} created account {target}"
)
WORKSPACE_CREATED = register(
    id=10,
    name="WORKSPACE_CREATED",
    api_name="workspace.created",
    template="{actor} created workspace {target}",
)
MEMBER_ADDED = register(
    id=20, name="MEMBER_ADDED", api_name="member.added", template="{actor} added {target} as {role}"
)
MEMBER_REMOVED = register(
    id=21, name="MEMBER_REMOVED", api_name="member.removed", template="{actor} removed {target}"
)
MEMBER_ROLE_CHANGED = register(
    id=22,
    name="MEMBER_ROLE_CHANGED",
    api_name="member.role-changed",
    template="{actor} changed the role of {target} from {old_role} to {role}",
)
WORKSPACE_ACCESS_GRANTED = register(
    id=30,
    name="WORKSPACE_ACCESS_GRANTED",
    api_name="workspace-access.granted",
    template="{actor} granted {role} on workspace {workspace} to {target}",
)
WORKSPACE_ACCESS_REVOKED = register(
    id=31,
    name="WORKSPACE_ACCESS_REVOKED",
    api_name="workspace-access.revoked",
    template="{actor} removed the access of {target} to workspace {workspace}",
)
SERVICE_ACCOUNT_CREATED = register(
    id=40,
    name="SERVICE_ACCOUNT_CREATED",
    api_name="service-account.created",
    template="{actor} created service account {target}",
)
SERVICE_ACCOUNT_DELETED = register(
    id=41,
    name="SERVICE_ACCOUNT_DELETED",
    api_name="service-account.deleted",
    template="{actor} deleted service account {target}",
)
API_KEY_CREATED = register(
    id=50, name="API_KEY_CREATED", api_name="api-key.created", template="{actor} created API key {target}"
)
API_KEY_REVOKED = register(
    id=51, name="API_KEY_REVOKED", api_name="api-key.revoked", template="{actor} revoked API key {target}"
)
ACCOUNT_PLAN_CHANGED = register(
    id=2,
    name="ACCOUNT_PLAN_CHANGED",
    api_name="account.plan-changed",
    template="{actor} changed the plan of {target} from {old_plan} to {plan}",
)
WORKSPACE_UPDATED = register(
    id=11,
    name="WORKSPACE_UPDATED",
    api_name="workspace.updated",
    template="{actor} updated workspace {target}",
)
WORKSPACE_DELETED = register(
    id=12,
    name="WORKSPACE_DELETED",
    api_name="workspace.deleted",
    template="{actor} deleted workspace {target}",
)
WORKSPACE_DEFAULT_ROLE_CHANGED = register(
    id=32,
    name="WORKSPACE_DEFAULT_ROLE_CHANGED",
    api_name="workspace.default-role-changed",
    template="{actor} set the default role of workspace {target} to {role}",
)
SERVICE_ACCOUNT_UPDATED = register(
    id=42,
    name="SERVICE_ACCOUNT_UPDATED",
    api_name="service-account.updated",
    template="{actor} updated service account {target}",
)
API_KEY_ROTATED = register(
    id=52,
    name="API_KEY_ROTATED",
    api_name="api-key.rotated",
    template="{actor} rotated the API key of {target}",
)
CUSTOM_ROLE_CREATED = register(
    id=60, name="CUSTOM_ROLE_CREATED", api_name="role.created", template="{actor} created role {target}"
)
CUSTOM_ROLE_UPDATED = register(
    id=61, name="CUSTOM_ROLE_UPDATED", api_name="role.updated", template="{actor} updated role {target}"
)
CUSTOM_ROLE_DELETED = register(
    id=62, name="CUSTOM_ROLE_DELETED", api_name="role.deleted", template="{actor} deleted role {target}"
)
TEAM_CREATED = register(
    id=70, name="TEAM_CREATED", api_name="team.created", template="{actor} created team {target}"
)
TEAM_UPDATED = register(
    id=71, name="TEAM_UPDATED", api_name="team.updated", template="{actor} updated team {target}"
)
TEAM_DELETED = register(
    id=72, name="TEAM_DELETED", api_name="team.deleted", template="{actor} deleted team {target}"
)
TEAM_MEMBER_ADDED = register(
    id=73,
    name="TEAM_MEMBER_ADDED",
    api_name="team.member-added",
    template="{actor} added {target} to team {team}",
)
TEAM_MEMBER_REMOVED = register(
    id=74,
    name="TEAM_MEMBER_REMOVED",
    api_name="team.member-removed",
    template="{actor} removed {target} from team {team}",
)
INVITATION_SENT = register(
    id=80,
    name="INVITATION_SENT",
    api_name="invitation.sent",
    template="{actor} invited {email} as {role}",
)
INVITATION_ACCEPTED = register(
    id=81,
    name="INVITATION_ACCEPTED",
    api_name="invitation.accepted",
    template="{actor} accepted the invitation for {email}",
)
INVITATION_REVOKED = register(
    id=82,
    name="INVITATION_REVOKED",
    api_name="invitation.revoked",
    template="{actor} revoked the invitation for {email}",
)
INVITATION_EXPIRED = register(
    id=83,
    name="INVITATION_EXPIRED",
    api_name="invitation.expired",
    template="The invitation for {email} expired, releasing its seat",
)
ACCOUNT_SETTINGS_CHANGED = register(
    id=3,
    name="ACCOUNT_SETTINGS_CHANGED",
    api_name="account.settings-changed",
    template="{actor} changed the settings of account {target}",
)
USER_DEACTIVATED = register(
    id=90,
    name="USER_DEACTIVATED",
    api_name="user.deactivated",
    template="{actor} deactivated {target}",
)
USER_REACTIVATED = register(
    id=91,
    name="USER_REACTIVATED",
    api_name="user.reactivated",
    template="{actor} reactivated {target}",
)
IP_ALLOWLIST_CHANGED = register(
    id=100,
    name="IP_ALLOWLIST_CHANGED",
    api_name="ip-allowlist.changed",
    template="{actor} changed the IP allowlist of {target}",
)
IP_ALLOWLIST_ACCESS_DENIED = register(
    id=101,
    name="IP_ALLOWLIST_ACCESS_DENIED",
    api_name="request.access-denied.ip-allowlist",
    template="A request from {ip} to {target} was refused by the IP allowlist",
)
API_KEY_NEW_IP = register(
    id=53,
    name="API_KEY_NEW_IP",
    api_name="api-key.used-from-new-ip",
    template="API key {target} was used from {ip} (last from {previous_ip})",
)
LOGIN_SUCCEEDED = register(
    id=110, name="LOGIN_SUCCEEDED", api_name="login.succeeded", template="{actor} signed in ({method})"
)
LOGIN_FAILED = register(
    id=111, name="LOGIN_FAILED", api_name="login.failed", template="A sign-in as {email} failed"
)
LOGOUT = register(id=112, name="LOGOUT", api_name="logout", template="{actor} signed out")
DEPLOYMENT_CREATED = register(
    id=120,
    name="DEPLOYMENT_CREATED",
    api_name="deployment.created",
    template="{actor} created deployment {target}",
)
DEPLOYMENT_UPDATED = register(
    id=121,
    name="DEPLOYMENT_UPDATED",
    api_name="deployment.updated",
    template="{actor} updated deployment {target}",
)
DEPLOYMENT_DELETED = register(
    id=122,
    name="DEPLOYMENT_DELETED",
    api_name="deployment.deleted",
    template="{actor} deleted deployment {target}",
)
WORK_POOL_CREATED = register(
    id=130,
    name="WORK_POOL_CREATED",
    api_name="work-pool.created",
    template="{actor} created work pool {target}",
)
WORK_POOL_UPDATED = register(
    id=131,
    name="WORK_POOL_UPDATED",
    api_name="work-pool.updated",
    template="{actor} updated work pool {target}",
)
WORK_POOL_DELETED = register(
    id=132,
    name="WORK_POOL_DELETED",
    api_name="work-pool.deleted",
    template="{actor} deleted work pool {target}",
)
ACCOUNT_UPDATED = register(
    id=4, name="ACCOUNT_UPDATED", api_name="account.updated", template="{actor} updated account {target}"
)
SCIM_TOKEN_CREATED = register(
    id=140,
    name="SCIM_TOKEN_CREATED",
    api_name="scim.token-created",
    template="{actor} created a SCIM token for {target}",
)
SCIM_TOKEN_REVOKED = register(
    id=141,
    name="SCIM_TOKEN_REVOKED",
    api_name="scim.token-revoked",
    template="{actor} revoked a SCIM token of {target}",
)
SCIM_SETTINGS_CHANGED = register(
    id=142,
    name="SCIM_SETTINGS_CHANGED",
    api_name="scim.settings-changed",
    template="{actor} changed the SCIM settings of {target}",
)
SCIM_USER_PROVISIONED = register(
    id=143,
    name="SCIM_USER_PROVISIONED",
    api_name="scim.user-provisioned",
    template="{actor} provisioned {target}",
)
SCIM_USER_UPDATED = register(
    id=144, name="SCIM_USER_UPDATED", api_name="scim.user-updated", template="{actor} updated {target}"
)
SCIM_USER_DEACTIVATED = register(
    id=145,
    name="SCIM_USER_DEACTIVATED",
    api_name="scim.user-deactivated",
    template="{actor} deprovisioned {target}",
)
SCIM_USER_REACTIVATED = register(
    id=146,
    name="SCIM_USER_REACTIVATED",
    api_name="scim.user-reactivated",
    template="{actor} reactivated {target}",
)
SCIM_USER_DELETED = register(
    id=147, name="SCIM_USER_DELETED", api_name="scim.user-deleted", template="{actor} deleted {target}"
)
SCIM_GROUP_CREATED = register(
    id=148,
    name="SCIM_GROUP_CREATED",
    api_name="scim.group-created",
    template="{actor} provisioned team {target}",
)
SCIM_GROUP_UPDATED = register(
    id=149,
    name="SCIM_GROUP_UPDATED",
    api_name="scim.group-updated",
    template="{actor} updated team {target}",
)
SCIM_GROUP_DELETED = register(
    id=150,
    name="SCIM_GROUP_DELETED",
    api_name="scim.group-deleted",
    template="{actor} deleted team {target}",
)
SSO_DOMAIN_CLAIMED = register(
    id=160,
    name="SSO_DOMAIN_CLAIMED",
    api_name="sso.domain-claimed",
    template="{actor} claimed the domain {domain} for {target}",
)
SSO_DOMAIN_VERIFIED = register(
    id=161,
    name="SSO_DOMAIN_VERIFIED",
    api_name="sso.domain-verified",
    template="{actor} verified the domain {domain} for {target}",
)
SSO_DOMAIN_REMOVED = register(
    id=162,
    name="SSO_DOMAIN_REMOVED",
    api_name="sso.domain-removed",
    template="{actor} removed the domain {domain} from {target}",
)
SSO_IDP_CREATED = register(
    id=163,
    name="SSO_IDP_CREATED",
    api_name="sso.identity-provider-created",
    template="{actor} added the identity provider {target}",
)
SSO_IDP_UPDATED = register(
    id=164,
    name="SSO_IDP_UPDATED",
    api_name="sso.identity-provider-updated",
    template="{actor} changed the identity provider {target}",
)
SSO_IDP_DELETED = register(
    id=165,
    name="SSO_IDP_DELETED",
    api_name="sso.identity-provider-deleted",
    template="{actor} removed the identity provider {target}",
)
SSO_LOGIN_SUCCEEDED = register(
    id=166,
    name="SSO_LOGIN_SUCCEEDED",
    api_name="sso.login-succeeded",
    template="{actor} signed in through the identity provider {provider}",
)
SSO_LOGIN_FAILED = register(
    id=167,
    name="SSO_LOGIN_FAILED",
    api_name="sso.login-failed",
    template="A sign-in through the identity provider {provider} was refused ({reason})",
)
SSO_BREAK_GLASS_LOGIN = register(
    id=168,
    name="SSO_BREAK_GLASS_LOGIN",
    api_name="sso.break-glass-login",
    template="{actor} signed in with a password although single sign-on is enforced (break glass)",
)
SSO_USER_PROVISIONED = register(
    id=169,
    name="SSO_USER_PROVISIONED",
    api_name="sso.user-provisioned",
    template="{target} joined at their first sign-in through the identity provider {provider}",
)
SSO_LOGOUT = register(
    id=170,
    name="SSO_LOGOUT",
    api_name="sso.logout",
    template="{target} was signed out by single logout ({initiator}-initiated)",
)
SSO_ENFORCEMENT_CHANGED = register(
    id=171,
    name="SSO_ENFORCEMENT_CHANGED",
    api_name="sso.enforcement-changed",
    template="{actor} turned single sign-on enforcement {state}",
)
SSO_GROUP_MAPPINGS_CHANGED = register(
    id=172,
    name="SSO_GROUP_MAPPINGS_CHANGED",
    api_name="sso.group-mappings-changed",
    template="{actor} changed the identity provider group mappings",
)
BLOCK_SECRETS_READ = register(
    id=180,
    name="BLOCK_SECRETS_READ",
    api_name="block.secrets-read",
    template="{actor} read the secrets of {blocks}",
)
AUTOMATION_CREATED = register(
    id=181,
    name="AUTOMATION_CREATED",
    api_name="automation.created",
    template="{actor} created automation {target}",
)
AUTOMATION_UPDATED = register(
    id=182,
    name="AUTOMATION_UPDATED",
    api_name="automation.updated",
    template="{actor} updated automation {target}",
)
AUTOMATION_DELETED = register(
    id=183,
    name="AUTOMATION_DELETED",
    api_name="automation.deleted",
    template="{actor} deleted automation {target}",
)
BLOCK_DOCUMENT_CREATED = register(
    id=184,
    name="BLOCK_DOCUMENT_CREATED",
    api_name="block-document.created",
    template="{actor} created block document {target}",
)
BLOCK_DOCUMENT_UPDATED = register(
    id=185,
    name="BLOCK_DOCUMENT_UPDATED",
    api_name="block-document.updated",
    template="{actor} updated block document {target}",
)
BLOCK_DOCUMENT_DELETED = register(
    id=186,
    name="BLOCK_DOCUMENT_DELETED",
    api_name="block-document.deleted",
    template="{actor} deleted block document {target}",
)

# --- incoming webhooks (ids 200–209) --------------------------------------------------------------------
WEBHOOK_CREATED = register(
    id=200,
    name="WEBHOOK_CREATED",
    api_name="webhook.created",
    template="{actor} created webhook {target}",
)
WEBHOOK_UPDATED = register(
    id=201,
    name="WEBHOOK_UPDATED",
    api_name="webhook.updated",
    template="{actor} updated webhook {target}",
)
WEBHOOK_DELETED = register(
    id=202,
    name="WEBHOOK_DELETED",
    api_name="webhook.deleted",
    template="{actor} deleted webhook {target}",
)
WEBHOOK_ROTATED = register(
    id=203,
    name="WEBHOOK_ROTATED",
    api_name="webhook.rotated",
    template="{actor} rotated the URL of webhook {target}",
)

# --- billing (ids 300–349) ---------------------------------------------------------------------------
BILLING_PLAN_CHANGED = register(
    id=300,
    name="BILLING_PLAN_CHANGED",
    api_name="billing.plan-changed",
    template="{actor} moved {target} from the {old_plan} plan to {plan}",
)
BILLING_SEATS_CHANGED = register(
    id=301,
    name="BILLING_SEATS_CHANGED",
    api_name="billing.seats-changed",
    template="{actor} changed the seats of {target} from {seats_before} to {seats_after} ({door})",
)
BILLING_PAYMENT_FAILED = register(
    id=302,
    name="BILLING_PAYMENT_FAILED",
    api_name="billing.payment-failed",
    template="A payment of {target} failed; grace until {grace_until}",
)
BILLING_PAYMENT_SUCCEEDED = register(
    id=303,
    name="BILLING_PAYMENT_SUCCEEDED",
    api_name="billing.payment-succeeded",
    template="{target} paid invoice {invoice}",
)
BILLING_CHECKOUT_STARTED = register(
    id=304,
    name="BILLING_CHECKOUT_STARTED",
    api_name="billing.checkout-started",
    template="{actor} started a checkout of {target} for the {plan} plan",
)
BILLING_STATUS_CHANGED = register(
    id=305,
    name="BILLING_STATUS_CHANGED",
    api_name="billing.status-changed",
    template="The billing status of {target} changed from {old_status} to {status}",
)
BILLING_PAYMENT_ACTION_REQUIRED = register(
    id=306,
    name="BILLING_PAYMENT_ACTION_REQUIRED",
    api_name="billing.payment-action-required",
    template="A payment of {target} needs the customer's action",
)

# --- the console (ids 210–219) -----------------------------------------------------------------------
AUDIT_LOG_EXPORTED = register(
    id=210,
    name="AUDIT_LOG_EXPORTED",
    api_name="audit-log.exported",
    template="{actor} exported {entries} audit entries of {target} ({format})",
)
AUTH_THROTTLED = register(
    id=220,
    name="AUTH_THROTTLED",
    api_name="auth.throttled",
    template="{door} attempts throttled for {scope} {subject} after {failures} failures",
)

# --- the console's SSO test sign-in (ids 230–239) ------------------------------------------------------
SSO_TEST_SIGN_IN = register(
    id=230,
    name="SSO_TEST_SIGN_IN",
    api_name="sso.test-sign-in",
    template="{actor} tested a sign-in through the identity provider {provider} ({outcome})",
)
