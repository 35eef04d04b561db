"""Per-account IP allowlists, in Prefect Cloud's model: up to 25 entries (an IPv4 or IPv6 address
or CIDR, enabled or not, a description, when it was last seen) and a separate account setting,
``enforce_ip_allowlist``, that turns enforcement on. With enforcement on and at least one enabled
entry, every request acting in the account must come from an enabled entry's network.

Lock-out protection: a list that would exclude the requester's own address is refused while
enforcement is on, and enforcement can be turned on only from an allowed address. A dry run shows
which members and keys, by the addresses they were seen at in the last 30 days, a proposed list
would block.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts import authcache
from accounts.api_keys.models import ApiKey
from accounts.models import IpAllowlistEntry
from accounts.services import _lock_account
from audit import events
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from audit.services import audit_record, audited_update
from billing import entitlements
from core.errors import InvalidInput, PlanLimitExceeded

MAX_ENTRIES = 25
LAST_SEEN_RESOLUTION = timedelta(seconds=60)
DENIAL_AUDIT_INTERVAL_SECONDS = 60
DRY_RUN_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class Policy:
    """What the request path needs: is the list enforced, and its enabled networks (with the
    entry ids, to stamp ``last_seen``)."""

    enforced: bool
    networks: tuple[tuple[str, object], ...]  # (entry id, ip_network)

    def match(self, ip: str | None) -> str | None:
        """The id of the enabled entry ``ip`` falls in, or None."""
        if ip is None:
            return None
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for entry_id, network in self.networks:
            if address.version == network.version and address in network:
                return entry_id
        return None

    def allows(self, ip: str | None) -> bool:
        return not self.enforced or not self.networks or self.match(ip) is not None


def parse_network(value) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("ip_network must be an IP address or a CIDR range.", code="invalid_ip_network")
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise InvalidInput(
            f"{value[:100]!r} is not a valid IP address or CIDR range.", code="invalid_ip_network"
        ) from None
    if getattr(network.network_address, "scope_id", None):
        # A zone (fe80::1%eth0) names an interface of one machine, not where a client comes from.
        raise InvalidInput(
            f"{value[:100]!r}: an IP allowlist entry cannot carry a zone (%…).", code="invalid_ip_network"
        )
    return network


def plan_allows(account) -> bool:
    return entitlements.check_feature(account, "ip_allowlist").allowed


def is_enforced(account) -> bool:
    return bool((account.settings or {}).get("enforce_ip_allowlist")) and plan_allows(account)


def _load_policy(account) -> Policy:
    entries = IpAllowlistEntry.objects.filter(account=account, enabled=True).values_list("id", "ip_network")
    return Policy(
        enforced=is_enforced(account),
        networks=tuple((str(entry_id), ipaddress.ip_network(net, strict=False)) for entry_id, net in entries),
    )


def policy_for(account) -> Policy:
    """The account's policy, remembered like key access (dropped on any change to it)."""
    return authcache.memo("ip-allowlist", (account.pk,), lambda: _load_policy(account))


# --- the request path --------------------------------------------------------------------------


def check_request(account, ip: str | None, *, actor=None, surface: str = "api") -> str | None:
    """None when ``ip`` may act in ``account``; otherwise the refusal's ``detail`` (the denial is
    audited, at most once a minute per account and address)."""
    if not plan_allows(account):
        return None
    policy = policy_for(account)
    if policy.allows(ip):
        entry_id = policy.match(ip)
        if entry_id is not None:
            _stamp_last_seen(entry_id)
        return None
    _audit_denial(account, ip, actor=actor, surface=surface)
    return f"Access from IP address {ip or 'unknown'} is not allowed by this account's IP allowlist."


def allowed_from_memory(account, ip: str | None) -> bool:
    """True when ``check_request`` would let ``ip`` in and need no I/O to say so (the policy is
    remembered and no ``last_seen`` stamp is due). False means: ask ``check_request``."""
    if not plan_allows(account):
        return True
    policy = authcache.peek("ip-allowlist", (account.pk,))
    if policy is authcache.MISSING or not policy.allows(ip):
        return False
    entry_id = policy.match(ip)
    return entry_id is None or not _stamp_due(entry_id)


