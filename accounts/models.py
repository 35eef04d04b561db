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


class WorkspaceRoleGrant(WorkspaceScopedModel):
    """A workspace role granted to exactly one principal. Effective access is the union of grants."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    role = models.CharField(max_length=16, choices=WorkspaceRole.choices)
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="workspace_grants"
    )
    service_account = models.ForeignKey(
        ServiceAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="workspace_grants"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace_id", "created"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, service_account__isnull=True)
                    | models.Q(user__isnull=True, service_account__isnull=False)
                ),
                name="grant_exactly_one_principal",
            ),
            models.UniqueConstraint(
                fields=["workspace", "user"], condition=models.Q(user__isnull=False), name="grant_unique_user"
            ),
            models.UniqueConstraint(
                fields=["workspace", "service_account"],
                condition=models.Q(service_account__isnull=False),
                name="grant_unique_service_account",
            ),
        ]

    @property
    def principal(self) -> User | ServiceAccount:
        return self.user or self.service_account


from accounts.api_keys.models import ApiKey  # noqa: E402

__all__ = ["AccountMembership", "ApiKey", "ServiceAccount", "User", "WorkspaceRoleGrant"]
