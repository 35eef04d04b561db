"""``prefect cloud webhook`` against this server, as a user logged in to a workspace runs it:
``create``, ``ls``, ``get``, ``toggle``, ``update`` and ``delete`` (``rotate`` asks at the terminal
first; its route is covered in ``tests/orchestration/webhooks``), each checked against
what the server stores; a viewer's key may not create, and another workspace's key finds
nothing."""

from __future__ import annotations

import json

import pytest

from orchestration.models import Webhook
from tests.live.conftest import make_live_tenant

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

TEMPLATE = '{"event": "shop.order.placed", "resource": {"prefect.resource.id": "shop.order.{{ body.id }}"}}'


def _ok(run):
    assert run.returncode == 0, run.describe()
    return run


def test_the_webhook_cli_manages_the_workspaces_webhooks(run_prefect, live_tenant, asgi_server):
    webhooks = Webhook.objects.for_workspace(live_tenant.workspace.id)
    created = _ok(run_prefect(["prefect", "cloud", "webhook", "create", "orders", "--description",
                               "Orders from the shop", "--template", TEMPLATE]))  # fmt: skip
    assert "Successfully created webhook orders" in created.stdout
    webhook = webhooks.get(name="orders")
    assert (webhook.description, webhook.enabled) == ("Orders from the shop", True)

    listed = json.loads(_ok(run_prefect(["prefect", "cloud", "webhook", "ls", "--output", "json"])).stdout)
    assert [(w["id"], w["name"], w["slug"]) for w in listed] == [(str(webhook.id), "orders", webhook.slug)]
    shown = json.loads(
        _ok(run_prefect(["prefect", "cloud", "webhook", "get", str(webhook.id), "-o", "json"])).stdout
    )
    assert (shown["name"], shown["template"]) == ("orders", TEMPLATE)

    assert (
        "Webhook is now disabled"
        in _ok(run_prefect(["prefect", "cloud", "webhook", "toggle", str(webhook.id)])).stdout
    )
    webhook.refresh_from_db()
    assert webhook.enabled is False

    _ok(run_prefect(["prefect", "cloud", "webhook", "update", str(webhook.id), "--name", "shop-orders"]))
    webhook.refresh_from_db()
    assert (webhook.name, webhook.description, webhook.template) == (
        "shop-orders",
        "Orders from the shop",
        TEMPLATE,
    )

    # A viewer may not create; another workspace finds nothing.
    refused = run_prefect(["prefect", "cloud", "webhook", "create", "x", "--template", TEMPLATE],
                          key=live_tenant.viewer_key)  # fmt: skip
    assert refused.returncode != 0 and webhooks.count() == 1, refused.describe()
    stranger = make_live_tenant(asgi_server.url)
    elsewhere = run_prefect(["prefect", "cloud", "webhook", "get", str(webhook.id)], key=stranger.developer_key,
                            api_url=stranger.api_url)  # fmt: skip
    assert elsewhere.returncode != 0 and "shop-orders" not in elsewhere.output, elsewhere.describe()

    deleted = _ok(run_prefect(["prefect", "cloud", "webhook", "delete", str(webhook.id)]))
    assert "Successfully deleted webhook" in deleted.stdout
    assert not webhooks.filter(id=webhook.id).exists()
