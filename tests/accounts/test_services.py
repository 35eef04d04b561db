"""Memberships, owners, service accounts and workspace grants."""

from __future__ import annotations

import pytest

from accounts.models import AccountMembership, ServiceAccount, WorkspaceRoleGrant
from accounts.permissions import AccountRole, WorkspaceRole
from accounts.selectors import workspace_access
from accounts.services import (
    membership_add,
    membership_change_role,
    membership_remove,
    service_account_create,
    service_account_delete,
    user_create,
    workspace_access_grant,
    workspace_access_revoke,
)
from accounts.tenancy import account_create
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from core.errors import Conflict, Forbidden, NotFound, PlanLimitExceeded
from tests.factories import AccountFactory, MembershipFactory, UserFactory, WorkspaceFactory


@pytest.fixture
def owned(db):
    owner = UserFactory()
    account = account_create(name="Acme", owner=owner, actor=SYSTEM, plan="enterprise")
    return account, owner


def _events(account):
    return list(
        AuditLogEntry.objects.filter(account_ref=account.id)
        .order_by("occurred")
        .values_list("api_name", flat=True)
    )


class TestUsers:
    def test_email_is_unique_case_insensitively(self, db):
        user_create(email="Ada@Example.test")
        with pytest.raises(Conflict):
            user_create(email="ada@example.TEST")

    def test_login_by_email_ignores_case(self, client, db):
        user_create(email="Grace@Example.test", password="a long enough password")
        assert client.login(username="grace@example.test", password="a long enough password")


class TestMemberships:
    def test_account_create_makes_the_owner_and_records_it(self, owned):
        account, owner = owned
        assert AccountMembership.objects.get(account=account, user=owner).role == AccountRole.OWNER
        # The Owner's seat is a seat change too (billing's record, before the membership's).
        assert _events(account) == ["account.created", "billing.seats-changed", "member.added"]

    def test_add_change_remove_are_audited(self, owned):
        account, owner = owned
        person = UserFactory()
        membership = membership_add(account=account, user=person, role="member", actor=owner)
        membership_change_role(membership=membership, role="admin", actor=owner)
        membership_remove(membership=membership, actor=owner)
        assert _events(account)[-5:] == [
            "billing.seats-changed",
            "member.added",
            "member.role-changed",
            "billing.seats-changed",
            "member.removed",
        ]
        entry = AuditLogEntry.objects.get(account_ref=account.id, api_name="member.role-changed")
        assert entry.payload == {"role": "admin", "old_role": "member"}
        assert entry.actor_user_id == owner.id and entry.target_id == str(person.id)
        assert person.email in entry.message

    def test_adding_twice_is_a_conflict(self, owned):
        account, owner = owned
        with pytest.raises(Conflict):
            membership_add(account=account, user=owner, role="member", actor=owner)

    def test_last_owner_cannot_be_removed_or_demoted(self, owned):
        account, owner = owned
        membership = AccountMembership.objects.get(account=account, user=owner)
        with pytest.raises(Conflict):
            membership_remove(membership=membership, actor=owner)
        with pytest.raises(Conflict):
            membership_change_role(membership=membership, role="admin", actor=owner)
        assert AccountMembership.objects.get(pk=membership.pk).role == "owner"

    def test_only_an_owner_makes_or_unmakes_an_owner(self, owned):
        account, owner = owned
        admin = UserFactory()
        membership_add(account=account, user=admin, role="admin", actor=owner)
        person = UserFactory()
        membership = membership_add(account=account, user=person, role="member", actor=admin)
        with pytest.raises(Forbidden):
            membership_change_role(membership=membership, role="owner", actor=admin)
        with pytest.raises(Forbidden):
            membership_add(account=account, user=UserFactory(), role="owner", actor=admin)
        membership_change_role(membership=membership, role="owner", actor=owner)
        owner_membership = AccountMembership.objects.get(account=account, user=owner)
        with pytest.raises(Forbidden):
            membership_remove(membership=owner_membership, actor=admin)
        # With two owners, one may step down.
        membership_change_role(membership=owner_membership, role="member", actor=owner)

    def test_removing_a_member_removes_their_grants(self, owned):
        account, owner = owned
        workspace = WorkspaceFactory(account=account)
        person = UserFactory()
        membership = membership_add(account=account, user=person, role="member", actor=owner)
        workspace_access_grant(workspace=workspace, principal=person, role="developer", actor=owner)
        membership_remove(membership=membership, actor=owner)
        assert not WorkspaceRoleGrant.objects.unscoped().filter(user=person).exists()
        assert workspace_access(person, workspace) is None


