"""``/api/accounts/<id>/sso/domains…``: the email domains an account claims for single sign-on."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

from accounts.api.base import AccountApi, Body, path_id
from accounts.models import IdentityProvider, SsoDomain
from accounts.sso import domains
from accounts.sso.backends import oidc_post_logout_redirect_uri, oidc_redirect_uri
from accounts.sso.mappings import group_mappings_list, group_mappings_set, mapping_wire
from accounts.sso.providers import (
    provider_create,
    provider_delete,
    provider_rotate_sp_certificate,
    provider_update,
    snapshot,
)
from accounts.sso.saml import sp_keypair, sp_urls
from accounts.sso.selectors import (
    identity_provider_get,
    identity_provider_list,
    sso_domain_get,
    sso_domain_list,
)
from billing import entitlements
from core.errors import NotFound


def domain_wire(domain: SsoDomain) -> dict:
    return {
        "id": str(domain.id),
        "domain": domain.domain,
        "verified": domain.verified_at is not None,
        "verified_at": domain.verified_at.isoformat() if domain.verified_at else None,
        "created": domain.created.isoformat(),
        "last_checked_at": domain.last_checked_at.isoformat() if domain.last_checked_at else None,
        "last_check_detail": domain.last_check_detail or None,
        "dns_record": {
            "type": "TXT",
            "name": domains.record_name(domain),
            "value": domains.record_value(domain),
        },
    }


class DomainClaim(Body):
    domain: Any = None  # checked by the service


class SsoDomainsApi(AccountApi):
    """``GET``: the account's domains; ``POST {"domain": "example.com"}``: claim one (201, with the
    TXT record to publish)."""

    required_permissions = {"GET": "read:sso", "POST": "administrate:sso"}

    def get(self, request, **kwargs):
        return Response([domain_wire(d) for d in sso_domain_list(account=self.account)])

    def post(self, request, **kwargs):
        claimed = domains.domain_claim(
            account=self.account, domain=self.parse(DomainClaim).domain, actor=request.user
        )
        return Response(domain_wire(claimed), status=201)


class _OneDomain(AccountApi):
    def _domain(self, domain_id) -> SsoDomain:
        found = sso_domain_get(account=self.account, domain_id=path_id(domain_id, "Domain"))
        if found is None:
            raise NotFound("Domain not found.")
        return found


class SsoDomainApi(_OneDomain):
    required_permissions = {"GET": "read:sso", "DELETE": "administrate:sso"}

    def get(self, request, domain_id: str, **kwargs):
        return Response(domain_wire(self._domain(domain_id)))

    def delete(self, request, domain_id: str, **kwargs):
        domains.domain_remove(domain=self._domain(domain_id), actor=request.user)
        return Response(status=204)


class SsoDomainVerifyApi(_OneDomain):
    """``POST``: look the TXT record up now; the answer says whether it was found, and why not."""

    required_permissions = {"POST": "administrate:sso"}

    def post(self, request, domain_id: str, **kwargs):
        return Response(
            domain_wire(domains.domain_verify(domain=self._domain(domain_id), actor=request.user))
        )


# --- identity providers ---------------------------------------------------------------------------


def provider_wire(provider) -> dict:
    wire = snapshot(provider)
    return {
        "id": str(provider.id),
        "account_id": str(provider.account_id),
        "created": provider.created.isoformat(),
        "updated": provider.updated.isoformat(),
        **wire,
        # What to give the IdP: this product's side of the connection.
        "service_provider": (
            {**sp_urls(provider), "x509_certificate": sp_keypair(provider)[1]}
            if provider.kind == "saml"
            else {
                "redirect_uri": oidc_redirect_uri(provider),
                "post_logout_redirect_uri": oidc_post_logout_redirect_uri(provider),
            }
        ),
    }


class IdentityProvidersApi(AccountApi):
    """``GET``: the account's identity providers; ``POST``: add one (``kind`` saml or oidc)."""

    required_permissions = {"GET": "read:sso", "POST": "administrate:sso"}

    def get(self, request, **kwargs):
        return Response([provider_wire(p) for p in identity_provider_list(account=self.account)])

    def post(self, request, **kwargs):
        return Response(
            provider_wire(provider_create(account=self.account, body=self.body(), actor=request.user)),
            status=201,
        )


class _OneProvider(AccountApi):
    def _provider(self, provider_id) -> IdentityProvider:
        found = identity_provider_get(
            account=self.account, provider_id=path_id(provider_id, "Identity provider")
        )
        if found is None:
            raise NotFound("Identity provider not found.")
        return found


class IdentityProviderApi(_OneProvider):
    required_permissions = {"GET": "read:sso", "PATCH": "administrate:sso", "DELETE": "administrate:sso"}

    def get(self, request, provider_id: str, **kwargs):
        return Response(provider_wire(self._provider(provider_id)))

    def patch(self, request, provider_id: str, **kwargs):
        return Response(
            provider_wire(
                provider_update(provider=self._provider(provider_id), body=self.body(), actor=request.user)
            )
        )

    def delete(self, request, provider_id: str, **kwargs):
        provider_delete(provider=self._provider(provider_id), actor=request.user)
        return Response(status=204)


class GroupMappings(Body):
    mappings: Any = None  # checked by the service


class SsoGroupMappingsApi(AccountApi):
    """``GET``: the group mappings; ``PUT {"mappings": [{"group", "team_id"} | {"group",
    "workspace_id", "workspace_role_id"}]}``: replace them (see ``accounts.sso.mappings``)."""

    required_permissions = {"GET": "read:sso", "PUT": "administrate:sso"}

    def get(self, request, **kwargs):
        return Response({"mappings": [mapping_wire(m) for m in group_mappings_list(self.account)]})

    def put(self, request, **kwargs):
        entitlements.ensure_feature(self.account, "sso")
        saved = group_mappings_set(
            account=self.account, mappings=self.parse(GroupMappings).mappings, actor=request.user
        )
        return Response({"mappings": [mapping_wire(m) for m in saved]})


class IdentityProviderRotateSpCertificateApi(_OneProvider):
    """``POST``: a new SP signing key and certificate for a SAML identity provider (give the IdP the
    new certificate from the answer's ``service_provider``; the old one stops working at once)."""

    required_permissions = {"POST": "administrate:sso"}

    def post(self, request, provider_id: str, **kwargs):
        provider = self._provider(provider_id)
        return Response(provider_wire(provider_rotate_sp_certificate(provider=provider, actor=request.user)))
