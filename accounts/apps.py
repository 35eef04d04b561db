from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported once the app registry is ready (Django's app loading imports this module first):
        # the signal receivers and the key memo's wiring import models.
        from django.conf import settings
        from onelogin.saml2.constants import OneLogin_Saml2_Constants

        from accounts import (
            authcache,
            signals,  # noqa: F401  (sign-ins, sign-outs and failed sign-ins as audit events)
        )

        authcache.connect_signals()
        # python3-saml reads its clock-skew allowance for NotBefore/NotOnOrAfter from this constant.
        OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT = settings.SSO_CLOCK_SKEW_SECONDS
