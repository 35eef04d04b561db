"""Edge cases of the IP allowlist and the audit trail: address spellings (IPv4-mapped and
-compatible IPv6, zones), bodies the database cannot store, half-writes, the hash chain under
retention and deletion, offline export verification, and what is audited where."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import IpAllowlistEntry
from audit import events
from audit.actors import SYSTEM
from audit.context import RequestContext, reset_request_context, resolve_client_ip, set_request_context
from audit.models import AuditLogEntry
from audit.services import audit_record, audit_verify_chain
from orchestration.events.auth import authorize_sync, socket_request_context
from tests.accounts.test_account_api import add_member, client, make_org
from tests.accounts.test_ip_allowlist import _fresh_cache  # noqa: F401 - an autouse fixture

pytestmark = pytest.mark.django_db


def _put(org, entries, key=None, **extra):
    return client(key or org.owner_key).put(
        f"{org.api}/ip_allowlist", {"entries": entries}, format="json", **extra
    )


def _enforce(org, on=True, **extra):
    return client(org.owner_key).patch(
        f"{org.api}/settings", {"enforce_ip_allowlist": on}, format="json", **extra
    )


def _noraise(c):
    c.raise_request_exception = False
    return c


def _enforced_org(entries=({"ip_network": "127.0.0.1"},)):
    org = make_org()
    assert _put(org, list(entries)).status_code == 200
    assert _enforce(org).status_code == 200
    return org


# --- client IP / matching ------------------------------------------------------------------------


def test_an_ipv4_mapped_peer_matches_its_ipv4_entry():
    """A dual-stack listener (uvicorn --host ::) reports IPv4 peers as ::ffff:a.b.c.d."""
    org = _enforced_org()
    response = client(org.owner_key).post(
        f"{org.ws}/flows/filter", {}, format="json", REMOTE_ADDR="::ffff:127.0.0.1"
    )
    assert response.status_code == 200, response.content


def test_an_ipv4_mapped_trusted_proxy_is_recognised(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert resolve_client_ip("::ffff:10.0.0.5", "203.0.113.9") == "203.0.113.9"


def test_a_peer_with_a_zone_is_refused_with_403():
    org = _enforced_org()
    c = _noraise(client(org.owner_key))
    response = c.post(f"{org.ws}/flows/filter", {}, format="json", REMOTE_ADDR="fe80::1%eth0")
    assert response.status_code == 403, (response.status_code, response.content[:200])


def test_a_peer_with_a_zone_in_an_allowed_range_gets_in():
    """Allowed by fe80::/64, but the key's last_used_ip (inet) cannot hold the zone id."""
    org = _enforced_org([{"ip_network": "127.0.0.1"}, {"ip_network": "fe80::/64"}])
    c = _noraise(client(org.owner_key))
    response = c.post(f"{org.ws}/flows/filter", {}, format="json", REMOTE_ADDR="fe80::1%eth0")
    assert response.status_code == 200, (response.status_code, response.content[:200])


def test_an_entry_with_a_zone_is_422():
    org = make_org()
    c = _noraise(client(org.owner_key))
    response = c.put(
        f"{org.api}/ip_allowlist",
        {"entries": [{"ip_network": "fe80::1%" + "a" * 80}]},
        format="json",
    )
    assert response.status_code == 422, (response.status_code, response.content[:200])


def test_forwarded_for_spoofing_and_the_walk(settings):
    settings.TRUSTED_PROXIES = []
    assert resolve_client_ip("203.0.113.7", "127.0.0.1") == "203.0.113.7"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert resolve_client_ip("10.0.0.1", "127.0.0.1, 203.0.113.7") == "203.0.113.7"
    assert resolve_client_ip("10.0.0.1", "127.0.0.1, 203.0.113.7, 10.0.0.2") == "203.0.113.7"
    assert resolve_client_ip("203.0.113.7", "127.0.0.1, 10.0.0.2") == "203.0.113.7"
    assert resolve_client_ip("10.0.0.1", " 203.0.113.7 ") == "203.0.113.7"


def test_entries_are_normalised():
    org = make_org()
    r = _put(
        org,
        [
            {"ip_network": "  127.0.0.1 "},
            {"ip_network": "10.1.2.3/8"},
            {"ip_network": "0.0.0.0/0", "enabled": False},
            {"ip_network": "2001:DB8::1/32"},
        ],
    )
    assert r.status_code == 200, r.content
    assert sorted(e["ip_network"] for e in r.json()["entries"]) == sorted(
        ["127.0.0.1/32", "10.0.0.0/8", "0.0.0.0/0", "2001:db8::/32"]
    )
    # duplicate after normalisation
    assert _put(org, [{"ip_network": "10.0.0.0/8"}, {"ip_network": "10.9.9.9/8"}]).status_code == 422


