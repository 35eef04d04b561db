# ruff: noqa: S608 - every statement is built from this module's own constants and generated ids
"""Part (j): the admin console's pages on a big account (issue 20: each page's server time under
150 ms with 1,000 members, 100 teams, 200 service accounts and 1,000,000 audit events).

Prefect's server has no such pages (accounts, members, teams, audit log and billing are Prefect
Cloud's, not its open-source server's), so this part measures ours alone.

Setup (timed, not part of the figures), at ``--j-scale`` of the issue's size (1.0: the issue's):

  * the big account (Enterprise plan): an Owner, 1,000 members (``bulk_create``), 200 service
    accounts, 100 teams of 10 members and 2 service accounts each, 5 workspaces, each team granted
    a role on 2 of them and 20 users and 10 service accounts granted directly on each, 3 custom
    roles, 50 pending invitations, 20 allowlist entries (not enforced), 10 API keys of the Owner,
    3 SSO domains (verified), an OIDC and a SAML identity provider, 2 SCIM tokens;
  * 1,000,000 audit entries in the account's chain, generated inside PostgreSQL (``INSERT …
    SELECT … FROM generate_series``), shaped as ``audit_record`` writes them (event id and api
    name from the registry, actor user or service account and label, target, message, payload,
    ip, the chain's sequence 1..N), spread over the 365 days before now. The hash chain is NOT
    valid (``prev_hash``/``hash`` are filler): the pages read the rows, they never verify the
    chain, so the timing is that of valid rows;
  * 100,000 rows of the account's SCIM journal (``accounts_scimactivity``), generated the same way:
    the methods, paths and answers an IdP's provisioning sends, across its 2 tokens, spread over
    the 30 days before now (the journal's retention);
  * 3 other accounts, each with 1/10 of the big one's members, teams and service accounts and 1/10
    of its audit entries and SCIM journal, so every query finds the account's rows among others'.

Then ``VACUUM ANALYZE``, and each page is fetched ``--j-requests`` times (after 2 warm-ups) with
Django's test client in-process as the Owner (a session, ``force_login``), timing the server's
whole handling (middleware, gate, selectors, template). Reported per page: p50/p95 ms, the number
of SQL queries and the HTTP status.

Standalone (a fresh database, dropped at the end)::

    python bench/part_j.py --j-scale 0.1
    python bench/part_j.py --database-url postgres://postgres@127.0.0.1:5432/postgres --db-prefix bench_j

Inside ``run.py`` (``--only j --servers ours``) it runs in a subprocess against our server's database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

FULL = {"members": 1000, "teams": 100, "service_accounts": 200, "audit": 1_000_000, "scim_activity": 100_000}
WORKSPACES = 5
OTHER_ACCOUNTS = 3
OTHER_FRACTION = 10
TEAM_USERS, TEAM_BOTS = 10, 2
DIRECT_USER_GRANTS, DIRECT_BOT_GRANTS = 20, 10
INVITATIONS, ALLOWLIST, API_KEYS, CUSTOM_ROLES = 50, 20, 10, 3
SSO_DOMAINS, SCIM_TOKENS = 3, 2
DAYS = 365
SCIM_DAYS = 30


def sizes(scale: float) -> dict:
    return {k: max(10, round(v * scale)) for k, v in FULL.items()}


# --------------------------------------------------------------------------------------------------
# Generation (inside Django: DATABASE_URL names the database)
# --------------------------------------------------------------------------------------------------


def _generate_account(*, index: int, size: dict, owner=None) -> dict:
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from accounts.api_keys.services import api_key_create
    from accounts.models import (
        AccountMembership,
        CustomRole,
        Invitation,
        IpAllowlistEntry,
        ServiceAccount,
        SsoDomain,
        Team,
        TeamMember,
        User,
        WorkspaceRoleGrant,
    )
    from accounts.permissions import AccountRole, WorkspaceRole, builtin_workspace_role_id
    from accounts.scim.services import scim_token_create
    from accounts.services import user_create
    from accounts.sso.providers import provider_create
    from accounts.tenancy import account_create, workspace_create
    from audit.actors import SystemActor

    actor = SystemActor(label="bench")
    now = timezone.now()
    password = make_password(None)
    with transaction.atomic():
        if owner is None:
            owner = user_create(email=f"owner{index}@bench.example", password=uuid.uuid4().hex)
        account = account_create(name=f"Bench account {index}", owner=owner, actor=actor, plan="enterprise")
        workspaces = [
            workspace_create(account=account, name=f"Workspace {w}", actor=actor) for w in range(WORKSPACES)
        ]
        users = User.objects.bulk_create(
            User(
                email=f"m{index}-{n}@bench.example",
                first_name=f"Member{n}",
                last_name=f"Acct{index}",
                password=password,
                date_joined=now,
            )
            for n in range(size["members"])
        )
        roles = [AccountRole.MEMBER] * 8 + [AccountRole.ADMIN]
        AccountMembership.objects.bulk_create(
            AccountMembership(account=account, user=u, role=roles[n % len(roles)])
            for n, u in enumerate(users)
        )
        bots = ServiceAccount.objects.bulk_create(
            ServiceAccount(account=account, name=f"bot-{n}", created_by=owner)
            for n in range(size["service_accounts"])
        )
        teams = Team.objects.bulk_create(
            Team(account=account, name=f"team-{n}", description=f"Team {n}") for n in range(size["teams"])
        )
        TeamMember.objects.bulk_create(
            [
                *(
                    TeamMember(team=t, user=users[(n * TEAM_USERS + k) % len(users)])
                    for n, t in enumerate(teams)
                    for k in range(TEAM_USERS)
                ),
                *(
                    TeamMember(team=t, service_account=bots[(n * TEAM_BOTS + k) % len(bots)])
                    for n, t in enumerate(teams)
                    for k in range(TEAM_BOTS)
                ),
            ]
        )
        custom = CustomRole.objects.bulk_create(
            CustomRole(
                account=account,
                name=f"role-{n}",
                scopes=["see_flows", "see_deployments"],
                inherited_role=WorkspaceRole.VIEWER,
            )
            for n in range(CUSTOM_ROLES)
        )
        ws_roles = [WorkspaceRole.VIEWER, WorkspaceRole.RUNNER, WorkspaceRole.DEVELOPER]
        grants = []
        for n, t in enumerate(teams):
            for k in range(2):
                ws = workspaces[(n + k) % WORKSPACES]
                if n % 10 == 9:
                    grants.append(
                        WorkspaceRoleGrant(workspace=ws, team=t, custom_role=custom[n % CUSTOM_ROLES])
                    )
                else:
                    grants.append(WorkspaceRoleGrant(workspace=ws, team=t, role=ws_roles[n % 3]))
        for w, ws in enumerate(workspaces):
            for k in range(min(DIRECT_USER_GRANTS, len(users))):
                grants.append(
                    WorkspaceRoleGrant(
                        workspace=ws,
                        user=users[(w * DIRECT_USER_GRANTS + k) % len(users)],
                        role=ws_roles[k % 3],
                    )
                )
            for k in range(min(DIRECT_BOT_GRANTS, len(bots))):
                grants.append(
                    WorkspaceRoleGrant(
                        workspace=ws,
                        service_account=bots[(w * DIRECT_BOT_GRANTS + k) % len(bots)],
                        role=WorkspaceRole.DEVELOPER,
                    )
                )
        WorkspaceRoleGrant.objects.unscoped().bulk_create(grants)
        Invitation.objects.bulk_create(
            Invitation(
                account=account,
                email=f"invitee{index}-{n}@bench.example",
                token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
                expires_at=now + timezone.timedelta(days=7),
                invited_by=owner,
                workspace_grants=[
                    {
                        "workspace_id": str(workspaces[0].id),
                        "workspace_role_id": str(builtin_workspace_role_id("viewer")),
                    }
                ],
            )
            for n in range(INVITATIONS)
        )
        IpAllowlistEntry.objects.bulk_create(
            IpAllowlistEntry(account=account, ip_network=f"10.{index}.{n}.0/24", description=f"office {n}")
            for n in range(ALLOWLIST)
        )
        if index == 0:
            for n in range(API_KEYS):
                api_key_create(owner=owner, name=f"key {n}", actor=owner)
        SsoDomain.objects.bulk_create(
            SsoDomain(
                account=account,
                domain=f"d{n}.acct{index}.bench.example",
                token=uuid.uuid4().hex,
                verified_at=now,
            )
            for n in range(SSO_DOMAINS)
        )
        providers = [
            provider_create(
                account=account,
                body={
                    "kind": "oidc",
                    "name": "Bench OIDC",
                    "issuer": f"https://idp{index}.bench.example",
                    "client_id": "bench",
                    "client_secret": "bench-secret",
                },
                actor=actor,
            ),
            provider_create(
                account=account,
                body={
                    "kind": "saml",
                    "name": "Bench SAML",
                    "entity_id": f"https://idp{index}.bench.example/saml",
                    "sso_url": f"https://idp{index}.bench.example/saml/sso",
                    "x509_certificates": [_certificate_pem()],
                },
                actor=actor,
            ),
        ]
        scim_tokens = [
            scim_token_create(account=account, actor=actor, name=f"idp token {n}")[0]
            for n in range(SCIM_TOKENS)
        ]
    return {
        "account": account,
        "owner": owner,
        "workspaces": workspaces,
        "users": [u.id for u in users],
        "bots": [(b.id, b.name) for b in bots],
        "teams": [t.id for t in teams],
        "custom_roles": [r.id for r in custom],
        "providers": {p.kind: p.id for p in providers},
        "scim_tokens": [t.id for t in scim_tokens],
    }


def _certificate_pem() -> str:
    """A self-signed certificate for the SAML identity provider's configuration."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.bench.example")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.PEM).decode()


