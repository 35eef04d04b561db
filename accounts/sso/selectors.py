"""Reads of an account's single sign-on configuration: its domains and identity providers (its
group mappings are read through ``accounts.sso.mappings.group_mappings_list``)."""

from __future__ import annotations

from accounts.models import CustomRole, IdentityProvider, SsoDomain, Team
from accounts.permissions import WorkspaceRole
from accounts.roles import ResolvedRole
from accounts.sso import enforcement
from accounts.sso.domains import account_for_email
from billing import entitlements
from tenants.models import Workspace


def sso_domain_list(*, account):
    return SsoDomain.objects.filter(account=account)


def sso_domain_get(*, account, domain_id) -> SsoDomain | None:
    return SsoDomain.objects.filter(account=account, pk=domain_id).first()


def identity_provider_list(*, account):
    return IdentityProvider.objects.filter(account=account)


def identity_provider_get(*, account, provider_id) -> IdentityProvider | None:
    return IdentityProvider.objects.filter(account=account, pk=provider_id).first()


def group_mapping_targets(*, account) -> dict:
    """What a group can be mapped to: the account's teams (not those managed over SCIM), its
    workspaces, and the workspace roles (built-in, then the account's custom roles)."""
    return {
        "teams": list(Team.objects.filter(account=account, scim_managed=False).order_by("name")),
        "workspaces": list(Workspace.objects.filter(account=account).order_by("name")),
        "roles": [
            *(ResolvedRole(builtin=role.value) for role in WorkspaceRole),
            *(
                ResolvedRole(custom=role)
                for role in CustomRole.objects.filter(account=account).order_by("name")
            ),
        ],
    }


def sso_sign_in_options(email: str) -> dict:
    """What signing in as ``email`` is offered: the account that verified its domain (only verified
    domains route), that account's enabled identity providers and whether it enforces SSO
    (``sso_account`` None when it has none, or its plan has no SSO). The sign-in page's second
    step and the invitation page read it."""
    account = account_for_email(email)
    if account is None or not entitlements.check_feature(account, "sso"):
        return {"sso_account": None, "providers": [], "enforced": False}
    providers = list(IdentityProvider.objects.filter(account=account, enabled=True).order_by("name"))
    return {
        "sso_account": account if providers else None,
        "providers": providers,
        "enforced": bool(providers) and enforcement.enforces_sso(account),
    }