def test_bad_bodies_are_422():
    org = make_org()
    c = _noraise(client(org.owner_key))
    url = f"{org.api}/ip_allowlist"
    bad = [
        ("{not json", "application/json"),
        (json.dumps([1, 2]), "application/json"),
        (json.dumps({"entries": None}), "application/json"),
        (json.dumps({"entries": {"ip_network": "1.2.3.4"}}), "application/json"),
        (json.dumps({"entries": [None]}), "application/json"),
        (json.dumps({"entries": [{"ip_network": 5}]}), "application/json"),
        (json.dumps({"entries": [{"ip_network": "1.2.3.4", "enabled": "yes"}]}), "application/json"),
        (json.dumps({"entries": [{"ip_network": "1.2.3.4", "description": ["x"]}]}), "application/json"),
        (json.dumps({"entries": [{"ip_network": "1.2.3.4", "description": "x" * 501}]}), "application/json"),
        (json.dumps({"entries": [{"ip_network": "1.2.3.4"}] * 10000}), "application/json"),
        (json.dumps({"entries": [{"ip_network": "1.2.3.4/-1"}]}), "application/json"),
    ]
    for body, ctype in bad:
        response = c.generic("PUT", url, body, content_type=ctype)
        assert response.status_code == 422, (body[:80], response.status_code, response.content[:200])
    for body in ("{bad", json.dumps({"entries": "x"}), json.dumps({"entries": None})):
        response = c.generic("POST", f"{url}/dry_run", body, content_type="application/json")
        assert response.status_code == 422, (body, response.status_code)
    for body in ('{"enforce_ip_allowlist": "true"}', '{"enforce_ip_allowlist": 1}', "[]", "{x"):
        response = c.generic("PATCH", f"{org.api}/settings", body, content_type="application/json")
        assert response.status_code == 422, (body, response.status_code)


# --- lock-out ---------------------------------------------------------------------------------------


def test_lockout_ipv6_requester_and_disabling_own_entry():
    org = make_org()
    v6 = {"REMOTE_ADDR": "2001:db8::5"}
    assert _put(org, [{"ip_network": "2001:db8::/64"}, {"ip_network": "10.0.0.0/8"}], **v6).status_code == 200
    assert _enforce(org, **v6).status_code == 200
    r = _put(org, [{"ip_network": "2001:db8::/64", "enabled": False}, {"ip_network": "10.0.0.0/8"}], **v6)
    assert r.status_code == 422 and "2001:db8::5" in r.json()["detail"]
    r = _put(org, [{"ip_network": "10.0.0.0/8"}], **v6)
    assert r.status_code == 422
    # enabling from a non-allowed address is refused
    org2 = make_org()
    _put(org2, [{"ip_network": "10.0.0.0/8"}])
    assert _enforce(org2).status_code == 422


def test_my_access_answers_a_refused_address():
    org = _enforced_org()
    r = client(org.owner_key).get(f"{org.api}/ip_allowlist/my_access", REMOTE_ADDR="203.0.113.7")
    assert r.status_code == 200 and r.json()["allowed"] is False


# --- surfaces ----------------------------------------------------------------------------------------


def test_account_surfaces_are_enforced():
    org = _enforced_org()
    c = client(org.owner_key)
    bad = {"REMOTE_ADDR": "203.0.113.7"}
    assert c.get(f"{org.api}", **bad).status_code == 403
    assert c.get(f"{org.api}/", **bad).status_code == 403
    assert c.get(f"{org.api}/settings", **bad).status_code == 403
    assert c.get(f"{org.api}/ip_allowlist", **bad).status_code == 403
    assert c.get(f"{org.api}/audit_events", **bad).status_code == 403
    assert c.get(f"{org.api}/scim", **bad).status_code == 403
    assert c.get(f"{org.ws}/user_access/filter", **bad).status_code in (403, 405)
    assert c.post(f"{org.ws}/variables/filter", {}, format="json", **bad).status_code == 403
    person, key = add_member(org)
    assert client(key).post(f"{org.ws}/flows/filter", {}, format="json", **bad).status_code in (403, 404)


