"""Prefect Cloud's ``/webhooks`` routes of a workspace (create, filter, read, replace, update,
delete, rotate), and the public receiver ``/hooks/<slug>`` they configure."""

from __future__ import annotations

import json

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response

from orchestration.api.base import PrefectApiView, created, no_content, parse_id
from orchestration.schemas.webhooks import (
    WebhookCreate,
    WebhookFilter,
    WebhookPartialUpdate,
    WebhookUpdate,
    webhook_document,
)
from orchestration.selectors.webhooks import webhook_get, webhook_list
from orchestration.services.webhooks import (
    WebhookRequest,
    webhook_create,
    webhook_delete,
    webhook_receive,
    webhook_rotate,
    webhook_update,
)

SEE, MANAGE = "see_webhooks", "manage_webhooks"


class _WebhookView(PrefectApiView):
    def wire(self, webhook) -> dict:
        return webhook_document(webhook, account_id=self.account.pk)


class WebhookCreateApi(_WebhookView):
    required_scopes = {"POST": MANAGE}

    def post(self, request):
        data = self.parse(WebhookCreate)
        return created(self.wire(webhook_create(workspace=self.workspace, data=data, actor=request.user)))


class WebhookFilterApi(_WebhookView):
    required_scopes = {"POST": SEE}

    def post(self, request):
        flt = self.parse(WebhookFilter, self.body())
        return Response([self.wire(webhook) for webhook in webhook_list(flt)])


class WebhookDetailApi(_WebhookView):
    required_scopes = {"GET": SEE, "PUT": MANAGE, "PATCH": MANAGE, "DELETE": MANAGE}

    def get(self, request, webhook_id: str):
        return Response(self.wire(webhook_get(parse_id(webhook_id, "Webhook"))))

    def put(self, request, webhook_id: str):
        webhook_id = parse_id(webhook_id, "Webhook")
        data = self.parse(WebhookUpdate)
        webhook_update(workspace=self.workspace, webhook_id=webhook_id, data=data, actor=request.user)
        return no_content()

    def patch(self, request, webhook_id: str):
        webhook_id = parse_id(webhook_id, "Webhook")
        data = self.parse(WebhookPartialUpdate)
        webhook_update(workspace=self.workspace, webhook_id=webhook_id, data=data, actor=request.user)
        return no_content()

    def delete(self, request, webhook_id: str):
        webhook_delete(webhook_id=parse_id(webhook_id, "Webhook"), actor=request.user)
        return no_content()


class WebhookRotateApi(_WebhookView):
    required_scopes = {"POST": MANAGE}

    def post(self, request, webhook_id: str):
        webhook = webhook_rotate(webhook_id=parse_id(webhook_id, "Webhook"), actor=request.user)
        return Response(self.wire(webhook))


def _answer(status: int, detail: str = "", retry_after: int | None = None) -> HttpResponse:
    if status == 204:
        return HttpResponse(status=204)
    response = HttpResponse(json.dumps({"detail": detail}), status=status, content_type="application/json")
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


@csrf_exempt
def webhook_receive_view(request, slug: str):
    """``/hooks/<slug>``: no credentials beyond the slug (and the webhook's own checks); quiet to
    the outside: 204, or a status with a short reason."""
    if request.method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        return _answer(405, "Method not allowed.")
    try:
        body = request.body
    except RequestDataTooBig:
        return _answer(413, "The request body is too large.")
    answer = webhook_receive(
        slug=slug,
        request=WebhookRequest(
            method=request.method,
            headers={name.lower(): value for name, value in request.headers.items()},
            query={name: request.GET.get(name) for name in request.GET},
            body=body,
            content_type=request.content_type or "",
        ),
    )
    return _answer(answer.status, answer.detail, answer.retry_after)
