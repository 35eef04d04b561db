"""People, memberships, service accounts and workspace grants.

Roles are keys into ``accounts.permissions``; the scope sets live there, not in the database.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.permissions import AccountRole, WorkspaceRole
from tenants.scoping import WorkspaceScopedModel


class UserManager(BaseUserManager):
    def get_by_natural_key(self, username: str) -> User:
        return self.get(email__iexact=username)

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=self.normalize_email(email).strip(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    audit_actor_kind = "user"  # the audit log's actor protocol (audit.actors)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    first_name = models.CharField(max_length=150, blank=True, default="")
    last_name = models.CharField(max_length=150, blank=True, default="")
    is_active = models.BooleanField(default=True)
    # Platform operators (Django admin), not tenant administrators.
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_unique_ci")]

    def __str__(self) -> str:
        return self.email

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class AccountMembership(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=AccountRole.choices, default=AccountRole.MEMBER)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "created"]
        constraints = [
            models.UniqueConstraint(fields=["account", "user"], name="membership_unique_user_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"


class ServiceAccount(models.Model):
    """A non-human principal of one account (Prefect Cloud's "bot"). It holds ``pnb_`` keys."""

    audit_actor_kind = "service_account"  # the audit log's actor protocol (audit.actors)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="service_accounts")
    name = models.CharField(max_length=200)
    account_role = models.CharField(max_length=16, choices=AccountRole.choices, default=AccountRole.MEMBER)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    # A service account authenticates through DRF like a user does.
    is_authenticated = True
    is_anonymous = False
    is_active = True

    class Meta:
        ordering = ["account_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "name"], name="service_account_unique_name_per_account"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (service account)"


class CustomRole(models.Model):
    """A workspace role an account defines: its own scopes, plus (optionally) everything a built-in
    role holds. The inherited part is resolved from the permission table at read time, so the role
    grows with its parent when the table grows, and cannot lose it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="custom_roles")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    scopes = models.JSONField(default=list, blank=True)
    inherited_role = models.CharField(max_length=16, choices=WorkspaceRole.choices, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="custom_role_unique_name_per_account"),
        ]

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    """People and service accounts of one account, granted workspace roles together."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # A team provisioned by the account's identity provider over SCIM (a SCIM Group): its name and
    # members are the IdP's to change, not the console's.
    scim_managed = models.BooleanField(default=False)
    scim_external_id = models.CharField(max_length=255, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="team_unique_name_per_account"),
        ]

    def __str__(self) -> str:
        return self.name


class TeamMember(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="team_memberships"
    )
    service_account = models.ForeignKey(
        ServiceAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="team_memberships"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team_id", "created"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, service_account__isnull=True)
                    | models.Q(user__isnull=True, service_account__isnull=False)
                ),
                name="team_member_exactly_one_principal",
            ),
            models.UniqueConstraint(
                fields=["team", "user"],
                condition=models.Q(user__isnull=False),
                name="team_member_unique_user",
            ),
            models.UniqueConstraint(
                fields=["team", "service_account"],
                condition=models.Q(service_account__isnull=False),
                name="team_member_unique_service_account",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.principal} in team {self.team_id}"

    @property
    def principal(self) -> User | ServiceAccount:
        return self.user or self.service_account


