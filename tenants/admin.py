"""Admin bases for tenant-owned rows. The Account and Workspace admin pages themselves are registered
by ``accounts.admin`` (an account's plan is checked against the billing catalogue there)."""

from __future__ import annotations

from django.contrib import admin


class WorkspaceScopedAdmin(admin.ModelAdmin):
    """Operator admin for workspace-owned rows: operators see every tenant, explicitly."""

    def get_queryset(self, request):
        return self.model.objects.unscoped()
