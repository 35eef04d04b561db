"""``audit_verify --account <id or handle>`` re-walks an account's hash chain and reports the first
broken link; ``--all`` walks every chain; ``--manifest <file> [--file <export>]`` checks an export
offline (no database; ``--public-key`` to check the signature with the key an auditor holds)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.export import verify_export
from audit.models import AuditChain
from audit.services import GLOBAL_CHAIN, audit_verify_chain
from tenants.selectors import resolve_account


class Command(BaseCommand):
    help = "Verify the audit log's hash chains, or an export against its signed manifest."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="account id or handle")
        parser.add_argument("--all", action="store_true", help="every chain")
        parser.add_argument("--manifest", help="an export's manifest (checked offline)")
        parser.add_argument("--file", help="the exported file (default: named by the manifest)")
        parser.add_argument(
            "--public-key",
            help="the signer's Ed25519 public key (base64), as published by GET /api/audit/signing_key "
            "or audit_signing_key (default: this deployment's)",
        )

    def handle(self, *args, **options):
        if options["manifest"]:
            report = verify_export(
                Path(options["manifest"]),
                Path(options["file"]) if options["file"] else None,
                public_key=options["public_key"],
            )
            if not report.ok:
                raise CommandError("export NOT verified: " + "; ".join(report.problems))
            self.stdout.write(f"export verified: {report.entries} entries, file digest and signature match")
            return
        if options["all"]:
            chains = list(AuditChain.objects.values_list("id", flat=True))
        elif options["account"]:
            account = resolve_account(options["account"])
            if account is None:
                raise CommandError(f"no account {options['account']!r}")
            chains = [account.pk]
        else:
            raise CommandError("give --account, --all or --manifest")
        broken = 0
        for chain in chains:
            report = audit_verify_chain(chain)
            name = "entries without an account" if chain == GLOBAL_CHAIN else f"account {chain}"
            if report.ok:
                self.stdout.write(
                    f"{name}: OK, {report.checked} entries"
                    + (
                        f" (sequences {report.first_sequence}-{report.last_sequence})"
                        if report.checked
                        else ""
                    )
                )
            else:
                broken += 1
                self.stdout.write(
                    f"{name}: BROKEN at sequence {report.broken_at}"
                    + (f" (entry {report.entry_id})" if report.entry_id else "")
                    + f": {report.reason}; {report.checked} entries before it verified"
                )
        if broken:
            raise CommandError(f"{broken} chain(s) broken")
