from __future__ import annotations

from rest_framework.response import Response

from core.errors import NotFound
from orchestration.api.base import PrefectApiView, created, no_content, parse_id
from orchestration.api.variables.wire import variable_to_wire
from orchestration.models import Variable
from orchestration.schemas.actions import VariableCreate, VariableUpdate
from orchestration.selectors.filters import filter_queryset, filtered_page
from orchestration.services.variables import variable_create, variable_delete, variable_update

SCOPES = {"GET": "see_variables", "PATCH": "write_variables", "DELETE": "manage_variables"}


def _get(lookup: dict) -> Variable:
    variable = Variable.objects.filter(**lookup).first()
    if variable is None:
        raise NotFound("Variable not found.")
    return variable


class VariableCreateApi(PrefectApiView):
    required_scopes = {"POST": "write_variables"}

    def post(self, request):
        return created(variable_to_wire(variable_create(data=self.parse(VariableCreate))))


class VariableDetailApi(PrefectApiView):
    required_scopes = SCOPES

    def get(self, request, variable_id: str):
        return Response(variable_to_wire(_get({"id": parse_id(variable_id, "Variable")})))

    def patch(self, request, variable_id: str):
        variable_update(lookup={"id": parse_id(variable_id, "Variable")}, data=self.parse(VariableUpdate))
        return no_content()

    def delete(self, request, variable_id: str):
        variable_delete(lookup={"id": parse_id(variable_id, "Variable")})
        return no_content()


class VariableByNameApi(PrefectApiView):
    required_scopes = SCOPES

    def get(self, request, name: str):
        return Response(variable_to_wire(_get({"name": name})))

    def patch(self, request, name: str):
        variable_update(lookup={"name": name}, data=self.parse(VariableUpdate))
        return no_content()

    def delete(self, request, name: str):
        variable_delete(lookup={"name": name})
        return no_content()


class VariableFilterApi(PrefectApiView):
    required_scopes = {"POST": "see_variables"}

    def post(self, request):
        return Response([variable_to_wire(v) for v in filtered_page("variables", self.body())])


class VariableCountApi(PrefectApiView):
    required_scopes = {"POST": "see_variables"}

    def post(self, request):
        body = self.body()
        return Response(filter_queryset("variables", body).count())