def _scim_sql(*, account_id: str, token_ids: list[str], n: int, now: str) -> str:
    """``n`` rows of the account's SCIM journal, the newest last, spread over SCIM_DAYS days before
    ``now``: an IdP's provisioning traffic (look-ups, creates, PATCHes of users and groups, a few
    refusals), across its tokens."""
    A = f"'{account_id}'::uuid"
    tokens = "ARRAY[" + ",".join(f"'{t}'::uuid" for t in token_ids) + "]"
    return f"""
SET synchronous_commit TO OFF;
INSERT INTO accounts_scimactivity (account_id, token_id, occurred, method, path, status, ip, request_id,
  changes, detail)
SELECT {A}, ({tokens})[1 + g % {len(token_ids)}],
  {now}::timestamptz - interval '{SCIM_DAYS} days' * (({n} - g)::float8 / {n}),
  (ARRAY['GET','GET','POST','PATCH','PATCH','PUT','DELETE'])[1 + g % 7],
  CASE WHEN g % 5 = 0 THEN '/Groups/' || md5('group' || (g % 100))::uuid
       ELSE '/Users/' || md5('user' || (g % 1000))::uuid END,
  CASE WHEN g % 50 = 0 THEN 409 WHEN g % 97 = 0 THEN 404 WHEN g % 7 = 2 THEN 201 ELSE 200 END,
  ('10.1.' || (g % 250) || '.' || (g % 200 + 1))::inet, md5('scim' || g),
  CASE WHEN g % 7 IN (3, 4) THEN jsonb_build_array(jsonb_build_object('field', 'active', 'from', true, 'to', false))
       ELSE '[]'::jsonb END,
  CASE WHEN g % 50 = 0 THEN 'userName is already taken' ELSE '' END
FROM generate_series(1, {n}) g;
"""


