"""python-social-auth backends bound to one ``IdentityProvider`` row.

social-core reads its IdPs and clients from settings; here each backend instance is built for one
stored identity provider (``provider=``) and answers ``setting()`` and ``get_idp()`` from that row,
so an assertion or id_token is validated against exactly one account's configuration:

* ``AccountSamlAuth``: the IdP's entity id, SSO/SLO URLs and certificates; this product's SP entity id
  and ACS URL per IdP (``accounts.sso.saml``). social-core checks InResponseTo against the AuthnRequest
  it remembered in the session and refuses unsolicited responses unless the IdP allows IdP-initiated
  login; python3-saml (strict) checks signatures, audience, recipient, destination, issuer and the
  validity window. Here each accepted assertion id is recorded once, so a replay is refused.
* ``AccountOidcAuth``: discovery from the issuer, the client id and (decrypted) secret, scopes,
  PKCE (S256), state and nonce (social-core), id_token signature, issuer and audience.

A person's social identity is ``<provider id>:<subject>``, so the same subject at two IdPs (two
accounts) are two identities.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from social_core.backends.open_id_connect import OpenIdConnectAuth
from social_core.backends.saml import SAMLAuth, SAMLIdentityProvider
from social_core.exceptions import AuthResponseError

from accounts.models import IdentityProvider, SsoAssertion
from accounts.sso import saml as saml_sp
from accounts.sso.providers import client_secret

SAML_ATTRIBUTE_NAMES = {
    "email": (
        "email",
        "mail",
        "emailAddress",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "urn:oid:0.9.2342.19200300.100.1.3",
    ),
    "first_name": (
        "firstName",
        "givenName",
        "first_name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
        "urn:oid:2.5.4.42",
    ),
    "last_name": (
        "lastName",
        "sn",
        "surname",
        "last_name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
        "urn:oid:2.5.4.4",
    ),
    "groups": (
        "groups",
        "memberOf",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
        "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
    ),
}


def _public_request_data(strategy, path: str) -> dict[str, Any]:
    """What python3-saml compares Destination and Recipient with: the address the IdP was given
    (``PUBLIC_URL``), not whatever Host a proxy passed on."""
    public = urlsplit(settings.PUBLIC_URL)
    https = public.scheme == "https"
    return {
        "https": "on" if https else "off",
        "http_host": public.netloc,
        "script_name": path,
        "get_data": strategy.request_get(),
        "post_data": strategy.request_post(),
    }


def record_assertion(provider: IdentityProvider, assertion_id: str | None, expires_at: datetime) -> bool:
    """Record that ``assertion_id`` was used; False if it already was (a replay)."""
    if not assertion_id:
        return False
    try:
        with transaction.atomic():
            SsoAssertion.objects.create(
                provider=provider, assertion_id=assertion_id[:255], expires_at=expires_at
            )
    except IntegrityError:
        return False
    return True


class _ProviderBound:
    provider: IdentityProvider | None
    # Set for the console's test sign-in (``accounts.sso.tester``): the response, once
    # validated as for any sign-in, goes to this in place of the pipeline (nothing is created and
    # nobody signed in); it returns the page to send the browser to.
    test_sign_in = None
    test_nonce: str | None = None  # carried in a SAML test's RelayState

    def _bind(self, provider: IdentityProvider | None) -> None:
        self.provider = provider

    def run_authentication(self, *args, **kwargs):
        if self.test_sign_in is None or kwargs.get("strategy") is not self.strategy:
            return super().run_authentication(*args, **kwargs)
        response = kwargs["response"]
        details = self.get_user_details(response)
        uid = str(self.get_user_id(details, response))
        return self.test_sign_in(self, uid=uid, details=details, response=response)


class AccountSamlAuth(_ProviderBound, SAMLAuth):
    name = "saml"

    def __init__(self, strategy=None, redirect_uri=None, provider: IdentityProvider | None = None):
        self._bind(provider)
        if provider is not None and redirect_uri is None:
            redirect_uri = saml_sp.sp_urls(provider)["acs_url"]
        super().__init__(strategy, redirect_uri)

    def setting(self, name, default=None):
        if self.provider is not None and name == "ALLOW_IDP_INITIATED":
            return self.provider.allow_idp_initiated
        if name == "SANITIZE_REDIRECTS":
            return True
        return super().setting(name, default)

    @property
    def idp_name(self) -> str:
        return str(self.provider.id)

    def get_idp(self, idp_name):
        # The RelayState names the IdP the AuthnRequest went to; it must be the one this ACS serves.
        if idp_name is not None and idp_name != self.idp_name:
            raise AuthResponseError(self, "RelayState names another identity provider.", code="wrong_idp")
        config = self.provider.config
        # Attributes are read by get_user_details below; the NameID is the permanent id.
        return SAMLIdentityProvider(
            self,
            self.idp_name,
            entity_id=config["entity_id"],
            url=config["sso_url"],
            slo_url=config.get("slo_url") or None,
            x509certMulti={"signing": list(config["x509_certificates"])},
            attr_user_permanent_id="name_id",
        )

    def auth_url(self):
        # social-core takes the IdP from an ``idp`` request parameter; this backend has exactly one.
        idp = self.get_idp(None)
        auth = self._get_saml_auth(idp, stage="begin")
        relay_state = {"idp": self.idp_name, "next": self.strategy.session_get("next")}
        if self.test_nonce:
            relay_state["test"] = self.test_nonce
        url = auth.login(return_to=json.dumps(relay_state))
        self.strategy.session_set(self._authn_request_id_session_key(idp.name), auth.get_last_request_id())
        return url

    def parse_relay_state(self, relay_state_str: str) -> dict:
        # Ours is JSON {"idp", "next"}; an IdP-initiated login may carry any string (Okta's default
        # relay state, often a URL): it is taken as a "next" address, which is sanitised later.
        try:
            relay_state = json.loads(relay_state_str)
        except (TypeError, ValueError):
            relay_state = None
        if isinstance(relay_state, dict) and relay_state.get("idp"):
            # Only what we put there, and "next" only as a string (it is quoted into a URL later).
            next_url = relay_state.get("next")
            return {"idp": self.idp_name, "next": next_url if isinstance(next_url, str) else None}
        return {"idp": self.idp_name, "next": relay_state_str if isinstance(relay_state_str, str) else None}

    def generate_saml_config(self, idp: SAMLIdentityProvider | None = None):
        config = saml_sp.sp_settings(self.provider)
        config["idp"] = idp.saml_config_dict if idp is not None else {}
        config["debug"] = False
        return config

    def _saml_request_data(self) -> dict[str, Any]:
        return _public_request_data(self.strategy, urlsplit(self.redirect_uri).path)

    def _process_response(self, auth, request_id=None) -> None:
        super()._process_response(auth, request_id)
        not_on_or_after = auth.get_last_assertion_not_on_or_after()
        expires = (
            datetime.fromtimestamp(not_on_or_after, UTC)
            if not_on_or_after
            else datetime.now(UTC) + timedelta(hours=1)
        )
        if not record_assertion(self.provider, auth.get_last_assertion_id(), expires):
            raise AuthResponseError(self, "This SAML assertion was already used.", code="replayed")
        self.last_session_index = auth.get_session_index()
        self.last_name_id_format = auth.get_nameid_format()

    def get_user_details(self, response):
        """The person's details from the attributes: the configured attribute name first, then the
        names IdPs commonly use (Okta's, Entra ID's claim URIs, LDAP/eduPerson OIDs). Only the email
        is needed (the NameID serves when it is an address); names and groups are optional."""
        attributes = response["attributes"]
        mapping = self.provider.config.get("attribute_mapping") or {}

        def values(field: str) -> list[str] | None:
            for name in (mapping.get(field), *SAML_ATTRIBUTE_NAMES[field]):
                if name and name in attributes:
                    found = attributes[name]
                    return [str(v) for v in found] if isinstance(found, list) else [str(found)]
            return None

        def first(field: str) -> str | None:
            found = values(field)
            return found[0] if found else None

        email = first("email")
        if not email:
            name_id = attributes.get("name_id") or ""
            email = name_id if "@" in name_id else None
        return {
            "username": email,
            "email": email,
            "first_name": first("first_name") or "",
            "last_name": first("last_name") or "",
            "fullname": "",
            "groups": values("groups"),
        }

    def _saml_auth_for_logout(self):
        idp = self.get_idp(None)
        config = self.generate_saml_config(idp)
        # Logout messages must be signed by the IdP, whatever the login setting says.
        config["security"]["wantMessagesSigned"] = True

        slo_path = urlsplit(saml_sp.sp_urls(self.provider)["slo_url"]).path
        return OneLogin_Saml2_Auth(_public_request_data(self.strategy, slo_path), config)


class AccountOidcAuth(_ProviderBound, OpenIdConnectAuth):
    name = "oidc"
    DEFAULT_USE_PKCE = True

    def __init__(self, strategy=None, redirect_uri=None, provider: IdentityProvider | None = None):
        self._bind(provider)
        if provider is not None and redirect_uri is None:
            redirect_uri = oidc_redirect_uri(provider)
        super().__init__(strategy, redirect_uri)

    def setting(self, name, default=None):
        provider = self.provider
        if provider is not None:
            config = provider.config
            if name == "KEY":
                return config["client_id"]
            if name == "SECRET":
                return client_secret(provider) or ""
            if name == "OIDC_ENDPOINT":
                return config["issuer"].rstrip("/")
            if name == "SCOPE":
                return list(config.get("scopes") or ["openid", "email", "profile"])
            if name == "IGNORE_DEFAULT_SCOPE":
                return True
            if name in ("USE_PKCE",):
                return True
            if name == "PKCE_CODE_CHALLENGE_METHOD":
                return "S256"
        if name == "SANITIZE_REDIRECTS":
            return True
        return super().setting(name, default)

    def get_user_id(self, details, response):
        return f"{self.provider.id}:{super().get_user_id(details, response)}"

    def get_user_details(self, response):
        mapping = self.provider.config.get("claim_mapping") or {}

        def claim(key: str, default: str):
            value = response.get(mapping.get(key) or default)
            return value if isinstance(value, str) else None

        groups = response.get(mapping.get("groups") or "groups")
        email_verified = response.get("email_verified")
        return {
            "username": claim("email", "email"),
            "email": claim("email", "email"),
            "email_verified": email_verified,
            "first_name": claim("first_name", "given_name"),
            "last_name": claim("last_name", "family_name"),
            "fullname": claim("fullname", "name"),
            "groups": [str(g) for g in groups] if isinstance(groups, list) else None,
        }

    def oidc_config(self) -> dict:
        # OpenID Connect Discovery 1.0 §4.3: the document's issuer is the issuer it was fetched for;
        # id_tokens are then checked against it.
        document = super().oidc_config()
        configured = self.provider.config["issuer"].rstrip("/")
        announced = document.get("issuer")
        if not isinstance(announced, str) or announced.rstrip("/") != configured:
            raise AuthResponseError(
                self,
                f"The discovery document names the issuer {announced!r}, not {configured!r}.",
                code="wrong_issuer",
            )
        return document

    def request_access_token(self, *args, **kwargs):
        response = super().request_access_token(*args, **kwargs)
        # Kept (validated by now) for the id_token_hint of an RP-initiated logout.
        self.raw_id_token = response["id_token"]
        return response

    def end_session_url(self, id_token: str | None) -> str | None:
        """OpenID Connect RP-Initiated Logout 1.0 §2: where to send the browser so the provider
        ends its session too, then returns it to our post-logout URI; None when the provider
        announces no ``end_session_endpoint``."""
        endpoint = self.oidc_config().get("end_session_endpoint")
        if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
            return None
        params = {
            "client_id": self.provider.config["client_id"],
            "post_logout_redirect_uri": oidc_post_logout_redirect_uri(self.provider),
        }
        if id_token:
            params["id_token_hint"] = id_token
        separator = "&" if urlsplit(endpoint).query else "?"
        return f"{endpoint}{separator}{urlencode(params)}"

    def user_data(self, access_token, *args, **kwargs):
        # The validated id_token's claims win over the userinfo endpoint's (whose sub must match).
        userinfo = super().user_data(access_token, *args, **kwargs) or {}
        return {**userinfo, **(self.id_token or {})}


def oidc_redirect_uri(provider: IdentityProvider) -> str:
    return f"{settings.PUBLIC_URL.rstrip('/')}/sso/oidc/{provider.id}/callback"


def oidc_post_logout_redirect_uri(provider: IdentityProvider) -> str:
    return f"{settings.PUBLIC_URL.rstrip('/')}/sso/oidc/{provider.id}/signed-out"


def backend_for(provider: IdentityProvider, strategy):
    if provider.kind == IdentityProvider.Kind.SAML:
        return AccountSamlAuth(strategy, provider=provider)
    return AccountOidcAuth(strategy, provider=provider)
