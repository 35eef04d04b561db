"""The audit log: the account's events, newest first, filtered by actor, event type, target and a
date range, paged by keyset on the chain's sequence (``?before=<sequence>``: no count and no offset,
so the thousandth page of a million events costs what the first does); each event's message and
its before and after. The export is the signed one ``audit_export`` writes (JSON Lines or CSV with
its Ed25519-signed manifest), as a zip; the page says how to verify it offline. The same selector
as ``audit_events`` of the account API, under the same permission and plan feature.

The page also says what the last walk of the account's hash chain found (beat's hourly
``verify_audit_chains``, or "Verify now" here, which walks it at once through the same service):
when, how many entries, intact or the first broken link."""

from __future__ import annotations

import datetime as dt
import uuid

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect

from accounts.selectors import (
    account_actor_get,
    account_user_by_email,
    account_workspace_names,
    service_account_list,
)
from audit.export import ExportFilters, export_archive
from audit.registry import registry
from audit.selectors import audit_chain_verification_get, audit_event_page
from audit.services import audit_chain_pending, audit_verify_account
from billing.entitlements import plan_for
from console.pages.base import ConsolePage

PAGE_SIZE = 50


def _event_choices():
    return [("", "Any event"), *sorted((e.api_name, e.api_name) for e in registry.all())]


class AuditFilterForm(forms.Form):
    actor = forms.CharField(label="Actor (email, service account or id)", max_length=254, required=False)
    event = forms.ChoiceField(label="Event", choices=_event_choices, required=False)
    workspace = forms.ChoiceField(label="Workspace", choices=(), required=False)
    target = forms.CharField(label="Target (id or name)", max_length=254, required=False)
    since = forms.DateField(
        label="From (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To (UTC, inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, workspaces: list[tuple[uuid.UUID, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workspace"].choices = [
            ("", "Any workspace"),
            *((str(pk), name) for pk, name in workspaces),
        ]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The date range ends before it starts.")
        return data


def _day(value: dt.date | None, *, after: bool = False) -> dt.datetime | None:
    if value is None:
        return None
    start = dt.datetime.combine(value, dt.time.min, tzinfo=dt.UTC)
    return start + dt.timedelta(days=1) if after else start


class _AuditView(ConsolePage):
    nav_url_name = "console-audit-log"

    def filters(self, form: AuditFilterForm) -> dict | None:
        """The selector's filters from a valid form, or None after adding the form's error."""
        data = form.cleaned_data
        actor_id = None
        if data["actor"]:
            actor = self._actor(data["actor"].strip())
            if actor is None:
                form.add_error("actor", "No member or service account of this account by that name or id.")
                return None
            actor_id = actor.pk
        return {
            "api_name": data["event"] or None,
            "actor_id": actor_id,
            "workspace_id": uuid.UUID(data["workspace"]) if data["workspace"] else None,
            "target": data["target"].strip() or None,
            "since": _day(data["since"]),
            "until": _day(data["until"], after=True),
        }

    def filter_form(self, request) -> AuditFilterForm:
        """The filters of the query string, the workspace among the account's."""
        return AuditFilterForm(request.GET, workspaces=account_workspace_names(account=self.account))

    def _actor(self, value: str):
        try:
            return account_actor_get(account=self.account, actor_id=uuid.UUID(value))
        except ValueError:
            pass
        return account_user_by_email(account=self.account, email=value) or (
            service_account_list(account=self.account, names=[value]).first()
        )


class AuditLogPage(_AuditView):
    required_permissions = {"GET": "read:audit_event"}
    template_name = "console/audit_log.html"

    def get(self, request):
        form = self.filter_form(request)
        feature = plan_for(self.account).has("audit_log")
        context = {
            "form": form,
            "feature_on_plan": feature,
            "entries": [],
            "next_before": None,
            "verification": audit_chain_verification_get(chain=self.account.pk) if feature else None,
        }
        filters = self.filters(form) if feature and form.is_valid() else None
        if filters is None:
            return self.page(context, status=422 if form.errors else 200)
        before = request.GET.get("before")
        before = int(before) if before and before.isdigit() else None
        if before is None:
            # The newest page shows records still waiting to join the chain (reads of secrets) too.
            audit_chain_pending(chain=self.account.pk)
        entries, more = audit_event_page(
            chain=self.account.pk, limit=PAGE_SIZE, before_sequence=before, **filters
        )
        query = request.GET.copy()
        query.pop("before", None)
        context.update(
            entries=entries,
            next_before=entries[-1].sequence if more else None,
            query=query.urlencode(),
            paged=before is not None,
        )
        return self.page(context)


class AuditVerifyPage(_AuditView):
    """ "Verify now": walk the account's chain at once and say what was found (kept as its last
    verification, which the log's page shows)."""

    required_permissions = {"POST": "read:audit_event"}

    def post(self, request):
        if not plan_for(self.account).has("audit_log"):
            return redirect(self.url("console-audit-log"))
        report = audit_verify_account(account=self.account)
        if report.ok:
            messages.success(
                request,
                f"The hash chain was verified now: {report.checked:,} entries, intact.",
            )
        else:
            messages.error(
                request,
                f"The hash chain is broken at sequence {report.broken_at}: {report.reason}.",
            )
        return redirect(self.url("console-audit-log"))


class AuditExportPage(_AuditView):
    """``?format=jsonl|csv`` and the page's filters: a zip of the export and its signed manifest."""

    required_permissions = {"GET": "read:audit_event"}
    template_name = "console/audit_log.html"

    def get(self, request):
        form = self.filter_form(request)
        fmt = request.GET.get("format", "jsonl")
        feature = plan_for(self.account).has("audit_log")
        filters = self.filters(form) if feature and form.is_valid() and fmt in ("jsonl", "csv") else None
        if filters is None:
            if fmt not in ("jsonl", "csv"):
                form.add_error(None, "Choose JSON Lines or CSV.")
            context = {"form": form, "feature_on_plan": feature, "entries": [], "next_before": None}
            return self.page(context, status=422 if feature else 403)
        name, data = export_archive(
            account=self.account,
            filters=ExportFilters(
                since=filters["since"],
                until=filters["until"],
                actor=str(filters["actor_id"]) if filters["actor_id"] else None,
                action=filters["api_name"],
                workspace=filters["workspace_id"],
                target=filters["target"],
            ),
            fmt=fmt,
            actor=request.user,
        )
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