def _audit_sql(*, account_id: str, workspaces: list[str], n: int, now: str) -> str:
    """``n`` entries of the account's chain, sequence 1..n, the newest last, spread over DAYS days
    before ``now``; actors are the account's users (9 in 10) or service accounts."""
    from audit.registry import registry

    events = sorted(registry.all(), key=lambda e: e.id)
    ev_ids = "ARRAY[" + ",".join(str(e.id) for e in events) + "]"
    ev_names = "ARRAY[" + ",".join(f"'{e.api_name}'" for e in events) + "]"
    ws = "ARRAY[" + ",".join(f"'{w}'::uuid" for w in workspaces) + "]"
    A = f"'{account_id}'::uuid"
    k = f"(1 + (g::bigint * 7919) % {len(events)})::int"  # event index (1-based)
    return f"""
SET synchronous_commit TO OFF;
SET session_replication_role = replica;
CREATE TEMP TABLE u AS SELECT row_number() OVER (ORDER BY u.id) AS i, u.id, u.email
  FROM accounts_user u JOIN accounts_accountmembership m ON m.user_id = u.id WHERE m.account_id = {A};
CREATE TEMP TABLE b AS SELECT row_number() OVER (ORDER BY id) AS i, id, name
  FROM accounts_serviceaccount WHERE account_id = {A};
INSERT INTO audit_auditlogentry (id, occurred, event_id, api_name, account_id, workspace_id, account_ref,
  workspace_ref, actor_kind, actor_user_id, actor_service_account_id, actor_label, target_type, target_id,
  target_label, ip, user_agent, request_id, message, payload, chain, sequence, prev_hash, hash)
SELECT gen_random_uuid(),
  {now}::timestamptz - interval '{DAYS} days' * (({n} - g)::float8 / {n}),
  ({ev_ids})[{k}], ({ev_names})[{k}],
  {A}, CASE WHEN g % 3 = 0 THEN ({ws})[1 + g % {len(workspaces)}] END,
  {A}, CASE WHEN g % 3 = 0 THEN ({ws})[1 + g % {len(workspaces)}] END,
  CASE WHEN g % 10 = 0 THEN 'service_account' ELSE 'user' END,
  CASE WHEN g % 10 = 0 THEN NULL ELSE u.id END,
  CASE WHEN g % 10 = 0 THEN b.id END,
  CASE WHEN g % 10 = 0 THEN b.name ELSE u.email END,
  'membership', md5('target' || (g % 5000))::uuid::text, 'target-' || (g % 5000) || '@bench.example',
  ('10.0.' || (g % 250) || '.' || (g % 200 + 1))::inet, 'Mozilla/5.0 (bench)', md5(g::text),
  'bench event ' || g, jsonb_build_object('role', 'member', 'before', jsonb_build_object('role', 'viewer')),
  {A}, g, md5('prev' || g) || md5('p2' || g), md5('hash' || g) || md5('h2' || g)
FROM generate_series(1, {n}) g
JOIN u ON u.i = 1 + g % (SELECT count(*) FROM u)
JOIN b ON b.i = 1 + g % (SELECT count(*) FROM b);
INSERT INTO audit_auditchain (id, sequence, head_hash, checkpoint_sequence, checkpoint_hash, updated)
VALUES ({A}, {n}, md5('hash' || {n}) || md5('h2' || {n}), 0, '', now())
ON CONFLICT (id) DO UPDATE SET sequence = GREATEST(audit_auditchain.sequence, 0) + {n},
  head_hash = EXCLUDED.head_hash;
"""


