from __future__ import annotations

from django.db.models import OuterRef, Subquery
from rest_framework.response import Response

from core.errors import NotFound
from orchestration.api.artifacts.wire import artifact_to_wire
from orchestration.api.base import PrefectApiView, created, no_content, parse_id
from orchestration.models import Artifact
from orchestration.schemas.actions import ArtifactCreate, ArtifactUpdate
from orchestration.schemas.base import iso
from orchestration.selectors.filters import (
    ARTIFACT_COLLECTION,
    FilterError,
    filter_queryset,
    filtered_page,
    kind_condition,
    paging,
)
from orchestration.services.artifacts import artifact_create, artifact_delete, artifact_update

ARTIFACT_RELATED = ("flow_runs", "task_runs", "flows", "deployments")


def _latest_condition(body: dict):
    return kind_condition(ARTIFACT_COLLECTION, body.get("artifacts"), "artifacts")


class ArtifactCreateApi(PrefectApiView):
    required_scopes = {"POST": "write_artifacts"}

    def post(self, request):
        return created(artifact_to_wire(artifact_create(data=self.parse(ArtifactCreate))))


class ArtifactDetailApi(PrefectApiView):
    required_scopes = {"GET": "see_artifacts", "PATCH": "write_artifacts", "DELETE": "manage_artifacts"}

    def get(self, request, artifact_id: str):
        artifact = Artifact.objects.filter(id=parse_id(artifact_id, "Artifact")).first()
        if artifact is None:
            raise NotFound("Artifact not found.")
        return Response(artifact_to_wire(artifact))

    def patch(self, request, artifact_id: str):
        artifact_update(artifact_id=parse_id(artifact_id, "Artifact"), data=self.parse(ArtifactUpdate))
        return no_content()

    def delete(self, request, artifact_id: str):
        artifact_delete(artifact_id=parse_id(artifact_id, "Artifact"))
        return no_content()


class ArtifactLatestByKeyApi(PrefectApiView):
    required_scopes = {"GET": "see_artifacts"}

    def get(self, request, key: str):
        artifact = Artifact.objects.filter(key=key).order_by("-created", "-id").first()
        if artifact is None:
            raise NotFound("Artifact not found.")
        return Response(artifact_to_wire(artifact))


class ArtifactFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_artifacts"}

    def post(self, request):
        return Response(
            [artifact_to_wire(a) for a in filtered_page("artifacts", self.body(), related=ARTIFACT_RELATED)]
        )


class ArtifactCountApi(PrefectApiView):
    required_scopes = {"POST": "see_artifacts"}

    def post(self, request):
        return Response(filter_queryset("artifacts", self.body(), related=ARTIFACT_RELATED).count())


def _latest_per_key():
    newest = Artifact.objects.filter(key=OuterRef("key")).order_by("-created", "-id").values("id")[:1]
    return Artifact.objects.exclude(key=None).filter(id=Subquery(newest))


COLLECTION_SORTS = {"CREATED_DESC": ["-created", "-id"], "UPDATED_DESC": ["-updated", "-id"],
                    "ID_DESC": ["-id"], "KEY_DESC": ["-key"], "KEY_ASC": ["key"]}  # fmt: skip


def collection_to_wire(artifact) -> dict:
    data = artifact_to_wire(artifact)
    data["latest_id"] = data["id"]
    data["created"] = iso(artifact.created)
    return data


class ArtifactLatestFilterApi(PrefectApiView):
    """``artifacts/latest/filter``: the newest artifact of each key (Prefect's artifact collections)."""

    required_scopes = {"POST": "see_artifacts"}

    def post(self, request):
        body = self.body()
        qs = _latest_per_key().filter(_latest_condition(body))
        sort = body.get("sort") or "ID_DESC"
        if not isinstance(sort, str) or sort not in COLLECTION_SORTS:
            raise FilterError(f"sort must be one of {', '.join(COLLECTION_SORTS)}")
        limit, offset = paging(body)
        rows = qs.order_by(*COLLECTION_SORTS[sort])[offset : offset + limit]
        return Response([collection_to_wire(a) for a in rows])


class ArtifactLatestCountApi(PrefectApiView):
    required_scopes = {"POST": "see_artifacts"}

    def post(self, request):
        body = self.body()
        return Response(_latest_per_key().filter(_latest_condition(body)).count())
