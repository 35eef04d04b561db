"""``prefect cloud ip-allowlist add / ls / remove`` with the unmodified CLI against this server,
and what enforcement then does to the client: allowed from the listed address, refused with the
server's ``detail`` when the change would lock the caller out."""

from __future__ import annotations

import httpx
import pytest

from accounts.api_keys.services import api_key_create
from accounts.models import IpAllowlistEntry
from accounts.services import membership_add
from audit.actors import SYSTEM
from tests.factories import UserFactory

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def test_cli_adds_lists_and_removes_entries(asgi_server, live_tenant, run_prefect):
    owner = UserFactory()
    membership_add(account=live_tenant.account, user=owner, role="owner", actor=SYSTEM)
    key = api_key_create(owner=owner, name="cli", actor=SYSTEM)[1]

    def cli(*args: str):
        return run_prefect(["prefect", "cloud", "ip-allowlist", *args], key=key)

    added = cli("add", "127.0.0.1", "--description", "this machine")
    assert added.returncode == 0, added.describe()
    assert cli("add", "2001:db8::/32").returncode == 0
    assert sorted(IpAllowlistEntry.objects.values_list("ip_network", flat=True)) == [
        "127.0.0.1/32",
        "2001:db8::/32",
    ]

    listed = cli("ls")
    assert listed.returncode == 0, listed.describe()
    assert "127.0.0.1" in listed.stdout and "this machine" in listed.stdout and "DISABLED" in listed.stdout

    bad = cli("add", "300.1.2.3")
    assert bad.returncode != 0 and "not a valid" in bad.output

    # Enforce (the CLI's `enable` asks for a confirmation on a terminal; the API call is the same).
    account_url = f"{live_tenant.cloud_api_url}/accounts/{live_tenant.account.id}"
    headers = {"Authorization": f"Bearer {key}"}
    enabled = httpx.patch(f"{account_url}/settings", json={"enforce_ip_allowlist": True}, headers=headers)
    assert enabled.status_code == 200 and enabled.json()["enforce_ip_allowlist"] is True
    assert "ENABLED" in cli("ls").stdout

    # Removing the caller's own address while enforced is refused, with the server's reason.
    locked = cli("remove", "127.0.0.1")
    assert locked.returncode != 0, locked.describe()
    assert "would block your own IP address" in locked.output, locked.describe()
    assert IpAllowlistEntry.objects.filter(ip_network="127.0.0.1/32").exists()

    assert cli("disable").returncode == 0
    removed = cli("remove", "127.0.0.1")
    assert removed.returncode == 0, removed.describe()
    assert list(IpAllowlistEntry.objects.values_list("ip_network", flat=True)) == ["2001:db8::/32"]