def _psql(sql: str) -> None:
    proc = subprocess.run(
        ["psql", os.environ["DATABASE_URL"], "-v", "ON_ERROR_STOP=1", "-q"],
        input=sql,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(f"psql failed: {proc.stderr[-2000:]}")


def generate(scale: float) -> dict:
    from django.db import connection
    from django.utils import timezone

    from accounts.models import ScimActivity
    from audit.models import AuditLogEntry

    size = sizes(scale)
    other = {k: max(10, v // OTHER_FRACTION) for k, v in size.items()}
    t0 = time.perf_counter()
    timings = {}
    big = _generate_account(index=0, size=size)
    others = [_generate_account(index=i, size=other) for i in range(1, OTHER_ACCOUNTS + 1)]
    timings["accounts_s"] = round(time.perf_counter() - t0, 1)
    connection.close()
    now = f"'{timezone.now().isoformat()}'"
    t1 = time.perf_counter()
    for acc, n in [(big, size["audit"]), *((o, other["audit"]) for o in others)]:
        # The chain already holds the account-creation entries (1..k): start the bulk after them.
        existing = AuditLogEntry.objects.filter(chain=acc["account"].pk).count()
        connection.close()
        sql = _audit_sql(
            account_id=str(acc["account"].pk), workspaces=[str(w.pk) for w in acc["workspaces"]], n=n, now=now
        )
        if existing:
            sql = sql.replace(
                "FROM generate_series(1, ", f"FROM generate_series({existing + 1}, {existing} + "
            )
        _psql(sql)
    timings["audit_s"] = round(time.perf_counter() - t1, 1)
    t_scim = time.perf_counter()
    for acc, n in [(big, size["scim_activity"]), *((o, other["scim_activity"]) for o in others)]:
        _psql(
            _scim_sql(
                account_id=str(acc["account"].pk),
                token_ids=[str(t) for t in acc["scim_tokens"]],
                n=n,
                now=now,
            )
        )
    timings["scim_activity_s"] = round(time.perf_counter() - t_scim, 1)
    t2 = time.perf_counter()
    _psql("VACUUM ANALYZE;")
    timings["vacuum_analyze_s"] = round(time.perf_counter() - t2, 1)
    timings["total_s"] = round(time.perf_counter() - t0, 1)
    counts = {
        "members": len(big["users"]) + 1,
        "service_accounts": len(big["bots"]),
        "teams": len(big["teams"]),
        "audit_entries": AuditLogEntry.objects.filter(chain=big["account"].pk).count(),
        "audit_entries_all": AuditLogEntry.objects.count(),
        "scim_activity": ScimActivity.objects.filter(account=big["account"]).count(),
    }
    return {"size": size, "timings": timings, "rows": counts, "big": big}


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------


def pages(big: dict) -> list[tuple[str, str]]:
    from django.urls import reverse

    from audit.models import AuditLogEntry

    a = big["account"].handle
    team = big["teams"][len(big["teams"]) // 2]
    ws = big["workspaces"][0].pk
    head = AuditLogEntry.objects.filter(chain=big["account"].pk).order_by("-sequence").first().sequence
    deep = max(2, head // 2)
    actor_user = big["users"][len(big["users"]) // 3]
    bot_name = big["bots"][len(big["bots"]) // 4][1]
    scim_token = (big.get("scim_tokens") or [""])[0]

    def u(name, **kw):
        return reverse(name, kwargs={"account": a, **kw})

    audit = u("console-audit-log")
    return [
        ("members", u("console-members")),
        ("invitations (members page)", u("console-members") + "#invitations"),
        ("service accounts", u("console-service-accounts")),
        ("service accounts: a search", u("console-service-accounts") + "?q=1"),
        ("service accounts: page 4", u("console-service-accounts") + "?page=4"),
        ("teams", u("console-teams")),
        ("a team", u("console-team", team_id=team)),
        ("roles", u("console-roles")),
        ("a custom role (its grants)", u("console-role", role_id=big["custom_roles"][0])),
        ("workspaces", u("console-workspaces")),
        ("a workspace", u("console-workspace", workspace_id=ws)),
        ("IP allowlist", u("console-ip-allowlist")),
        ("audit log: first page", audit),
        ("audit log: by event", audit + "?event=team.member-added"),
        ("audit log: by member", audit + f"?actor={actor_user}"),
        ("audit log: by service account", audit + f"?actor={bot_name}"),
        (
            "audit log: event + date range",
            audit + "?event=member.role-changed&since=2000-01-01&until=2100-01-01",
        ),
        ("audit log: by target", audit + "?target=target-17@bench.example"),
        ("audit log: target matching nothing", audit + "?target=nobody@bench.example"),
        ("audit log: deep page (keyset)", audit + f"?before={deep}"),
        ("audit log: deep page, filtered", audit + f"?event=team.member-added&before={deep}"),
        ("billing", u("console-billing")),
        ("my API keys", reverse("console-api-keys")),
        ("connect", reverse("console-connect")),
        (
            "roles: the explainer answering",
            u("console-roles") + f"?actor={actor_user}&workspace={ws}&scope=run_deployments",
        ),
        ("SSO", u("console-sso")),
        *(
            (f"an identity provider ({kind.upper()})", u("console-sso-provider", provider_id=pk))
            for kind, pk in sorted(big.get("providers", {}).items())
        ),
        ("SCIM: first page of the journal", u("console-scim")),
        ("SCIM: journal by method and answer", u("console-scim") + "?method=PATCH&status=2"),
        ("SCIM: journal, one token, last day", u("console-scim") + f"?token={scim_token}&since=24h"),
        ("SCIM: journal page 100 (offset)", u("console-scim") + "?page=100"),
    ]


def measure(big: dict, repeat: int) -> dict:
    from django.db import connection
    from django.test import Client

    client = Client()
    client.force_login(big["owner"])
    out = {}
    for label, url in pages(big):
        for _ in range(2):
            client.get(url)
        samples = []
        status = None
        for _ in range(repeat):
            t = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - t) * 1000)
            status = response.status_code
        statements: list[str] = []

        def count(execute, sql, params, many, context, statements=statements):
            statements.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            client.get(url)
        samples.sort()
        out[label] = {
            "url": url,
            "status": status,
            "queries": len(statements),
            "p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 1),
            "max_ms": round(samples[-1], 1),
            "n": len(samples),
        }
        if os.environ.get("BENCH_J_SQL"):
            out[label]["sql"] = statements
        print(
            f"  {label:34} {out[label]['p50_ms']:8.1f} {out[label]['p95_ms']:8.1f}  q={len(statements)} "
            f"status={status}",
            file=sys.stderr,
            flush=True,
        )
    return out


def existing_big() -> dict | None:
    """The big account of an earlier generation in this database (``--reuse``), or None."""
    from accounts.models import (
        AccountMembership,
        CustomRole,
        IdentityProvider,
        ScimToken,
        ServiceAccount,
        Team,
    )
    from accounts.permissions import AccountRole
    from tenants.models import Account, Workspace

    account = Account.objects.filter(name="Bench account 0").first()
    if account is None:
        return None
    members = AccountMembership.objects.filter(account=account).select_related("user")
    return {
        "account": account,
        "owner": members.get(role=AccountRole.OWNER, user__email="owner0@bench.example").user,
        "workspaces": list(Workspace.objects.filter(account=account).order_by("name")),
        "users": list(
            members.exclude(role=AccountRole.OWNER).order_by("user__email").values_list("user_id", flat=True)
        ),
        "bots": list(
            ServiceAccount.objects.filter(account=account).order_by("name").values_list("id", "name")
        ),
        "teams": list(Team.objects.filter(account=account).order_by("name").values_list("id", flat=True)),
        "custom_roles": list(
            CustomRole.objects.filter(account=account).order_by("created").values_list("id", flat=True)
        ),
        # Absent from a generation older than these pages: their rows are then left out.
        "providers": dict(IdentityProvider.objects.filter(account=account).values_list("kind", "id")),
        "scim_tokens": list(ScimToken.objects.filter(account=account).values_list("id", flat=True)),
    }


def child(scale: float, repeat: int, *, reuse: bool = False) -> dict:
    load = os.getloadavg()
    big = existing_big() if reuse else None
    if big is None:
        gen = generate(scale)
        big = gen.pop("big")
    else:
        gen = {"reused": True}
    load_mid = os.getloadavg()
    requests = measure(big, repeat)
    return {
        "scale": scale,
        "generation": gen,
        "requests": requests,
        "loadavg_before": [round(x, 2) for x in load],
        "loadavg_before_requests": [round(x, 2) for x in load_mid],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def table(result: dict) -> str:
    lines = [f"{'page':36} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8} status"]
    for label, r in result["requests"].items():
        flag = "  > 150 ms" if r["p95_ms"] > 150 else ""
        lines.append(f"{label:36} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['queries']:8} {r['status']}{flag}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Inside run.py
# --------------------------------------------------------------------------------------------------


def run(targets, *, scale: float, repeat: int) -> dict:
    from servers import log

    out: dict = {"scale": scale, "servers": {}}
    for t in targets:
        if t.name != "ours":
            out["servers"][t.name] = {"note": "Prefect's server has no admin console pages"}
            continue
        env = {**t.env, "ALLOWED_HOSTS": "testserver", "DJANGO_SETTINGS_MODULE": "config.settings.base"}
        log(f"(j) generating the big account at scale {scale} and timing the console pages")
        proc = subprocess.run(
            [
                sys.executable,
                str(BENCH / "part_j.py"),
                "--child",
                "--j-scale",
                str(scale),
                "--j-requests",
                str(repeat),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            out["servers"][t.name] = {"error": proc.stderr[-3000:]}
            continue
        out["servers"][t.name] = json.loads(proc.stdout.strip().splitlines()[-1])
        log("(j)\n" + table(out["servers"][t.name]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--j-scale", type=float, default=1.0)
    parser.add_argument("--j-requests", type=int, default=30)
    parser.add_argument("--db-prefix", default="bench_j")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the pages on the database DATABASE_URL names (migrated), generating only if it has no "
        "big account yet; nothing is dropped",
    )
    sys.path.insert(0, str(BENCH))
    import inprocess

    inprocess.add_database_arguments(parser)
    args = parser.parse_args(argv)
    if args.child or args.reuse:
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
        os.environ.setdefault("ALLOWED_HOSTS", "testserver")
        import django

        django.setup()
        if args.child:
            print(json.dumps(child(args.j_scale, args.j_requests), default=str))
            return 0
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        result = child(args.j_scale, args.j_requests, reuse=True)
        print(table(result))
        return 0

    def body(a):
        result = child(a.j_scale, a.j_requests)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = BENCH / "results" / f"{stamp}-j.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str))
        print(json.dumps({k: v for k, v in result.items() if k != "requests"}, indent=2, default=str))
        print(table(result))
        print(f"results: {path}")

    inprocess.run_in_fresh_database(args, body, prefix=args.db_prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
