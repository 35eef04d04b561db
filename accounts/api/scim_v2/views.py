"""The per-account SCIM 2.0 endpoint: ``/scim/v2/accounts/<account_id>/…``.

Every request is authenticated by a SCIM token of that account (a token of another account, a
revoked one or none is a 401 in SCIM's error shape; an unknown account is the same 401, so the
endpoint says nothing about which accounts exist), passes the account's IP allowlist unless the
account exempts SCIM, needs a plan with SCIM, and is written to the account's SCIM activity
journal. Every lookup is bounded by the account in SQL.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import transaction
from django.http import HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django_scim.schemas import ALL as SCHEMA_DOCUMENTS

from access.gate import Outcome, authorize_scim
from accounts import throttles
from accounts.models import ScimActivity, ScimUser, Team
from accounts.scim import services
from accounts.scim.protocol import (
    CONTENT_TYPE,
    ENTERPRISE_USER_SCHEMA,
    GROUP_SCHEMA,
    USER_SCHEMA,
    ScimError,
    bad_request,
    filter_q,
    list_response,
    not_found,
    paging,
    projector,
)
from accounts.scim.resources import (
    GROUP_FILTER_ATTRIBUTES,
    USER_FILTER_ATTRIBUTES,
    group_to_resource,
    groups_of_users,
    members_of_teams,
    team_members,
    user_groups,
    user_to_resource,
)
from accounts.scim.selectors import scim_base_url
from audit.context import client_ip, current_request_context
from core.credentials import bearer_token
from core.errors import Surface, error_answer
from core.ids import as_uuid
from core.parsers import BadJson, NotJson, has_nul_escape
from core.parsers import loads as json_loads
from tenants.models import Account

MAX_BODY = 1024 * 1024


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(data), status=status, content_type=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _error(error: ScimError) -> HttpResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if error.status == 401 else None
    return _json(error.body(), status=error.status, headers=headers)


def base_url(account_id) -> str:
    return scim_base_url(account_id)


def _uuid(value: str) -> uuid.UUID:
    parsed = as_uuid(value)
    if parsed is None:
        raise not_found()
    return parsed


@method_decorator(csrf_exempt, name="dispatch")
class ScimView(View):
    """Authentication, account bounds, the error shape and the journal for every SCIM route."""

    http_method_names = ["get", "post", "put", "patch", "delete"]
    account: Account
    token = None
    changes: list[dict]

    def dispatch(self, request, *args, **kwargs):
        self.changes = []
        account_ref = kwargs.pop("account_id")
        try:
            self.account = self._authenticate(request, account_ref)
            response = super().dispatch(request, *args, **kwargs)
        except ScimError as error:
            response = _error(error)
        except Exception as error:  # a refusal from a shared service (plan, last Owner…), a bad value
            answer = error_answer(error, Surface.SCIM)
            if answer is None:
                raise
            scim_type = (
                "uniqueness" if answer.status == 409 else ("invalidValue" if answer.status == 400 else None)
            )
            response = _error(ScimError(answer.status, answer.detail, scim_type))
            for name, value in answer.headers.items():
                response[name] = value
        self._journal(request, response)
        return response

    def http_method_not_allowed(self, request, *args, **kwargs):
        raise ScimError(405, f"{request.method} is not supported here.")

    def _authenticate(self, request, account_ref) -> Account:
        ip = client_ip(request)
        # Failed tokens are throttled per address (everything refused) and per account (failures
        # answered 429): accounts.throttles.
        throttles.check(throttles.Door.SCIM, address=ip, subject=account_ref, from_memory=True)
        token, decision = authorize_scim(
            bearer_token(request.META.get("HTTP_AUTHORIZATION")), account_ref, ip=ip
        )
        self.token = token
        if decision.outcome is Outcome.UNAUTHENTICATED:
            throttles.failed(throttles.Door.SCIM, address=ip, subject=account_ref, account_ref=account_ref)
            raise ScimError(401, decision.detail)
        if not decision.allowed:
            raise ScimError(403, decision.detail)
        return decision.account

    def _journal(self, request, response) -> None:
        account = getattr(self, "account", None)
        if account is None:
            return  # not authenticated: nothing is said about any account
        context = current_request_context()
        detail = ""
        if response.status_code >= 400:
            try:
                detail = json.loads(response.content).get("detail", "")[:2000]
            except (ValueError, AttributeError):
                detail = ""
        with transaction.atomic():
            ScimActivity.objects.create(
                account=account,
                token=self.token,
                method=request.method,
                path=request.get_full_path()[:500],
                status=response.status_code,
                ip=client_ip(request),
                request_id=getattr(context, "request_id", "") or "",
                changes=self.changes,
                detail=detail,
            )

    def body(self, request) -> Any:
        if len(request.body) > MAX_BODY:
            raise ScimError(413, "The request body is too large.")
        if has_nul_escape(request.body):
            raise bad_request("Values may not contain the NUL character (\\u0000).", "invalidValue")
        try:
            return json_loads(request.body or b"null")
        except NotJson:
            raise bad_request("The body is not valid JSON.", "invalidSyntax") from None
        except BadJson as error:
            raise bad_request(f"The body cannot be taken: {error}.", "invalidValue") from None

    @property
    def base(self) -> str:
        return base_url(self.account.id)


# --- Users ---------------------------------------------------------------------------------------


def user_listing(account: Account, params) -> dict[str, Any]:
    """A page of the account's SCIM users for a GET or a ``.search`` (three queries at most)."""
    users = ScimUser.objects.filter(account=account).select_related("user")
    query = params.get("filter")
    if query:
        users = users.filter(filter_q(query, USER_FILTER_ATTRIBUTES)).distinct()
    start, count = paging(params)
    total = users.count()
    page = list(users.order_by("created", "id")[start - 1 : start - 1 + count]) if count else []
    groups = groups_of_users(page)
    project = projector(params)
    base = base_url(account.id)
    resources = [project(user_to_resource(u, base_url=base, groups=groups[u.id])) for u in page]
    return list_response(resources, total=total, start=start)