def test_me_workspaces_leaves_out_an_account_that_refuses_the_address():
    """As the console home does (and the denial is audited)."""
    org = _enforced_org()
    allowed = client(org.owner_key).get("/api/me/workspaces")
    assert str(org.workspace.id) in json.dumps(allowed.json())
    r = client(org.owner_key).get("/api/me/workspaces", REMOTE_ADDR="203.0.113.7")
    assert r.status_code == 200
    assert str(org.workspace.id) not in json.dumps(r.json())
    assert AuditLogEntry.objects.filter(api_name="request.access-denied.ip-allowlist").exists()


def test_a_websocket_denial_carries_the_request_facts():
    org = _enforced_org()
    assert (
        authorize_sync(
            token=org.owner_key,
            account_ref=str(org.account.id),
            workspace_ref=str(org.workspace.id),
            scopes=("see_events",),
            ip="203.0.113.7",
            context=socket_request_context(
                {
                    "client": ("203.0.113.7", 5000),
                    "headers": [(b"user-agent", b"prefect/3 (websocket)"), (b"x-request-id", b"abc-123")],
                }
            ),
        )
        is None
    )
    denial = AuditLogEntry.objects.get(api_name="request.access-denied.ip-allowlist")
    assert denial.payload["ip"] == "203.0.113.7"
    assert (denial.ip, denial.user_agent, denial.request_id) == (
        "203.0.113.7",
        "prefect/3 (websocket)",
        "abc-123",
    )
    assert denial.payload["auth"]["method"] == "api_key"


# --- account API atomicity -----------------------------------------------------------------------------


def test_an_account_patch_with_a_refused_setting_changes_nothing():
    org = make_org()
    old = org.account.name
    r = client(org.owner_key).patch(
        f"{org.api}", {"name": "Renamed", "settings": {"enforce_ip_allowlist": "yes"}}, format="json"
    )
    assert r.status_code == 422
    org.account.refresh_from_db()
    assert org.account.name == old, "name committed although the request was refused"


# --- audit chain ------------------------------------------------------------------------------------


def _disable_trigger(cursor):
    if connection.vendor == "postgresql":
        cursor.execute("ALTER TABLE audit_auditlogentry DISABLE TRIGGER audit_entry_append_only")


def _enable_trigger(cursor):
    if connection.vendor == "postgresql":
        cursor.execute("ALTER TABLE audit_auditlogentry ENABLE TRIGGER audit_entry_append_only")


def test_verify_sees_every_entry_after_the_checkpoint_deleted():
    org = make_org()
    for _ in range(3):
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    assert audit_verify_chain(org.account.pk).ok
    with connection.cursor() as cursor:
        _disable_trigger(cursor)
        AuditLogEntry.objects.filter(chain=org.account.pk).delete()
        _enable_trigger(cursor)
    report = audit_verify_chain(org.account.pk)
    assert not report.ok, report


def test_verify_catches_tail_truncation():
    org = make_org()
    for _ in range(3):
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    last = AuditLogEntry.objects.filter(chain=org.account.pk).order_by("-sequence").first()
    with connection.cursor() as cursor:
        _disable_trigger(cursor)
        AuditLogEntry.objects.filter(pk=last.pk).delete()
        _enable_trigger(cursor)
    assert not audit_verify_chain(org.account.pk).ok


def test_an_ipv4_compatible_client_address_keeps_the_hash():
    """PostgreSQL's inet prints ::102:304 as ::1.2.3.4, so the stored text differs from what was
    hashed."""
    org = make_org()
    token = set_request_context(RequestContext(request_id="r1", ip="::102:304", user_agent="x"))
    try:
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    finally:
        reset_request_context(token)
    report = audit_verify_chain(org.account.pk)
    assert report.ok, report


def test_an_export_with_line_separators_in_values_verifies_offline(tmp_path):
    org = make_org()
    # A User-Agent header byte 0x85 arrives as U+0085 (latin-1); U+2028 can come from any JSON field.
    for ua in ("curl\x85evil", "a\u2028b"):
        token = set_request_context(RequestContext(request_id="r1", ip="127.0.0.1", user_agent=ua))
        try:
            audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
        finally:
            reset_request_context(token)
    out = tmp_path / "audit.jsonl"
    call_command("audit_export", account=str(org.account.id), out=str(out))
    call_command("audit_verify", manifest=f"{out}.manifest.json")


def test_short_retention_plans_are_purged_at_their_own_cutoff(tmp_path):
    """Team keeps 90 days; entries 200 days old stay because the candidate chains are chosen with
    the *earliest* cutoff of any plan (365 days)."""
    from datetime import timedelta
    from unittest import mock

    from django.utils import timezone

    from audit.services import audit_purge_expired

    now = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=now - timedelta(days=200)):
        org = make_org(plan="team")
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    audit_purge_expired()
    old = AuditLogEntry.objects.filter(chain=org.account.pk, occurred__lt=now - timedelta(days=90))
    assert not old.exists(), f"{old.count()} entries past the Team plan's 90 days were kept"


