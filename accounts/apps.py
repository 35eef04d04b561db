from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import authcache
        from accounts.api_keys import schema  # noqa: F401  (registers the OpenAPI auth extension)

        authcache.connect_signals()
