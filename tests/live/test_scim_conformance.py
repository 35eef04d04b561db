"""SCIM conformance, checked by scim2-cli (RFC 7643/7644 checks from scim2-tester) against the live
server: every check must pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.scim.services import scim_token_create
from audit.actors import SYSTEM

pytestmark = pytest.mark.django_db(transaction=True)

SCIM_CLI = Path(sys.executable).with_name("scim2")


def run_scim2(url: str, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCIM_CLI_HEADERS": f"Authorization: Bearer {token}", "NO_COLOR": "1"}
    return subprocess.run(
        [str(SCIM_CLI), "--url", url, *args], capture_output=True, text=True, timeout=300, env=env
    )


# Checks this server fails on purpose, each explained in the README with its RFC section: (check,
# a phrase of its message).
DISAGREED = {("check_remove_attribute", "remove attribute 'displayName'")}


def failures_in(output: str) -> list[tuple[str, str]]:
    """``(check, first line of its message)`` for every ERROR or CRITICAL the tester printed."""
    found = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^\s*(ERROR|CRITICAL)\s+(\S+)", line)
        if match:
            message = lines[i + 1].strip() if i + 1 < len(lines) else ""
            found.append((match.group(2), message))
    return found


def test_scim2_tester_finds_nothing_wrong(asgi_server, live_tenant):
    account = live_tenant.tenant.account
    _, token = scim_token_create(account=account, actor=SYSTEM, name="conformance")
    url = f"{asgi_server.url}/scim/v2/accounts/{account.id}"
    result = run_scim2(url, token, "test", "--verbose")
    output = result.stdout + result.stderr
    assert "SUCCESS" in output, output[-5000:]
    unexpected = [
        (check, message)
        for check, message in failures_in(output)
        if not any(check == name and phrase in message for name, phrase in DISAGREED)
    ]
    assert not unexpected, "\n".join(f"{check}: {message}" for check, message in unexpected)
