"""OIDC sign-in against a real provider (npm ``oidc-provider`` on 127.0.0.1, behind a tamper proxy):
discovery, the code flow with PKCE, state and nonce, id_token validation, just-in-time provisioning,
and the refusals (tampered id_token, wrong nonce, wrong issuer, an address outside the account's
verified domains, no free seat), each an audit event with nothing created."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from social_django.models import UserSocialAuth

from accounts.models import AccountMembership, SsoSession, User
from accounts.permissions import AccountRole
from tests.accounts.sso.conftest import audit_events, oidc_idp, oidc_sign_in, with_seats

pytestmark = pytest.mark.django_db


def test_first_sign_in_creates_the_person_and_signs_them_in(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    response = oidc_sign_in(web, idp, oidc, "alice", next_url="/?welcome=1")

    assert response.status_code == 302 and response["Location"] == "/?welcome=1"
    alice = User.objects.get(email="alice@acme.example")
    assert (alice.first_name, alice.last_name) == ("Alice", "Liddell")
    assert not alice.has_usable_password()
    membership = AccountMembership.objects.get(account=acme.account, user=alice)
    assert membership.role == AccountRole.MEMBER
    assert UserSocialAuth.objects.get(user=alice).uid == f"{idp.id}:alice-0001"
    page = web.get("/").content.decode()
    assert "alice@acme.example" in page and "Acme Corp" in page and "Acme OIDC" in page
    session = web.session
    assert session["sso"]["account_id"] == str(acme.account.id)
    assert SsoSession.objects.filter(user=alice, provider=idp, session_key=session.session_key).exists()

    # The authorization request carried PKCE (S256), state and nonce; the code went back with the
    # verifier.
    authorize = next(r for r in oidc.request_log if r.path.endswith("/auth") and r.method == "GET")
    query = parse_qs(authorize.query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["nonce"][0]
    token_call = next(r for r in oidc.request_log if r.path.endswith("/token"))
    assert b"code_verifier=" in token_call.body

    (provisioned,) = audit_events(acme.account, "sso.user-provisioned")
    assert provisioned.target_id == str(alice.id) and provisioned.payload["new_user"] is True
    (succeeded,) = audit_events(acme.account, "sso.login-succeeded")
    assert succeeded.payload["provider_id"] == str(idp.id) and succeeded.payload["provisioned"] is True
    assert audit_events(acme.account, "member.added")[-1].target_id == str(alice.id)


def test_a_second_sign_in_reuses_the_person(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    oidc_sign_in(web, idp, oidc, "alice")
    web.post("/logout/")
    response = oidc_sign_in(web, idp, oidc, "alice")
    assert response.status_code == 302
    assert User.objects.filter(email="alice@acme.example").count() == 1
    assert UserSocialAuth.objects.filter(uid=f"{idp.id}:alice-0001").count() == 1
    assert len(audit_events(acme.account, "sso.user-provisioned")) == 1
    assert len(audit_events(acme.account, "sso.login-succeeded")) == 2


def test_an_existing_member_is_linked_by_the_verified_address(web, acme, oidc):
    from tests.factories import MembershipFactory, UserFactory

    bob = UserFactory(email="bob@acme.example")
    MembershipFactory(account=acme.account, user=bob, role=AccountRole.ADMIN)
    idp = oidc_idp(acme.account, oidc)
    assert oidc_sign_in(web, idp, oidc, "bob").status_code == 302
    assert UserSocialAuth.objects.get(uid=f"{idp.id}:bob-0001").user == bob
    assert AccountMembership.objects.get(account=acme.account, user=bob).role == AccountRole.ADMIN
    assert audit_events(acme.account, "sso.user-provisioned") == []


def _refused(response, account, reason: str):
    assert response.status_code in (400, 403, 502), response.status_code
    page = response.content.decode()
    assert 'id="sso-error"' in page and "Traceback" not in page
    failures = audit_events(account, "sso.login-failed")
    assert failures and failures[-1].payload["reason"] == reason, [f.payload for f in failures]
    return page


def test_a_tampered_id_token_is_refused(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    oidc.tamper_id_token = lambda claims: {**claims, "email": "ceo@acme.example"}
    response = oidc_sign_in(web, idp, oidc, "alice")
    _refused(response, acme.account, "invalid_signature")
    assert not User.objects.filter(email__in=["ceo@acme.example", "alice@acme.example"]).exists()
    assert "_auth_user_id" not in web.session


def test_a_wrong_nonce_is_refused(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)

    def other_nonce(url: str) -> str:
        return re.sub(r"nonce=[^&]+", "nonce=not-the-one-we-sent", url)

    response = oidc_sign_in(web, idp, oidc, "alice", rewrite=other_nonce)
    _refused(response, acme.account, "nonce_mismatch")
    assert not User.objects.filter(email="alice@acme.example").exists()


def test_a_changed_state_is_refused(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)

    def other_state(url: str) -> str:
        return re.sub(r"state=[^&]+", "state=forged", url)

    response = oidc_sign_in(web, idp, oidc, "alice", rewrite=other_state)
    assert response.status_code == 403
    assert audit_events(acme.account, "sso.login-failed")
    assert not User.objects.filter(email="alice@acme.example").exists()


def test_a_provider_announcing_another_issuer_is_refused(web, acme, oidc):
    # The same provider reached under another name: its discovery document names 127.0.0.1.
    port = urlsplit(oidc.issuer).port
    idp = oidc_idp(acme.account, oidc, issuer=f"http://localhost:{port}")
    response = web.post(f"/sso/login/{idp.id}/", {"next": "/"})
    _refused(response, acme.account, "wrong_issuer")


def test_an_id_token_from_another_issuer_is_refused(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    oidc.tamper_id_token = lambda claims: {**claims, "iss": "https://evil.example"}
    response = oidc_sign_in(web, idp, oidc, "alice")
    page = _refused(response, acme.account, "invalid_signature")
    assert "could not be accepted" in page


def test_an_address_outside_the_verified_domains_is_refused(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    response = oidc_sign_in(web, idp, oidc, "mallory")
    page = _refused(response, acme.account, "unverified_domain")
    assert "elsewhere.example is not a verified domain" in page
    assert not User.objects.filter(email="mallory@elsewhere.example").exists()


def test_no_free_seat_shows_a_clear_page_and_creates_nothing(web, acme, oidc, monkeypatch):
    from billing.entitlements import seats_used

    idp = oidc_idp(acme.account, oidc)
    with_seats(monkeypatch, seats_used(acme.account))
    response = oidc_sign_in(web, idp, oidc, "alice")
    page = _refused(response, acme.account, "no_seat")
    assert "out of seats" in page and "No free seat" in page
    assert not User.objects.filter(email="alice@acme.example").exists()
    assert not UserSocialAuth.objects.exists()


def test_a_disabled_provider_or_a_plan_without_sso_is_refused(web, acme, oidc):
    from accounts.sso.providers import provider_update
    from audit.actors import SYSTEM

    idp = oidc_idp(acme.account, oidc)
    provider_update(provider=idp, body={"enabled": False}, actor=SYSTEM)
    _refused(web.post(f"/sso/login/{idp.id}/"), acme.account, "provider_disabled")
    provider_update(provider=idp, body={"enabled": True}, actor=SYSTEM)
    acme.account.plan = "team"
    acme.account.save()
    _refused(web.post(f"/sso/login/{idp.id}/"), acme.account, "plan")


def test_the_start_is_post_only_and_unknown_providers_are_404(web, acme, oidc):
    import uuid

    idp = oidc_idp(acme.account, oidc)
    assert web.get(f"/sso/login/{idp.id}/").status_code == 405
    assert web.post(f"/sso/login/{uuid.uuid4()}/").status_code == 404
    assert web.get(f"/sso/oidc/{uuid.uuid4()}/callback?code=x&state=y").status_code == 404


def test_an_open_redirect_through_next_is_dropped(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    for target in ("https://evil.example/steal", "//evil.example/x", "javascript:alert(1)"):
        web.post("/logout/")
        response = oidc_sign_in(web, idp, oidc, "alice", next_url=target)
        assert response.status_code == 302
        assert response["Location"] == "/", (target, response["Location"])


def test_a_provider_error_is_a_clear_page(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    start = web.post(f"/sso/login/{idp.id}/")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    response = web.get(f"/sso/oidc/{idp.id}/callback?error=access_denied&state={state}")
    assert response.status_code == 403 and 'id="sso-error"' in response.content.decode()
    assert audit_events(acme.account, "sso.login-failed")


@pytest.mark.parametrize(
    "query",
    [
        "",
        "code=x",
        "state=x",
        "code=x&state=y",
        "error=server_error",
        "code=&state=&iss=https://evil.example",
    ],
)
def test_odd_callbacks_are_a_clear_page_never_a_500(web, acme, oidc, query):
    idp = oidc_idp(acme.account, oidc)
    web.post(f"/sso/login/{idp.id}/")  # a pending sign-in in this browser, or not: both must hold
    response = web.get(f"/sso/oidc/{idp.id}/callback?{query}")
    assert 400 <= response.status_code < 500 and b'id="sso-error"' in response.content
    assert not User.objects.filter(email="alice@acme.example").exists()
    assert audit_events(acme.account, "sso.login-failed")


def test_odd_starts_are_never_a_500(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    for data in ({"next": ["a", "b"]}, {"next": "\x00"}, {"next": "/" * 5000}):
        response = web.post(f"/sso/login/{idp.id}/", data)
        assert response.status_code in (302, 400, 403), response.status_code


def test_a_pending_invitation_is_accepted_by_the_sign_in_with_its_role_and_grants(web, acme, oidc):
    """Someone invited (as an Admin, with Viewer in the workspace) who first arrives through the
    account's identity provider joins as the invitation says, not as a plain member; the seat the
    invitation held passes to them."""
    from accounts.models import Invitation, WorkspaceRoleGrant
    from accounts.rbac import invitation_create
    from accounts.roles import ResolvedRole
    from audit.actors import SYSTEM
    from billing.entitlements import seats_used

    invitation, _ = invitation_create(
        account=acme.account,
        email="alice@acme.example",
        account_role=AccountRole.ADMIN,
        workspace_grants=[(acme.workspace, ResolvedRole(builtin="viewer"))],
        actor=SYSTEM,
    )
    seats = seats_used(acme.account)
    idp = oidc_idp(acme.account, oidc)
    assert oidc_sign_in(web, idp, oidc, "alice").status_code == 302

    alice = User.objects.get(email="alice@acme.example")
    assert AccountMembership.objects.get(account=acme.account, user=alice).role == AccountRole.ADMIN
    grant = WorkspaceRoleGrant.objects.unscoped().get(workspace=acme.workspace, user=alice)
    assert grant.role == "viewer"
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED and invitation.accepted_by == alice
    assert seats_used(acme.account) == seats
    (accepted,) = audit_events(acme.account, "invitation.accepted")
    assert accepted.payload["via"] == "sso" and accepted.target_id == str(invitation.pk)
    (provisioned,) = audit_events(acme.account, "sso.user-provisioned")
    assert provisioned.payload["invitation_accepted"] is True
    assert [e.target_id for e in audit_events(acme.account, "workspace-access.granted")][-1] == str(alice.id)


def test_a_revoked_invitation_is_not_accepted_by_a_sign_in(web, acme, oidc):
    from accounts.rbac import invitation_create, invitation_revoke
    from audit.actors import SYSTEM

    invitation, _ = invitation_create(
        account=acme.account, email="alice@acme.example", account_role=AccountRole.ADMIN, actor=SYSTEM
    )
    invitation_revoke(invitation=invitation, actor=SYSTEM)
    idp = oidc_idp(acme.account, oidc)
    assert oidc_sign_in(web, idp, oidc, "alice").status_code == 302
    alice = User.objects.get(email="alice@acme.example")
    assert AccountMembership.objects.get(account=acme.account, user=alice).role == AccountRole.MEMBER
    assert audit_events(acme.account, "invitation.accepted") == []
