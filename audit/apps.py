from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers every audit event type once, at startup, after the app registry is ready (the
        # auditlog registrations look models up).
        from audit import (
            auditlog_registry,  # noqa: F401
            events,  # noqa: F401
        )
