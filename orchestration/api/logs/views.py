from __future__ import annotations

from rest_framework.response import Response

from access.limits import Bucket
from orchestration.api.base import InvalidBody, PrefectApiView, created
from orchestration.api.logs.wire import log_to_wire
from orchestration.schemas.actions import LogCreate
from orchestration.selectors.filters import filtered_page
from orchestration.services.logs import logs_create

MAX_LOGS_PER_REQUEST = 10_000


class LogCreateApi(PrefectApiView):
    required_scopes = {"POST": "run_flows"}

    def rate_charge(self, request):
        # Each log counts against the logs + events bucket, not each batch (Prefect Cloud's rule).
        items = request.data
        return Bucket.LOGS_EVENTS, max(1, len(items)) if isinstance(items, list) else 1

    def post(self, request):
        items = request.data
        if not isinstance(items, list):
            raise InvalidBody("The request body must be a list of logs.")
        if len(items) > MAX_LOGS_PER_REQUEST:
            raise InvalidBody(f"At most {MAX_LOGS_PER_REQUEST} logs per request.")
        logs = [self.parse(LogCreate, item) for item in items]
        logs_create(logs=logs)
        return created(None)


class LogFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_flows"}

    def post(self, request):
        return Response([log_to_wire(log) for log in filtered_page("logs", self.body())])
