"""JSON logs: one object a line, with the request id, account and workspace, and never a secret.

A flow signs in with a password, creates an API key, a SCIM token and a Secret block through the
API, uses each of them, and is refused once with a wrong key, while every log record of every logger
(at DEBUG) is captured through the product's formatter; none of what was issued or sent appears.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from rest_framework.test import APIClient

from accounts.permissions import AccountRole, WorkspaceRole
from config.logging import ContextFilter, JsonFormatter
from tests.factories import GrantFactory, MembershipFactory, UserFactory
from tests.test_embedded_startup import run_python

PASSWORD = "correct horse battery staple 42"
BLOCK_SECRET = "s3cr3t-database-password-9f8e7d"


@pytest.fixture
def captured_logs():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@pytest.mark.django_db
def test_a_flow_logs_no_secret_it_issued(client, tenant, captured_logs):
    owner = UserFactory()
    owner.set_password(PASSWORD)
    owner.save()
    MembershipFactory(account=tenant.account, user=owner, role=AccountRole.OWNER)
    GrantFactory(workspace=tenant.workspace, user=owner, role=WorkspaceRole.OWNER)

    signed_in = client.post("/login/", {"username": owner.email, "password": PASSWORD})
    assert signed_in.status_code == 302

    created = client.post(f"/api/users/{owner.id}/api_keys", {"name": "ci"}, content_type="application/json")
    assert created.status_code == 201, created.content
    api_key = created.json()["key"]

    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {api_key}", HTTP_X_REQUEST_ID="flow-req-0001")
    scim = api.post(f"/api/accounts/{tenant.account.id}/scim/tokens", {"name": "okta"}, format="json")
    assert scim.status_code == 201, scim.content
    scim_token = scim.json()["token"]
    assert scim.headers["X-Request-ID"] == "flow-req-0001"

    listed = APIClient(HTTP_AUTHORIZATION=f"Bearer {scim_token}").get(
        f"/scim/v2/accounts/{tenant.account.id}/Users"
    )
    assert listed.status_code == 200, listed.content

    p = tenant.prefix
    secret_type = api.get(f"{p}/block_types/slug/secret").json()
    schema = api.post(
        f"{p}/block_schemas/filter",
        {"block_schemas": {"block_type_id": {"any_": [secret_type["id"]]}}},
        format="json",
    ).json()[0]
    document = api.post(
        f"{p}/block_documents/",
        {
            "name": "db-password",
            "block_type_id": secret_type["id"],
            "block_schema_id": schema["id"],
            "data": {"value": BLOCK_SECRET},
        },
        format="json",
    )
    assert document.status_code == 201, document.content
    read = api.get(f"{p}/block_documents/{document.json()['id']}?include_secrets=true")
    assert read.json()["data"]["value"] == BLOCK_SECRET

    wrong_key = api_key[:-6] + "XXXXXX"
    refused = APIClient(HTTP_AUTHORIZATION=f"Bearer {wrong_key}").get(f"{p}/flows/filter")
    assert refused.status_code in (401, 404)
    # A secret sent where none belongs (a query string) is not logged either.
    client.get(f"/login/?token={scim_token}")

    output = captured_logs.getvalue()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert lines, "the flow logged nothing"
    for issued in (PASSWORD, api_key, scim_token, BLOCK_SECRET, wrong_key, scim_token.split("_", 1)[1]):
        assert issued not in output

    access = [line for line in lines if line["logger"] == "controlplane.access"]
    block_write = next(
        line for line in access if line["route"].endswith("block_documents/") and line["status"] == 201
    )
    assert block_write["request_id"] == "flow-req-0001"
    assert block_write["account"] == str(tenant.account.id)
    assert block_write["workspace"] == str(tenant.workspace.id)
    assert all(line["request_id"] for line in access)


def test_the_formatter_scrubs_key_shaped_values():
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "got %s and %s",
        ("pnu_abcdefghijkl012345", "Bearer eyJhbGciOi.xyz"),
        None,
    )
    record.header = "scim_0123456789abcdef"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "got [redacted] and [redacted]" and line["header"] == "[redacted]"


SETUP_AND_LOG = (
    "from config.embedded import prepare; prepare(); import django; django.setup(); import logging; "
    "logging.getLogger('controlplane.test').warning('issued %s', 'pnb_abcdefghijklmnop')"
)


def test_the_configured_handler_writes_json_lines(tmp_path):
    result = run_python(tmp_path / "var", SETUP_AND_LOG, LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["logger"] == "controlplane.test" and line["level"] == "WARNING"
    assert line["message"] == "issued [redacted]"


def test_plain_lines_are_scrubbed_too_and_a_bad_format_is_refused(tmp_path):
    plain = run_python(tmp_path / "var", SETUP_AND_LOG, LOG_FORMAT="plain")
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.strip().splitlines()[-1].endswith("WARNING controlplane.test issued [redacted]")
    refused = run_python(tmp_path / "var", SETUP_AND_LOG, LOG_FORMAT="xml")
    assert refused.returncode != 0 and "LOG_FORMAT must be json or plain" in refused.stderr
