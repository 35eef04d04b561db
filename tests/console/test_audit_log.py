from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import rbac
from audit import events
from audit.actors import SYSTEM
from audit.export import verify_export
from audit.models import AuditLogEntry
from audit.services import audit_record, audit_verify_all_chains
from tests.audit.test_chain import _tamper
from tests.console.conftest import audited, make_org, session, steady_query_count

pytestmark = pytest.mark.django_db


def many_events(org, n: int) -> None:
    for i in range(n):
        audit_record(
            event=events.ACCOUNT_UPDATED,
            actor=SYSTEM,
            account=org.account,
            target=org.account,
            payload={"i": i},
        )


def shown_sequences(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'id="event-(\d+)"', html)]


class TestAuditLog:
    def test_newest_first_paged_by_keyset_without_counting(self, org):
        many_events(org, 60)
        browser = session(org.admin)
        first = browser.get(org.url("audit-log/"))
        html = first.content.decode()
        shown = shown_sequences(html)
        assert len(shown) == 50 and shown == sorted(shown, reverse=True)
        older = re.search(r'href="\?before=(\d+)" rel="next"', html)
        assert older and int(older.group(1)) == shown[-1]
        with CaptureQueriesContext(connection) as captured:
            second = browser.get(org.url(f"audit-log/?before={shown[-1]}")).content.decode()
        rest = shown_sequences(second)
        assert rest and max(rest) < shown[-1] and 'rel="next"' not in second
        sql = " ".join(q["sql"].upper() for q in captured)
        assert "COUNT(" not in sql and "OFFSET" not in sql

    def test_no_per_row_queries(self, org):
        browser = session(org.admin)
        many_events(org, 3)
        few = steady_query_count(browser, org.url("audit-log/"))
        many_events(org, 80)
        assert steady_query_count(browser, org.url("audit-log/")) == few

    def test_filters_actor_event_target_and_dates(self, org):
        team = rbac.team_create(account=org.account, name="platform", actor=org.admin)
        rbac.team_create(account=org.account, name="data", actor=org.owner)
        many_events(org, 3)
        browser = session(org.admin)
        html = browser.get(org.url(f"audit-log/?actor={org.admin.email}&event=team.created")).content.decode()
        assert len(shown_sequences(html)) == 1 and "platform" in html
        html = browser.get(org.url(f"audit-log/?target={team.pk}")).content.decode()
        assert len(shown_sequences(html)) == 1
        html = browser.get(org.url("audit-log/?target=data")).content.decode()
        assert len(shown_sequences(html)) == 1
        today = dt.datetime.now(dt.UTC).date()
        html = browser.get(
            org.url(f"audit-log/?since={today}&until={today}&event=team.created")
        ).content.decode()
        assert len(shown_sequences(html)) == 2
        tomorrow = today + dt.timedelta(days=1)
        html = browser.get(org.url(f"audit-log/?since={tomorrow}")).content.decode()
        assert shown_sequences(html) == []

    def test_bad_filters_are_shown_inline(self, org):
        browser = session(org.admin)
        response = browser.get(org.url("audit-log/?actor=nobody@example.test"))
        assert response.status_code == 422 and "No member or service account" in response.content.decode()
        response = browser.get(org.url("audit-log/?since=2026-02-01&until=2026-01-01"))
        assert response.status_code == 422 and "ends before it starts" in response.content.decode()
        response = browser.get(org.url("audit-log/?event=no.such-event"))
        assert response.status_code == 422 and "Select a valid choice" in response.content.decode()

    def test_the_export_is_signed_verifies_offline_and_is_audited(self, org, tmp_path):
        rbac.team_create(account=org.account, name="platform", actor=org.admin)
        many_events(org, 4)
        response = session(org.admin).get(org.url("audit-log/export?format=jsonl"))
        assert response.status_code == 200 and response["Content-Type"] == "application/zip"
        assert re.match(r'attachment; filename="audit-.+\.zip"', response["Content-Disposition"])
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            archive.extractall(tmp_path)
            names = archive.namelist()
        [manifest] = [n for n in names if n.endswith(".manifest.json")]
        report = verify_export(tmp_path / manifest)
        assert report.ok, report.problems
        assert json.loads((tmp_path / manifest).read_text())["complete"] is True
        exported = audited(org.account, "audit-log.exported")
        assert len(exported) == 1 and exported[0].event_id == 210 and exported[0].payload["format"] == "jsonl"
        assert exported[0].payload["entries"] == report.entries
        # Tampering with the file is caught.
        [data] = [n for n in names if n.endswith(".jsonl")]
        (tmp_path / data).write_text((tmp_path / data).read_text().replace("platform", "platfrom"))
        assert not verify_export(tmp_path / manifest).ok

    def test_a_filtered_csv_export(self, org, tmp_path):
        rbac.team_create(account=org.account, name="platform", actor=org.admin)
        many_events(org, 2)
        response = session(org.admin).get(org.url("audit-log/export?format=csv&event=team.created"))
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            archive.extractall(tmp_path)
            [manifest] = [n for n in archive.namelist() if n.endswith(".manifest.json")]
        data = json.loads((tmp_path / manifest).read_text())
        assert (
            data["entries"] == 1 and data["filters"]["action"] == "team.created" and data["complete"] is False
        )
        assert verify_export(tmp_path / manifest).ok

    def test_a_member_cannot_read_or_export_it(self, org):
        browser = session(org.member)
        assert "/audit-log/" not in browser.get(org.url("members/")).content.decode()
        assert browser.get(org.url("audit-log/")).status_code == 403
        assert browser.get(org.url("audit-log/export")).status_code == 403
        assert not AuditLogEntry.objects.filter(api_name="audit-log.exported").exists()

    def test_another_accounts_log_is_404_and_never_shown(self, org):
        other = make_org()
        many_events(other, 2)
        browser = session(org.admin)
        assert browser.get(other.url("audit-log/")).status_code == 404
        assert browser.get(other.url("audit-log/export")).status_code == 404
        html = browser.get(org.url(f"audit-log/?target={other.account.pk}")).content.decode()
        assert shown_sequences(html) == []

    def test_a_plan_without_the_audit_log(self, db):
        org = make_org(plan="starter")
        browser = session(org.admin)
        assert "/audit-log/" not in browser.get(org.url("members/")).content.decode()
        assert "has no audit log" in browser.get(org.url("audit-log/")).content.decode()
        assert browser.get(org.url("audit-log/export")).status_code == 403


