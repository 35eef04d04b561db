from __future__ import annotations

from django.contrib import admin

from tenants.models import Account, Workspace


class WorkspaceInline(admin.TabularInline):
    model = Workspace
    extra = 0
    fields = ("name", "handle", "description", "created")
    readonly_fields = ("created",)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "handle", "plan", "id", "created")
    list_filter = ("plan",)
    search_fields = ("name", "handle", "id")
    readonly_fields = ("id", "created", "updated")
    inlines = [WorkspaceInline]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "handle", "account", "id", "created")
    search_fields = ("name", "handle", "id", "account__name", "account__handle")
    list_select_related = ("account",)
    readonly_fields = ("id", "created", "updated")
    autocomplete_fields = ("account",)


class WorkspaceScopedAdmin(admin.ModelAdmin):
    """Operator admin for workspace-owned rows: operators see every tenant, explicitly."""

    def get_queryset(self, request):
        return self.model.objects.unscoped()
