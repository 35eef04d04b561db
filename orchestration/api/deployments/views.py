"""Deployments over the wire (Prefect's ``/deployments`` routes), what a runner polls
(``deployments/get_scheduled_flow_runs``). ``automations/owned-by/{resource_id}``, which
``flow.serve()`` and ``.deploy()`` call after saving a deployment, is the automations' route.

Scopes: reads need ``see_deployments``; creating, updating, pausing and editing schedules
``write_deployments``; deleting ``manage_deployments``; starting a run ``run_deployments`` (a
Runner may run a deployment but not change it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from pydantic import BaseModel, ValidationError
from rest_framework.response import Response

from core.errors import NotFound
from orchestration.api.base import InvalidBody, PrefectApiView, no_content, parse_id
from orchestration.api.deployments.wire import deployments_to_wire, schedule_to_wire
from orchestration.api.flow_runs.wire import flow_run_to_wire
from orchestration.api.work_pools.wire import work_queue_core_to_wire
from orchestration.models import Deployment, DeploymentSchedule
from orchestration.schemas.deployments import (
    BulkDelete,
    DeploymentCreate,
    DeploymentFlowRunCreate,
    DeploymentFlowRunCreateList,
    DeploymentScheduleCreateList,
    DeploymentScheduleRuns,
    DeploymentScheduleUpdate,
    DeploymentUpdate,
    ScheduledFlowRunsQuery,
)
from orchestration.selectors.filters import (
    filter_queryset,
    filtered_page,
    ordering,
    paginated,
)
from orchestration.selectors.work_pools import work_queues_for_deployment
from orchestration.services import deployments as services
from orchestration.services.scheduler import deployment_runs_schedule

M = TypeVar("M", bound=BaseModel)

DEPLOYMENT_RELATED = ("flows", "flow_runs", "task_runs", "work_pools", "work_pool_queues")


def _error_text(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    # The schedule's kind is the discriminator tag pydantic puts after "schedule": leave it out.
    parts = [
        part
        for index, part in enumerate(loc)
        if not (index and loc[index - 1] == "schedule" and part in ("interval", "cron", "rrule"))
    ]
    where = ".".join(parts)
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


class DeploymentApiView(PrefectApiView):
    def parse(self, schema: type[M], data: Any = None) -> M:
        """As the base, with the first problems spelled out in ``detail`` (``Invalid request
        received: schedules.0.schedule.cron: Invalid cron string: "nope"``)."""
        payload = self.request.data if data is None else data
        try:
            return schema.model_validate(payload)
        except ValidationError as error:
            errors = error.errors(include_url=False, include_context=False, include_input=False)
            summary = "; ".join(_error_text(item) for item in errors[:3])
            raise InvalidBody(
                f"Invalid request received: {summary}", extra={"exception_detail": errors}
            ) from None

    def deployment_response(self, deployment: Deployment, status: int = 200) -> Response:
        return Response(deployments_to_wire([deployment])[0], status=status)


def _reload(deployment_id) -> Deployment:
    return services.deployment_get(deployment_id=deployment_id)


class DeploymentCreateApi(DeploymentApiView):
    required_scopes = {"POST": "write_deployments"}

    def post(self, request):
        data = self.parse(DeploymentCreate)
        # The answer is read before the commit: once the deployment is durable, it needs no database.
        with transaction.atomic():
            deployment, created = services.deployment_upsert(
                workspace=self.workspace, data=data, actor=request.user
            )
            return self.deployment_response(_reload(deployment.id), status=201 if created else 200)


class DeploymentDetailApi(DeploymentApiView):
    required_scopes = {"GET": "see_deployments", "PATCH": "write_deployments", "DELETE": "manage_deployments"}

    def get(self, request, deployment_id: str):
        return self.deployment_response(_reload(parse_id(deployment_id, "Deployment")))

    def patch(self, request, deployment_id: str):
        data = self.parse(DeploymentUpdate)
        services.deployment_update(
            deployment_id=parse_id(deployment_id, "Deployment"), data=data, actor=request.user
        )
        return no_content()

    def delete(self, request, deployment_id: str):
        services.deployment_delete(deployment_id=parse_id(deployment_id, "Deployment"), actor=request.user)
        return no_content()


class DeploymentByNameApi(DeploymentApiView):
    required_scopes = {"GET": "see_deployments"}

    def get(self, request, flow_name: str, deployment_name: str):
        deployment = services.deployment_by_name_get(flow_name=flow_name, deployment_name=deployment_name)
        return self.deployment_response(deployment)


class DeploymentFilterApi(DeploymentApiView):
    required_scopes = {"POST": "see_deployments"}

    def post(self, request):
        rows = filtered_page("deployments", self.body(), related=DEPLOYMENT_RELATED)
        return Response(deployments_to_wire(list(rows.select_related("work_queue__work_pool"))))


class DeploymentCountApi(DeploymentApiView):
    required_scopes = {"POST": "see_deployments"}

    def post(self, request):
        return Response(filter_queryset("deployments", self.body(), related=DEPLOYMENT_RELATED).count())


class DeploymentPaginateApi(DeploymentApiView):
    required_scopes = {"POST": "see_deployments"}

    def post(self, request):
        page = paginated(
            "deployments", self.body(), related=DEPLOYMENT_RELATED, select=("work_queue__work_pool",)
        )
        return Response(page.answer(deployments_to_wire(list(page.rows))))


class DeploymentScheduledFlowRunsApi(DeploymentApiView):
    """A runner's poll: due SCHEDULED runs of its deployments, which are then READY."""

    required_scopes = {"POST": "see_deployments"}

    def post(self, request):
        query = self.parse(ScheduledFlowRunsQuery)
        runs = services.deployment_scheduled_runs(
            deployment_ids=query.deployment_ids, scheduled_before=query.scheduled_before, limit=query.limit
        )
        now = timezone.now()
        if query.deployment_ids:
            services.deployments_record_poll(deployment_ids=query.deployment_ids, now=now)
        return Response([flow_run_to_wire(run, now=now) for run in runs])


