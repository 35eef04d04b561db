"""``GET /api/audit/signing_key``: the public key that verifies this deployment's audit export
manifests (public, like an IdP's JWKS; an auditor records it once and checks exports with it)."""

from __future__ import annotations

from django.http import JsonResponse

from audit import signing
from core.http import json_methods


@json_methods("GET")
def signing_key(request):
    return JsonResponse({"algorithm": signing.ALGORITHM, "public_key": signing.public_key_b64()})
