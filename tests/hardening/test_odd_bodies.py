"""Bodies a careless client sends to Prefect's routes answer 4xx in Prefect's shape, never a 500:
a sort given as a list, a ``like_`` of 100,000 characters, paging past 2^62, names far over their
column's length."""

from __future__ import annotations

import pytest

from tests.conftest import bearer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("artifacts/latest/filter", {"sort": ["KEY_DESC"]}),
        ("artifacts/filter", {"sort": ["KEY_DESC"]}),
        ("flow_runs/filter", {"sort": ["x"]}),
        ("flow_runs/filter", {"flow_runs": {"name": {"like_": "a" * 100_000}}}),
        ("flows/filter", {"flows": {"name": {"like_": "%" * 100_000}}}),
        ("flow_runs/filter", {"limit": 2**62, "offset": 2**62}),
        ("variables/", {"name": "v" * 10_000, "value": 1}),
        ("flows/", {"name": "f" * 10_000}),
        ("work_pools/", {"name": "p" * 10_000, "type": "process"}),
    ],
)
def test_an_odd_body_is_never_a_500(tenant, api_client, path, body):
    dev = bearer(api_client, tenant.service_key)
    response = dev.post(f"{tenant.prefix}/{path}", body, format="json")
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert set(response.json()) <= {"detail", "exception_detail"}