class TestWorkspaceFilter:
    def test_events_of_one_workspace(self, org):
        from accounts.tenancy import workspace_create

        other = workspace_create(account=org.account, name="Staging", actor=org.owner)
        for workspace in (org.tenant.workspace, other, other):
            audit_record(event=events.ACCOUNT_UPDATED, actor=SYSTEM, account=org.account, workspace=workspace)
        browser = session(org.admin)
        page = browser.get(org.url("audit-log/")).content.decode()
        assert '<select name="workspace"' in page
        assert f'<option value="{other.pk}">Staging</option>' in page
        html = browser.get(org.url(f"audit-log/?workspace={other.pk}&event=account.updated")).content.decode()
        shown = shown_sequences(html)
        expected = AuditLogEntry.objects.filter(
            chain=org.account.pk, workspace_ref=other.pk, api_name="account.updated"
        )
        assert sorted(shown) == sorted(e.sequence for e in expected) and len(shown) == 2
        # Another account's workspace is not a choice.
        stranger = make_org().tenant.workspace
        response = browser.get(org.url(f"audit-log/?workspace={stranger.pk}"))
        assert response.status_code == 422 and "Select a valid choice" in response.content.decode()

    def test_the_export_keeps_the_workspace_filter(self, org, tmp_path):
        audit_record(
            event=events.ACCOUNT_UPDATED, actor=SYSTEM, account=org.account, workspace=org.tenant.workspace
        )
        many_events(org, 3)
        response = session(org.admin).get(
            org.url(f"audit-log/export?format=jsonl&workspace={org.tenant.workspace.pk}")
        )
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            archive.extractall(tmp_path)
            [manifest] = [n for n in archive.namelist() if n.endswith(".manifest.json")]
        data = json.loads((tmp_path / manifest).read_text())
        assert data["filters"]["workspace"] == str(org.tenant.workspace.pk)
        assert (
            data["entries"]
            == AuditLogEntry.objects.filter(
                chain=org.account.pk, workspace_ref=org.tenant.workspace.pk
            ).count()
        )


