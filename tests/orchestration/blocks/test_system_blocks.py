"""The system block types reach a workspace once, cheaply, even when its first block reads race."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from orchestration.models import BlockSchema, BlockType
from orchestration.schemas.blocks import system_catalog
from orchestration.services.blocks import system_blocks_ensure
from tenants.scoping import workspace_scope


def _counts(workspace_id):
    return (
        BlockType.objects.for_workspace(workspace_id).count(),
        BlockSchema.objects.for_workspace(workspace_id).count(),
    )


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_uses_install_each_type_and_schema_once(tenant):
    workspace_id = tenant.workspace.id
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def first_use():
        try:
            start.wait()
            with workspace_scope(workspace_id):
                system_blocks_ensure()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert _counts(workspace_id) == (len(system_catalog()), len(system_catalog()))
    assert BlockType.objects.for_workspace(workspace_id).filter(is_protected=True).count() == 3


@pytest.mark.django_db
def test_once_installed_the_check_is_one_query(tenant, django_assert_num_queries):
    with workspace_scope(tenant.workspace.id):
        system_blocks_ensure()
        with django_assert_num_queries(1):
            system_blocks_ensure()
