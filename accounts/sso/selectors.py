"""Reads of an account's single sign-on configuration: its domains and identity providers (its
group mappings are read through ``accounts.sso.mappings.group_mappings_list``)."""

from __future__ import annotations

from accounts.models import IdentityProvider, SsoDomain


def sso_domain_list(*, account):
    return SsoDomain.objects.filter(account=account)


def sso_domain_get(*, account, domain_id) -> SsoDomain | None:
    return SsoDomain.objects.filter(account=account, pk=domain_id).first()


def identity_provider_list(*, account):
    return IdentityProvider.objects.filter(account=account)


def identity_provider_get(*, account, provider_id) -> IdentityProvider | None:
    return IdentityProvider.objects.filter(account=account, pk=provider_id).first()