class WorkspaceRoleGrant(WorkspaceScopedModel):
    """A workspace role (built-in, or an account's custom role) granted to exactly one principal: a
    user, a service account or a team. Effective access is the union of every grant that applies."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    role = models.CharField(max_length=16, choices=WorkspaceRole.choices, blank=True, default="")
    custom_role = models.ForeignKey(
        CustomRole, null=True, blank=True, on_delete=models.PROTECT, related_name="grants"
    )
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="workspace_grants"
    )
    service_account = models.ForeignKey(
        ServiceAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="workspace_grants"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="workspace_grants"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace_id", "created"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, service_account__isnull=True, team__isnull=True)
                    | models.Q(user__isnull=True, service_account__isnull=False, team__isnull=True)
                    | models.Q(user__isnull=True, service_account__isnull=True, team__isnull=False)
                ),
                name="grant_exactly_one_principal",
            ),
            models.CheckConstraint(
                condition=(
                    (~models.Q(role="") & models.Q(custom_role__isnull=True))
                    | (models.Q(role="") & models.Q(custom_role__isnull=False))
                ),
                name="grant_exactly_one_role",
            ),
            models.UniqueConstraint(
                fields=["workspace", "user"], condition=models.Q(user__isnull=False), name="grant_unique_user"
            ),
            models.UniqueConstraint(
                fields=["workspace", "service_account"],
                condition=models.Q(service_account__isnull=False),
                name="grant_unique_service_account",
            ),
            models.UniqueConstraint(
                fields=["workspace", "team"], condition=models.Q(team__isnull=False), name="grant_unique_team"
            ),
        ]

    @property
    def principal(self) -> User | ServiceAccount | Team:
        return self.user or self.service_account or self.team


class WorkspaceDefaultRole(models.Model):
    """The role every member of the account holds in a workspace without a grant of their own."""

    workspace = models.OneToOneField(
        "tenants.Workspace", primary_key=True, on_delete=models.CASCADE, related_name="default_role"
    )
    role = models.CharField(max_length=16, choices=WorkspaceRole.choices, blank=True, default="")
    custom_role = models.ForeignKey(
        CustomRole, null=True, blank=True, on_delete=models.PROTECT, related_name="default_for"
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    (~models.Q(role="") & models.Q(custom_role__isnull=True))
                    | (models.Q(role="") & models.Q(custom_role__isnull=False))
                ),
                name="default_role_exactly_one_role",
            ),
        ]

    def __str__(self) -> str:
        return f"default role of {self.workspace_id}"


class Invitation(models.Model):
    """An invitation to join an account by email. The link's token is single-use and stored only as
    its SHA-256; a pending, unexpired invitation holds a seat."""

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        ACCEPTED = "ACCEPTED", "Accepted"
        REVOKED = "REVOKED", "Revoked"
        # Past ``expires_at`` it stopped holding its seat; ``invitations_expire`` records the seat's
        # release in the ledger and marks it so.
        EXPIRED = "EXPIRED", "Expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    account_role = models.CharField(max_length=16, choices=AccountRole.choices, default=AccountRole.MEMBER)
    # [{"workspace_id": "…", "workspace_role_id": "…"}]: granted when the invitation is accepted.
    workspace_grants = models.JSONField(default=list, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    expires_at = models.DateTimeField()
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "-created"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                "account",
                condition=models.Q(status="PENDING"),
                name="invitation_one_pending_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.account_id} ({self.status})"


class IpAllowlistEntry(models.Model):
    """One network an account's members and keys may reach it from (Prefect Cloud's model: an
    address or CIDR, enabled or not, a description, when it was last seen)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="ip_allowlist")
    ip_network = models.CharField(max_length=64)
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True, default="")
    last_seen = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account_id", "created", "id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "ip_network"], name="ip_allowlist_unique_network"),
        ]

    def __str__(self) -> str:
        return f"{self.ip_network} ({'enabled' if self.enabled else 'disabled'})"


from accounts.api_keys.models import ApiKey  # noqa: E402

__all__ = [
    "AccountMembership",
    "ApiKey",
    "CustomRole",
    "Invitation",
    "IpAllowlistEntry",
    "ScimActivity",
    "ScimToken",
    "ScimUser",
    "ServiceAccount",
    "SsoDomain",
    "Team",
    "TeamMember",
    "User",
    "WorkspaceDefaultRole",
    "WorkspaceRoleGrant",
]


class ScimToken(models.Model):
    """A bearer token the account's identity provider uses on the account's SCIM endpoint. Shown
    once; only its SHA-256 is kept (it is 256 random bits, so a slow hash adds nothing)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="scim_tokens")
    name = models.CharField(max_length=200, blank=True, default="")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["account_id", "-created"]

    def __str__(self) -> str:
        return f"SCIM token {self.hint}… of {self.account_id}"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class ScimUser(models.Model):
    """A person as the account's identity provider provisions them: the SCIM User resource. It
    outlives the account membership it grants (a deactivated user keeps their resource, history
    and audit trail; reactivation grants membership again)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="scim_users")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="scim_identities")
    # The IdP's userName (usually the email; any string the IdP keys people by).
    user_name = models.CharField(max_length=255)
    external_id = models.CharField(max_length=255, blank=True, default="")
    # True or False as the IdP set it; None when it left it unassigned, which grants access like True.
    active = models.BooleanField(null=True, default=True)
    display_name = models.CharField(max_length=255, blank=True, default="")
    # Attributes kept for the IdP as sent (emails, phone numbers, title, the enterprise extension…).
    attributes = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "created", "id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "user"], name="scim_user_unique_per_account"),
            models.UniqueConstraint(
                "account", Lower("user_name"), name="scim_user_unique_user_name_per_account"
            ),
        ]
        indexes = [models.Index(fields=["account", "external_id"], name="scim_user_external_id")]

    def __str__(self) -> str:
        return f"SCIM user {self.user_id} in {self.account_id}"