_stamped_here: dict[str, float] = {}


def _stamp_due(entry_id: str) -> bool:
    return (
        time.monotonic() - _stamped_here.get(entry_id, float("-inf")) >= LAST_SEEN_RESOLUTION.total_seconds()
    )


def _stamp_last_seen(entry_id: str) -> None:
    """``last_seen`` at most once a minute per entry: checked in the process first (no I/O on a
    warm request), then across processes through the cache."""
    if not _stamp_due(entry_id):
        return
    _stamped_here[entry_id] = time.monotonic()
    if cache.add(f"ip-allowlist:seen:{entry_id}", 1, timeout=int(LAST_SEEN_RESOLUTION.total_seconds())):
        IpAllowlistEntry.objects.filter(pk=entry_id).update(last_seen=timezone.now())


def _audit_denial(account, ip, *, actor, surface: str) -> None:
    key = f"ip-allowlist:denied:{account.pk}:{ip}"
    if not cache.add(key, 1, timeout=DENIAL_AUDIT_INTERVAL_SECONDS):
        return

    audit_record(
        event=events.IP_ALLOWLIST_ACCESS_DENIED,
        actor=actor if actor is not None else SYSTEM,
        account=account,
        target=account,
        payload={"ip": ip, "surface": surface},
    )


# --- reading and changing the list ----------------------------------------------------------------


def entry_wire(entry: IpAllowlistEntry) -> dict:
    return {
        "ip_network": entry.ip_network,
        "enabled": entry.enabled,
        "description": entry.description or None,
        "last_seen": entry.last_seen.isoformat() if entry.last_seen else None,
    }


def allowlist_read(account) -> dict:
    return {"entries": [entry_wire(e) for e in IpAllowlistEntry.objects.filter(account=account)]}


def _entries_snapshot(account) -> list[dict]:
    return allowlist_read(account)["entries"]


def _clean_entries(entries) -> list[dict]:
    if not isinstance(entries, list):
        raise InvalidInput("entries must be a list.", code="invalid_entries")
    if len(entries) > MAX_ENTRIES:
        raise InvalidInput(
            f"An IP allowlist holds at most {MAX_ENTRIES} entries; {len(entries)} were given.",
            code="too_many_entries",
        )
    cleaned, seen = [], set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise InvalidInput("Each entry must be an object.", code="invalid_entries")
        network = parse_network(entry.get("ip_network"))
        if network in seen:
            raise InvalidInput(f"{network} is listed twice.", code="duplicate_entry")
        seen.add(network)
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidInput("enabled must be true or false.", code="invalid_entries")
        description = entry.get("description") or ""
        if not isinstance(description, str) or len(description) > 500:
            raise InvalidInput(
                "description must be a string of at most 500 characters.", code="invalid_entries"
            )
        cleaned.append({"network": network, "enabled": enabled, "description": description})
    return cleaned


def _policy_of(cleaned: list[dict], *, enforced: bool) -> Policy:
    return Policy(
        enforced=enforced,
        networks=tuple((str(i), e["network"]) for i, e in enumerate(cleaned) if e["enabled"]),
    )


