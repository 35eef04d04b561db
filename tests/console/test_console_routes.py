"""Meta-tests over every console route (walking the URL resolver, so pages added later are
covered): each account page declares the permission of every method it serves; the role matrix
drawn from the permissions table holds for browser sessions (a forged POST without the permission
is 403); every form is refused without its CSRF token, and nothing is written."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from access.gate import MEMBERS
from accounts.permissions import ACCOUNT_PERMISSIONS, ACCOUNT_ROLE_PERMISSIONS, AccountRole
from audit.models import AuditLogEntry
from console.pages.base import ConsolePage
from tests.console.conftest import make_org, session
from tests.routes import iter_routes

pytestmark = pytest.mark.django_db

CONSOLE_ROUTES = [route for route in iter_routes() if route.template.startswith("console/")]
ACCOUNT_PAGES = [route for route in CONSOLE_ROUTES if "account" in route.params]
# Pages that answer about the signed-in person only (the index) or take a token as the credential.
# One's own API keys are the signed-in person's alone (another's key is 404); connecting the client
# lists only the workspaces the gate opens to the person (another workspace is 404).
NOT_ACCOUNT_PAGES = {
    "console/",
    "console/invitations/<uuid:invitation_id>/accept",
    "console/me/api-keys/",
    "console/me/api-keys/<uuid:key_id>/revoke",
    "console/me/connect/",
}


def _changes() -> list[str]:
    """The audit records of changes (signing in, which ``force_login`` records, is not one)."""
    return list(
        AuditLogEntry.objects.exclude(api_name__startswith="login.").values_list("api_name", flat=True)
    )


def _path(route, org) -> str:
    return route.build(account=org.account.handle)


def _methods(route) -> list[str]:
    return sorted(route.view_class.required_permissions)


def test_every_account_page_declares_what_each_method_needs():
    assert len(ACCOUNT_PAGES) >= 7
    for route in ACCOUNT_PAGES:
        view = route.view_class
        assert view is not None and issubclass(view, ConsolePage), route.template
        declared = view.required_permissions
        handlers = {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}
        assert declared and handlers <= set(declared), (
            f"{route.template}: undeclared {handlers - set(declared)}"
        )
        for need in declared.values():
            assert need == MEMBERS or need in ACCOUNT_PERMISSIONS, f"{route.template}: unknown {need!r}"
    assert {r.template for r in CONSOLE_ROUTES} - {r.template for r in ACCOUNT_PAGES} == NOT_ACCOUNT_PAGES


CASES = [(route, method) for route in ACCOUNT_PAGES for method in _methods(route)]


@pytest.mark.parametrize(("route", "method"), CASES, ids=[f"{m} {r.template}" for r, m in CASES])
def test_role_matrix_for_browser_sessions(org, route, method):
    need = route.view_class.declared_requirement(method)
    people = {AccountRole.MEMBER: org.member, AccountRole.ADMIN: org.admin, AccountRole.OWNER: org.owner}
    before = _changes()
    for role, person in people.items():
        response = getattr(session(person), method.lower())(_path(route, org))
        assert response.status_code < 500, (role, method, route.template)
        if need == MEMBERS or need in ACCOUNT_ROLE_PERMISSIONS[role]:
            assert response.status_code != 403, (
                f"{role} holds {need} but got 403 on {method} {route.template}"
            )
        else:
            assert response.status_code == 403, f"{role} lacks {need} but got {response.status_code}"
            assert need in response.content.decode()
    if method == "POST":
        assert _changes() == before  # empty or unknown-object POSTs change nothing


@pytest.mark.parametrize("route", ACCOUNT_PAGES, ids=[r.template for r in ACCOUNT_PAGES])
def test_a_stranger_gets_404_and_an_anonymous_visitor_the_sign_in_page(org, route):
    stranger = make_org().owner
    for method in _methods(route):
        assert getattr(session(stranger), method.lower())(_path(route, org)).status_code == 404
        response = getattr(Client(), method.lower())(_path(route, org))
        assert response.status_code == 302 and response["Location"].startswith("/login/")


POST_ROUTES = [route for route in CONSOLE_ROUTES if route in ACCOUNT_PAGES and "POST" in _methods(route)]


@pytest.mark.parametrize("route", POST_ROUTES, ids=[r.template for r in POST_ROUTES])
def test_every_form_needs_its_csrf_token(org, route):
    browser = session(org.owner, csrf=True)
    before = _changes()
    response = browser.post(_path(route, org), {"email": "x@example.test", "role": "member"})
    assert response.status_code == 403 and b"CSRF" in response.content
    assert _changes() == before


def test_the_invitation_accept_form_needs_its_csrf_token(org):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post(
        "/console/invitations/00000000-0000-0000-0000-000000000000/accept",
        {"token": "x", "password": "a long enough passphrase"},
    )
    assert response.status_code == 403 and b"CSRF" in response.content


def test_a_form_with_its_token_goes_through(org):
    browser = session(org.admin, csrf=True)
    page = browser.get(org.url("members/")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = browser.post(
        org.url("members/"), {"csrfmiddlewaretoken": token, "email": "x@example.test", "role": "member"}
    )
    assert response.status_code == 302
