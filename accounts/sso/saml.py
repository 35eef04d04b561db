"""The service-provider side of SAML 2.0 per identity provider: its entity id and endpoints, and
the metadata an account admin gives the IdP (``/sso/saml/<idp_id>/metadata``), built by python3-saml.

Each SAML identity provider gets its own entity id and ACS/SLO URLs under its id, so an assertion is
addressed to exactly one account's IdP configuration and cannot be replayed into another."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.http import Http404, HttpResponse
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from accounts.models import IdentityProvider
from accounts.sso import secrets

POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
EMAIL_NAME_ID = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SP_CERTIFICATE_YEARS = 10


def sp_keypair_new(provider: IdentityProvider) -> None:
    """Give ``provider`` a fresh SP signing key (stored encrypted) and its self-signed certificate.
    The caller saves the row."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    host = urlsplit(settings.PUBLIC_URL).hostname or "controlplane"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{host} SAML SP {provider.id}"[:64])])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * SP_CERTIFICATE_YEARS))
        .sign(key, hashes.SHA256())
    )
    provider.secret_encrypted = secrets.encrypt(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    )
    provider.sp_certificate = certificate.public_bytes(serialization.Encoding.PEM).decode()


def sp_keypair(provider: IdentityProvider) -> tuple[str, str]:
    """``(private key PEM, certificate PEM)`` of the SP for this IdP, made on first use for a row
    stored without one (or whose key can no longer be decrypted)."""
    private_key = secrets.decrypt(provider.secret_encrypted)
    if not private_key or not provider.sp_certificate:
        sp_keypair_new(provider)
        provider.save(update_fields=["secret_encrypted", "sp_certificate", "updated"])
        private_key = secrets.decrypt(provider.secret_encrypted)
    return private_key, provider.sp_certificate


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
    private_key, certificate = sp_keypair(provider)
    return {
        "strict": True,
        "sp": {
            "entityId": urls["entity_id"],
            "assertionConsumerService": {"url": urls["acs_url"], "binding": POST_BINDING},
            "singleLogoutService": {"url": urls["slo_url"], "binding": REDIRECT_BINDING},
            "NameIDFormat": EMAIL_NAME_ID,
            "x509cert": certificate,
            "privateKey": private_key,
        },
        "security": {
            "wantAssertionsSigned": want in ("assertion", "both"),
            "wantMessagesSigned": want in ("response", "both"),
            # An IdP may send the NameID alone (an address is all a sign-in needs).
            "wantAttributeStatement": False,
            # Our AuthnRequests and logout messages are signed (HTTP-Redirect binding signatures), so
            # IdPs that require signed requests (as Okta does for single logout) accept them.
            "authnRequestsSigned": True,
            "logoutRequestSigned": True,
            "logoutResponseSigned": True,
            "signatureAlgorithm": RSA_SHA256,
            "digestAlgorithm": SHA256,
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
