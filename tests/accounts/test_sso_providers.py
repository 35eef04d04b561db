"""Identity providers per account: SAML and OIDC configurations, validated, pinned to the account,
with the OIDC client secret encrypted at rest and never returned."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings

from accounts.models import IdentityProvider
from accounts.sso.providers import client_secret
from audit.models import AuditLogEntry
from tests.accounts.test_account_api import add_member, client, make_org

pytestmark = pytest.mark.django_db


def certificate_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.corp.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def org():
    return make_org()


def saml_body(**extra):
    return {
        "kind": "saml",
        "name": "Okta",
        "entity_id": "http://www.okta.com/exk1",
        "sso_url": "https://corp.okta.example/app/sso/saml",
        "x509_certificates": [certificate_pem()],
        **extra,
    }


def oidc_body(**extra):
    return {
        "kind": "oidc",
        "name": "Entra",
        "issuer": "https://login.example/tenant/v2.0",
        "client_id": "abc",
        "client_secret": "s3cret-value",
        **extra,
    }


def test_saml_and_oidc_providers(org):
    c = client(org.owner_key)
    saml = c.post(f"{org.api}/sso/identity_providers", saml_body(), format="json")
    assert saml.status_code == 201, saml.content
    config = saml.json()["config"]
    assert config["want_signed"] == "assertion" and config["attribute_mapping"]["email"] == "email"
    oidc = c.post(f"{org.api}/sso/identity_providers", oidc_body(), format="json")
    assert oidc.status_code == 201, oidc.content
    assert "s3cret-value" not in oidc.content.decode() and oidc.json()["client_secret"] == "set"
    oidc_id = oidc.json()["id"]
    assert oidc.json()["config"]["single_logout"] is False
    assert oidc.json()["service_provider"] == {
        "redirect_uri": f"{settings.PUBLIC_URL.rstrip('/')}/sso/oidc/{oidc_id}/callback",
        "post_logout_redirect_uri": f"{settings.PUBLIC_URL.rstrip('/')}/sso/oidc/{oidc_id}/signed-out",
    }
    stored = IdentityProvider.objects.get(pk=oidc.json()["id"])
    assert "s3cret-value" not in stored.secret_encrypted and client_secret(stored) == "s3cret-value"
    listed = c.get(f"{org.api}/sso/identity_providers").json()
    assert {p["name"] for p in listed} == {"Okta", "Entra"} and "s3cret" not in str(listed)
    patched = c.patch(
        f"{org.api}/sso/identity_providers/{oidc.json()['id']}",
        {"client_secret": "rotated", "enabled": False},
        format="json",
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert client_secret(IdentityProvider.objects.get(pk=oidc.json()["id"])) == "rotated"
    updated = AuditLogEntry.objects.get(api_name="sso.identity-provider-updated")
    assert updated.payload["client_secret_changed"] is True and "rotated" not in str(updated.payload)
    assert c.delete(f"{org.api}/sso/identity_providers/{saml.json()['id']}").status_code == 204
    assert AuditLogEntry.objects.filter(api_name="sso.identity-provider-created").count() == 2
    assert AuditLogEntry.objects.filter(api_name="sso.identity-provider-deleted").exists()


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "ldap", "name": "x"},
        saml_body(x509_certificates=["not a certificate"]),
        saml_body(sso_url="javascript:alert(1)"),
        saml_body(want_signed="never"),
        saml_body(entity_id=""),
        oidc_body(scopes=["email"]),
        oidc_body(client_secret=""),
        {**oidc_body(), "client_secret": None},
        oidc_body(claim_mapping={"shoe": "size"}),
        oidc_body(enabled="yes"),
        oidc_body(single_logout="yes"),
    ],
)
def test_bad_configurations_are_422_and_store_nothing(org, body):
    response = client(org.owner_key).post(f"{org.api}/sso/identity_providers", body, format="json")
    assert response.status_code == 422 and response.json()["detail"]
    assert not IdentityProvider.objects.exists()


def test_pinned_to_the_account_and_gated(org):
    c = client(org.owner_key)
    provider = c.post(f"{org.api}/sso/identity_providers", saml_body(), format="json").json()
    assert c.post(f"{org.api}/sso/identity_providers", saml_body(), format="json").status_code == 409
    rival = make_org()
    theirs = client(rival.owner_key)
    assert theirs.get(f"{rival.api}/sso/identity_providers/{provider['id']}").status_code == 404
    assert (
        theirs.patch(
            f"{rival.api}/sso/identity_providers/{provider['id']}", {"enabled": False}, format="json"
        ).status_code
        == 404
    )
    assert theirs.get(f"{org.api}/sso/identity_providers").status_code == 404
    _, member_key = add_member(org)
    assert (
        client(member_key).post(f"{org.api}/sso/identity_providers", oidc_body(), format="json").status_code
        == 403
    )
    small = make_org(plan="team")
    assert (
        client(small.owner_key)
        .post(f"{small.api}/sso/identity_providers", oidc_body(), format="json")
        .status_code
        == 403
    )
    assert IdentityProvider.objects.count() == 1


def test_a_secret_under_another_key_reads_as_missing(org, settings):
    provider = (
        client(org.owner_key).post(f"{org.api}/sso/identity_providers", oidc_body(), format="json").json()
    )
    settings.SSO_SECRET_KEY = "a-different-key"
    assert client_secret(IdentityProvider.objects.get(pk=provider["id"])) is None


def test_saml_service_provider_metadata(org, settings):
    from lxml import etree

    created = (
        client(org.owner_key).post(f"{org.api}/sso/identity_providers", saml_body(), format="json").json()
    )
    sp = created["service_provider"]
    assert sp["acs_url"].endswith(f"/sso/saml/{created['id']}/acs")
    response = client(org.owner_key).get(f"/sso/saml/{created['id']}/metadata")
    assert response.status_code == 200 and response["Content-Type"] == "application/samlmetadata+xml"
    root = etree.fromstring(response.content)
    ns = {"md": "urn:oasis:names:tc:SAML:2.0:metadata"}
    assert root.get("entityID") == sp["entity_id"]
    acs = root.find(".//md:AssertionConsumerService", ns)
    assert acs.get("Location") == sp["acs_url"] and acs.get("Binding").endswith("HTTP-POST")
    assert root.find(".//md:SPSSODescriptor", ns).get("WantAssertionsSigned") == "true"
    import uuid

    assert client(org.owner_key).get(f"/sso/saml/{uuid.uuid4()}/metadata").status_code == 404
