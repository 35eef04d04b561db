import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_initial"),
        ("billing", "0002_stripe_event"),
    ]

    operations = [
        migrations.CreateModel(
            name="SeatLedgerEntry",
            fields=[
                (
                    "id",
                    models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False),
                ),
                ("occurred", models.DateTimeField(auto_now_add=True)),
                ("actor_kind", models.CharField(max_length=20)),
                ("actor_label", models.CharField(max_length=254)),
                (
                    "door",
                    models.CharField(
                        choices=[
                            ("invitation", "invitation sent or revoked"),
                            ("invitation_accepted", "invitation accepted"),
                            ("sso", "SSO just-in-time"),
                            ("scim", "SCIM provisioning"),
                            ("api", "account API"),
                            ("console", "console"),
                            ("operator", "operator"),
                            ("system", "system"),
                        ],
                        max_length=32,
                    ),
                ),
                ("reason", models.CharField(max_length=255)),
                ("seats_before", models.PositiveIntegerField()),
                ("seats_after", models.PositiveIntegerField()),
                ("billed_before", models.PositiveIntegerField()),
                ("billed_after", models.PositiveIntegerField()),
                ("audit_entry_id", models.UUIDField(blank=True, null=True)),
                ("stripe_synced_at", models.DateTimeField(blank=True, null=True)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="seat_ledger",
                        to="tenants.account",
                    ),
                ),
            ],
            options={
                "ordering": ["-occurred"],
                "indexes": [
                    models.Index(fields=["account", "-occurred"], name="billing_seat_ledger_account")
                ],
            },
        ),
    ]
