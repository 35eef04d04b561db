"""Request overhead of authentication + authorization, for a principal whose access comes through
50 team grants (one per workspace) plus a direct grant and a default role.

Runs in-process against a fresh PostgreSQL database (dropped at the end) with Django's test client,
so the figures are the server's own work without HTTP: the same request to the workspace
``health`` route (authenticate the key, resolve account and workspace, compute the access) with
the memo cold (every request resolves from the database) and warm (one memo lookup), next to the
unauthenticated ``/api/health`` (which runs one database query) as a floor. Prints a table and the
queries per request.

    .venv/bin/python bench/auth_overhead.py [--requests 2000] [--database-url postgres://…]
"""

from __future__ import annotations

import argparse
import statistics
import time

from inprocess import add_database_arguments, run_in_fresh_database


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1e6

    return statistics.fmean(ordered) * 1e6, at(0.5), at(0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--teams", type=int, default=50)
    add_database_arguments(parser)
    run_in_fresh_database(parser.parse_args(), run, prefix="bench_auth")


def run(args) -> None:
    from django.db import connection
    from django.test import Client

    from accounts import authcache
    from accounts.api_keys.services import api_key_create
    from accounts.models import Team, User, WorkspaceDefaultRole, WorkspaceRoleGrant
    from accounts.services import membership_add, workspace_access_grant
    from accounts.tenancy import account_create, workspace_create
    from audit.actors import SYSTEM

    owner = User.objects.create_user("owner@bench.example")
    person = User.objects.create_user("person@bench.example")
    account = account_create(name="Bench", owner=owner, actor=SYSTEM, plan="enterprise")
    membership_add(account=account, user=person, role="member", actor=SYSTEM)
    target = workspace_create(account=account, name="Target", actor=SYSTEM)
    for i in range(args.teams):
        workspace = target if i == 0 else workspace_create(account=account, name=f"W{i}", actor=SYSTEM)
        team = Team.objects.create(account=account, name=f"T{i}")
        team.members.create(user=person)
        WorkspaceRoleGrant.objects.for_workspace(workspace.pk).create(
            workspace=workspace, team=team, role="viewer"
        )
    workspace_access_grant(workspace=target, principal=person, role="runner", actor=SYSTEM)
    WorkspaceDefaultRole.objects.create(workspace=target, role="viewer")
    _, key = api_key_create(owner=person, name="bench", actor=SYSTEM)

    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    path = f"/api/accounts/{account.id}/workspaces/{target.id}/health"
    assert client.get(path).status_code == 200

    def measure(url: str, *, cold: bool, n: int) -> tuple[list[float], int]:
        samples, queries = [], [0]

        def count(execute, sql, params, many, context):
            queries[0] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            for _ in range(n):
                if cold:
                    authcache.clear()
                started = time.perf_counter()
                response = client.get(url)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200, response.content
        return samples, queries[0]

    n = args.requests
    measure(path, cold=False, n=100)  # warm up imports and the connection
    rows = []
    for label, url, cold in (
        ("/api/health (floor: one query, no auth)", "/api/health", False),
        (f"workspace health, memo cold ({args.teams} team grants)", path, True),
        ("workspace health, memo warm", path, False),
    ):
        samples, queries = measure(url, cold=cold, n=n)
        mean, p50, p95 = _percentiles(samples)
        rows.append((label, mean, p50, p95, queries / n))
    print(f"\n{n} requests each, Django test client, PostgreSQL, in-process\n")
    print(f"{'':55} {'mean µs':>9} {'p50 µs':>9} {'p95 µs':>9} {'queries/req':>12}")
    for label, mean, p50, p95, qpr in rows:
        print(f"{label:55} {mean:9.0f} {p50:9.0f} {p95:9.0f} {qpr:12.2f}")
    floor = rows[0][2]
    print(
        f"\nauth + authorization overhead over the floor (p50): cold {rows[1][2] - floor:.0f} µs, "
        f"warm {rows[2][2] - floor:.0f} µs"
    )


if __name__ == "__main__":
    main()