def test_purge_then_verify_and_export(tmp_path):
    from datetime import timedelta
    from unittest import mock

    from django.utils import timezone

    from audit.services import audit_purge_expired

    now = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=now - timedelta(days=400)):
        org = make_org(plan="team")  # 90 days
        for _ in range(3):
            audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    with mock.patch("django.utils.timezone.now", return_value=now - timedelta(days=60)):
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    assert audit_purge_expired() >= 3
    assert audit_verify_chain(org.account.pk).ok
    out = tmp_path / "a.jsonl"
    call_command("audit_export", account=str(org.account.id), out=str(out))
    call_command("audit_verify", manifest=f"{out}.manifest.json")
    # 40 days later the last entry has expired too: the chain is empty and still verifies.
    with mock.patch("django.utils.timezone.now", return_value=now + timedelta(days=40)):
        audit_purge_expired()
    assert not AuditLogEntry.objects.filter(chain=org.account.pk).exists()
    assert audit_verify_chain(org.account.pk).ok


def test_manifest_tampering_is_detected(tmp_path):
    org = make_org()
    for i in range(3):
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account, payload={"i": i})
    out = tmp_path / "a.jsonl"
    call_command("audit_export", account=str(org.account.id), out=str(out))
    mpath = tmp_path / "a.jsonl.manifest.json"
    manifest = json.loads(mpath.read_text())
    # drop the last line and fix the digest+count: signature breaks
    import hashlib

    lines = out.read_bytes().splitlines(keepends=True)[:-1]
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines))
    manifest.update(
        file="b.jsonl", entries=len(lines), file_sha256=hashlib.sha256(b"".join(lines)).hexdigest()
    )
    (tmp_path / "b.manifest.json").write_text(json.dumps(manifest))
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="signature"):
        call_command("audit_verify", manifest=str(tmp_path / "b.manifest.json"))


# --- audit_events API ---------------------------------------------------------------------------------


def test_audit_events_bad_filters_are_422_and_no_cross_account():
    org, other = make_org(), make_org()
    for _ in range(3):
        audit_record(event=events.TEAM_CREATED, actor=SYSTEM, account=other.account)
    c = _noraise(client(org.owner_key))
    url = f"{org.api}/audit_events"
    for params in (
        {"since": "yesterday"},
        {"since": "2024-02-30T00:00:00"},
        {"until": "2024-13-01T00:00:00Z"},
        {"workspace": "nope"},
        {"actor": "nope"},
        {"cursor": "abc"},
        {"limit": "x"},
        {"limit": "1000"},
        {"limit": "-1"},
    ):
        r = c.get(url, params)
        assert r.status_code == 422, (params, r.status_code, r.content[:200])
    for params in ({"cursor": "99999999999999999999999"},):
        r = c.get(url, params)
        assert r.status_code == 200, (params, r.status_code, r.content[:200])
    everything = c.get(url, {"limit": 200}).json()["events"]
    assert all(e["account_ref"] == str(org.account.id) for e in everything)
    assert client(other.owner_key).get(url).status_code == 404
    # a plain member without read:audit_event
    _, key = add_member(org)
    assert client(key).get(url).status_code == 403


def test_audit_events_cursor_with_equal_timestamps():
    from unittest import mock

    from django.utils import timezone

    org = make_org()
    now = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=now):
        for _ in range(7):
            audit_record(event=events.TEAM_CREATED, actor=SYSTEM, account=org.account)
    c = client(org.owner_key)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "event": "team.created"}
        if cursor:
            params["cursor"] = cursor
        page = c.get(f"{org.api}/audit_events", params).json()
        seen += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 7 == len(set(seen))


# --- audit event coverage ----------------------------------------------------------------------------


def test_allowlist_change_one_event_and_auditlog_diff():
    from auditlog.models import LogEntry

    org = make_org()
    before = AuditLogEntry.objects.filter(api_name="ip-allowlist.changed").count()
    _put(org, [{"ip_network": "127.0.0.1"}], HTTP_X_FORWARDED_FOR="1.1.1.1")
    assert AuditLogEntry.objects.filter(api_name="ip-allowlist.changed").count() == before + 1
    entry = AuditLogEntry.objects.filter(api_name="ip-allowlist.changed").latest("sequence")
    assert entry.ip == "127.0.0.1" and entry.payload["auth"]["method"] == "api_key"
    log = LogEntry.objects.get_for_model(IpAllowlistEntry).latest("timestamp")
    assert log.remote_addr == "127.0.0.1"


