"""Single sign-on: the account's email domains (the TXT record to publish, a verify button that says
what DNS answered), its identity providers (SAML: this product's metadata URL, ACS and entity id to
copy, the IdP's metadata XML or certificate pasted in or uploaded as a file; OIDC: issuer, client id and secret, a
discovery check; a "test sign-in" that runs the IdP's real flow and shows what it sent and what a
sign-in would make of it, signing nobody in), the group mappings, and SSO enforcement with the lock-out guard's refusal shown
inline. The same selectors, services and audit events as ``sso/`` and ``settings`` of the account
API, under the same permissions (reading needs ``read:sso``, every change ``administrate:sso``,
enforcement ``update:account`` as the settings route)."""

from __future__ import annotations

import json
import re

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect

from accounts import rbac
from accounts.models import IdentityProvider, SsoDomain
from accounts.sso import domains
from accounts.sso.backends import oidc_post_logout_redirect_uri, oidc_redirect_uri
from accounts.sso.discovery import oidc_discovery_check
from accounts.sso.mappings import group_mappings_list, group_mappings_set, mapping_wire, role_of_mapping
from accounts.sso.providers import (
    OIDC_CLAIMS,
    SAML_ATTRIBUTES,
    provider_create,
    provider_delete,
    provider_update,
    saml_metadata_read,
)
from accounts.sso.saml import sp_keypair, sp_urls
from accounts.sso.selectors import (
    group_mapping_targets,
    identity_provider_get,
    identity_provider_list,
    sso_domain_get,
    sso_domain_list,
)
from accounts.sso.tester import sso_test_result
from accounts.sso.views import sso_test_start
from audit.context import client_ip
from billing.entitlements import ensure_feature, plan_for
from console.pages.base import Confirmation, ConfirmedActionPage, ConsolePage, error_message
from core.errors import AppError

_MAPPING_FIELDS = ("email", "first_name", "last_name", "groups")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
#: The largest metadata or certificate file taken (an IdP's metadata is a few kilobytes).
MAX_UPLOAD_BYTES = 1024 * 1024


def _uploaded_bytes(upload) -> bytes:
    if upload.size > MAX_UPLOAD_BYTES:
        raise forms.ValidationError("The file is larger than 1 MiB.", code="too_large")
    return upload.read()


def _uploaded_text(upload) -> str:
    try:
        return _uploaded_bytes(upload).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise forms.ValidationError("The file is not text (UTF-8 XML).", code="not_text") from None


def _uploaded_certificates(upload) -> list[str]:
    """The PEM certificates of an uploaded file: PEM text (one or more), or one DER certificate."""
    data = _uploaded_bytes(upload)
    found = _PEM.findall(data.decode("latin-1"))
    if found:
        return found
    try:
        certificate = x509.load_der_x509_certificate(data)
    except ValueError:
        raise forms.ValidationError(
            "The file holds no certificate (PEM or DER).", code="no_certificate"
        ) from None
    return [certificate.public_bytes(Encoding.PEM).decode().strip()]


