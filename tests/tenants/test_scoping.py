from __future__ import annotations

import pytest

from access.views import WorkspaceApiView
from accounts.models import WorkspaceRoleGrant
from tenants.scoping import WorkspaceScopeMissing, current_workspace_id, workspace_scope


@pytest.mark.django_db
class TestWorkspaceScopedManager:
    def test_objects_raises_without_a_scope(self, two_workspaces):
        with pytest.raises(WorkspaceScopeMissing):
            list(WorkspaceRoleGrant.objects.all())
        with pytest.raises(WorkspaceScopeMissing):
            WorkspaceRoleGrant.objects.filter(role="developer").count()

    def test_a_scope_shows_only_its_workspace(self, two_workspaces):
        a, b = two_workspaces
        with workspace_scope(a.workspace.id):
            rows = list(WorkspaceRoleGrant.objects.all())
            assert rows and {row.workspace_id for row in rows} == {a.workspace.id}
            assert not WorkspaceRoleGrant.objects.filter(
                pk__in=[g.pk for g in WorkspaceRoleGrant.objects.for_workspace(b.workspace.id)]
            ).exists()
        assert current_workspace_id() is None

    def test_explicit_ways_out(self, two_workspaces):
        a, b = two_workspaces
        assert WorkspaceRoleGrant.objects.for_workspace(b.workspace.id).count() == 2
        assert WorkspaceRoleGrant.objects.unscoped().count() == 4

    def test_create_in_another_workspace_than_the_scope_is_refused(self, two_workspaces):
        a, b = two_workspaces
        with workspace_scope(a.workspace.id), pytest.raises(WorkspaceScopeMissing):
            WorkspaceRoleGrant.objects.create(workspace=b.workspace, user=b.member, role="viewer")
        assert WorkspaceRoleGrant.objects.for_workspace(b.workspace.id).count() == 2

    def test_create_without_scope_or_workspace_is_refused(self, tenant):
        with pytest.raises(WorkspaceScopeMissing):
            WorkspaceRoleGrant.objects.create(user=tenant.member, role="viewer")

    def test_scope_is_reset_after_an_exception(self, tenant):
        with pytest.raises(RuntimeError), workspace_scope(tenant.workspace.id):
            raise RuntimeError
        assert current_workspace_id() is None


def test_views_cannot_override_get_queryset():
    with pytest.raises(TypeError, match="safely_get_queryset"):

        class Leaky(WorkspaceApiView):  # noqa: F841
            required_scopes = {"GET": "see_flows"}

            def get_queryset(self):
                return WorkspaceRoleGrant.objects.unscoped()


@pytest.mark.django_db
def test_the_scope_does_not_outlive_a_request(client, tenant, api_client):
    from tests.conftest import bearer

    bearer(api_client, tenant.service_key).get(f"{tenant.prefix}/health")
    assert current_workspace_id() is None
