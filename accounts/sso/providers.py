"""An account's identity providers: SAML 2.0 and OIDC configurations, stored in the database and
pinned to their account.

SAML: the IdP's entity id, SSO URL, optional SLO URL, one or more x509 signing certificates (PEM;
several while the IdP rolls its certificate), whether the response or the assertion must be signed,
and the attribute names for email, first and last name and groups. OIDC: the issuer (its discovery
document is ``<issuer>/.well-known/openid-configuration``), client id, client secret (encrypted at
rest, never returned), scopes, the claim names, and ``single_logout``: whether signing out here
also ends the session at the provider (RP-initiated logout through the discovery document's
``end_session_endpoint``; off unless asked for). Creating, changing or deleting one is an audit
event with before/after (secrets only as "set" or "not set").
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from django.db import IntegrityError, transaction
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

from accounts.models import IdentityProvider
from accounts.services import _lock_account
from accounts.sso import secrets
from accounts.sso.enforcement import enforces_sso
from accounts.sso.saml import sp_keypair_new
from audit import events
from audit.services import audit_record, audited_update
from billing import entitlements
from core.errors import Conflict, Unprocessable
from tenants.models import Account

SAML_ATTRIBUTES = {"email": "email", "first_name": "firstName", "last_name": "lastName", "groups": "groups"}
OIDC_CLAIMS = {"email": "email", "first_name": "given_name", "last_name": "family_name", "groups": "groups"}
MAX_PROVIDERS = 10


def _invalid(message: str) -> Unprocessable:
    return Unprocessable(message, code="invalid_identity_provider")


def _url(value: Any, what: str, *, required: bool = True) -> str | None:
    if value in (None, "") and not required:
        return None
    if not isinstance(value, str):
        raise _invalid(f"{what} must be a URL.")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise _invalid(f"{what} must be an http(s) URL.")
    return value.strip()


def _string(value: Any, what: str, *, limit: int = 1024) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{what} is required.")
    if len(value) > limit:
        raise _invalid(f"{what} is too long.")
    return value.strip()


def _boolean(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(f"{what} must be true or false.")
    return value


def _certificates(value: Any) -> list[str]:
    certs = [value] if isinstance(value, str) else value
    if not isinstance(certs, list) or not certs or not all(isinstance(c, str) for c in certs):
        raise _invalid("x509_certificates must be a list of PEM certificates (at least one).")
    cleaned = []
    for pem in certs:
        text = pem.strip()
        if "BEGIN CERTIFICATE" not in text:
            text = f"-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----"
        try:
            x509.load_pem_x509_certificate(text.encode())
        except ValueError:
            raise _invalid("An x509 certificate could not be read; paste it in PEM form.") from None
        cleaned.append(text)
    return cleaned


def _mapping(value: Any, defaults: dict[str, str]) -> dict[str, str]:
    if value is None:
        return dict(defaults)
    if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
        raise _invalid("The attribute mapping must map email, first_name, last_name and groups to names.")
    unknown = set(value) - set(defaults)
    if unknown:
        raise _invalid(f"Unknown mapping keys: {', '.join(sorted(unknown))}.")
    return {**defaults, **value}


def clean_config(kind: str, body: dict, current: dict | None = None) -> dict:
    """The stored (non-secret) configuration of ``kind`` from ``body`` over ``current``."""
    merged = {**(current or {}), **{k: v for k, v in body.items() if k not in ("client_secret",)}}
    if kind == IdentityProvider.Kind.SAML:
        signed = merged.get("want_signed", "assertion")
        if signed not in ("assertion", "response", "both"):
            raise _invalid("want_signed must be assertion, response or both.")
        return {
            "entity_id": _string(merged.get("entity_id"), "entity_id"),
            "sso_url": _url(merged.get("sso_url"), "sso_url"),
            "slo_url": _url(merged.get("slo_url"), "slo_url", required=False),
            "x509_certificates": _certificates(merged.get("x509_certificates")),
            "want_signed": signed,
            "attribute_mapping": _mapping(merged.get("attribute_mapping"), SAML_ATTRIBUTES),
        }
    if kind == IdentityProvider.Kind.OIDC:
        scopes = merged.get("scopes", ["openid", "email", "profile"])
        if (
            not isinstance(scopes, list)
            or not all(isinstance(s, str) and s for s in scopes)
            or "openid" not in scopes
        ):
            raise _invalid("scopes must be a list of scope names that includes openid.")
        return {
            "issuer": _url(merged.get("issuer"), "issuer"),
            "client_id": _string(merged.get("client_id"), "client_id", limit=255),
            "scopes": scopes,
            "claim_mapping": _mapping(merged.get("claim_mapping"), OIDC_CLAIMS),
            "single_logout": _boolean(merged.get("single_logout", False), "single_logout"),
        }
    raise _invalid("kind must be saml or oidc.")


def snapshot(provider: IdentityProvider) -> dict:
    facts = {
        "name": provider.name,
        "kind": provider.kind,
        "enabled": provider.enabled,
        "allow_idp_initiated": provider.allow_idp_initiated,
        "config": provider.config,
    }
    if provider.kind == IdentityProvider.Kind.OIDC:
        facts["client_secret"] = "set" if provider.secret_encrypted else "not set"
    return facts


def _flags(body: dict, provider: IdentityProvider) -> None:
    for flag in ("enabled", "allow_idp_initiated"):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise _invalid(f"{flag} must be true or false.")
            setattr(provider, flag, body[flag])


def _secret(body: dict, provider: IdentityProvider, *, required: bool) -> None:
    if provider.kind != IdentityProvider.Kind.OIDC:
        return
    if "client_secret" in body:
        secret = body["client_secret"]
        if not isinstance(secret, str) or not secret:
            raise _invalid("client_secret must be a non-empty string.")
        provider.secret_encrypted = secrets.encrypt(secret)
    elif required:
        raise _invalid("client_secret is required.")


def _keep_one_for_enforcement(provider: IdentityProvider) -> None:
    """An account that enforces SSO keeps at least one enabled identity provider."""

    if not enforces_sso(provider.account):
        return
    others = IdentityProvider.objects.filter(account=provider.account, enabled=True).exclude(pk=provider.pk)
    if not others.exists():
        raise Conflict(
            "The account enforces single sign-on and this is its only enabled identity provider; turn "
            "enforcement off first.",
            code="sso_enforced",
        )


def provider_create(*, account: Account, body: dict, actor) -> IdentityProvider:
    entitlements.ensure_feature(account, "sso")
    kind = body.get("kind")
    name = _string(body.get("name"), "name", limit=200)
    provider = IdentityProvider(account=account, kind=kind, name=name, config=clean_config(kind, body))
    _flags(body, provider)
    _secret(body, provider, required=True)
    if provider.kind == IdentityProvider.Kind.SAML:
        sp_keypair_new(provider)
    try:
        with transaction.atomic():
            account = _lock_account(account)
            if IdentityProvider.objects.filter(account=account).count() >= MAX_PROVIDERS:
                raise Conflict(
                    f"An account can have at most {MAX_PROVIDERS} identity providers.", code="too_many"
                )
            provider.save()
            audit_record(
                event=events.SSO_IDP_CREATED,
                actor=actor,
                account=account,
                target=provider,
                payload={"before": None, "after": snapshot(provider)},
            )
    except IntegrityError:
        raise Conflict(f"An identity provider named {name!r} already exists.", code="name_taken") from None
    return provider


def provider_update(*, provider: IdentityProvider, body: dict, actor) -> IdentityProvider:
    try:
        with transaction.atomic():
            provider = IdentityProvider.objects.select_for_update().get(pk=provider.pk)
            secret_changed = "client_secret" in body
            with audited_update(
                instance=provider,
                snapshot=snapshot,
                event=events.SSO_IDP_UPDATED,
                actor=actor,
                account=provider.account,
                extra={"client_secret_changed": secret_changed},
                always=secret_changed,
            ) as change:
                if "kind" in body and body["kind"] != provider.kind:
                    raise _invalid("kind cannot be changed; create another identity provider.")
                if "name" in body:
                    provider.name = _string(body.get("name"), "name", limit=200)
                provider.config = clean_config(provider.kind, body, provider.config)
                _flags(body, provider)
                _secret(body, provider, required=False)
                if change.before["enabled"] and not provider.enabled:
                    _keep_one_for_enforcement(provider)
                provider.save()
    except IntegrityError:
        raise Conflict("An identity provider with that name already exists.", code="name_taken") from None
    return provider


def provider_delete(*, provider: IdentityProvider, actor) -> None:
    with transaction.atomic():
        _lock_account(provider.account)
        if provider.enabled:
            _keep_one_for_enforcement(provider)
        audit_record(
            event=events.SSO_IDP_DELETED,
            actor=actor,
            account=provider.account,
            target=provider,
            payload={"before": snapshot(provider), "after": None},
        )
        provider.delete()


def client_secret(provider: IdentityProvider) -> str | None:
    """The decrypted OIDC client secret (for the login flow), or None."""
    if provider.kind != IdentityProvider.Kind.OIDC:
        return None
    return secrets.decrypt(provider.secret_encrypted)


def provider_rotate_sp_certificate(*, provider: IdentityProvider, actor) -> IdentityProvider:

    if provider.kind != IdentityProvider.Kind.SAML:
        raise _invalid("Only a SAML identity provider has a service-provider certificate.")
    with transaction.atomic():
        provider = IdentityProvider.objects.select_for_update().get(pk=provider.pk)
        sp_keypair_new(provider)
        provider.save(update_fields=["secret_encrypted", "sp_certificate", "updated"])
        audit_record(
            event=events.SSO_IDP_UPDATED,
            actor=actor,
            account=provider.account,
            target=provider,
            payload={
                "before": snapshot(provider),
                "after": snapshot(provider),
                "sp_certificate_rotated": True,
            },
        )
    return provider


def saml_metadata_read(xml: str) -> dict:
    """The IdP's entity id, SSO and SLO URLs and signing certificates from its SAML metadata XML
    (what an admin pastes), in the keys of a SAML configuration; a 422 that says why not."""
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml) or {}
        if not (parsed.get("idp") or {}).get("singleSignOnService"):
            parsed = (
                OneLogin_Saml2_IdPMetadataParser.parse(
                    xml, required_sso_binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
                )
                or parsed
            )
    except Exception as error:  # lxml's syntax errors, and the parser's own bare Exceptions
        raise _invalid(f"The metadata could not be read as SAML metadata XML ({error}).") from None
    idp = parsed.get("idp") or {}
    certificates = list((idp.get("x509certMulti") or {}).get("signing") or [])
    if not certificates and idp.get("x509cert"):
        certificates = [idp["x509cert"]]
    found = {
        "entity_id": idp.get("entityId"),
        "sso_url": (idp.get("singleSignOnService") or {}).get("url"),
        "slo_url": (idp.get("singleLogoutService") or {}).get("url") or None,
        "x509_certificates": certificates,
    }
    missing = [name for name in ("entity_id", "sso_url", "x509_certificates") if not found[name]]
    if missing:
        raise _invalid(f"The metadata names no IdP {', '.join(missing)}.")
    return found
