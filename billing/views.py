"""The Stripe webhook endpoint (``/billing/stripe/webhook``): no session, no key, no CSRF; the
signature is the credential. A bad or stale signature is a 400 and changes nothing; a verified
event is stored once by its id (a replay answers 200 and does nothing) and processed after commit
by a Celery task. Without Stripe settings the endpoint does not exist (404)."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import stripe_client
from billing.services import stripe_event_receive
from core.errors import AppError


@csrf_exempt
@require_POST
def stripe_webhook(request):
    if not stripe_client.enabled() or not settings.STRIPE_WEBHOOK_SECRET:
        return JsonResponse({"detail": "Not Found"}, status=404)
    try:
        event = stripe_client.webhook_event_verify(request.body, request.headers.get("Stripe-Signature"))
        _, created = stripe_event_receive(event=event)
    except AppError as error:
        return JsonResponse({"detail": error.message, "code": error.code}, status=error.status_code)
    return JsonResponse({"received": True, "duplicate": not created})