class ScimActivity(models.Model):
    """One SCIM request to an account: what the IdP asked, the answer, and what it changed."""

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="scim_activity")
    token = models.ForeignKey(ScimToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    occurred = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    status = models.PositiveSmallIntegerField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    changes = models.JSONField(default=list, blank=True)
    detail = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["account_id", "-occurred", "-id"]
        indexes = [models.Index(fields=["account", "-occurred"], name="scim_activity_account_time")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status}"


class SsoDomain(models.Model):
    """An email domain an account claims for single sign-on. It routes logins and captures new
    sign-ups only once verified: the account publishes ``token`` in a DNS TXT record at
    ``_cp-sso-verification.<domain>``. A domain is verified for one account at most."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("tenants.Account", on_delete=models.CASCADE, related_name="sso_domains")
    domain = models.CharField(max_length=253)
    token = models.CharField(max_length=64, editable=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_detail = models.CharField(max_length=500, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account_id", "domain"]
        constraints = [
            models.UniqueConstraint(fields=["account", "domain"], name="sso_domain_unique_per_account"),
            models.UniqueConstraint(
                fields=["domain"],
                condition=models.Q(verified_at__isnull=False),
                name="sso_domain_verified_once",
            ),
        ]

    def __str__(self) -> str:
        return self.domain


class IdentityProvider(models.Model):
    """An account's SAML 2.0 or OIDC identity provider. ``config`` holds what is not secret; the OIDC
    client secret and the SAML SP signing key are kept encrypted (``accounts.sso.secrets``) and never
    returned."""

    class Kind(models.TextChoices):
        SAML = "saml", "SAML 2.0"
        OIDC = "oidc", "OpenID Connect"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        "tenants.Account", on_delete=models.CASCADE, related_name="identity_providers"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    allow_idp_initiated = models.BooleanField(default=False)
    config = models.JSONField(default=dict, blank=True)
    # OIDC: the client secret; SAML: this product's SP signing key for this IdP (both encrypted).
    secret_encrypted = models.TextField(blank=True, default="")
    # SAML: the SP signing certificate (public) the IdP verifies our AuthnRequests and logout messages with.
    sp_certificate = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "name"], name="identity_provider_unique_name_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class SsoAssertion(models.Model):
    """An assertion (SAML ``Assertion/@ID``) or id_token (``jti``/nonce) that was accepted once: a
    second use is a replay. Kept until the assertion itself would have expired."""

    id = models.BigAutoField(primary_key=True)
    provider = models.ForeignKey(IdentityProvider, on_delete=models.CASCADE, related_name="+")
    assertion_id = models.CharField(max_length=255)
    expires_at = models.DateTimeField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "assertion_id"], name="sso_assertion_used_once")
        ]
        indexes = [models.Index(fields=["expires_at"], name="sso_assertion_expiry")]

    def __str__(self) -> str:
        return self.assertion_id


class SsoSession(models.Model):
    """A browser session that single sign-on started: what the IdP's logout request names (the SAML
    NameID and SessionIndex) mapped to the session it must end."""

    id = models.BigAutoField(primary_key=True)
    provider = models.ForeignKey(IdentityProvider, on_delete=models.CASCADE, related_name="sessions")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sso_sessions")
    session_key = models.CharField(max_length=40)
    name_id = models.CharField(max_length=512, blank=True, default="")
    session_index = models.CharField(max_length=255, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["provider", "name_id"], name="sso_session_name_id"),
            models.Index(fields=["session_key"], name="sso_session_key"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} via {self.provider_id}"


class SsoGroupMapping(models.Model):
    """A group the account's identity provider sends (SAML attribute / OIDC claim) mapped to a team
    of the account, or to a workspace role. At each SSO sign-in the person is put in the mapped
    teams and given the mapped workspace roles of the groups they hold, and taken out of those they
    no longer hold."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        "tenants.Account", on_delete=models.CASCADE, related_name="sso_group_mappings"
    )
    group = models.CharField(max_length=255)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    workspace = models.ForeignKey(
        "tenants.Workspace", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    workspace_role = models.CharField(max_length=16, choices=WorkspaceRole.choices, blank=True, default="")
    custom_role = models.ForeignKey(
        CustomRole, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account_id", "group", "created"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(team__isnull=False, workspace__isnull=True)
                    | models.Q(team__isnull=True, workspace__isnull=False)
                ),
                name="sso_mapping_team_or_workspace",
            )
        ]

    def __str__(self) -> str:
        return self.group


class SsoManagedGrant(models.Model):
    """Marks a person's direct workspace grant as given by an SSO group mapping, so a later sign-in
    without the group takes it away again (grants given by hand are never touched)."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    workspace = models.ForeignKey("tenants.Workspace", on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "workspace"], name="sso_managed_grant_once")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.workspace_id}"