class UsersView(ScimView):
    def get(self, request):
        return _json(user_listing(self.account, request.GET))

    def post(self, request):
        scim_user = services.scim_user_create(account=self.account, data=self.body(request))
        self.changes.append({"resource": "User", "id": str(scim_user.id), "change": "created"})
        resource = user_to_resource(scim_user, base_url=self.base, groups=[])
        return _json(resource, status=201, headers={"Location": resource["meta"]["location"]})


class UserView(ScimView):
    def _get(self, user_id) -> ScimUser:
        scim_user = (
            ScimUser.objects.filter(account=self.account, id=_uuid(user_id)).select_related("user").first()
        )
        if scim_user is None:
            raise not_found(f"User {user_id} not found.")
        return scim_user

    def _answer(self, scim_user: ScimUser) -> HttpResponse:
        resource = user_to_resource(scim_user, base_url=self.base, groups=user_groups(scim_user))
        return _json(projector(self.request.GET)(resource))

    def get(self, request, user_id):
        return self._answer(self._get(user_id))

    def put(self, request, user_id):
        scim_user = services.scim_user_replace(scim_user=self._get(user_id), data=self.body(request))
        self.changes.append({"resource": "User", "id": str(scim_user.id), "change": "replaced"})
        return self._answer(scim_user)

    def patch(self, request, user_id):
        body = self.body(request)
        scim_user = services.scim_user_patch(scim_user=self._get(user_id), body=body, base_url=self.base)
        self.changes.append(
            {"resource": "User", "id": str(scim_user.id), "change": "patched", "operations": _ops(body)}
        )
        return self._answer(scim_user)

    def delete(self, request, user_id):
        scim_user = self._get(user_id)
        services.scim_user_delete(scim_user=scim_user)
        self.changes.append({"resource": "User", "id": str(user_id), "change": "deleted"})
        return HttpResponse(status=204)


def _ops(body: Any) -> list:
    """What a PATCH asked, for the journal (ops and paths; values only for ``active``)."""
    operations = body.get("Operations") if isinstance(body, dict) else None
    summary = []
    for operation in operations if isinstance(operations, list) else []:
        if isinstance(operation, dict):
            entry = {"op": str(operation.get("op", "")), "path": operation.get("path")}
            if str(operation.get("path", "")).lower() == "active":
                entry["value"] = operation.get("value")
            summary.append(entry)
    return summary


# --- Groups --------------------------------------------------------------------------------------


def _with_members(params) -> bool:
    """Members are left out when ``excludedAttributes`` names them (they can be many)."""
    excluded = {a.strip().lower() for a in (params.get("excludedAttributes") or "").split(",")}
    return "members" not in excluded


def group_listing(account: Account, params) -> dict[str, Any]:
    """A page of the account's SCIM groups for a GET or a ``.search``."""
    groups = Team.objects.filter(account=account, scim_managed=True)
    query = params.get("filter")
    if query:
        groups = groups.filter(filter_q(query, GROUP_FILTER_ATTRIBUTES)).distinct()
    start, count = paging(params)
    total = groups.count()
    page = list(groups.order_by("created", "id")[start - 1 : start - 1 + count]) if count else []
    members = members_of_teams(page) if _with_members(params) else {}
    project = projector(params)
    base = base_url(account.id)
    resources = [project(group_to_resource(t, base_url=base, members=members.get(t.id))) for t in page]
    return list_response(resources, total=total, start=start)


class GroupsView(ScimView):
    def get(self, request):
        return _json(group_listing(self.account, request.GET))

    def post(self, request):
        team = services.scim_group_create(account=self.account, data=self.body(request))
        self.changes.append({"resource": "Group", "id": str(team.id), "change": "created"})
        resource = group_to_resource(team, base_url=self.base, members=team_members(team))
        return _json(resource, status=201, headers={"Location": resource["meta"]["location"]})


