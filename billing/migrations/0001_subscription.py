import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Subscription",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "stripe_customer_id",
                    models.CharField(blank=True, db_index=True, default="", max_length=255),
                ),
                (
                    "stripe_subscription_id",
                    models.CharField(blank=True, db_index=True, default="", max_length=255),
                ),
                ("stripe_status", models.CharField(blank=True, default="", max_length=32)),
                ("pending_plan", models.CharField(blank=True, default="", max_length=32)),
                ("pending_since", models.DateTimeField(blank=True, null=True)),
                ("current_period_start", models.DateTimeField(blank=True, null=True)),
                ("current_period_end", models.DateTimeField(blank=True, null=True)),
                ("cancel_at_period_end", models.BooleanField(default=False)),
                ("seats_billed", models.PositiveIntegerField(default=0)),
                ("seats_high_water", models.PositiveIntegerField(default=0)),
                ("read_only_reason", models.TextField(blank=True, default="")),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("updated", models.DateTimeField(auto_now=True)),
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="subscription",
                        to="tenants.account",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("stripe_customer_id", ""), _negated=True),
                        fields=("stripe_customer_id",),
                        name="billing_subscription_unique_customer",
                    )
                ],
            },
        ),
    ]
