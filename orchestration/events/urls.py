"""HTTP routes of the events API, mounted under the workspace prefix. (The websockets
``events/in`` and ``events/out`` are in ``config.routing``.)"""

from __future__ import annotations

from django.urls import path

from orchestration.events import api

urlpatterns: list = [
    path("events", api.EventsCreateApi.as_view()),
    path("events/filter", api.EventsFilterApi.as_view()),
    path("events/filter/next", api.EventsFilterNextApi.as_view()),
    path("events/count-by/<str:countable>", api.EventsCountByApi.as_view()),
]
