"""``audit_signing_key`` prints the public key that verifies this deployment's audit export
manifests; ``--generate`` prints a new private seed to set as ``AUDIT_SIGNING_KEY``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit import signing


class Command(BaseCommand):
    help = "Print the Ed25519 public key of audit export manifests (or --generate a new seed)."

    def add_arguments(self, parser):
        parser.add_argument("--generate", action="store_true", help="print a new AUDIT_SIGNING_KEY seed")

    def handle(self, *args, **options):
        if options["generate"]:
            self.stdout.write(signing.generate_seed())
            return
        try:
            self.stdout.write(signing.public_key_b64())
        except signing.SigningKeyError as error:
            raise CommandError(str(error)) from None
