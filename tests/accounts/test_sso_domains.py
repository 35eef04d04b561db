"""Email domains for single sign-on, verified against a real (tiny, local) DNS server."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from accounts.models import SsoDomain
from accounts.sso.domains import account_for_email
from audit.models import AuditLogEntry
from tests.accounts.test_account_api import add_member, client, make_org

pytestmark = pytest.mark.django_db


class LocalDns:
    """A UDP DNS server on 127.0.0.1 answering TXT queries from ``records`` (else NXDOMAIN)."""

    def __init__(self):
        self.records: dict[str, list[str]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries: list[str] = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            self.queries.append(name)
            values = self.records.get(name)
            if values is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                response.flags |= dns.flags.AA
                rrset = dns.rrset.from_text(question.name, 60, "IN", "TXT", *[f'"{v}"' for v in values])
                response.answer.append(rrset)
            self.sock.sendto(response.to_wire(), peer)

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def local_dns(settings):
    server = LocalDns()
    settings.SSO_DNS_NAMESERVERS = ["127.0.0.1"]
    settings.SSO_DNS_PORT = server.port
    settings.SSO_DNS_TIMEOUT_SECONDS = 2.0
    yield server
    server.close()


@pytest.fixture
def org():
    return make_org()


def test_claim_publish_and_verify(org, local_dns):
    c = client(org.owner_key)
    claimed = c.post(f"{org.api}/sso/domains", {"domain": "Corp.Example."}, format="json")
    assert claimed.status_code == 201, claimed.content
    domain = claimed.json()
    assert domain["domain"] == "corp.example" and domain["verified"] is False
    record = domain["dns_record"]
    assert record["type"] == "TXT" and record["name"] == "_cp-sso-verification.corp.example"
    assert account_for_email("ada@corp.example") is None  # not routed before verification

    # Not published yet: a clear reason, nothing verified.
    first = c.post(f"{org.api}/sso/domains/{domain['id']}/verify", {}, format="json").json()
    assert first["verified"] is False and "does not exist" in first["last_check_detail"]
    # A wrong value is not enough.
    local_dns.records[record["name"]] = ["cp-sso-verification=someone-else", "v=spf1 -all"]
    second = c.post(f"{org.api}/sso/domains/{domain['id']}/verify", {}, format="json").json()
    assert second["verified"] is False and record["value"] in second["last_check_detail"]
    # Published: verified, routed, audited.
    local_dns.records[record["name"]] = ["v=spf1 -all", record["value"]]
    third = c.post(f"{org.api}/sso/domains/{domain['id']}/verify", {}, format="json").json()
    assert third["verified"] is True and third["verified_at"]
    assert local_dns.queries.count(record["name"]) == 3
    assert account_for_email("Ada@CORP.example") == org.account
    assert AuditLogEntry.objects.filter(api_name="sso.domain-verified", account_ref=org.account.id).exists()
    assert AuditLogEntry.objects.filter(api_name="sso.domain-claimed", account_ref=org.account.id).exists()

    assert c.delete(f"{org.api}/sso/domains/{domain['id']}").status_code == 204
    assert account_for_email("ada@corp.example") is None
    assert AuditLogEntry.objects.filter(api_name="sso.domain-removed", account_ref=org.account.id).exists()


def test_a_domain_is_verified_for_one_account_only(org, local_dns):
    rival = make_org()
    mine = (
        client(org.owner_key).post(f"{org.api}/sso/domains", {"domain": "corp.example"}, format="json").json()
    )
    theirs = (
        client(rival.owner_key)
        .post(f"{rival.api}/sso/domains", {"domain": "corp.example"}, format="json")
        .json()
    )
    local_dns.records[mine["dns_record"]["name"]] = [
        mine["dns_record"]["value"],
        theirs["dns_record"]["value"],
    ]
    assert (
        client(org.owner_key)
        .post(f"{org.api}/sso/domains/{mine['id']}/verify", {}, format="json")
        .json()["verified"]
    )
    refused = client(rival.owner_key).post(
        f"{rival.api}/sso/domains/{theirs['id']}/verify", {}, format="json"
    )
    assert refused.status_code == 409
    assert account_for_email("x@corp.example") == org.account
    # Another account's domain is not there for this one.
    assert client(rival.owner_key).get(f"{rival.api}/sso/domains/{mine['id']}").status_code == 404
    assert client(rival.owner_key).delete(f"{rival.api}/sso/domains/{mine['id']}").status_code == 404


def test_bad_domains_duplicates_roles_and_plans(org, local_dns):
    c = client(org.owner_key)
    for bad in ("", "localhost", "not a domain", "10.0.0.1", "-bad-.example", 42, None):
        response = c.post(f"{org.api}/sso/domains", {"domain": bad}, format="json")
        assert response.status_code in (400, 422) and response.json()["detail"], bad
    assert (
        c.post(f"{org.api}/sso/domains", {"domain": "ada@corp.example"}, format="json").json()["domain"]
        == "corp.example"
    )
    assert c.post(f"{org.api}/sso/domains", {"domain": "corp.example"}, format="json").status_code == 409
    _, member_key = add_member(org)
    assert (
        client(member_key).post(f"{org.api}/sso/domains", {"domain": "x.example"}, format="json").status_code
        == 403
    )
    small = make_org(plan="team")
    assert (
        client(small.owner_key)
        .post(f"{small.api}/sso/domains", {"domain": "x.example"}, format="json")
        .status_code
        == 403
    )
    assert SsoDomain.objects.filter(account=org.account).count() == 1


def test_dns_that_does_not_answer_is_a_clear_retry_later(org, settings):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    settings.SSO_DNS_NAMESERVERS = ["127.0.0.1"]
    settings.SSO_DNS_PORT = silent.getsockname()[1]
    settings.SSO_DNS_TIMEOUT_SECONDS = 0.5
    try:
        c = client(org.owner_key)
        domain = c.post(f"{org.api}/sso/domains", {"domain": "corp.example"}, format="json").json()
        checked = c.post(f"{org.api}/sso/domains/{domain['id']}/verify", {}, format="json")
        assert checked.status_code == 200 and "try again later" in checked.json()["last_check_detail"]
        assert checked.json()["verified"] is False
    finally:
        silent.close()
