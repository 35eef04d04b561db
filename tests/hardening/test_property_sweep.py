"""A property-based sweep of every route that takes a body, on whichever database the suite runs:
for any JSON a client could send (drawn by hypothesis, with the field names Prefect's own schema
gives that route, nested values, huge and non-finite numbers, lone surrogates, odd types), the
answer is never a 5xx, and a refused request stores nothing.

The field names come from ``prefect_body_fields.json``, read off the pinned package's OpenAPI
(building it takes Prefect about 20 s, so it is not built per run). Regenerate it with
``.venv/bin/python tests/hardening/prefect_body_fields.py`` after upgrading ``prefect``.

Bounded for CI: ``SWEEP_EXAMPLES`` bodies per route-method (default 6), derandomized so a run is
repeatable; raise it locally to search harder (``SWEEP_EXAMPLES=200``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.api_keys.services import api_key_create
from accounts.permissions import AccountRole
from accounts.services import membership_add
from audit.actors import SYSTEM
from tests.factories import UserFactory
from tests.hardening.test_body_sweep import CASES, _row_counts

FIELDS_FILE = Path(__file__).with_name("prefect_body_fields.json")
EXAMPLES = int(os.environ.get("SWEEP_EXAMPLES", "6"))
_WORKSPACE_PREFIX = re.compile(r"^api/accounts/<[^>]+>/workspaces/<[^>]+>")
_PARAM = re.compile(r"<[^>]+>")
GENERIC_FIELDS = ["name", "id", "tags", "limit", "offset", "sort", "state", "type", "value", "data"]


def _prefect_key(method: str, template: str) -> str:
    path = _PARAM.sub("{}", _WORKSPACE_PREFIX.sub("", template))
    return f"{method} {path if path.startswith('/') else '/' + path}"


def _fields_by_route() -> dict[str, list[str]]:
    return json.loads(FIELDS_FILE.read_text())


FIELDS = _fields_by_route()

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        ["", "x" * 5000, "\ud800", "2026-01-01T00:00:00Z", "00000000-0000-0000-0000-000000000000"]
    )
)


def bodies(fields: list[str]) -> st.SearchStrategy[str]:
    keys = st.sampled_from(fields or GENERIC_FIELDS) | st.text(max_size=12)
    values = st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
        max_leaves=25,
    )
    documents = st.dictionaries(keys, values, max_size=8) | values
    return documents.map(lambda doc: json.dumps(doc, allow_nan=True))


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method"), CASES, ids=[f"{m} {r.template}" for r, m in CASES])
def test_any_body_is_answered_below_500_and_a_refused_one_stores_nothing(tenant, api_client, route, method):
    owner = UserFactory()
    membership_add(account=tenant.account, user=owner, role=AccountRole.OWNER, actor=SYSTEM)
    api_client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_key_create(owner=owner, name='k', actor=SYSTEM)[1]}"
    )
    path = route.build(account_ref=tenant.account.id, workspace_ref=tenant.workspace.id)
    call = getattr(api_client, method.lower())

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=bodies(FIELDS.get(_prefect_key(method, route.template), [])))
    def sweep(body: str) -> None:
        before = _row_counts()
        response = call(path, data=body.encode("utf-8", "surrogatepass"), content_type="application/json")
        where = f"{method} {path} {body[:200]!r}"
        assert response.status_code < 500, (where, response.content[:300])
        if response.status_code >= 400:
            assert _row_counts() == before, where

    sweep()