class TestServiceAccounts:
    def test_create_and_delete(self, owned):
        account, owner = owned
        robot = service_account_create(account=account, name="ci", actor=owner)
        with pytest.raises(Conflict):
            service_account_create(account=account, name="ci", actor=owner)
        service_account_delete(service_account=robot, actor=owner)
        assert not ServiceAccount.objects.filter(pk=robot.pk).exists()
        assert _events(account)[-2:] == ["service-account.created", "service-account.deleted"]

    def test_the_plan_must_include_service_accounts(self, db):
        owner = UserFactory()
        account = account_create(name="Tiny", owner=owner, actor=SYSTEM, plan="hobby")
        with pytest.raises(PlanLimitExceeded, match="Hobby plan does not include service accounts"):
            service_account_create(account=account, name="ci", actor=owner)
        assert not ServiceAccount.objects.filter(account=account).exists()


class TestGrants:
    def test_effective_access_is_the_union_and_admins_own(self, owned):
        account, owner = owned
        workspace = WorkspaceFactory(account=account)
        person = UserFactory()
        membership = membership_add(account=account, user=person, role="member", actor=owner)
        assert workspace_access(person, workspace) is None
        workspace_access_grant(workspace=workspace, principal=person, role="runner", actor=owner)
        assert workspace_access(person, workspace).roles == {"runner"}
        assert workspace_access(person, workspace).has("run_deployments")
        assert not workspace_access(person, workspace).has("write_deployments")
        membership_change_role(membership=membership, role="admin", actor=owner)
        access = workspace_access(person, workspace)
        assert access.roles == {WorkspaceRole.OWNER, "runner"} and access.has("manage_workspace_users")
        assert workspace_access(owner, workspace).roles == {WorkspaceRole.OWNER}

    def test_regranting_replaces_the_role(self, owned):
        account, owner = owned
        workspace = WorkspaceFactory(account=account)
        robot = service_account_create(account=account, name="w", actor=owner)
        workspace_access_grant(workspace=workspace, principal=robot, role="worker", actor=owner)
        workspace_access_grant(workspace=workspace, principal=robot, role="developer", actor=owner)
        assert (
            WorkspaceRoleGrant.objects.for_workspace(workspace.id).get(service_account=robot).role
            == "developer"
        )
        workspace_access_revoke(workspace=workspace, principal=robot, actor=owner)
        assert workspace_access(robot, workspace) is None
        assert _events(account)[-3:] == ["workspace-access.granted"] * 2 + ["workspace-access.revoked"]

    def test_cannot_grant_to_someone_outside_the_account(self, owned):
        account, owner = owned
        workspace = WorkspaceFactory(account=account)
        stranger = UserFactory()
        foreign_robot = ServiceAccount.objects.create(account=AccountFactory(), name="x")
        for principal in (stranger, foreign_robot):
            with pytest.raises(NotFound):
                workspace_access_grant(workspace=workspace, principal=principal, role="viewer", actor=owner)
        assert WorkspaceRoleGrant.objects.for_workspace(workspace.id).count() == 0

    def test_a_service_account_never_reaches_another_accounts_workspace(self, owned):
        account, owner = owned
        robot = service_account_create(account=account, name="r", actor=owner, account_role="admin")
        assert workspace_access(robot, WorkspaceFactory(account=account)).roles == {"owner"}
        assert workspace_access(robot, WorkspaceFactory()) is None

    def test_inactive_users_have_no_access(self, owned):
        account, owner = owned
        workspace = WorkspaceFactory(account=account)
        owner.is_active = False
        owner.save()
        assert workspace_access(owner, workspace) is None


def test_membership_factory_defaults_to_a_plain_member(db):
    assert MembershipFactory().role == AccountRole.MEMBER
