"""``audit_export --account <id or handle> --out <file> [--format jsonl|csv] [--since] [--until]
[--actor] [--action] [--workspace]``: an account's audit entries with a signed manifest beside
them (``<file>.manifest.json``), which ``audit_verify --manifest`` checks offline."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from audit.export import ExportFilters, export
from tenants.selectors import resolve_account


def _when(value):
    if value is None:
        return None
    try:
        parsed = parse_datetime(value)
        if parsed is not None and parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC)  # PostgreSQL refuses offsets beyond ±15:59
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None:
        raise CommandError(f"not an ISO 8601 datetime: {value!r}")
    return parsed


class Command(BaseCommand):
    help = "Export an account's audit log (JSON Lines or CSV) with a signed manifest."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True)
        parser.add_argument("--out", required=True)
        parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
        parser.add_argument("--since")
        parser.add_argument("--until")
        parser.add_argument("--actor")
        parser.add_argument("--action")
        parser.add_argument("--workspace")

    def handle(self, *args, **options):

        account = resolve_account(options["account"])
        if account is None:
            raise CommandError(f"no account {options['account']!r}")
        try:
            workspace = uuid.UUID(options["workspace"]) if options["workspace"] else None
        except ValueError:
            raise CommandError("--workspace must be a workspace id") from None
        filters = ExportFilters(
            since=_when(options["since"]),
            until=_when(options["until"]),
            actor=options["actor"],
            action=options["action"],
            workspace=workspace,
        )
        manifest = export(account.pk, filters, fmt=options["format"], out=Path(options["out"]))
        self.stdout.write(
            f"{manifest['entries']} entries written to {options['out']}; manifest {options['out']}.manifest.json"
        )
