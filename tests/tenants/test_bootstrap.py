from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_revoke
from accounts.models import AccountMembership, ServiceAccount, User, WorkspaceRoleGrant
from audit.actors import SYSTEM
from tenants.models import Account, Workspace
from tests.conftest import bearer


def _call(*args: str) -> str:
    out = io.StringIO()
    call_command("bootstrap", *args, "--json", stdout=out)
    return out.getvalue()


def bootstrap(*extra: str) -> dict:
    out = io.StringIO()
    call_command(
        "bootstrap", "--account", "Acme Data", "--workspace", "Production", "--owner", "Ops@Acme.test",
        "--public-url", "https://flows.acme.test", "--json", *extra, stdout=out,
    )  # fmt: skip
    return json.loads(out.getvalue())


@pytest.mark.django_db
class TestBootstrap:
    def test_prints_what_a_client_needs(self):
        result = bootstrap("--plan", "team", "--owner-key")
        account = Account.objects.get(pk=result["account_id"])
        workspace = Workspace.objects.get(pk=result["workspace_id"], account=account)
        assert (account.handle, workspace.handle, account.plan) == ("acme-data", "production", "team")
        assert (
            result["api_url"]
            == f"https://flows.acme.test/api/accounts/{account.id}/workspaces/{workspace.id}"
        )
        assert result["cloud_api_url"] == "https://flows.acme.test/api"
        assert result["api_key"].startswith("pnb_") and result["owner_api_key"].startswith("pnu_")
        assert result["owner_email"] == "Ops@acme.test" and result["owner_password"]
        owner = User.objects.get(email__iexact="ops@acme.test")
        assert owner.check_password(result["owner_password"])
        assert AccountMembership.objects.get(account=account, user=owner).role == "owner"
        robot = ServiceAccount.objects.get(pk=result["service_account_id"])
        assert (
            WorkspaceRoleGrant.objects.for_workspace(workspace.id).get(service_account=robot).role
            == "developer"
        )

    def test_is_idempotent_and_mints_only_the_keys_asked_for(self):
        first = bootstrap()
        second = bootstrap()
        for field in ("account_id", "workspace_id", "service_account_id", "api_url"):
            assert first[field] == second[field]
        assert first["api_key"] != second["api_key"]
        assert "owner_password" not in second and "owner_api_key" not in second
        assert (Account.objects.count(), Workspace.objects.count(), User.objects.count()) == (1, 1, 1)
        assert ServiceAccount.objects.count() == 1 and AccountMembership.objects.count() == 1
        assert ApiKey.objects.count() == 2 and not ApiKey.objects.filter(user__isnull=False).exists()

    def test_a_key_that_still_works_is_reused_and_one_that_does_not_is_replaced(self):
        first = bootstrap()
        again = bootstrap("--reuse-key", first["api_key"])
        assert again["api_key"] == first["api_key"] and ApiKey.objects.count() == 1
        api_key_revoke(key=ApiKey.objects.get(), actor=SYSTEM)
        replaced = bootstrap("--reuse-key", first["api_key"])
        assert replaced["api_key"] != first["api_key"] and ApiKey.objects.count() == 2
        # Another account's key, or nonsense, is never printed back.
        other = json.loads(_call("--account", "Other", "--workspace", "W", "--owner", "x@y.test"))
        assert bootstrap("--reuse-key", other["api_key"])["api_key"] != other["api_key"]
        assert bootstrap("--reuse-key", "pnb_nonsense")["api_key"].startswith("pnb_")

    def test_the_owner_key_expires(self):
        result = bootstrap("--owner-key", "--owner-key-days", "7")
        key = ApiKey.objects.get(user__isnull=False)
        assert key.expires_at is not None
        assert 6.9 < (key.expires_at - timezone.now()).total_seconds() / 86400 <= 7
        assert result["owner_api_key"].startswith("pnu_")

    def test_keys_work_against_the_workspace(self, api_client):
        result = bootstrap("--owner-key")
        path = result["api_url"].removeprefix("https://flows.acme.test") + "/admin/version"
        for key in (result["api_key"], result["owner_api_key"]):
            assert bearer(api_client, key).get(path).status_code == 200

    def test_a_plan_without_service_accounts_is_a_clear_error(self):
        with pytest.raises(CommandError, match="does not include service accounts"):
            bootstrap("--plan", "hobby")
        # Nothing half-made is left behind.
        assert not Account.objects.exists() and not User.objects.exists()

    def test_a_second_workspace_respects_the_plan(self):
        bootstrap("--plan", "team")
        out = io.StringIO()
        with pytest.raises(CommandError, match="allows 1 workspaces"):
            call_command(
                "bootstrap",
                "--account",
                "Acme Data",
                "--workspace",
                "Staging",
                "--owner",
                "ops@acme.test",
                "--json",
                stdout=out,
            )
        assert Workspace.objects.count() == 1

    def test_human_output(self):
        out = io.StringIO()
        call_command("bootstrap", "--account", "A", "--workspace", "W", "--owner", "a@b.test", stdout=out)
        text = out.getvalue()
        assert (
            "PREFECT_API_URL=" in text and "PREFECT_CLOUD_API_URL=" in text and "PREFECT_API_KEY=pnb_" in text
        )

    def test_the_run_commands_arguments_survive_a_password_that_looks_like_an_option(self, monkeypatch):
        # The embedded run generates the demo Owner's password; one in 64 begins with "-".
        spec = importlib.util.spec_from_file_location(
            "deploy_run", Path(settings.BASE_DIR) / "deploy" / "run.py"
        )
        run = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(run)
        monkeypatch.setenv("DEMO_PLAN", "team")
        out = io.StringIO()
        call_command(*run.bootstrap_args("-nRm-FAZ5SYd"), stdout=out)
        result = json.loads(out.getvalue())
        assert result["owner_password"] == "-nRm-FAZ5SYd"
        assert User.objects.get(email__iexact="owner@example.com").check_password("-nRm-FAZ5SYd")
        assert Account.objects.get(pk=result["account_id"]).plan == "team"