class DeploymentCreateFlowRunApi(DeploymentApiView):
    required_scopes = {"POST": "run_deployments"}
    starts_new_work = frozenset({"POST"})

    def post(self, request, deployment_id: str):
        data = self.parse(DeploymentFlowRunCreate)
        run, created = services.deployment_flow_run_create(
            deployment_id=parse_id(deployment_id, "Deployment"), data=data, actor=request.user
        )
        return Response(flow_run_to_wire(run), status=201 if created else 200)


class DeploymentBulkCreateFlowRunApi(DeploymentApiView):
    """Prefect's ``create_flow_run/bulk``: up to 100 runs, each CREATED or FAILED with its reason
    (200 in both cases); more than 100 is a 400, an unknown deployment a 404."""

    required_scopes = {"POST": "run_deployments"}
    starts_new_work = frozenset({"POST"})

    def post(self, request, deployment_id: str):
        items = self.parse(DeploymentFlowRunCreateList).root
        results = services.deployment_flow_runs_bulk_create(
            deployment_id=parse_id(deployment_id, "Deployment"), items=items, actor=request.user
        )
        return Response({"results": results})


class DeploymentBulkDeleteApi(DeploymentApiView):
    """Prefect's ``deployments/bulk_delete``: the deployments the ``deployments`` filter matches (at
    most ``limit``, 50 by default, by name), each deleted as a single delete deletes one."""

    required_scopes = {"POST": "manage_deployments"}

    def post(self, request):
        body = self.body()
        data = self.parse(BulkDelete, body)
        rows = filter_queryset("deployments", {"deployments": body.get("deployments")})
        ids = list(rows.order_by(*ordering("deployments", None)).values_list("id", flat=True)[: data.limit])
        deleted = services.deployments_bulk_delete(deployment_ids=ids, actor=request.user)
        return Response({"deleted": [str(deployment_id) for deployment_id in deleted]})


