from __future__ import annotations

from django.contrib import admin

from audit.models import AuditLogEntry


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    list_display = ("occurred", "api_name", "actor_label", "target_label", "account", "workspace", "ip")
    list_filter = ("api_name", "actor_kind")
    search_fields = ("api_name", "actor_label", "target_label", "target_id", "request_id", "account_ref")
    list_select_related = ("account", "workspace")
    date_hierarchy = "occurred"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
