"""Prefect's ``/automations`` routes and template validation (``api/automations.py``,
``api/templates.py``).

Writing an automation needs ``manage_automations``; creating, replacing or re-enabling one also
needs the scope of each of its actions (the caller's scopes go to the service, which refuses with
403 naming the missing one: ``orchestration.services.automations.ACTION_SCOPES``)."""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework.response import Response

from orchestration.api.automations.wire import automation_to_wire
from orchestration.api.base import InvalidBody, PrefectApiView, created, no_content, parse_id
from orchestration.schemas.automations import AutomationCreate, AutomationPartialUpdate, AutomationUpdate
from orchestration.schemas.templates import TemplateSecurityError, TemplateSyntaxError, template_check
from orchestration.selectors.automations import (
    automation_filter,
    automation_get,
    automation_list,
    automations_related_to,
)
from orchestration.services.automations import (
    automation_create,
    automation_delete,
    automation_patch,
    automation_update,
    automations_delete_owned_by,
)

SEE, MANAGE = "see_automations", "manage_automations"


class AutomationCreateApi(PrefectApiView):
    required_scopes = {"POST": MANAGE}

    def post(self, request):
        return created(
            automation_to_wire(
                automation_create(
                    data=self.parse(AutomationCreate), actor=request.user, caller_scopes=self.access.scopes
                )
            )
        )


class AutomationDetailApi(PrefectApiView):
    required_scopes = {"GET": SEE, "PUT": MANAGE, "PATCH": MANAGE, "DELETE": MANAGE}

    def get(self, request, automation_id: str):
        return Response(automation_to_wire(automation_get(parse_id(automation_id, "Automation"))))

    def put(self, request, automation_id: str):
        automation_id = parse_id(automation_id, "Automation")
        automation_update(
            automation_id=automation_id,
            data=self.parse(AutomationUpdate),
            actor=request.user,
            caller_scopes=self.access.scopes,
        )
        return no_content()

    def patch(self, request, automation_id: str):
        automation_id = parse_id(automation_id, "Automation")
        automation_patch(
            automation_id=automation_id,
            data=self.parse(AutomationPartialUpdate),
            actor=request.user,
            caller_scopes=self.access.scopes,
        )
        return no_content()

    def delete(self, request, automation_id: str):
        automation_delete(automation_id=parse_id(automation_id, "Automation"), actor=request.user)
        return no_content()


class AutomationFilterApi(PrefectApiView):
    required_scopes = {"POST": SEE}

    def post(self, request):
        return Response([automation_to_wire(a) for a in automation_list(self.body())])


class AutomationCountApi(PrefectApiView):
    required_scopes = {"POST": SEE}

    def post(self, request):
        return Response(automation_filter(self.body()).count())


class AutomationRelatedToApi(PrefectApiView):
    required_scopes = {"GET": SEE}

    def get(self, request, resource_id: str):
        return Response([automation_to_wire(a) for a in automations_related_to(resource_id)])


class AutomationOwnedByApi(PrefectApiView):
    """``DELETE`` is Prefect's (a deployment's triggers are replaced on every deploy); ``GET`` lists
    what a resource owns (Prefect has no such read; its related-to list mixes in the automations
    that merely run the deployment)."""

    required_scopes = {"GET": SEE, "DELETE": MANAGE}

    def get(self, request, resource_id: str):
        return Response([automation_to_wire(a) for a in automations_related_to(resource_id, owned=True)])

    def delete(self, request, resource_id: str):
        automations_delete_owned_by(resource_id=resource_id, actor=request.user)
        return HttpResponse(b"null", status=202, content_type="application/json")


class TemplateValidateApi(PrefectApiView):
    """A template as one JSON string (Prefect's body): 204 when Prefect's sandbox would take it,
    else 422 with the line and message."""

    required_scopes = {"POST": SEE}

    def post(self, request):
        template = request.data if request.body else ""
        if not isinstance(template, str):
            raise InvalidBody(
                "Invalid request received.",
                extra={
                    "exception_detail": [
                        {"type": "string_type", "loc": ["body"], "msg": "Input should be a valid string"}
                    ]
                },  # fmt: skip
            )
        try:
            template_check(template)
        except (TemplateSyntaxError, TemplateSecurityError) as exc:
            body = {"error": {"line": exc.lineno, "message": exc.message, "source": template}}
            return HttpResponse(json.dumps(body), status=422, content_type="application/json")
        except RecursionError:
            body = {"error": {"line": 0, "message": "template nesting too deep", "source": template}}
            return HttpResponse(json.dumps(body), status=422, content_type="application/json")
        return HttpResponse(status=204)
