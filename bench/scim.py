"""SCIM at scale, in-process against a fresh PostgreSQL database (dropped at the end):

1. provision N users (default 10,000) with ``POST /Users`` as Okta sends it, then G groups (default
   200) with ``POST /Groups``, each with a slice of the users as members: requests per second;
2. with every user present, ``GET /Users?filter=userName eq "…"`` for random users: p50/p95
   latency, and PostgreSQL's plan for that query (it must use the account's userName index).

Requests go through Django's whole stack with the account's SCIM token (``django.test.Client``).

    .venv/bin/python bench/scim.py [--users 10000] [--groups 200] [--lookups 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from inprocess import add_database_arguments, run_in_fresh_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--members", type=int, default=50, help="members per group")
    parser.add_argument("--lookups", type=int, default=1000)
    add_database_arguments(parser)
    run_in_fresh_database(parser.parse_args(), run, prefix="bench_scim")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))] * 1000


def run(args) -> None:
    from django.db import connection
    from django.test import Client

    from accounts.models import ScimUser, User
    from accounts.scim.protocol import filter_q
    from accounts.scim.resources import USER_FILTER_ATTRIBUTES
    from accounts.scim.services import scim_token_create
    from accounts.tenancy import account_create
    from audit.actors import SYSTEM

    owner = User.objects.create_user("owner@bench.example")
    account = account_create(name="Bench", owner=owner, actor=SYSTEM, plan="enterprise")
    _, token = scim_token_create(account=account, actor=SYSTEM, name="bench")
    http = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    base = f"/scim/v2/accounts/{account.id}"
    scim_json = "application/scim+json"

    ids: list[str] = []
    started = time.perf_counter()
    for i in range(args.users):
        email = f"user{i}@corp.example"
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email,
            "name": {"givenName": "User", "familyName": str(i)},
            "emails": [{"primary": True, "value": email, "type": "work"}],
            "externalId": f"00u{i}",
            "password": "ignored",
            "active": True,
        }
        response = http.post(f"{base}/Users", json.dumps(body), content_type=scim_json)
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    users_rate = args.users / (time.perf_counter() - started)

    started = time.perf_counter()
    for g in range(args.groups):
        members = [{"value": ids[(g * args.members + k) % len(ids)]} for k in range(args.members)]
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": f"group-{g}",
            "members": members,
        }
        response = http.post(f"{base}/Groups", json.dumps(body), content_type=scim_json)
        assert response.status_code == 201, response.content
    groups_rate = args.groups / (time.perf_counter() - started)

    latencies = []
    for _ in range(args.lookups):
        email = f"user{random.randrange(args.users)}@corp.example"  # noqa: S311 - picking test rows
        started = time.perf_counter()
        response = http.get(f"{base}/Users", {"filter": f'userName eq "{email}"'})
        latencies.append(time.perf_counter() - started)
        assert response.json()["totalResults"] == 1, response.content

    query = ScimUser.objects.filter(account=account).filter(
        filter_q('userName eq "user42@corp.example"', USER_FILTER_ATTRIBUTES)
    )
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_scimuser")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(f"    {row[0]}" for row in cursor.fetchall())

    print(
        f"\n(1) provisioning through SCIM ({ScimUser.objects.filter(account=account).count()} users present)"
    )
    print(f"    POST /Users:  {users_rate:8.1f} users/s  ({args.users})")
    print(f"    POST /Groups: {groups_rate:8.1f} groups/s ({args.groups}, {args.members} members each)")
    print(f'\n(2) GET /Users?filter=userName eq "…", {args.lookups} lookups')
    print(
        f"    p50 {_pct(latencies, 0.5):.2f} ms   p95 {_pct(latencies, 0.95):.2f} ms   mean {statistics.fmean(latencies) * 1000:.2f} ms"
    )
    print("    PostgreSQL's plan for the filter:")
    print(plan)


if __name__ == "__main__":
    main()
