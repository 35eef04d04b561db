"""Plan limits refuse with a clear error and write nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from accounts.models import AccountMembership
from accounts.services import membership_add
from accounts.tenancy import account_create, workspace_create
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from billing import entitlements
from billing.plans import FEATURES, PLANS, get_plan
from core.errors import PlanLimitExceeded
from tenants.models import Workspace
from tests.factories import UserFactory


class TestCatalogue:
    def test_product_sheet_numbers(self):
        hobby, team, enterprise = PLANS["hobby"], PLANS["team"], PLANS["enterprise"]
        assert (hobby.price_usd_month, hobby.max_seats, hobby.max_deployments) == (0, 2, 5)
        assert (team.price_usd_month, team.max_seats, team.max_workspaces, team.max_deployments) == (
            400,
            8,
            1,
            50,
        )
        assert team.has("service_accounts") and team.has("audit_log")
        assert not team.has("sso") and not team.has("scim")
        assert enterprise.max_seats is enterprise.max_workspaces is enterprise.max_deployments is None
        assert enterprise.features == frozenset(FEATURES)

    def test_starter_sits_between_hobby_and_team(self):
        hobby, starter, team = PLANS["hobby"], PLANS["starter"], PLANS["team"]
        assert hobby.max_seats < starter.max_seats < team.max_seats
        assert hobby.max_deployments < starter.max_deployments < team.max_deployments
        assert hobby.price_usd_month < starter.price_usd_month < team.price_usd_month

    def test_unknown_plan(self):
        with pytest.raises(ValueError, match="Unknown plan"):
            get_plan("platinum")


@pytest.mark.django_db
class TestSeats:
    def test_hobby_allows_two_people_and_refuses_the_third(self):
        owner = UserFactory()
        account = account_create(name="Two", owner=owner, actor=SYSTEM, plan="hobby")
        membership_add(account=account, user=UserFactory(), role="member", actor=owner)
        third = UserFactory()
        audit_before = AuditLogEntry.objects.count()
        with pytest.raises(PlanLimitExceeded) as caught:
            membership_add(account=account, user=third, role="member", actor=owner)
        assert caught.value.code == "seat_limit"
        assert "Hobby plan allows 2 seats" in caught.value.message
        assert not AccountMembership.objects.filter(user=third).exists()
        assert AuditLogEntry.objects.count() == audit_before

    def test_deactivated_people_do_not_hold_a_seat(self):
        owner = UserFactory()
        account = account_create(name="Two", owner=owner, actor=SYSTEM, plan="hobby")
        gone = UserFactory()
        membership_add(account=account, user=gone, role="member", actor=owner)
        gone.is_active = False
        gone.save()
        assert entitlements.check_seat(account)
        membership_add(account=account, user=UserFactory(), role="member", actor=owner)

    def test_check_reports_usage(self):
        owner = UserFactory()
        account = account_create(name="T", owner=owner, actor=SYSTEM, plan="team")
        decision = entitlements.check_seat(account)
        assert decision and (decision.used, decision.limit) == (1, 8)
        assert not entitlements.check_seat(account, adding=8)
        assert entitlements.check_seat(account, adding=7)


@pytest.mark.django_db
class TestWorkspaces:
    def test_team_allows_one_workspace(self):
        owner = UserFactory()
        account = account_create(name="T", owner=owner, actor=SYSTEM, plan="team")
        workspace_create(account=account, name="prod", actor=owner)
        with pytest.raises(PlanLimitExceeded, match="Team plan allows 1 workspaces") as caught:
            workspace_create(account=account, name="staging", actor=owner)
        assert caught.value.code == "workspace_limit"
        assert list(Workspace.objects.filter(account=account).values_list("name", flat=True)) == ["prod"]
        assert not AuditLogEntry.objects.filter(
            api_name="workspace.created", target_label__contains="staging"
        ).exists()

    def test_enterprise_is_unlimited(self):
        owner = UserFactory()
        account = account_create(name="E", owner=owner, actor=SYSTEM, plan="enterprise")
        for n in range(5):
            workspace_create(account=account, name=f"w{n}", actor=owner)
        assert account.workspaces.count() == 5


@pytest.mark.django_db
class TestDeploymentsAndFeatures:
    def test_deployment_limit_uses_the_callers_count(self):
        account = account_create(name="H", owner=UserFactory(), actor=SYSTEM, plan="hobby")
        assert entitlements.check_deployment(account, deployments_used=4)
        refused = entitlements.check_deployment(account, deployments_used=5)
        assert not refused and "allows 5 deployments" in refused.reason

    @pytest.mark.parametrize(
        ("plan", "feature", "allowed"),
        [
            ("hobby", "service_accounts", False),
            ("team", "service_accounts", True),
            ("team", "sso", False),
            ("enterprise", "scim", True),
            ("enterprise", "ip_allowlist", True),
            ("team", "custom_roles", False),
        ],
    )
    def test_features(self, plan, feature, allowed):
        account = account_create(name="F", owner=UserFactory(), actor=SYSTEM, plan=plan)
        assert bool(entitlements.check_feature(account, feature)) is allowed


@pytest.mark.django_db(transaction=True)
def test_concurrent_additions_cannot_overbook_the_last_seat():
    """Two requests racing for the last seat: the account row lock lets exactly one win."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter; SQLite serialises writers anyway")
    owner = UserFactory()
    account = account_create(name="Race", owner=owner, actor=SYSTEM, plan="hobby")
    people = [UserFactory(), UserFactory()]
    results: list[str] = []
    barrier = threading.Barrier(2)

    def add(person):
        from django.db import connections

        barrier.wait()
        try:
            membership_add(account=account, user=person, role="member", actor=owner)
            results.append("ok")
        except PlanLimitExceeded:
            results.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=add, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok", "refused"]
    assert AccountMembership.objects.filter(account=account).count() == 2
