"""The cost of the audit log, in-process against a fresh PostgreSQL database (dropped at the end):

1. a mutating endpoint that records an audit event (``PUT teams/{id}``, a rename, through Django's
   test client with an owner's key): requests per second with the audit record written (hash chain
   included) and with ``audit_record`` replaced by a no-op, and the overhead;
2. ``audit_verify`` over N chained events (default 1,000,000, written first with ``bulk_create``
   in chain order): events per second.

    .venv/bin/python bench/audit_cost.py [--requests 2000] [--events 1000000]
"""

from __future__ import annotations

import argparse
import time
import uuid

from inprocess import add_database_arguments, run_in_fresh_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--events", type=int, default=1_000_000)
    add_database_arguments(parser)
    run_in_fresh_database(parser.parse_args(), run, prefix="bench_audit")


def run(args) -> None:
    from django.test import Client
    from django.utils import timezone

    import accounts.rbac as rbac
    from accounts.api_keys.services import api_key_create
    from accounts.models import User
    from accounts.tenancy import account_create
    from audit.actors import SYSTEM
    from audit.models import AuditChain, AuditLogEntry
    from audit.services import audit_verify_chain, entry_hash

    owner = User.objects.create_user("owner@bench.example")
    account = account_create(name="Bench", owner=owner, actor=SYSTEM, plan="enterprise")
    _, key = api_key_create(owner=owner, name="bench", actor=SYSTEM)
    team = rbac.team_create(account=account, name="t-0", actor=SYSTEM)
    http = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    url = f"/api/accounts/{account.id}/teams/{team.id}"

    def rename(n: int, offset: int) -> float:
        started = time.perf_counter()
        for i in range(n):
            response = http.put(url, {"name": f"t-{offset + i}"}, content_type="application/json")
            assert response.status_code == 200, response.content
        return n / (time.perf_counter() - started)

    rename(100, 10_000_000)  # warm up
    real_record = rbac.audit_record
    results = {}
    for label in ("with audit", "without audit", "with audit ", "without audit "):
        rbac.audit_record = real_record if label.strip() == "with audit" else (lambda **kwargs: None)
        results[label] = rename(args.requests, len(results) * args.requests)
    rbac.audit_record = real_record
    with_audit = (results["with audit"] + results["with audit "]) / 2
    without = (results["without audit"] + results["without audit "]) / 2
    print(
        f"\n(1) PUT teams/{{id}} through Django's test client, PostgreSQL, {args.requests} requests x 2 rounds"
    )
    print(f"    with the audit record (hash chain): {with_audit:8.1f} req/s")
    print(f"    without:                            {without:8.1f} req/s")
    print(f"    overhead:                           {100 * (without - with_audit) / without:8.1f} %")

    # (2) N chained events, written in chain order, then verified.
    chain = uuid.uuid4()
    head_hash, batch, written = "", [], 0
    started = time.perf_counter()
    now = timezone.now()
    for sequence in range(1, args.events + 1):
        entry = AuditLogEntry(
            occurred=now, event_id=20, api_name="member.added", account_ref=chain, actor_kind="system",
            actor_label="system", target_type="accounts.user", target_id=str(sequence), target_label="x",
            payload={"role": "member"}, chain=chain, sequence=sequence, prev_hash=head_hash,
        )  # fmt: skip
        entry.hash = head_hash = entry_hash(entry)
        batch.append(entry)
        if len(batch) == 10_000:
            AuditLogEntry.objects.bulk_create(batch)
            written += len(batch)
            batch = []
    if batch:
        AuditLogEntry.objects.bulk_create(batch)
    AuditChain.objects.create(id=chain, sequence=args.events, head_hash=head_hash)
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    report = audit_verify_chain(chain)
    verify_s = time.perf_counter() - started
    assert report.ok and report.checked == args.events, report
    print(f"\n(2) audit_verify over {args.events:,} chained events (written in {write_s:.1f} s)")
    print(f"    verified in {verify_s:.1f} s: {args.events / verify_s:,.0f} events/s")


if __name__ == "__main__":
    main()
