from __future__ import annotations

import re

import pytest
from django.test import Client

from access.gate import authenticate_key
from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_create
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from tests.console.conftest import session, steady_query_count
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/console/me/api-keys/"


def shown_key(response) -> str:
    return re.search(r'<code id="new-key">(pnu_[^<]+)</code>', response.content.decode()).group(1)


def test_create_a_key_shown_once_narrowed_to_scopes(org):
    browser = session(org.member)
    response = browser.post(URL, {"name": "laptop", "expires_in_days": "30", "scopes": "see_flows see_flows"})
    assert response.status_code == 201
    plaintext = shown_key(response)
    assert "Key laptop" in response.content.decode()
    key = authenticate_key(plaintext, ip=None)
    assert key.user_id == org.member.pk and key.scopes == ["see_flows"] and key.expires_at is not None
    assert AuditLogEntry.objects.filter(api_name="api-key.created", target_id=str(key.pk)).exists()
    listing = browser.get(URL).content.decode()
    assert "laptop" in listing and plaintext not in listing and key.display in listing


def test_an_unknown_scope_is_refused_inline(org):
    response = session(org.member).post(URL, {"name": "laptop", "scopes": "fly_to_the_moon"})
    assert response.status_code == 422
    assert "Unknown workspace scope(s): fly_to_the_moon." in response.content.decode()
    assert not ApiKey.objects.filter(user=org.member, name="laptop").exists()


def test_revoke_asks_first_then_the_key_stops_working(org):
    key, plaintext = api_key_create(owner=org.member, name="old", actor=SYSTEM)
    browser = session(org.member)
    confirm = browser.get(f"{URL}{key.pk}/revoke")
    assert confirm.status_code == 200 and "Revoke the API key old?" in confirm.content.decode()
    assert browser.post(f"{URL}{key.pk}/revoke").status_code == 302
    assert authenticate_key(plaintext, ip=None) is None
    assert AuditLogEntry.objects.filter(api_name="api-key.revoked", target_id=str(key.pk)).exists()


def test_another_persons_key_is_404(org):
    key, plaintext = api_key_create(owner=org.admin, name="theirs", actor=SYSTEM)
    browser = session(org.member)
    assert browser.get(f"{URL}{key.pk}/revoke").status_code == 404
    assert browser.post(f"{URL}{key.pk}/revoke").status_code == 404
    assert authenticate_key(plaintext, ip=None) is not None
    assert "theirs" not in browser.get(URL).content.decode()


def test_anonymous_is_sent_to_sign_in_and_forms_need_csrf(org):
    assert Client().get(URL).status_code == 302
    key, _ = api_key_create(owner=org.member, name="k", actor=SYSTEM)
    browser = session(org.member, csrf=True)
    assert browser.post(URL, {"name": "laptop"}).status_code == 403
    assert browser.post(f"{URL}{key.pk}/revoke").status_code == 403
    assert not ApiKey.objects.filter(name="laptop").exists()
    key.refresh_from_db()
    assert key.revoked_at is None


def test_a_password_session_makes_no_key_where_an_account_enforces_sso(org):
    org.account.settings = {**(org.account.settings or {}), "enforce_sso": True}
    org.account.save(update_fields=["settings"])
    browser = session(org.member)
    response = browser.post(URL, {"name": "laptop"})
    assert response.status_code == 403 and "requires single sign-on" in response.content.decode()
    assert not ApiKey.objects.filter(name="laptop").exists()
    # The account's pages are closed to this session by the gate's SSO step too.
    page = browser.get(org.url("members/"))
    assert page.status_code == 403 and "requires single sign-on" in page.content.decode()


def test_no_per_row_queries(db):
    person = UserFactory()
    browser = session(person)
    few = steady_query_count(browser, URL)
    for n in range(8):
        api_key_create(owner=person, name=f"k{n}", actor=SYSTEM)
    assert steady_query_count(browser, URL) == few
