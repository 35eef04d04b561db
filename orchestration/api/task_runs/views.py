from __future__ import annotations

import datetime as dt

from rest_framework.response import Response

from core.errors import NotFound
from core.ids import as_uuid
from orchestration.api.base import InvalidBody, PrefectApiView, no_content, parse_id
from orchestration.api.flow_runs.views import client_version
from orchestration.api.flow_runs.wire import orchestration_result_to_wire
from orchestration.api.task_runs.wire import history_to_wire, task_run_to_wire, task_worker_to_wire
from orchestration.models import TaskRun, TaskRunState
from orchestration.schemas.actions import SetState
from orchestration.schemas.states import state_to_wire
from orchestration.schemas.task_runs import (
    RunHistoryRequest,
    TaskRunCreate,
    TaskRunUpdate,
    TaskWorkersRequest,
)
from orchestration.selectors.filters import (
    filter_queryset,
    filtered_page,
    paginated,
)
from orchestration.selectors.task_runs import (
    task_run_history,
    task_run_state_get,
    task_run_states_list,
    task_workers_list,
)
from orchestration.services.orchestration import set_task_run_state
from orchestration.services.task_runs import task_run_create, task_run_delete, task_run_update

TASK_RUN_RELATED = ("flows", "flow_runs", "deployments")


def _with_states(runs) -> list[dict]:
    runs = list(runs)
    states = {s.id: s for s in TaskRunState.objects.filter(id__in=[r.state_id for r in runs if r.state_id])}
    return [task_run_to_wire(run, state=states.get(run.state_id)) for run in runs]


class TaskRunCreateApi(PrefectApiView):
    required_scopes = {"POST": "run_flows"}

    def post(self, request):
        data = self.parse(TaskRunCreate)
        run, was_created = task_run_create(data=data, actor=request.user)
        return Response(_with_states([run])[0], status=201 if was_created else 200)


class TaskRunDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_flows", "PATCH": "run_flows", "DELETE": "manage_flows"}

    def get(self, request, task_run_id: str):
        run = TaskRun.objects.filter(id=parse_id(task_run_id, "Task run")).first()
        if run is None:
            raise NotFound("Task run not found")
        return Response(_with_states([run])[0])

    def patch(self, request, task_run_id: str):
        task_run_update(task_run_id=parse_id(task_run_id, "Task run"), data=self.parse(TaskRunUpdate))
        return no_content()

    def delete(self, request, task_run_id: str):
        task_run_delete(task_run_id=parse_id(task_run_id, "Task run"))
        return no_content()


class TaskRunSetStateApi(PrefectApiView):
    required_scopes = {"POST": "run_flows"}

    def post(self, request, task_run_id: str):
        data = self.parse(SetState)
        result = set_task_run_state(
            task_run_id=parse_id(task_run_id, "Task run"),
            state=data.state,
            force=data.force,
            actor=request.user,
            client_version=client_version(request),
        )
        return Response(orchestration_result_to_wire(result), status=201 if result.written else 200)


class TaskRunFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response(_with_states(filtered_page("task_runs", self.body(), related=TASK_RUN_RELATED)))


class TaskRunCountApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response(filter_queryset("task_runs", self.body(), related=TASK_RUN_RELATED).count())


class TaskRunPaginateApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        page = paginated("task_runs", self.body(), related=TASK_RUN_RELATED)
        return Response(page.answer(_with_states(page.rows)))


class TaskRunHistoryApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        body = self.body()
        data = self.parse(RunHistoryRequest, body)
        if data.history_interval_seconds < 1:
            raise InvalidBody("History interval must not be less than 1 second.")
        history = task_run_history(
            body=body,
            history_start=data.history_start,
            history_end=data.history_end,
            interval=dt.timedelta(seconds=data.history_interval_seconds),
            related=TASK_RUN_RELATED,
        )
        return Response(history_to_wire(history))


class TaskRunStateListApi(PrefectApiView):
    required_scopes = {"GET": "see_flows"}

    def get(self, request):
        raw = request.query_params.get("task_run_id")
        task_run_id = as_uuid(raw) if raw else None
        if task_run_id is None:
            raise InvalidBody(
                "Invalid request received.",
                extra={
                    "exception_detail": [
                        {
                            "type": "missing" if not raw else "uuid_parsing",
                            "loc": ["query", "task_run_id"],
                            "msg": "Field required" if not raw else "Input should be a valid UUID",
                        }
                    ]
                },
            )
        return Response([state_to_wire(state) for state in task_run_states_list(task_run_id=task_run_id)])


class TaskRunStateDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_flows"}

    def get(self, request, state_id: str):
        state = task_run_state_get(state_id=parse_id(state_id, "Task run state"))
        if state is None:
            raise NotFound("Flow run state not found")
        return Response(state_to_wire(state))


class TaskWorkerFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        data = self.parse(TaskWorkersRequest, self.body())
        keys = data.task_worker_filter.task_keys if data.task_worker_filter else None
        return Response([task_worker_to_wire(worker) for worker in task_workers_list(task_keys=keys)])
