"""The roles→scopes table and the routes that rely on it."""

from __future__ import annotations

import pytest

from accounts import permissions as p
from tests.routes import account_routes, iter_routes, workspace_routes

ALL_SCOPES = frozenset(p.SCOPES_BY_NAME)


class TestWorkspaceRoles:
    def test_roles_are_the_prefect_cloud_set(self):
        assert set(p.WORKSPACE_ROLE_SCOPES) == {"viewer", "runner", "developer", "owner", "worker"}

    def test_owner_has_every_scope(self):
        assert p.WORKSPACE_ROLE_SCOPES["owner"] == ALL_SCOPES

    def test_viewer_only_sees(self):
        viewer = p.WORKSPACE_ROLE_SCOPES["viewer"]
        assert viewer and all(scope.startswith("see_") for scope in viewer)
        assert "see_flows" in viewer and "see_secret_blocks" not in viewer

    def test_ladder_viewer_runner_developer_owner(self):
        v, r, d, o = (p.WORKSPACE_ROLE_SCOPES[k] for k in ("viewer", "runner", "developer", "owner"))
        assert v < r < d < o
        assert r - v == {"run_deployments"}

    def test_developer_builds_but_does_not_administer_the_workspace(self):
        developer = p.WORKSPACE_ROLE_SCOPES["developer"]
        assert {
            "manage_deployments",
            "write_deployments",
            "run_flows",
            "manage_work_pools",
            "manage_blocks",
            "see_secret_blocks",
            "manage_variables",
        } <= developer
        assert (
            not {"manage_workspace_users", "manage_workspace_settings", "manage_workspace_service_accounts"}
            & developer
        )

    def test_worker_is_minimal(self):
        worker = p.WORKSPACE_ROLE_SCOPES["worker"]
        # What a worker needs: read pools, queues and deployments, heartbeat, move runs, read blocks.
        assert {
            "see_work_pools",
            "see_work_queues",
            "write_workers",
            "see_deployments",
            "run_flows",
            "see_secret_blocks",
        } <= worker
        # And nothing that changes what runs, nor anything about people.
        forbidden = {s for s in ALL_SCOPES if s.startswith("manage_")} | {
            "write_deployments",
            "run_deployments",
            "write_work_pools",
            "write_variables",
            "see_workspace_users",
        }
        assert not worker & forbidden
        assert len(worker) < len(p.WORKSPACE_ROLE_SCOPES["viewer"]) + 5

    def test_union_of_grants(self):
        assert p.workspace_role_scopes(["viewer", "worker"]) == (
            p.WORKSPACE_ROLE_SCOPES["viewer"] | p.WORKSPACE_ROLE_SCOPES["worker"]
        )
        assert p.workspace_role_scopes([]) == frozenset()


class TestScopeVocabulary:
    @pytest.mark.parametrize("noun", ["deployments", "work_pools", "variables", "artifacts", "work_queues"])
    def test_manage_includes_write_includes_see(self, noun):
        closure = p.expand_scopes([f"manage_{noun}"])
        assert {f"manage_{noun}", f"write_{noun}", f"see_{noun}"} <= closure

    def test_run_deployments_is_inside_write_deployments(self):
        assert "run_deployments" in p.expand_scopes(["write_deployments"])

    def test_every_role_is_closed_under_includes(self):
        for scopes in p.WORKSPACE_ROLE_SCOPES.values():
            assert p.expand_scopes(scopes) == scopes

    def test_literal_type_matches_the_table(self):
        from typing import get_args

        assert set(get_args(p.WorkspaceScopeName)) == ALL_SCOPES

    def test_unknown_scope_is_an_error(self):
        with pytest.raises(KeyError):
            p.expand_scopes(["see_everything"])


class TestAccountRoles:
    def test_owner_has_all_admin_lacks_break_glass_and_deletion(self):
        owner, admin = p.ACCOUNT_ROLE_PERMISSIONS["owner"], p.ACCOUNT_ROLE_PERMISSIONS["admin"]
        assert owner == frozenset(p.ACCOUNT_PERMISSIONS)
        assert owner - admin == {"bypass:sso", "delete:account"}

    def test_member_only_reads(self):
        member = p.ACCOUNT_ROLE_PERMISSIONS["member"]
        assert member and all(perm.startswith("read:") for perm in member)
        assert not {"read:billing", "read:audit_event", "read:ip_allowlist"} & member

    def test_owner_and_admin_own_every_workspace(self):
        assert p.WORKSPACE_OWNING_ACCOUNT_ROLES == {"owner", "admin"}

    def test_builtin_role_ids_are_stable(self):
        assert p.builtin_workspace_role_id("developer") == p.builtin_workspace_role_id("developer")
        ids = {p.builtin_workspace_role_id(r) for r in p.WORKSPACE_ROLE_SCOPES} | {
            p.builtin_account_role_id(r) for r in p.ACCOUNT_ROLE_PERMISSIONS
        }
        assert len(ids) == 8


def test_every_tenant_route_declares_what_it_needs():
    """Meta-test: a tenant route whose view declares no scope (or an unknown one) fails here."""
    routes = workspace_routes() + account_routes()
    assert routes
    for route in routes:
        view = route.view_class
        assert view is not None, f"{route.template} is not a class-based tenant view"
        declared = getattr(view, "required_scopes", None) or getattr(view, "required_permissions", None)
        assert declared, f"{route.template}: {view.__name__} declares no scopes"
        handlers = {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}
        assert handlers <= set(declared), f"{route.template}: undeclared methods {handlers - set(declared)}"
        for required in declared.values():
            assert required == "__members__" or required in ALL_SCOPES or required in p.ACCOUNT_PERMISSIONS, (
                f"{route.template}: unknown scope {required!r}"
            )


def test_every_api_route_is_a_tenant_route_or_explicitly_public():
    # /api/me… and /api/users/<own id>/api_keys answer only about the authenticated principal
    # itself; the catalogues are the same for everyone; accepting an invitation needs its token; the
    # audit signing key is a public key; the OpenAPI document describes routes, no tenant's data.
    public = {
        "api/health",
        "api/schema/",
        "api/audit/signing_key",
        "api/me/",
        "api/me/workspaces",
        "api/accounts/permissions",
        "api/workspace_scopes",
        "api/invitations/<str:invitation_id>/accept",
        "api/users/<str:user_id>/api_keys",
        "api/users/<str:user_id>/api_keys/<str:key_id>",
    }
    for route in iter_routes():
        if route.template.startswith("api/"):
            assert "account_ref" in route.params or route.template in public, route.template