class GroupView(ScimView):
    def _get(self, group_id) -> Team:
        team = Team.objects.filter(account=self.account, scim_managed=True, id=_uuid(group_id)).first()
        if team is None:
            raise not_found(f"Group {group_id} not found.")
        return team

    def _answer(self, team: Team) -> HttpResponse:
        members = team_members(team) if _with_members(self.request.GET) else None
        return _json(
            projector(self.request.GET)(group_to_resource(team, base_url=self.base, members=members))
        )

    def get(self, request, group_id):
        return self._answer(self._get(group_id))

    def put(self, request, group_id):
        team = services.scim_group_replace(team=self._get(group_id), data=self.body(request))
        self.changes.append({"resource": "Group", "id": str(team.id), "change": "replaced"})
        return self._answer(team)

    def patch(self, request, group_id):
        body = self.body(request)
        team = services.scim_group_patch(team=self._get(group_id), body=body, base_url=self.base)
        self.changes.append(
            {"resource": "Group", "id": str(team.id), "change": "patched", "operations": _ops(body)}
        )
        return self._answer(team)

    def delete(self, request, group_id):
        services.scim_group_delete(team=self._get(group_id))
        self.changes.append({"resource": "Group", "id": str(group_id), "change": "deleted"})
        return HttpResponse(status=204)


# --- searching with POST (RFC 7644 §3.4.3) -------------------------------------------------------


def search_params(body: Any) -> dict[str, str]:
    """A SearchRequest body as the query parameters of a GET."""
    if not isinstance(body, dict):
        raise bad_request("The body must be a SCIM SearchRequest.", "invalidSyntax")
    params: dict[str, str] = {}
    for key in ("filter", "startIndex", "count", "sortBy", "sortOrder"):
        if body.get(key) is not None:
            params[key] = str(body[key])
    for key in ("attributes", "excludedAttributes"):
        value = body.get(key)
        if isinstance(value, list):
            params[key] = ",".join(str(v) for v in value)
        elif isinstance(value, str):
            params[key] = value
    return params


class UsersSearchView(ScimView):
    def post(self, request):
        return _json(user_listing(self.account, search_params(self.body(request))))


class GroupsSearchView(ScimView):
    def post(self, request):
        return _json(group_listing(self.account, search_params(self.body(request))))


class RootSearchView(ScimView):
    """``POST /.search``: people, then teams, as one list."""

    def post(self, request):
        params = search_params(self.body(request))
        start, count = paging(params)
        everything = {**params, "startIndex": "1", "count": "200"}
        users = user_listing(self.account, everything)
        groups = group_listing(self.account, everything)
        resources = users["Resources"] + groups["Resources"]
        total = users["totalResults"] + groups["totalResults"]
        return _json(list_response(resources[start - 1 : start - 1 + count], total=total, start=start))


# --- discovery (RFC 7644 §4) ---------------------------------------------------------------------


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": f"{base}/ServiceProviderConfig",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": 200},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A SCIM token of the account, created by an account admin.",
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}/ServiceProviderConfig"},
    }


def resource_types(base: str) -> list[dict[str, Any]]:
    return [
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "People of the account",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_USER_SCHEMA, "required": False}],
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/User"},
        },
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Teams of the account",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/Group"},
        },
    ]


def schema_documents(base: str) -> list[dict[str, Any]]:
    served = {USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_USER_SCHEMA}
    documents = []
    for document in SCHEMA_DOCUMENTS:
        if document.get("id") in served:
            documents.append(
                {
                    **document,
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
                    "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{document['id']}"},
                }
            )
    return sorted(documents, key=lambda d: d["id"])


class ServiceProviderConfigView(ScimView):
    def get(self, request):
        return _json(service_provider_config(self.base))


def _listed(items: list[dict], request) -> HttpResponse:
    start, count = paging(request.GET)
    page = items[start - 1 : start - 1 + count]
    return _json(list_response(page, total=len(items), start=start))


def _one(items: list[dict], item_id: str, what: str) -> HttpResponse:
    for item in items:
        if item["id"] == item_id:
            return _json(item)
    raise not_found(f"{what} {item_id} not found.")


class ResourceTypesView(ScimView):
    def get(self, request, type_id: str | None = None):
        items = resource_types(self.base)
        return _listed(items, request) if type_id is None else _one(items, type_id, "Resource type")


class SchemasView(ScimView):
    def get(self, request, schema_id: str | None = None):
        items = schema_documents(self.base)
        return _listed(items, request) if schema_id is None else _one(items, schema_id, "Schema")


class NotFoundView(ScimView):
    """Any other path under the account's SCIM base: a 404 in SCIM's shape, after authentication."""

    def _missing(self, request, *args, **kwargs):
        raise not_found("No such SCIM endpoint.")

    get = post = put = patch = delete = _missing
