"""Email domains an account claims for single sign-on, verified through DNS.

Claiming a domain gives the account a token; the account publishes it as a TXT record at
``_cp-sso-verification.<domain>`` (``cp-sso-verification=<token>``) and asks for verification,
which looks the record up with dnspython (``SSO_DNS_NAMESERVERS`` / ``SSO_DNS_PORT`` point it at
specific resolvers; by default the system's). Only verified domains route logins and capture new
sign-ups, and a domain is verified for one account at most. Claims, verifications and removals are
audit events.
"""

from __future__ import annotations

import re
import secrets

import dns.exception
import dns.resolver
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import SsoDomain
from accounts.services import _lock_account
from audit import events
from audit.services import audit_record
from billing import entitlements
from core.errors import Conflict, InvalidInput
from tenants.models import Account

RECORD_PREFIX = "_cp-sso-verification"
VALUE_PREFIX = "cp-sso-verification="
MAX_DOMAINS = 50
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_domain(value) -> str:
    """A lower-case domain name (IDNA for non-ASCII), or a 422 that says why not."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("domain must be a domain name such as example.com.", code="invalid_domain")
    domain = value.strip().rstrip(".").lower()
    if "@" in domain:
        domain = domain.rsplit("@", 1)[1]
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput(f"{value!r} is not a valid domain name.", code="invalid_domain") from None
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(f"{value!r} is not a valid domain name.", code="invalid_domain")
    if labels[-1].isdigit():
        raise InvalidInput(f"{value!r} is an address, not a domain name.", code="invalid_domain")
    return domain


def record_name(domain: SsoDomain) -> str:
    return f"{RECORD_PREFIX}.{domain.domain}"


def record_value(domain: SsoDomain) -> str:
    return f"{VALUE_PREFIX}{domain.token}"


def domain_claim(*, account: Account, domain: str, actor) -> SsoDomain:
    name = normalize_domain(domain)
    entitlements.ensure_feature(account, "sso")
    try:
        with transaction.atomic():
            account = _lock_account(account)
            if SsoDomain.objects.filter(account=account).count() >= MAX_DOMAINS:
                raise Conflict(
                    f"An account can claim at most {MAX_DOMAINS} domains.", code="too_many_domains"
                )
            if SsoDomain.objects.filter(account=account, domain=name).exists():
                raise Conflict(f"{name} is already claimed by this account.", code="domain_claimed")
            claimed = SsoDomain.objects.create(account=account, domain=name, token=secrets.token_urlsafe(24))
            audit_record(
                event=events.SSO_DOMAIN_CLAIMED,
                actor=actor,
                account=account,
                target=account,
                payload={"domain": name, "domain_id": str(claimed.id)},
            )
    except IntegrityError:
        raise Conflict(f"{name} is already claimed by this account.", code="domain_claimed") from None
    return claimed


def _txt_values(name: str) -> list[str]:
    resolver = dns.resolver.Resolver(configure=not settings.SSO_DNS_NAMESERVERS)
    if settings.SSO_DNS_NAMESERVERS:
        resolver.nameservers = list(settings.SSO_DNS_NAMESERVERS)
    resolver.port = settings.SSO_DNS_PORT
    resolver.lifetime = settings.SSO_DNS_TIMEOUT_SECONDS
    answer = resolver.resolve(name, "TXT")
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def domain_verify(*, domain: SsoDomain, actor) -> SsoDomain:
    """Look the TXT record up; on a match the domain is verified (unless another account has it)."""
    if domain.verified_at is not None:
        return domain
    expected = record_value(domain)
    try:
        found = _txt_values(record_name(domain))
        detail = "" if expected in found else f"No TXT record at {record_name(domain)} holds {expected}."
    except dns.resolver.NXDOMAIN:
        detail = f"{record_name(domain)} does not exist in DNS."
    except dns.resolver.NoAnswer:
        detail = f"{record_name(domain)} has no TXT record."
    except (dns.resolver.NoNameservers, dns.exception.Timeout):
        detail = f"DNS did not answer for {record_name(domain)}; try again later."
    now = timezone.now()
    try:
        with transaction.atomic():
            domain = SsoDomain.objects.select_for_update().get(pk=domain.pk)
            domain.last_checked_at, domain.last_check_detail = now, detail
            if not detail:
                if (
                    SsoDomain.objects.filter(domain=domain.domain, verified_at__isnull=False)
                    .exclude(pk=domain.pk)
                    .exists()
                ):
                    raise Conflict(f"{domain.domain} is verified by another account.", code="domain_taken")
                domain.verified_at = now
                audit_record(
                    event=events.SSO_DOMAIN_VERIFIED,
                    actor=actor,
                    account=domain.account,
                    target=domain.account,
                    payload={"domain": domain.domain, "domain_id": str(domain.id)},
                )
            domain.save(update_fields=["last_checked_at", "last_check_detail", "verified_at"])
    except IntegrityError:
        raise Conflict(f"{domain.domain} is verified by another account.", code="domain_taken") from None
    return domain


def domain_remove(*, domain: SsoDomain, actor) -> None:
    with transaction.atomic():
        audit_record(
            event=events.SSO_DOMAIN_REMOVED,
            actor=actor,
            account=domain.account,
            target=domain.account,
            payload={
                "domain": domain.domain,
                "domain_id": str(domain.id),
                "was_verified": domain.verified_at is not None,
            },
        )
        domain.delete()


def account_for_email(email: str) -> Account | None:
    """The account whose verified domain ``email`` belongs to (where its login is routed)."""
    _, _, host = (email or "").strip().lower().rpartition("@")
    try:
        host = host.rstrip(".").encode("idna").decode("ascii")  # as domains are stored
    except UnicodeError:
        return None
    if not host or len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        return None
    found = SsoDomain.objects.filter(domain=host, verified_at__isnull=False).select_related("account").first()
    return found.account if found else None
