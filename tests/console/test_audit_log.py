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
from audit.services import audit_record
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
