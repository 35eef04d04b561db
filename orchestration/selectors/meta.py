"""Reads behind the meta routes: the database's readiness and the workspace's default result
storage."""

from __future__ import annotations

import uuid

from django.db import DatabaseError, connection

from orchestration.models import ResultStorageDefault


def database_ready() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        return False


def result_storage_default() -> uuid.UUID | None:
    return ResultStorageDefault.objects.values_list("block_document_id", flat=True).first()
