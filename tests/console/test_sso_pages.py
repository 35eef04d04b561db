"""The console's Single sign-on pages: domains verified against a real local DNS server, identity
providers (SAML from pasted metadata, OIDC with a discovery check against a local HTTP server and an
unreachable issuer), enforcement and its lock-out guard, under the permission table and the plan."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from accounts.models import IdentityProvider, SsoDomain, SsoGroupMapping, Team
from accounts.sso.providers import provider_create
from accounts.sso.saml import sp_urls
from accounts.sso.selectors import group_mapping_targets
from audit.actors import SYSTEM
from tests.accounts.test_sso_domains import local_dns  # noqa: F401  (the fixture: a real DNS server)
from tests.accounts.test_sso_providers import certificate_pem, oidc_body, saml_body
from tests.console.conftest import audited, make_org, session, steady_query_count

pytestmark = pytest.mark.django_db


def html(response) -> str:
    return response.content.decode()


def metadata_xml(certificate: str) -> str:
    body = "".join(line for line in certificate.strip().splitlines() if "CERTIFICATE" not in line)
    return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.corp.example/metadata">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="https://idp.corp.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""


SAML_FORM = {"kind": "saml", "name": "Corp IdP", "enabled": "on", "want_signed": "assertion"}


class TestDomains:
    def test_claim_shows_the_txt_record_and_verify_says_what_it_found(self, org, local_dns):  # noqa: F811
        browser = session(org.admin)
        assert browser.post(org.url("sso/"), {"domain": "Corp.Example"}).status_code == 302
        domain = SsoDomain.objects.get(account=org.account, domain="corp.example")
        page = html(browser.get(org.url("sso/")))
        assert "_cp-sso-verification.corp.example" in page and f"cp-sso-verification={domain.token}" in page
        assert 'data-copy="txt-' in page
        assert len(audited(org.account, "sso.domain-claimed")) == 1

        missing = browser.post(org.url(f"sso/domains/{domain.pk}/verify"))
        assert missing.status_code == 422
        assert "Not verified: _cp-sso-verification.corp.example does not exist in DNS." in html(missing)

        local_dns.records["_cp-sso-verification.corp.example"] = [f"cp-sso-verification={domain.token}"]
        found = browser.post(org.url(f"sso/domains/{domain.pk}/verify"), follow=True)
        assert "corp.example is verified" in html(found)
        domain.refresh_from_db()
        assert domain.verified_at is not None
        assert len(audited(org.account, "sso.domain-verified")) == 1

    def test_a_bad_domain_is_refused_inline_with_the_services_words(self, org):
        response = session(org.admin).post(org.url("sso/"), {"domain": "not a domain"})
        assert response.status_code == 422
        assert "&#x27;not a domain&#x27; is not a valid domain name." in html(response)
        assert not SsoDomain.objects.filter(account=org.account).exists()

    def test_remove_asks_first(self, org):
        domain = SsoDomain.objects.create(account=org.account, domain="corp.example", token="t")
        browser = session(org.admin)
        confirm = browser.get(org.url(f"sso/domains/{domain.pk}/remove"))
        assert "Remove the domain corp.example?" in html(confirm)
        assert SsoDomain.objects.filter(pk=domain.pk).exists()
        assert browser.post(org.url(f"sso/domains/{domain.pk}/remove")).status_code == 302
        assert not SsoDomain.objects.filter(pk=domain.pk).exists()
        assert len(audited(org.account, "sso.domain-removed")) == 1


class TestSamlProviders:
    def test_create_from_pasted_metadata_and_show_what_to_give_the_idp(self, org):
        browser = session(org.admin)
        response = browser.post(
            org.url("sso/providers/new"), {**SAML_FORM, "metadata_xml": metadata_xml(certificate_pem())}
        )
        assert response.status_code == 302, html(response)[:3000]
        provider = IdentityProvider.objects.get(account=org.account, name="Corp IdP")
        assert provider.config["entity_id"] == "https://idp.corp.example/metadata"
        assert provider.config["sso_url"] == "https://idp.corp.example/sso"
        assert len(provider.config["x509_certificates"]) == 1
        [event] = audited(org.account, "sso.identity-provider-created")
        assert event.payload["after"]["name"] == "Corp IdP"
        page = html(browser.get(response["Location"]))
        urls = sp_urls(provider)
        for value in (urls["metadata_url"], urls["acs_url"], urls["entity_id"]):
            assert value in page
        assert "BEGIN CERTIFICATE" in page and 'data-copy="sp-certificate"' in page

    def test_a_pasted_certificate_without_metadata(self, org):
        response = session(org.admin).post(
            org.url("sso/providers/new"),
            {
                **SAML_FORM,
                "entity_id": "https://idp.example/e",
                "sso_url": "https://idp.example/sso",
                "certificates": certificate_pem(),
            },
        )
        assert response.status_code == 302
        assert IdentityProvider.objects.get(name="Corp IdP").config["entity_id"] == "https://idp.example/e"

    @pytest.mark.parametrize(
        ("fields", "said"),
        [
            ({}, "entity_id is required."),
            (
                {"entity_id": "e", "sso_url": "ftp://x", "certificates": "x"},
                "sso_url must be an http(s) URL.",
            ),
            ({"metadata_xml": "<not-metadata/>"}, "The metadata names no IdP entity_id"),
            ({"metadata_xml": "not xml"}, "could not be read as SAML metadata XML"),
            (
                {"entity_id": "e", "sso_url": "https://idp.example/sso", "certificates": "garbage"},
                "An x509 certificate could not be read",
            ),
        ],
    )
    def test_the_services_refusal_is_shown_inline(self, org, fields, said):
        response = session(org.admin).post(org.url("sso/providers/new"), {**SAML_FORM, **fields})
        assert response.status_code == 422 and said in html(response)
        assert 'role="alert"' in html(response)
        assert not IdentityProvider.objects.filter(account=org.account).exists()

    def test_edit_and_delete_with_a_confirmation(self, org):
        provider = provider_create(account=org.account, body=saml_body(), actor=SYSTEM)
        browser = session(org.admin)
        form = html(browser.get(org.url(f"sso/providers/{provider.pk}/")))
        assert 'value="http://www.okta.com/exk1"' in form
        saved = browser.post(
            org.url(f"sso/providers/{provider.pk}/"),
            {
                **SAML_FORM,
                "name": "Okta EU",
                "entity_id": "http://www.okta.com/exk1",
                "sso_url": "https://corp.okta.example/app/sso/saml",
                "certificates": provider.config["x509_certificates"][0],
            },
        )
        assert saved.status_code == 302
        provider.refresh_from_db()
        assert provider.name == "Okta EU"
        [event] = audited(org.account, "sso.identity-provider-updated")
        assert event.payload["before"]["name"] == "Okta" and event.payload["after"]["name"] == "Okta EU"
        confirm = browser.get(org.url(f"sso/providers/{provider.pk}/delete"))
        assert "Delete the identity provider Okta EU?" in html(confirm)
        assert browser.post(org.url(f"sso/providers/{provider.pk}/delete")).status_code == 302
        assert not IdentityProvider.objects.filter(pk=provider.pk).exists()
        assert len(audited(org.account, "sso.identity-provider-deleted")) == 1


class _Discovery(BaseHTTPRequestHandler):
    document: dict = {}

    def do_GET(self):  # noqa: N802
        if self.path != "/.well-known/openid-configuration":
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(self.server.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def issuer():
    """A local issuer answering its discovery document (``server.document``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    server.document = {
        "issuer": url,
        "authorization_endpoint": f"{url}/auth",
        "token_endpoint": f"{url}/token",
        "jwks_uri": f"{url}/jwks",
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, url
    server.shutdown()
    server.server_close()


OIDC_FORM = {"kind": "oidc", "name": "Entra", "enabled": "on", "client_id": "abc", "scopes": "openid email"}


class TestOidcProviders:
    def test_create_then_the_discovery_check_says_what_it_found(self, org, issuer):
        server, url = issuer
        browser = session(org.admin)
        response = browser.post(
            org.url("sso/providers/new"), {**OIDC_FORM, "issuer": url, "client_secret": "s3cret"}
        )
        assert response.status_code == 302, html(response)[:3000]
        provider = IdentityProvider.objects.get(account=org.account, name="Entra")
        assert provider.config["scopes"] == ["openid", "email"]
        page = html(browser.get(response["Location"]))
        assert f"/sso/oidc/{provider.pk}/callback" in page and "s3cret" not in page
        ok = browser.post(org.url(f"sso/providers/{provider.pk}/discovery"))
        assert ok.status_code == 200 and "Discovery works." in html(ok) and f"{url}/token" in html(ok)

        server.document = {**server.document, "issuer": "https://elsewhere.example"}
        wrong = browser.post(org.url(f"sso/providers/{provider.pk}/discovery"))
        assert wrong.status_code == 422
        assert "names the issuer &#x27;https://elsewhere.example&#x27;" in html(wrong)
        assert not audited(org.account, "sso.identity-provider-updated")  # a check changes nothing

    def test_an_unreachable_issuer_fails_the_check(self, org):
        provider = provider_create(
            account=org.account, body=oidc_body(issuer="http://127.0.0.1:9/tenant"), actor=SYSTEM
        )
        response = session(org.admin).post(org.url(f"sso/providers/{provider.pk}/discovery"))
        assert response.status_code == 422
        assert "Discovery failed." in html(response) and "could not be reached" in html(response)

    def test_the_client_secret_is_required_on_create_and_kept_when_left_empty(self, org):
        browser = session(org.admin)
        missing = browser.post(org.url("sso/providers/new"), {**OIDC_FORM, "issuer": "https://idp.example"})
        assert missing.status_code == 422 and "client_secret is required." in html(missing)
        provider = provider_create(account=org.account, body=oidc_body(), actor=SYSTEM)
        secret = provider.secret_encrypted
        form = html(browser.get(org.url(f"sso/providers/{provider.pk}/")))
        assert "leave empty to keep it" in form and "s3cret-value" not in form
        browser.post(
            org.url(f"sso/providers/{provider.pk}/"),
            {**OIDC_FORM, "name": "Entra", "issuer": "https://login.example/tenant/v2.0"},
        )
        provider.refresh_from_db()
        assert provider.secret_encrypted == secret and provider.config["scopes"] == ["openid", "email"]


class TestEnforcement:
    def test_the_lock_out_guard_refuses_inline_then_enforcement_goes_on(self, org):
        browser = session(org.owner)
        refused = browser.post(org.url("sso/enforcement"), {"enforce_sso": "on"})
        assert refused.status_code == 422
        assert "Add and enable an identity provider before enforcing single sign-on." in html(refused)
        provider_create(account=org.account, body=saml_body(), actor=SYSTEM)
        refused = browser.post(org.url("sso/enforcement"), {"enforce_sso": "on"})
        assert "Verify a domain before enforcing single sign-on." in html(refused)
        assert not audited(org.account, "sso.enforcement-changed")

        SsoDomain.objects.create(
            account=org.account, domain="corp.example", token="t", verified_at="2026-01-01T00:00Z"
        )
        assert browser.post(org.url("sso/enforcement"), {"enforce_sso": "on"}).status_code == 302
        org.account.refresh_from_db()
        assert org.account.settings["enforce_sso"] is True
        [event] = audited(org.account, "sso.enforcement-changed")
        assert event.payload["state"] == "on"
        assert "Stop enforcing single sign-on" in html(browser.get(org.url("sso/")))

    def test_an_empty_choice_changes_nothing(self, org):
        response = session(org.owner).post(org.url("sso/enforcement"), {})
        assert response.status_code == 422 and "Choose on or off." in html(response)
        assert not audited(org.account, "account.settings-changed")


class TestAccess:
    def test_a_member_reads_but_sees_no_controls_and_is_refused_edits(self, org):
        provider = provider_create(account=org.account, body=saml_body(), actor=SYSTEM)
        domain = SsoDomain.objects.create(account=org.account, domain="corp.example", token="t")
        browser = session(org.member)
        page = html(browser.get(org.url("sso/")))
        assert "corp.example" in page and "Okta" in page and sp_urls(provider)["acs_url"] in page
        for control in ("Claim domain", "Verify", "Edit", "Delete", "Add a SAML", "Enforce single sign-on"):
            assert control not in page
        assert browser.get(org.url(f"sso/providers/{provider.pk}/")).status_code == 403
        assert browser.get(org.url("sso/providers/new?kind=saml")).status_code == 403
        assert browser.post(org.url("sso/"), {"domain": "evil.example"}).status_code == 403
        assert browser.post(org.url(f"sso/domains/{domain.pk}/remove")).status_code == 403
        assert browser.post(org.url("sso/enforcement"), {"enforce_sso": "on"}).status_code == 403
        assert not SsoDomain.objects.filter(domain="evil.example").exists()
        assert SsoDomain.objects.filter(pk=domain.pk).exists()

    def test_owner_and_admin_see_the_controls(self, org):
        for person in (org.owner, org.admin):
            page = html(session(person).get(org.url("sso/")))
            assert "Claim domain" in page and "Add a SAML 2.0 identity provider" in page
            assert "Enforce single sign-on" in page

    def test_another_accounts_objects_are_404(self, org):
        other = make_org()
        provider = provider_create(account=other.account, body=saml_body(), actor=SYSTEM)
        domain = SsoDomain.objects.create(account=other.account, domain="corp.example", token="t")
        browser = session(org.admin)
        assert browser.get(org.url(f"sso/providers/{provider.pk}/")).status_code == 404
        assert browser.post(org.url(f"sso/providers/{provider.pk}/delete")).status_code == 404
        assert browser.post(org.url(f"sso/providers/{provider.pk}/discovery")).status_code == 404
        assert browser.post(org.url(f"sso/domains/{domain.pk}/verify")).status_code == 404
        assert browser.post(org.url(f"sso/domains/{domain.pk}/remove")).status_code == 404
        assert browser.get(other.url("sso/")).status_code == 404
        assert IdentityProvider.objects.filter(pk=provider.pk).exists()
        assert SsoDomain.objects.filter(pk=domain.pk).exists()

    def test_a_team_plan_shows_no_sso_and_refuses_with_the_plans_words(self, db):
        org = make_org(plan="team")
        browser = session(org.owner)
        assert "Single sign-on" not in html(browser.get(org.url("members/")))
        page = html(browser.get(org.url("sso/")))
        assert "has no single sign-on" in page and "Claim domain" not in page
        refused = browser.post(org.url("sso/"), {"domain": "corp.example"})
        assert refused.status_code == 422 and "plan" in html(refused).lower()
        idp = browser.post(
            org.url("sso/providers/new"), {**SAML_FORM, "metadata_xml": metadata_xml(certificate_pem())}
        )
        assert idp.status_code == 422 and "The Team plan does not include sso." in html(idp)
        assert not SsoDomain.objects.filter(account=org.account).exists()
        assert not IdentityProvider.objects.filter(account=org.account).exists()

    def test_enterprise_nav_lists_both_pages(self, org):
        page = html(session(org.admin).get(org.url("members/")))
        assert org.url("sso/") in page and org.url("scim/") in page


def test_no_per_row_queries(org):
    browser = session(org.admin)
    few = steady_query_count(browser, org.url("sso/"))
    team = Team.objects.create(account=org.account, name="Engineers")
    for n in range(5):
        SsoDomain.objects.create(account=org.account, domain=f"d{n}.example", token=f"t{n}")
        provider_create(account=org.account, body=saml_body(name=f"saml-{n}"), actor=SYSTEM)
        provider_create(account=org.account, body=oidc_body(name=f"oidc-{n}"), actor=SYSTEM)
        SsoGroupMapping.objects.create(account=org.account, group=f"g{n}", team=team)
        SsoGroupMapping.objects.create(
            account=org.account, group=f"w{n}", workspace=org.tenant.workspace, workspace_role="developer"
        )
    assert steady_query_count(browser, org.url("sso/")) == few


class TestGroupMappings:
    def test_map_groups_to_a_team_and_a_workspace_role_then_remove_one(self, org):
        team = Team.objects.create(account=org.account, name="Engineers")
        browser = session(org.admin)
        page = html(browser.get(org.url("sso/")))
        assert f'value="team:{team.pk}"' in page and f'value="workspace:{org.tenant.workspace.pk}"' in page
        assert (
            browser.post(
                org.url("sso/group-mappings"), {"group": "eng", "target": f"team:{team.pk}"}
            ).status_code
            == 302
        )
        developer = next(
            r for r in group_mapping_targets(account=org.account)["roles"] if r.builtin == "developer"
        )
        response = browser.post(
            org.url("sso/group-mappings"),
            {
                "group": "ops",
                "target": f"workspace:{org.tenant.workspace.pk}",
                "workspace_role_id": str(developer.id),
            },
        )
        assert response.status_code == 302
        mappings = {m.group: m for m in SsoGroupMapping.objects.filter(account=org.account)}
        assert mappings["eng"].team_id == team.pk
        assert (
            mappings["ops"].workspace_id == org.tenant.workspace.pk
            and mappings["ops"].workspace_role == "developer"
        )
        assert len(audited(org.account, "sso.group-mappings-changed")) == 2
        page = html(browser.get(org.url("sso/")))
        assert "Team Engineers" in page and f"Developer in {org.tenant.workspace.name}" in page

        confirm = browser.get(org.url(f"sso/group-mappings/{mappings['eng'].pk}/remove"))
        assert "Remove the mapping of the group eng?" in html(confirm)
        assert browser.post(org.url(f"sso/group-mappings/{mappings['eng'].pk}/remove")).status_code == 302
        assert list(SsoGroupMapping.objects.filter(account=org.account).values_list("group", flat=True)) == [
            "ops"
        ]
        changes = audited(org.account, "sso.group-mappings-changed")
        assert sorted((len(e.payload["before"]), len(e.payload["after"])) for e in changes) == [
            (0, 1),
            (1, 2),
            (2, 1),
        ]

    def test_the_services_refusal_is_shown_inline(self, org):
        other_team = Team.objects.create(account=make_org().account, name="Theirs")
        browser = session(org.admin)
        response = browser.post(
            org.url("sso/group-mappings"), {"group": "eng", "target": f"team:{other_team.pk}"}
        )
        assert response.status_code == 422
        assert "mappings[0].team_id is not a team of this account." in html(response)
        nothing = browser.post(org.url("sso/group-mappings"), {"group": "eng"})
        assert nothing.status_code == 422 and "Choose a team or a workspace." in html(nothing)
        assert not SsoGroupMapping.objects.filter(account=org.account).exists()
        assert not audited(org.account, "sso.group-mappings-changed")

    def test_a_member_cannot_change_them(self, org):
        team = Team.objects.create(account=org.account, name="Engineers")
        mapping = SsoGroupMapping.objects.create(account=org.account, group="eng", team=team)
        browser = session(org.member)
        assert "Map group" not in html(browser.get(org.url("sso/")))
        assert (
            browser.post(
                org.url("sso/group-mappings"), {"group": "x", "target": f"team:{team.pk}"}
            ).status_code
            == 403
        )
        assert browser.post(org.url(f"sso/group-mappings/{mapping.pk}/remove")).status_code == 403
        other = make_org()
        theirs = SsoGroupMapping.objects.create(
            account=other.account, group="eng", team=Team.objects.create(account=other.account, name="T")
        )
        assert session(org.admin).post(org.url(f"sso/group-mappings/{theirs.pk}/remove")).status_code == 404
        assert SsoGroupMapping.objects.filter(pk=theirs.pk).exists()
        assert SsoGroupMapping.objects.filter(account=org.account).count() == 1


class TestSamlUploads:
    """The IdP's metadata or certificate uploaded as a file (a multipart form), beside pasting."""

    def test_the_form_takes_files(self, org):
        page = html(session(org.admin).get(org.url("sso/providers/new?kind=saml")))
        assert 'enctype="multipart/form-data"' in page
        assert 'type="file" name="metadata_file"' in page and 'type="file" name="certificate_file"' in page

    def test_create_from_an_uploaded_metadata_file(self, org):
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile(
            "idp-metadata.xml", metadata_xml(certificate_pem()).encode(), content_type="application/xml"
        )
        response = session(org.admin).post(
            org.url("sso/providers/new"), {**SAML_FORM, "metadata_file": upload}
        )
        assert response.status_code == 302, html(response)[:3000]
        provider = IdentityProvider.objects.get(account=org.account, name="Corp IdP")
        assert provider.config["entity_id"] == "https://idp.corp.example/metadata"
        assert provider.config["sso_url"] == "https://idp.corp.example/sso"
        assert len(provider.config["x509_certificates"]) == 1
        assert len(audited(org.account, "sso.identity-provider-created")) == 1

    def test_an_uploaded_file_that_is_not_metadata_is_refused_under_the_upload(self, org):
        from django.core.files.uploadedfile import SimpleUploadedFile

        browser = session(org.admin)
        response = browser.post(
            org.url("sso/providers/new"),
            {**SAML_FORM, "metadata_file": SimpleUploadedFile("m.xml", b"<not-metadata/>")},
        )
        assert response.status_code == 422
        page = html(response)
        upload_field = page[page.index('name="metadata_file"') :]
        assert "The metadata names no IdP entity_id" in upload_field[: upload_field.index('class="field"')]
        response = browser.post(
            org.url("sso/providers/new"),
            {**SAML_FORM, "metadata_file": SimpleUploadedFile("m.xml", b"\xff\xfe\x00binary")},
        )
        assert response.status_code == 422 and "The file is not text" in html(response)
        assert not IdentityProvider.objects.filter(account=org.account).exists()

    def test_an_uploaded_certificate_pem_or_der_on_a_saved_provider(self, org):
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding
        from django.core.files.uploadedfile import SimpleUploadedFile

        provider = provider_create(account=org.account, body=saml_body(), actor=SYSTEM)
        pem = certificate_pem()
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
        browser = session(org.admin)
        fields = {
            **SAML_FORM,
            "entity_id": "http://www.okta.com/exk1",
            "sso_url": "https://corp.okta.example/app/sso/saml",
        }
        for name, content in (("idp.pem", pem.encode()), ("idp.cer", der)):
            response = browser.post(
                org.url(f"sso/providers/{provider.pk}/"),
                {**fields, "certificate_file": SimpleUploadedFile(name, content)},
            )
            assert response.status_code == 302, html(response)[:3000]
            provider.refresh_from_db()
            [stored] = provider.config["x509_certificates"]
            assert x509.load_pem_x509_certificate(stored.encode()).public_bytes(Encoding.DER) == der
        response = browser.post(
            org.url(f"sso/providers/{provider.pk}/"),
            {**fields, "certificate_file": SimpleUploadedFile("x.cer", b"not a certificate")},
        )
        assert response.status_code == 422 and "The file holds no certificate" in html(response)

    def test_bad_pasted_metadata_on_a_saved_provider_is_refused_inline(self, org):
        provider = provider_create(account=org.account, body=saml_body(), actor=SYSTEM)
        response = session(org.admin).post(
            org.url(f"sso/providers/{provider.pk}/"), {**SAML_FORM, "metadata_xml": "not xml"}
        )
        assert response.status_code == 422 and "could not be read as SAML metadata XML" in html(response)
