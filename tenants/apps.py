from django.apps import AppConfig
from django.core.signals import request_finished


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: the module reads the database connections, which app loading must come
        # before.
        from tenants.rls import release_after_request

        request_finished.connect(release_after_request, dispatch_uid="tenants.rls.release_after_request")