def shown_value(value) -> str | None:
    """A value an IdP sent, as one line of text (a list joined, an object as JSON)."""
    if value is None:
        return None
    if isinstance(value, list):
        return ", ".join(shown_value(v) or "" for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def shown_pairs(values: dict | None) -> list[tuple[str, str | None]]:
    return [(str(name), shown_value(value)) for name, value in (values or {}).items()]


def domain_or_404(account, domain_id) -> SsoDomain:
    found = sso_domain_get(account=account, domain_id=domain_id)
    if found is None:
        raise Http404("Not Found")
    return found


def provider_or_404(account, provider_id) -> IdentityProvider:
    found = identity_provider_get(account=account, provider_id=provider_id)
    if found is None:
        raise Http404("Not Found")
    return found


def service_provider_facts(provider: IdentityProvider) -> list[dict]:
    """What the IdP is given about this product's side: label, value and the id its copy button
    copies from."""
    if provider.kind == IdentityProvider.Kind.SAML:
        urls = sp_urls(provider)
        facts = [
            ("SP metadata URL", urls["metadata_url"]),
            ("Entity id (audience)", urls["entity_id"]),
            ("ACS URL (reply URL)", urls["acs_url"]),
            ("Single logout URL", urls["slo_url"]),
        ]
    else:
        facts = [
            ("Redirect URI", oidc_redirect_uri(provider)),
            ("Post-logout redirect URI", oidc_post_logout_redirect_uri(provider)),
        ]
    return [
        {"label": label, "value": value, "copy_id": f"sp-{provider.pk}-{n}"}
        for n, (label, value) in enumerate(facts)
    ]


class DomainForm(forms.Form):
    domain = forms.CharField(label="Domain", max_length=253, help_text="such as example.com")


class _ProviderForm(forms.Form):
    """What both kinds share: the name, the switch, and (last) the names under which the IdP sends
    the email, first and last name and groups (empty: the default)."""

    name = forms.CharField(label="Name", max_length=200)
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    mapping_word: str

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key in _MAPPING_FIELDS:
            label = f"{key.replace('_', ' ').capitalize()} {self.mapping_word}"
            self.fields[f"{key}_attribute"] = forms.CharField(label=label, required=False, max_length=255)


class SamlProviderForm(_ProviderForm):
    metadata_xml = forms.CharField(
        label="IdP metadata XML (fills the fields below that are left empty)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    metadata_file = forms.FileField(label="Or upload the IdP metadata XML file", required=False)
    entity_id = forms.CharField(label="IdP entity id", required=False, max_length=1024)
    sso_url = forms.CharField(label="IdP single sign-on URL", required=False, max_length=2048)
    slo_url = forms.CharField(label="IdP single logout URL (optional)", required=False, max_length=2048)
    certificates = forms.CharField(
        label="IdP signing certificate(s), PEM",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    certificate_file = forms.FileField(label="Or upload the certificate file (PEM or DER)", required=False)
    want_signed = forms.ChoiceField(
        label="Must be signed",
        choices=(("assertion", "The assertion"), ("response", "The response"), ("both", "Both")),
        initial="assertion",
    )
    allow_idp_initiated = forms.BooleanField(label="Allow IdP-initiated sign-in", required=False)

    kind = IdentityProvider.Kind.SAML
    mapping_key, mapping_defaults, mapping_word = "attribute_mapping", SAML_ATTRIBUTES, "attribute"
    # The service's words name its keys; the form shows them under these fields.
    error_fields = {
        "name": "name",
        "entity_id": "entity_id",
        "sso_url": "sso_url",
        "slo_url": "slo_url",
        "x509_certificates": "certificates",
        "An x509 certificate": "certificates",
        "The metadata": "metadata_xml",
        "want_signed": "want_signed",
    }

    def clean_metadata_file(self) -> str:
        upload = self.cleaned_data.get("metadata_file")
        return _uploaded_text(upload) if upload else ""

    def clean_certificate_file(self) -> list[str]:
        upload = self.cleaned_data.get("certificate_file")
        return _uploaded_certificates(upload) if upload else []

    def body(self) -> dict:
        data = self.cleaned_data
        metadata = data["metadata_xml"].strip() or data["metadata_file"].strip()
        if not data["metadata_xml"].strip() and metadata:
            # A refusal of the uploaded metadata is shown under the upload.
            self.error_fields = {**self.error_fields, "The metadata": "metadata_file"}
        found = saml_metadata_read(metadata) if metadata else {}
        text = data["certificates"].strip()
        certificates = _PEM.findall(text) or ([text] if text else []) or data["certificate_file"]
        return {
            "kind": self.kind,
            "name": data["name"],
            "enabled": data["enabled"],
            "allow_idp_initiated": data["allow_idp_initiated"],
            "entity_id": data["entity_id"].strip() or found.get("entity_id", ""),
            "sso_url": data["sso_url"].strip() or found.get("sso_url", ""),
            "slo_url": data["slo_url"].strip() or found.get("slo_url"),
            "x509_certificates": certificates or found.get("x509_certificates") or [],
            "want_signed": data["want_signed"],
            **_mapping_body(self),
        }

    @classmethod
    def initial_of(cls, provider: IdentityProvider) -> dict:
        config = provider.config or {}
        return {
            "name": provider.name,
            "enabled": provider.enabled,
            "allow_idp_initiated": provider.allow_idp_initiated,
            "entity_id": config.get("entity_id", ""),
            "sso_url": config.get("sso_url", ""),
            "slo_url": config.get("slo_url") or "",
            "certificates": "\n".join(config.get("x509_certificates") or []),
            "want_signed": config.get("want_signed", "assertion"),
            **_mapping_initial(cls, config),
        }


class OidcProviderForm(_ProviderForm):
    issuer = forms.CharField(label="Issuer URL", required=False, max_length=2048)
    client_id = forms.CharField(label="Client id", required=False, max_length=255)
    client_secret = forms.CharField(
        label="Client secret",
        required=False,
        widget=forms.PasswordInput(render_value=False),
    )
    scopes = forms.CharField(label="Scopes", required=False, initial="openid email profile", max_length=1024)
    single_logout = forms.BooleanField(
        label="Signing out here also signs out at the provider", required=False
    )

    kind = IdentityProvider.Kind.OIDC
    mapping_key, mapping_defaults, mapping_word = "claim_mapping", OIDC_CLAIMS, "claim"
    error_fields = {
        "name": "name",
        "issuer": "issuer",
        "client_id": "client_id",
        "client_secret": "client_secret",
        "scopes": "scopes",
    }

    def body(self) -> dict:
        data = self.cleaned_data
        body = {
            "kind": self.kind,
            "name": data["name"],
            "enabled": data["enabled"],
            "issuer": data["issuer"].strip(),
            "client_id": data["client_id"].strip(),
            "scopes": data["scopes"].split() or ["openid", "email", "profile"],
            "single_logout": data["single_logout"],
            **_mapping_body(self),
        }
        if data["client_secret"]:
            body["client_secret"] = data["client_secret"]
        return body

    @classmethod
    def initial_of(cls, provider: IdentityProvider) -> dict:
        config = provider.config or {}
        return {
            "name": provider.name,
            "enabled": provider.enabled,
            "issuer": config.get("issuer", ""),
            "client_id": config.get("client_id", ""),
            "scopes": " ".join(config.get("scopes") or []),
            "single_logout": bool(config.get("single_logout")),
            **_mapping_initial(cls, config),
        }


PROVIDER_FORMS = {IdentityProvider.Kind.SAML: SamlProviderForm, IdentityProvider.Kind.OIDC: OidcProviderForm}


def _mapping_body(form) -> dict:
    names = {key: form.cleaned_data[f"{key}_attribute"].strip() for key in _MAPPING_FIELDS}
    return {form.mapping_key: {key: value or form.mapping_defaults[key] for key, value in names.items()}}


def _mapping_initial(form_class, config: dict) -> dict:
    mapping = config.get(form_class.mapping_key) or form_class.mapping_defaults
    return {f"{key}_attribute": mapping.get(key, "") for key in _MAPPING_FIELDS}


def provider_error(form, error: AppError) -> None:
    """The service's refusal under the field it is about (its message names the field), else on top."""
    message = error_message(error)
    field = "name" if error.code == "name_taken" else None
    for prefix, name in form.error_fields.items():
        if field is None and message.startswith(prefix):
            field = name
    form.add_error(field, message)


# --- the SSO page ---------------------------------------------------------------------------------


class _SsoView(ConsolePage):
    template_name = "console/sso.html"
    nav_url_name = "console-sso"

    def show(
        self,
        *,
        domain_form=None,
        row_errors=None,
        enforcement_error=None,
        mapping_error=None,
        mapping_form=None,
        status: int = 200,
    ):
        providers = list(identity_provider_list(account=self.account))
        mappings = group_mappings_list(self.account)
        can_administer = self.can("administrate:sso")
        return self.page(
            {
                "can_administer": can_administer,
                "feature_on_plan": plan_for(self.account).has("sso"),
                "domains": [
                    {
                        "domain": d,
                        "record": [
                            {"label": "Name", "value": domains.record_name(d), "copy_id": f"txt-{d.pk}-name"},
                            {
                                "label": "Value",
                                "value": domains.record_value(d),
                                "copy_id": f"txt-{d.pk}-value",
                            },
                        ],
                        "error": (row_errors or {}).get(d.pk),
                    }
                    for d in sso_domain_list(account=self.account)
                ],
                "domain_form": domain_form or DomainForm(),
                "providers": [{"provider": p, "facts": service_provider_facts(p)} for p in providers],
                "mappings": [{"mapping": m, "role": role_of_mapping(m)} for m in mappings],
                "enforced": bool((self.account.settings or {}).get("enforce_sso")),
                "enforcement_error": enforcement_error,
                "mapping_error": mapping_error,
                "mapping_form": mapping_form or {},
                "targets": group_mapping_targets(account=self.account) if can_administer else None,
            },
            status=status,
        )


class SsoPage(_SsoView):
    required_permissions = {"GET": "read:sso", "POST": "administrate:sso"}

    def get(self, request):
        return self.show()

    def post(self, request):
        """Claim a domain: its TXT record is shown to publish."""
        form = DomainForm(request.POST)
        if form.is_valid():
            try:
                claimed = domains.domain_claim(
                    account=self.account, domain=form.cleaned_data["domain"], actor=request.user
                )
            except AppError as error:
                form.add_error(
                    "domain" if error.code != "feature_unavailable" else None, error_message(error)
                )
            else:
                messages.success(
                    request,
                    f"{claimed.domain} is claimed: publish its TXT record, then verify it.",
                )
                return redirect(self.url("console-sso"))
        return self.show(domain_form=form, status=422)


class SsoDomainVerifyPage(_SsoView):
    required_permissions = {"POST": "administrate:sso"}

    def post(self, request, domain_id):
        domain = domain_or_404(self.account, domain_id)
        try:
            domain = domains.domain_verify(domain=domain, actor=request.user)
        except AppError as error:
            return self.show(row_errors={domain.pk: error_message(error)}, status=422)
        if domain.verified_at is None:
            return self.show(row_errors={domain.pk: f"Not verified: {domain.last_check_detail}"}, status=422)
        messages.success(request, f"{domain.domain} is verified: found its TXT record.")
        return redirect(self.url("console-sso"))


class SsoDomainRemovePage(ConfirmedActionPage):
    required_permissions = {"GET": "administrate:sso", "POST": "administrate:sso"}
    nav_url_name = back_url_name = "console-sso"

    def target(self, object_id) -> SsoDomain:
        return domain_or_404(self.account, object_id)

    def confirmation(self, target: SsoDomain) -> Confirmation:
        return Confirmation(
            title=f"Remove the domain {target.domain}?",
            explanation=(
                f"Sign-ins of {target.domain} addresses are no longer routed to this account's identity "
                "provider, and new people of that domain are not captured."
            ),
            action_label="Remove domain",
            done=f"The domain {target.domain} was removed.",
        )

    def act(self, target: SsoDomain) -> None:
        domains.domain_remove(domain=target, actor=self.request.user)


class SsoEnforcementPage(_SsoView):
    """Turn SSO enforcement on or off, through the account settings service (its lock-out guard
    refuses enforcement without an enabled identity provider and a verified domain)."""

    required_permissions = {"POST": "update:account"}

    def post(self, request):
        choice = request.POST.get("enforce_sso")
        if choice not in ("on", "off"):
            return self.show(enforcement_error="Choose on or off.", status=422)
        try:
            rbac.account_settings_update(
                account=self.account,
                changes={"enforce_sso": choice == "on"},
                actor=request.user,
                requester_ip=client_ip(request),
            )
        except AppError as error:
            return self.show(enforcement_error=error_message(error), status=422)
        messages.success(
            request,
            "Single sign-on is enforced." if choice == "on" else "Single sign-on is no longer enforced.",
        )
        return redirect(self.url("console-sso"))


def _mapping_entries(account, *, without=None) -> list[dict]:
    """The account's group mappings as the service takes them (less ``without``)."""
    return [
        {k: v for k, v in mapping_wire(m).items() if k != "id" and v is not None}
        for m in group_mappings_list(account)
        if m.pk != without
    ]


class SsoGroupMappingAddPage(_SsoView):
    """Map one more group (to a team, or to a workspace with a role): the service replaces the whole
    table, so the current mappings are sent with the new one."""

    required_permissions = {"POST": "administrate:sso"}

    def post(self, request):
        group = (request.POST.get("group") or "").strip()
        kind, _, target_id = (request.POST.get("target") or "").partition(":")
        entry: dict = {"group": group}
        if kind == "team":
            entry["team_id"] = target_id
        elif kind == "workspace":
            entry["workspace_id"] = target_id
            entry["workspace_role_id"] = request.POST.get("workspace_role_id") or None
        else:
            return self.show(
                mapping_error="Choose a team or a workspace.", mapping_form=request.POST, status=422
            )
        try:
            ensure_feature(self.account, "sso")
            group_mappings_set(
                account=self.account,
                mappings=[*_mapping_entries(self.account), entry],
                actor=request.user,
            )
        except AppError as error:
            return self.show(mapping_error=error_message(error), mapping_form=request.POST, status=422)
        messages.success(request, f"The group {group} is mapped.")
        return redirect(self.url("console-sso"))


class SsoGroupMappingRemovePage(ConfirmedActionPage):
    required_permissions = {"GET": "administrate:sso", "POST": "administrate:sso"}
    nav_url_name = back_url_name = "console-sso"

    def target(self, object_id):
        for mapping in group_mappings_list(self.account):
            if mapping.pk == object_id:
                return mapping
        raise Http404("Not Found")

    def confirmation(self, target) -> Confirmation:
        return Confirmation(
            title=f"Remove the mapping of the group {target.group}?",
            explanation=(
                "At their next sign-in, people of that group are taken out of what it gave them (the "
                "mapped team, or the workspace grant the mapping made)."
            ),
            action_label="Remove mapping",
            done=f"The mapping of {target.group} was removed.",
        )

    def act(self, target) -> None:
        group_mappings_set(
            account=self.account,
            mappings=_mapping_entries(self.account, without=target.pk),
            actor=self.request.user,
        )


# --- identity providers ---------------------------------------------------------------------------


class _ProviderView(ConsolePage):
    template_name = "console/sso_provider.html"
    nav_url_name = "console-sso"

    def show(self, form, *, provider=None, discovery=None, test_error=None, status: int = 200):
        if provider is not None and "client_secret" in form.fields:
            form.fields["client_secret"].label = "Client secret (stored encrypted; leave empty to keep it)"
        facts = service_provider_facts(provider) if provider is not None else []
        test_result = sso_test_result(self.request, provider) if provider is not None else None
        certificate = sp_keypair(provider)[1] if provider is not None and provider.kind == "saml" else None
        return self.page(
            {
                "form": form,
                "kind": form.kind,
                "kind_label": IdentityProvider.Kind(form.kind).label,
                "provider": provider,
                "facts": facts,
                "sp_certificate": certificate,
                "discovery": discovery,
                "test_result": test_result,
                "test_details": shown_pairs((test_result or {}).get("details")),
                "test_received": shown_pairs((test_result or {}).get("received")),
                "test_error": test_error,
            },
            status=status,
        )


class IdentityProviderCreatePage(_ProviderView):
    required_permissions = {"GET": "administrate:sso", "POST": "administrate:sso"}

    def _form_class(self, kind):
        return PROVIDER_FORMS.get(kind)

    def get(self, request):
        form_class = self._form_class(request.GET.get("kind", "saml"))
        if form_class is None:
            raise Http404("Not Found")
        return self.show(form_class())

    def post(self, request):
        form_class = self._form_class(request.POST.get("kind"))
        if form_class is None:
            return self._unknown_kind()
        form = form_class(request.POST, request.FILES)
        if form.is_valid():
            try:
                provider = provider_create(account=self.account, body=form.body(), actor=request.user)
            except AppError as error:
                provider_error(form, error)
            else:
                messages.success(
                    request, f"{provider.name} was added: give the identity provider the values below."
                )
                return redirect(self.url("console-sso-provider", provider.pk))
        return self.show(form, status=422)

    def _unknown_kind(self):
        form = SamlProviderForm(self.request.POST)
        form.is_valid()
        form.add_error(None, "Choose SAML 2.0 or OpenID Connect.")
        return self.show(form, status=422)


class IdentityProviderPage(_ProviderView):
    required_permissions = {"GET": "administrate:sso", "POST": "administrate:sso"}

    def get(self, request, provider_id):
        provider = provider_or_404(self.account, provider_id)
        form_class = PROVIDER_FORMS[provider.kind]
        return self.show(form_class(initial=form_class.initial_of(provider)), provider=provider)

    def post(self, request, provider_id):
        provider = provider_or_404(self.account, provider_id)
        form = PROVIDER_FORMS[provider.kind](request.POST, request.FILES)
        if form.is_valid():
            try:
                body = form.body()
                body.pop("kind")
                provider = provider_update(provider=provider, body=body, actor=request.user)
            except AppError as error:
                provider_error(form, error)
            else:
                messages.success(request, f"{provider.name} was saved.")
                return redirect(self.url("console-sso-provider", provider.pk))
        return self.show(form, provider=provider, status=422)


class IdentityProviderDiscoveryPage(_ProviderView):
    """Fetch the OIDC provider's discovery document now and say what was found (changes nothing)."""

    required_permissions = {"POST": "administrate:sso"}

    def post(self, request, provider_id):
        provider = provider_or_404(self.account, provider_id)
        form_class = PROVIDER_FORMS[provider.kind]
        form = form_class(initial=form_class.initial_of(provider))
        if provider.kind != IdentityProvider.Kind.OIDC:
            return self.show(form, provider=provider, status=422)
        result = oidc_discovery_check(issuer=provider.config["issuer"])
        return self.show(form, provider=provider, discovery=result, status=200 if result.ok else 422)


class IdentityProviderTestPage(_ProviderView):
    """Run the IdP's sign-in flow as a test: the browser goes to the IdP, and its answer comes back
    to the provider's page as a report (attributes or claims received, the checks, the mapping
    result) with nobody signed in and nothing created (``accounts.sso.tester``)."""

    required_permissions = {"POST": "administrate:sso"}

    def post(self, request, provider_id):
        provider = provider_or_404(self.account, provider_id)
        try:
            ensure_feature(self.account, "sso")
        except AppError as error:
            form_class = PROVIDER_FORMS[provider.kind]
            form = form_class(initial=form_class.initial_of(provider))
            return self.show(form, provider=provider, test_error=error_message(error), status=422)
        response = sso_test_start(request, provider)
        if response is None:  # the IdP could not be reached: the report says why
            return redirect(self.url("console-sso-provider", provider.pk) + "#test-heading")
        return response


class IdentityProviderDeletePage(ConfirmedActionPage):
    required_permissions = {"GET": "administrate:sso", "POST": "administrate:sso"}
    nav_url_name = back_url_name = "console-sso"

    def target(self, object_id) -> IdentityProvider:
        return provider_or_404(self.account, object_id)

    def confirmation(self, target: IdentityProvider) -> Confirmation:
        return Confirmation(
            title=f"Delete the identity provider {target.name}?",
            explanation=(
                "Nobody can sign in through it any more; people who signed in through it keep their "
                "accounts and sign in another way. The account refuses while it enforces single "
                "sign-on and this is its only enabled identity provider."
            ),
            action_label="Delete identity provider",
            done=f"The identity provider {target.name} was deleted.",
        )

    def act(self, target: IdentityProvider) -> None:
        provider_delete(provider=target, actor=self.request.user)