class TestBeforeAndAfter:
    def test_one_events_before_and_after_are_shown(self, org):
        many_events(org, 1)
        entry = audit_record(
            event=events.ACCOUNT_UPDATED,
            actor=org.admin,
            account=org.account,
            target=org.account,
            payload={"before": {"name": "Old name"}, "after": {"name": "New name"}},
        )
        html = session(org.admin).get(org.url("audit-log/")).content.decode()
        row = html[html.index(f'id="event-{entry.sequence}"') :]
        row = row[: row.index("</tr>")]
        assert "<summary>Before and after</summary>" in row
        assert "before: {&#x27;name&#x27;: &#x27;Old name&#x27;}" in row
        assert "after: {&#x27;name&#x27;: &#x27;New name&#x27;}" in row
        # An event without them has no panel.
        [created] = AuditLogEntry.objects.filter(chain=org.account.pk, payload__i=0)
        other_row = html[html.index(f'id="event-{created.sequence}"') :]
        assert "Before and after" not in other_row[: other_row.index("</tr>")]


def chain_status(html: str) -> str:
    found = re.search(r'<p id="chain-status"[^>]*>(.*?)</p>', html, re.S)
    assert found, html[:2000]
    return re.sub(r"<[^>]+>", "", found.group(1))


class TestChainVerification:
    def test_not_verified_yet_then_the_hourly_walks_result(self, org):
        many_events(org, 5)
        browser = session(org.admin)
        assert "Not verified yet" in chain_status(browser.get(org.url("audit-log/")).content.decode())
        audit_verify_all_chains()
        status = chain_status(browser.get(org.url("audit-log/")).content.decode())
        count = AuditLogEntry.objects.filter(chain=org.account.pk, sequence__gt=0).count()
        assert "verified" in status and "broken" not in status
        assert f"{count} entries intact" in status

    def test_a_changed_row_shows_broken_after_the_hourly_walk(self, org):
        many_events(org, 4)
        victim = AuditLogEntry.objects.filter(chain=org.account.pk, sequence__gt=0).order_by("sequence")[2]
        _tamper(victim.id, actor_label="someone else")
        audit_verify_all_chains()
        html = session(org.admin).get(org.url("audit-log/")).content.decode()
        status = chain_status(html)
        assert "broken" in status and f"at sequence {victim.sequence}" in status
        assert str(victim.id) in status and "the entry was changed" in status
        assert 'id="chain-status" class="error" role="alert"' in html

    def test_verify_now_says_the_result_and_keeps_it(self, org):
        many_events(org, 3)
        browser = session(org.owner)
        page = browser.get(org.url("audit-log/")).content.decode()
        assert f'action="/console/accounts/{org.account.handle}/audit-log/verify"' in page
        done = browser.post(org.url("audit-log/verify"), follow=True).content.decode()
        assert "The hash chain was verified now" in done and "intact" in done
        assert "verified" in chain_status(done) and "broken" not in chain_status(done)

        victim = AuditLogEntry.objects.filter(chain=org.account.pk, sequence__gt=0).order_by("sequence")[1]
        _tamper(victim.id, message="nothing happened")
        done = browser.post(org.url("audit-log/verify"), follow=True).content.decode()
        assert f"The hash chain is broken at sequence {victim.sequence}" in done
        assert '<li class="error">' in done
        assert "broken" in chain_status(done)
        # What verify now found is what the next visit shows.
        assert "broken" in chain_status(browser.get(org.url("audit-log/")).content.decode())

    def test_a_member_cannot_verify(self, org):
        assert session(org.member).post(org.url("audit-log/verify")).status_code == 403

    def test_one_chains_break_is_not_another_accounts(self, org):
        other = make_org()
        many_events(org, 2)
        many_events(other, 2)
        victim = AuditLogEntry.objects.filter(chain=other.account.pk, sequence__gt=0).order_by("sequence")[1]
        _tamper(victim.id, actor_label="someone else")
        audit_verify_all_chains()
        assert "broken" not in chain_status(session(org.admin).get(org.url("audit-log/")).content.decode())
        assert "broken" in chain_status(session(other.admin).get(other.url("audit-log/")).content.decode())
