"""HTTP routes of the events API (Prefect's ``/events``, ``/events/filter``, ``/events/filter/next``
and ``/events/count-by/{countable}``), under the workspace prefix."""

from __future__ import annotations

from urllib.parse import quote

from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from access.limits import Bucket
from orchestration.api.base import InvalidBody, PrefectApiView, no_content
from orchestration.events import selectors
from orchestration.events.schemas import COUNTABLES, CountEventsBody, EventFilter, EventIn, ReadEventsBody
from orchestration.events.services import events_ingest

MAX_EVENTS_PER_REQUEST = 5_000


class EventsCreateApi(PrefectApiView):
    """``POST /events``: record a batch of events (the HTTP twin of ``/events/in``); answered once
    they are stored."""

    required_scopes = {"POST": "manage_events"}

    def rate_charge(self, request):
        items = request.data  # each event counts against the logs + events bucket
        return Bucket.LOGS_EVENTS, max(1, len(items)) if isinstance(items, list) else 1

    def post(self, request):
        items = request.data
        if not isinstance(items, list):
            raise InvalidBody("The request body must be a list of events.")
        if len(items) > MAX_EVENTS_PER_REQUEST:
            raise InvalidBody(f"At most {MAX_EVENTS_PER_REQUEST} events per request.")
        events = [self.parse(EventIn, item) for item in items]
        # A busy or lost database is core.errors' retryable 503 with Retry-After, like every route's.
        events_ingest(workspace_id=self.workspace.pk, events=events)
        return no_content()


class _EventPageMixin:
    def page_response(self, request, events, total, token) -> Response:
        next_page = None
        if token:
            prefix = request.path.rsplit("/events/filter", 1)[0]
            next_page = request.build_absolute_uri(f"{prefix}/events/filter/next?page-token={quote(token)}")
        return Response({"events": events, "total": total, "next_page": next_page})


class EventsFilterApi(_EventPageMixin, PrefectApiView):
    """``POST /events/filter``: the first page of matching events (``EventPage``)."""

    required_scopes = {"POST": "see_events"}

    def post(self, request):
        body = self.parse(ReadEventsBody, self.body())
        flt = body.filter or EventFilter()
        events, total, token = selectors.events_query(
            workspace_id=self.workspace.pk, flt=flt, page_size=body.limit
        )
        return self.page_response(request, events, total, token)


class EventsFilterNextApi(_EventPageMixin, PrefectApiView):
    """``GET /events/filter/next?page-token=…``: the page a previous answer linked to."""

    required_scopes = {"GET": "see_events"}

    def get(self, request):
        token = request.query_params.get("page-token", "")
        if not token:
            raise PermissionDenied("Invalid page token.")
        try:
            events, total, next_token = selectors.events_query_next_page(
                workspace_id=self.workspace.pk, token=token
            )
        except selectors.InvalidPageToken:
            raise PermissionDenied("Invalid page token.") from None
        return self.page_response(request, events, total, next_token)


class EventsCountByApi(PrefectApiView):
    """``POST /events/count-by/{countable}`` (``day``, ``time``, ``event`` or ``resource``)."""

    required_scopes = {"POST": "see_events"}

    def post(self, request, countable: str):
        if countable not in COUNTABLES:
            raise InvalidBody(f"countable must be one of {', '.join(COUNTABLES)}.")
        body = self.parse(CountEventsBody, self.body())
        try:
            counts = selectors.events_count(
                workspace_id=self.workspace.pk,
                flt=body.filter,
                countable=countable,
                time_unit=body.time_unit,
                time_interval=body.time_interval,
            )
        except selectors.InvalidCountParameters as error:
            raise InvalidBody(str(error)) from None
        return Response(counts)