def allowlist_replace(*, account, entries, actor, requester_ip: str | None) -> dict:
    """Replace the whole list (what ``PUT ip_allowlist`` and the CLI send). Refused (422) when it is
    malformed, longer than 25 entries, or, while enforcement is on, would lock the requester out."""
    if not plan_allows(account):
        raise PlanLimitExceeded(
            f"The {entitlements.plan_for(account).name} plan does not include IP allowlisting.",
            code="plan_limit",
        )
    cleaned = _clean_entries(entries)
    with transaction.atomic():
        account = _lock_account(account)
        if is_enforced(account) and not _policy_of(cleaned, enforced=True).allows(requester_ip):
            raise InvalidInput(
                f"This change would block your own IP address ({requester_ip}); add it to the list or "
                "turn enforcement off first.",
                code="lockout",
            )
        with audited_update(
            instance=account,
            snapshot=_entries_snapshot,
            event=events.IP_ALLOWLIST_CHANGED,
            actor=actor,
            account=account,
            always=True,
        ) as change:
            existing = {e.ip_network: e for e in IpAllowlistEntry.objects.filter(account=account)}
            kept = set()
            for item in cleaned:
                key = str(item["network"])
                kept.add(key)
                row = existing.get(key)
                if row is None:
                    IpAllowlistEntry.objects.create(
                        account=account,
                        ip_network=key,
                        enabled=item["enabled"],
                        description=item["description"],
                    )
                elif (row.enabled, row.description) != (item["enabled"], item["description"]):
                    row.enabled, row.description = item["enabled"], item["description"]
                    row.save(update_fields=["enabled", "description"])
            IpAllowlistEntry.objects.filter(account=account).exclude(ip_network__in=kept).delete()
    return {"entries": change.after}


def my_access(account, ip: str | None) -> dict:
    """Would ``ip`` be allowed with enforcement on (what the CLI asks before enabling)?"""
    policy = policy_for(account)
    would = Policy(enforced=True, networks=policy.networks)
    if would.allows(ip):
        return {"allowed": True, "detail": f"Your IP address {ip} is allowed by the account's IP allowlist."}
    return {
        "allowed": False,
        "detail": f"Your IP address {ip} is not in the account's IP allowlist; add it before enabling enforcement.",
    }


def enforcement_check(account, *, enable: bool, requester_ip: str | None) -> None:
    """Raise ``InvalidInput`` when turning enforcement on would lock the requester out."""
    if not enable:
        return
    if not plan_allows(account):
        raise InvalidInput(
            f"The {entitlements.plan_for(account).name} plan does not include IP allowlisting.",
            code="plan_limit",
        )
    policy = Policy(enforced=True, networks=_load_policy(account).networks)
    if not policy.allows(requester_ip):
        raise InvalidInput(
            f"Enabling the IP allowlist would block your own IP address ({requester_ip}); add it to the list first.",
            code="lockout",
        )


def dry_run(account, entries) -> dict:
    """Who a proposed list would block, by the addresses seen in the last 30 days: people (from
    their audited requests and their keys' last use) and service-account keys."""

    policy = _policy_of(_clean_entries(entries), enforced=True)
    since = timezone.now() - DRY_RUN_WINDOW
    seen: dict[tuple[str, str, str], set[str]] = {}
    keys = ApiKey.objects.filter(last_used_at__gte=since, last_used_ip__isnull=False).select_related(
        "user", "service_account"
    )
    keys = keys.filter(service_account__account=account) | keys.filter(user__memberships__account=account)
    for key in keys.distinct():
        owner = key.service_account or key.user
        kind = "service_account" if key.service_account_id else "user"
        label = owner.name if key.service_account_id else owner.email
        seen.setdefault((kind, str(owner.pk), label), set()).add(key.last_used_ip)
    entries_seen = (
        AuditLogEntry.objects.filter(account=account, occurred__gte=since, ip__isnull=False)
        .exclude(actor_user__isnull=True)
        .values_list("actor_user_id", "actor_user__email", "ip")
        .distinct()
    )
    for user_id, email, ip in entries_seen:
        if ip:
            seen.setdefault(("user", str(user_id), email), set()).add(ip)
    blocked = []
    for (kind, principal_id, label), ips in sorted(seen.items(), key=lambda item: item[0][2] or ""):
        denied = sorted(ip for ip in ips if not policy.allows(ip))
        if denied:
            blocked.append({"type": kind, "id": principal_id, "name": label, "blocked_ips": denied})
    return {"would_block": blocked, "window_days": DRY_RUN_WINDOW.days}


def entry_list(account):
    """The account's entries, by network (one query)."""
    return IpAllowlistEntry.objects.filter(account=account).order_by("ip_network")


def entry_get(account, entry_id) -> IpAllowlistEntry | None:
    return IpAllowlistEntry.objects.filter(account=account, pk=entry_id).first()
