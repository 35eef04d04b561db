"""The service-provider side of SAML 2.0 per identity provider: its entity id and endpoints, and
the metadata an account admin gives the IdP (``/sso/saml/<idp_id>/metadata``), built by python3-saml.

Each SAML identity provider gets its own entity id and ACS/SLO URLs under its id, so an assertion is
addressed to exactly one account's IdP configuration and cannot be replayed into another."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpResponse
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from accounts.models import IdentityProvider

POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
EMAIL_NAME_ID = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def sp_urls(provider: IdentityProvider) -> dict[str, str]:
    base = f"{settings.PUBLIC_URL.rstrip('/')}/sso/saml/{provider.id}"
    return {
        "entity_id": f"{base}/metadata",
        "acs_url": f"{base}/acs",
        "slo_url": f"{base}/sls",
        "metadata_url": f"{base}/metadata",
    }


def sp_settings(provider: IdentityProvider) -> dict:
    urls = sp_urls(provider)
    want = provider.config.get("want_signed", "assertion")
    return {
        "strict": True,
        "sp": {
            "entityId": urls["entity_id"],
            "assertionConsumerService": {"url": urls["acs_url"], "binding": POST_BINDING},
            "singleLogoutService": {"url": urls["slo_url"], "binding": REDIRECT_BINDING},
            "NameIDFormat": EMAIL_NAME_ID,
        },
        "security": {
            "wantAssertionsSigned": want in ("assertion", "both"),
            "wantMessagesSigned": want in ("response", "both"),
            "rejectDeprecatedAlgorithm": True,
        },
    }


def metadata(request, provider_id) -> HttpResponse:
    """The SP metadata of one SAML identity provider (public: it is what the IdP is configured with)."""
    provider = IdentityProvider.objects.filter(pk=provider_id, kind=IdentityProvider.Kind.SAML).first()
    if provider is None:
        raise Http404("No such identity provider.")
    saml_settings = OneLogin_Saml2_Settings(sp_settings(provider), sp_validation_only=True)
    xml = saml_settings.get_sp_metadata()
    errors = saml_settings.validate_metadata(xml)
    if errors:  # pragma: no cover - python3-saml built it; a failure here is a bug worth a 500
        raise RuntimeError(f"invalid SP metadata: {errors}")
    return HttpResponse(xml, content_type="application/samlmetadata+xml")