def test_a_user_keys_new_ip_event_is_in_the_account_it_acted_in():
    org = make_org()
    c = client(org.owner_key)
    assert c.post(f"{org.ws}/flows/filter", {}, format="json").status_code == 200
    assert c.post(f"{org.ws}/flows/filter", {}, format="json", REMOTE_ADDR="198.51.100.9").status_code == 200
    assert AuditLogEntry.objects.filter(api_name="api-key.used-from-new-ip").exists()
    listed = c.get(f"{org.api}/audit_events", {"event": "api-key.used-from-new-ip"}).json()["events"]
    assert listed, "the owner's key used from a new IP in this account's workspace is not in its log"


def test_a_nul_in_a_description_is_422():
    org = make_org()
    c = _noraise(client(org.owner_key))
    r = c.put(
        f"{org.api}/ip_allowlist",
        {"entries": [{"ip_network": "1.2.3.4", "description": "a\u0000b"}]},
        format="json",
    )
    assert r.status_code == 422, (r.status_code, r.content[:200])


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00+16:00", "2024-01-01T00:00:00-23:00"])
def test_audit_events_since_with_a_far_offset_is_understood(value):
    org = make_org()
    c = _noraise(client(org.owner_key))
    audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    r = c.get(f"{org.api}/audit_events", {"since": value})
    assert r.status_code == 200, (r.status_code, r.content[:200])
    assert r.json()["events"]  # 2024 in any offset is before now


def test_an_ipv4_mapped_address_hashes_consistently():
    org = make_org()
    token = set_request_context(RequestContext(request_id="r1", ip="::ffff:7f00:1", user_agent="x"))
    try:
        audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account)
    finally:
        reset_request_context(token)
    assert audit_verify_chain(org.account.pk).ok


def test_an_ipv4_mapped_client_logs_no_spurious_new_ip_events():
    """Python writes ::ffff:127.0.0.1 as ::ffff:7f00:1 and PostgreSQL reads it back dotted: the same
    client must not look like a new address each time the key memo is reloaded."""
    from accounts import authcache

    org = make_org()
    c = client(org.owner_key)
    for _ in range(4):
        authcache.clear()  # the memo expiring (AUTH_CACHE_SECONDS) or any authz change
        assert (
            c.post(f"{org.ws}/flows/filter", {}, format="json", REMOTE_ADDR="::ffff:127.0.0.1").status_code
            == 200
        )
    events_new_ip = AuditLogEntry.objects.filter(api_name="api-key.used-from-new-ip")
    assert events_new_ip.count() == 0, [e.payload for e in events_new_ip]


def test_a_large_float_in_deployment_parameters_keeps_the_chain(api_client, tenant):
    """jsonb prints 1e16 as 10000000000000000 (an int when read back): the stored payload still
    hashes to what was hashed at write time."""
    from tests.conftest import bearer

    c = bearer(api_client, tenant.service_key)
    flow_id = c.post(f"{tenant.prefix}/flows/", {"name": "f"}, format="json").json()["id"]
    r = c.post(
        f"{tenant.prefix}/deployments/",
        {"name": "d", "flow_id": flow_id, "parameters": {"threshold": 1e16}},
        format="json",
    )
    assert r.status_code in (200, 201), r.content
    report = audit_verify_chain(tenant.account.pk)
    broken = AuditLogEntry.objects.filter(pk=report.entry_id).values_list("api_name", flat=True).first()
    assert report.ok, (broken, report)


@pytest.mark.parametrize("number", [1e16, 1.5e16, 1e300, -2e20, 1.0, 123.0, 1.5e-07, 0.1, 2**70, 5])
def test_numbers_in_a_payload_keep_the_chain(number):
    org = make_org()
    audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account, payload={"n": [number]})
    assert audit_verify_chain(org.account.pk).ok


def test_a_nul_in_any_json_body_is_a_4xx_with_a_detail(api_client, tenant):
    from tests.conftest import bearer

    c = _noraise(bearer(api_client, tenant.service_key))
    r = c.post(f"{tenant.prefix}/flows/", '{"name": "a\\u0000b"}', content_type="application/json")
    assert 400 <= r.status_code < 500 and "NUL" in r.json()["detail"], r.content
    # An escaped backslash before "u0000" is plain text.
    ok = c.post(f"{tenant.prefix}/flows/", '{"name": "a\\\\u0000b"}', content_type="application/json")
    assert ok.status_code in (200, 201), ok.content
    assert ok.json()["name"] == "a\\u0000b"
