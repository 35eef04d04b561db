from __future__ import annotations

from rest_framework.response import Response

from core.errors import NotFound
from orchestration.api.base import PrefectApiView, parse_id
from orchestration.api.task_runs.wire import task_run_to_wire
from orchestration.models import TaskRun, TaskRunState
from orchestration.selectors.filters import filter_queryset, filtered_page

TASK_RUN_RELATED = ("flows", "flow_runs", "deployments")


def _with_states(runs) -> list[dict]:
    runs = list(runs)
    states = {s.id: s for s in TaskRunState.objects.filter(id__in=[r.state_id for r in runs if r.state_id])}
    return [task_run_to_wire(run, state=states.get(run.state_id)) for run in runs]


class TaskRunDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_flows"}

    def get(self, request, task_run_id: str):
        run = TaskRun.objects.filter(id=parse_id(task_run_id, "Task run")).first()
        if run is None:
            raise NotFound("Task run not found")
        return Response(_with_states([run])[0])


class TaskRunFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response(_with_states(filtered_page("task_runs", self.body(), related=TASK_RUN_RELATED)))


class TaskRunCountApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response(filter_queryset("task_runs", self.body(), related=TASK_RUN_RELATED).count())