class DeploymentScheduleRunsApi(DeploymentApiView):
    """Prefect's ``deployments/{id}/schedule``: runs from the deployment's active schedules now (a
    backfill with a past ``start_time``); answers ``null``, also for a deployment that does not
    exist (Prefect's ``schedule_runs`` finds no deployment and schedules nothing)."""

    required_scopes = {"POST": "write_deployments"}
    starts_new_work = frozenset({"POST"})

    def post(self, request, deployment_id: str):
        data = self.parse(DeploymentScheduleRuns)
        deployment_runs_schedule(
            deployment_id=parse_id(deployment_id, "Deployment"),
            start_time=data.start_time,
            end_time=data.end_time,
            min_time=dt.timedelta(seconds=data.min_time) if data.min_time is not None else None,
            min_runs=data.min_runs,
            max_runs=data.max_runs,
        )
        return _json_null(200)


class DeploymentWorkQueueCheckApi(DeploymentApiView):
    """Prefect's (deprecated) ``deployments/{id}/work_queue_check``: the work queues whose
    (deprecated) filter would pick up the deployment's runs."""

    required_scopes = {"GET": "see_deployments"}

    def get(self, request, deployment_id: str):
        deployment = services.deployment_get(deployment_id=parse_id(deployment_id, "Deployment"))
        return Response(
            [work_queue_core_to_wire(q) for q in work_queues_for_deployment(deployment=deployment)]
        )


class DeploymentPauseApi(DeploymentApiView):
    required_scopes = {"POST": "write_deployments"}

    def post(self, request, deployment_id: str):
        services.deployment_set_paused(
            deployment_id=parse_id(deployment_id, "Deployment"), paused=True, actor=request.user
        )
        return _json_null(200)


class DeploymentResumeApi(DeploymentApiView):
    required_scopes = {"POST": "write_deployments"}

    def post(self, request, deployment_id: str):
        services.deployment_set_paused(
            deployment_id=parse_id(deployment_id, "Deployment"), paused=False, actor=request.user
        )
        return _json_null(200)


class DeploymentSchedulesApi(DeploymentApiView):
    required_scopes = {"GET": "see_deployments", "POST": "write_deployments"}

    def get(self, request, deployment_id: str):
        deployment_id = parse_id(deployment_id, "Deployment")
        if not Deployment.objects.filter(id=deployment_id).exists():
            raise NotFound("Deployment not found.")
        rows = DeploymentSchedule.objects.filter(deployment_id=deployment_id).order_by("created", "id")
        return Response([schedule_to_wire(row) for row in rows])

    def post(self, request, deployment_id: str):
        schedules = self.parse(DeploymentScheduleCreateList).root
        rows = services.deployment_schedules_create(
            deployment_id=parse_id(deployment_id, "Deployment"), schedules=schedules
        )
        return Response([schedule_to_wire(row) for row in rows], status=201)


class DeploymentScheduleDetailApi(DeploymentApiView):
    required_scopes = {"PATCH": "write_deployments", "DELETE": "write_deployments"}

    def patch(self, request, deployment_id: str, schedule_id: str):
        services.deployment_schedule_update(
            deployment_id=parse_id(deployment_id, "Deployment"),
            schedule_id=parse_id(schedule_id, "Schedule"),
            data=self.parse(DeploymentScheduleUpdate),
        )
        return no_content()

    def delete(self, request, deployment_id: str, schedule_id: str):
        services.deployment_schedule_delete(
            deployment_id=parse_id(deployment_id, "Deployment"), schedule_id=parse_id(schedule_id, "Schedule")
        )
        return no_content()


def _json_null(status: int) -> HttpResponse:
    return HttpResponse(b"null", status=status, content_type="application/json")
