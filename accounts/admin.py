from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_revoke
from accounts.models import (
    AccountMembership,
    IdentityProvider,
    ServiceAccount,
    SsoDomain,
    SsoGroupMapping,
    User,
    WorkspaceRoleGrant,
)
from accounts.services import membership_add, membership_change_role, membership_remove
from accounts.views import AdminSignInForm
from billing import entitlements
from billing import selectors as billing_selectors
from billing.models import Door
from billing.plans import CONTRACT_LIMITS, PLANS, contract_limits_problems
from tenants.admin import WorkspaceScopedAdmin
from tenants.models import Account, Workspace


class AccountAdminForm(forms.ModelForm):
    class Meta:
        model = Account
        fields = ("name", "handle", "plan", "plan_limits", "settings")
        help_texts = {
            "plan_limits": (
                "Contract limits of a plan that is not self-serve (Enterprise), e.g. "
                '{"max_seats": 250, "max_workspaces": 10}. Keys: ' + ", ".join(CONTRACT_LIMITS) + "; "
                "a key left out keeps the plan's figure; null is unlimited."
            )
        }

    def clean_plan(self):
        plan = self.cleaned_data["plan"]
        if plan not in PLANS:
            raise forms.ValidationError(f"Unknown plan; choose one of {', '.join(PLANS)}.")
        return plan

    def clean_plan_limits(self):
        limits = self.cleaned_data.get("plan_limits")
        if limits in (None, ""):
            return {}
        problems = contract_limits_problems(limits)
        if problems:
            raise forms.ValidationError(" ".join(problems))
        return limits

    def clean(self):
        cleaned = super().clean()
        plan, limits = cleaned.get("plan"), cleaned.get("plan_limits")
        if plan is None or limits is None:
            return cleaned
        if limits and PLANS[plan].self_serve:
            self.add_error(
                "plan_limits", f"The {PLANS[plan].name} plan is self-serve: its limits are the plan's own."
            )
            return cleaned
        account = self.instance
        if not account._state.adding:
            stored = Account.objects.get(pk=account.pk)
            if plan != stored.plan or limits != stored.plan_limits:
                # An operator's change is refused like a customer's when the account does not fit.
                problems = billing_selectors.plan_change_problems(account, plan, limits=limits)
                if problems:
                    self.add_error("plan_limits" if plan == stored.plan else "plan", " ".join(problems))
        return cleaned


class WorkspaceInline(admin.TabularInline):
    model = Workspace
    extra = 0
    fields = ("name", "handle", "description", "created")
    readonly_fields = ("created",)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    form = AccountAdminForm
    list_display = ("name", "handle", "plan", "billing_status", "id", "created")
    list_filter = ("plan", "billing_status")
    search_fields = ("name", "handle", "id")
    readonly_fields = ("id", "billing_status", "billing_status_since", "created", "updated")
    inlines = [WorkspaceInline]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "handle", "account", "id", "created")
    search_fields = ("name", "handle", "id", "account__name", "account__handle")
    list_select_related = ("account",)
    readonly_fields = ("id", "created", "updated")
    autocomplete_fields = ("account",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "first_name", "last_name", "is_active", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("email", "first_name", "last_name", "id")
    readonly_fields = ("id", "date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("Name", {"fields": ("first_name", "last_name")}),
        (
            "Platform operator",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class AccountMembershipAdminForm(forms.ModelForm):
    class Meta:
        model = AccountMembership
        fields = ("user", "account", "role")

    def clean(self):
        cleaned = super().clean()
        account, user = cleaned.get("account"), cleaned.get("user")
        if self.instance._state.adding and account is not None and user is not None and user.is_active:
            decision = entitlements.check_seat(account)
            if not decision:
                raise forms.ValidationError(decision.reason)
        return cleaned


@admin.register(AccountMembership)
class AccountMembershipAdmin(admin.ModelAdmin):
    """An operator's door: adding and removing members goes through the services, so the seat is
    checked and recorded in the seat ledger (door "operator")."""

    form = AccountMembershipAdminForm
    list_display = ("user", "account", "role", "created")
    list_filter = ("role",)
    search_fields = ("user__email", "account__name", "account__handle")
    list_select_related = ("user", "account")
    autocomplete_fields = ("user", "account")

    def save_model(self, request, obj, form, change):
        if change:
            membership_change_role(membership=obj, role=obj.role, actor=request.user)
            return
        created = membership_add(
            account=obj.account, user=obj.user, role=obj.role, actor=request.user, door=Door.OPERATOR
        )
        obj.pk = created.pk

    def delete_model(self, request, obj):
        membership_remove(membership=obj, actor=request.user, door=Door.OPERATOR)

    def delete_queryset(self, request, queryset):
        for membership in queryset:
            self.delete_model(request, membership)


@admin.register(ServiceAccount)
class ServiceAccountAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "account_role", "created")
    search_fields = ("name", "account__name", "account__handle", "id")
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    readonly_fields = ("id", "created", "updated", "created_by")


@admin.register(WorkspaceRoleGrant)
class WorkspaceRoleGrantAdmin(WorkspaceScopedAdmin):
    list_display = ("workspace", "role", "user", "service_account", "created")
    list_filter = ("role",)
    search_fields = ("workspace__name", "workspace__handle", "user__email", "service_account__name")
    list_select_related = ("workspace__account", "user", "service_account")
    autocomplete_fields = ("workspace", "user", "service_account")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are minted through the API or ``bootstrap``; operators may inspect and revoke them."""

    list_display = (
        "name",
        "display",
        "user",
        "service_account",
        "created",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = ("prefix",)
    search_fields = ("name", "lookup_id", "user__email", "service_account__name")
    list_select_related = ("user", "service_account")
    readonly_fields = [f.name for f in ApiKey._meta.fields if f.name != "secret_hash"]
    exclude = ("secret_hash",)
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):

        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(key=key, actor=request.user)


@admin.register(IdentityProvider)
class IdentityProviderAdmin(admin.ModelAdmin):
    """Read-only for platform operators: accounts change their IdPs through the account API (which
    validates and audits). The encrypted secret is never shown."""

    list_display = ("name", "kind", "account", "enabled", "allow_idp_initiated", "updated")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "account__name", "account__handle", "id")
    list_select_related = ("account",)
    exclude = ("secret_encrypted",)
    readonly_fields = [f.name for f in IdentityProvider._meta.fields if f.name != "secret_encrypted"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SsoDomain)
class SsoDomainAdmin(admin.ModelAdmin):
    list_display = ("domain", "account", "verified_at", "last_checked_at")
    search_fields = ("domain", "account__name", "account__handle")
    list_select_related = ("account",)
    readonly_fields = [f.name for f in SsoDomain._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SsoGroupMapping)
class SsoGroupMappingAdmin(admin.ModelAdmin):
    list_display = ("group", "account", "team", "workspace", "workspace_role", "custom_role")
    search_fields = ("group", "account__name", "account__handle")
    list_select_related = ("account", "team", "workspace", "custom_role")
    readonly_fields = [f.name for f in SsoGroupMapping._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# The admin's password sign-in is under SSO enforcement too (break-glass for Owners).
admin.site.login_form = AdminSignInForm
