"""Provision an account, a workspace, its owner and a service-account key; idempotent.

    python manage.py bootstrap --account "Acme" --workspace "Production" --owner ops@acme.test --json

Creates what is missing and reuses what exists (matched by name). Keys are minted only when asked
for: a ``pnb_`` key for the workspace's bootstrap service account (Developer on the workspace) unless
``--reuse-key`` names one of its keys that still works (what ``make run`` does on every start), and
a ``pnu_`` key of the owner only with ``--owner-key`` (expiring after ``--owner-key-days``). Earlier
keys stay valid until revoked.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.api_keys.selectors import api_key_can_act, api_key_find
from accounts.api_keys.services import api_key_create
from accounts.models import AccountMembership, ServiceAccount, User
from accounts.permissions import AccountRole, WorkspaceRole
from accounts.services import membership_add, service_account_create, user_create, workspace_access_grant
from accounts.tenancy import account_change_plan, account_create, workspace_create
from audit.actors import SystemActor
from billing.models import Door
from billing.plans import PLANS
from core.errors import AppError
from tenants.models import Account, Workspace

ACTOR = SystemActor("bootstrap")
SERVICE_ACCOUNT_NAME = "bootstrap"
# Operators provision their own organisation with every feature unless they say otherwise.
BOOTSTRAP_PLAN = "enterprise"


class Command(BaseCommand):
    help = "Create (or reuse) an account, workspace, owner and service account, and mint API keys."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="Account name")
        parser.add_argument("--workspace", required=True, help="Workspace name")
        parser.add_argument("--owner", required=True, help="Owner's email address")
        parser.add_argument(
            "--plan",
            choices=sorted(PLANS),
            help=f"Plan of a new account (default {BOOTSTRAP_PLAN}); for an existing account, the plan to switch to",
        )
        parser.add_argument(
            "--owner-password", help="Password for a newly created owner (default: generated)"
        )
        parser.add_argument(
            "--reuse-key",
            default=None,
            help="A pnb_ key of the bootstrap service account to print again if it still works "
            "(otherwise a new one is minted)",
        )
        parser.add_argument("--owner-key", action="store_true", help="Also mint a pnu_ key of the owner")
        parser.add_argument(
            "--owner-key-days", type=int, default=90, help="Lifetime of the owner's key in days (default 90)"
        )
        parser.add_argument("--public-url", default=None, help="Base URL clients use (default: PUBLIC_URL)")
        parser.add_argument("--json", action="store_true", help="Print one JSON object")

    def handle(self, *args, **options):
        try:
            result = self._bootstrap(options)
        except AppError as error:
            raise CommandError(error.message) from None
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self._print_human(result)

    def _bootstrap(self, options) -> dict:
        public_url = (options["public_url"] or settings.PUBLIC_URL).rstrip("/")
        email = options["owner"].strip()
        password = None
        with transaction.atomic():
            owner = User.objects.filter(email__iexact=email).first()
            if owner is None:
                password = options["owner_password"] or secrets.token_urlsafe(12)
                owner = user_create(email=email, password=password)
            account = Account.objects.filter(name=options["account"].strip()).first()
            if account is None:
                account = account_create(
                    name=options["account"], owner=owner, actor=ACTOR, plan=options["plan"] or BOOTSTRAP_PLAN
                )
            else:
                if options["plan"]:
                    account = account_change_plan(account=account, plan=options["plan"], actor=ACTOR)
                if not AccountMembership.objects.filter(account=account, user=owner).exists():
                    membership_add(
                        account=account, user=owner, role=AccountRole.OWNER, actor=ACTOR, door=Door.OPERATOR
                    )
            workspace = Workspace.objects.filter(account=account, name=options["workspace"].strip()).first()
            if workspace is None:
                workspace = workspace_create(account=account, name=options["workspace"], actor=ACTOR)
            service_account = ServiceAccount.objects.filter(
                account=account, name=SERVICE_ACCOUNT_NAME
            ).first()
            if service_account is None:
                service_account = service_account_create(
                    account=account, name=SERVICE_ACCOUNT_NAME, actor=ACTOR
                )
            workspace_access_grant(
                workspace=workspace, principal=service_account, role=WorkspaceRole.DEVELOPER, actor=ACTOR
            )
            stamp = timezone.now().strftime("%Y-%m-%d %H:%M:%S")
            service_key = options["reuse_key"]
            if not _works_for(service_key, service_account):
                _, service_key = api_key_create(owner=service_account, name=f"bootstrap {stamp}", actor=ACTOR)
            owner_key = None
            if options["owner_key"]:
                if options["owner_key_days"] < 1:
                    raise CommandError("--owner-key-days must be at least 1.")
                _, owner_key = api_key_create(
                    owner=owner,
                    name=f"bootstrap {stamp}",
                    actor=ACTOR,
                    expires_at=timezone.now() + timedelta(days=options["owner_key_days"]),
                )
        result = {
            "account_id": str(account.id),
            "account_handle": account.handle,
            "plan": account.plan,
            "workspace_id": str(workspace.id),
            "workspace_handle": workspace.handle,
            "api_url": f"{public_url}/api/accounts/{account.id}/workspaces/{workspace.id}",
            "cloud_api_url": f"{public_url}/api",
            "api_key": service_key,
            "service_account_id": str(service_account.id),
            "owner_email": owner.email,
            "console_url": f"{public_url}/",
        }
        if owner_key is not None:
            result["owner_api_key"] = owner_key
        if password is not None:
            result["owner_password"] = password
        return result

    def _print_human(self, result: dict) -> None:
        lines = [
            f"Account:    {result['account_handle']} ({result['account_id']}, plan {result['plan']})",
            f"Workspace:  {result['workspace_handle']} ({result['workspace_id']})",
            f"Owner:      {result['owner_email']}"
            + (f" / password {result['owner_password']}" if "owner_password" in result else ""),
            *([f"Owner key:  {result['owner_api_key']}"] if "owner_api_key" in result else []),
            "",
            "Point the prefect client at the workspace:",
            f"  PREFECT_API_URL={result['api_url']}",
            f"  PREFECT_CLOUD_API_URL={result['cloud_api_url']}",
            f"  PREFECT_API_KEY={result['api_key']}",
        ]
        self.stdout.write("\n".join(lines))


def _works_for(candidate: str | None, service_account: ServiceAccount) -> bool:
    """Is ``candidate`` a key of ``service_account`` that may act now?"""
    if not candidate:
        return False
    key = api_key_find(candidate)
    return (
        key is not None
        and key.service_account_id == service_account.pk
        and api_key_can_act(key, timezone.now())
    )
