"""Platform operators see identity providers, domains and mappings in the Django admin, never the
encrypted secrets, and cannot change them there (accounts do, through the audited API)."""

from __future__ import annotations

import pytest

from accounts.models import User
from tests.accounts.sso.conftest import oidc_idp

pytestmark = pytest.mark.django_db


def test_operators_see_providers_without_their_secrets(client, acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    operator = User.objects.create_superuser("ops@platform.example", "a long enough password")
    client.force_login(operator)
    listing = client.get("/admin/accounts/identityprovider/")
    assert listing.status_code == 200 and idp.name in listing.content.decode()
    page = client.get(f"/admin/accounts/identityprovider/{idp.id}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert idp.secret_encrypted not in body and "secret_encrypted" not in body
    assert client.post(f"/admin/accounts/identityprovider/{idp.id}/change/", {"name": "x"}).status_code == 403
    assert client.get("/admin/accounts/ssodomain/").status_code == 200
    assert client.get("/admin/accounts/ssogroupmapping/").status_code == 200
