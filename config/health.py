"""``GET /api/health``: the server is up and its database answers. No credentials needed."""

from __future__ import annotations

from django.db import connection
from django.http import JsonResponse

from core.http import json_methods


@json_methods("GET")
def health(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # noqa: BLE001 - any database failure means "not healthy"
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
