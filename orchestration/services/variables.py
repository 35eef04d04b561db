from __future__ import annotations

from django.db import IntegrityError, transaction

from core.errors import Conflict, NotFound
from orchestration.models import Variable
from orchestration.schemas.actions import VariableCreate, VariableUpdate
from tenants.scoping import current_workspace_id


def variable_create(*, data: VariableCreate) -> Variable:
    try:
        with transaction.atomic():
            return Variable.objects.create(
                workspace_id=current_workspace_id(), name=data.name, value=data.value, tags=data.tags
            )
    except IntegrityError:
        raise Conflict(f"A variable with the name {data.name!r} already exists.") from None


def variable_update(*, lookup: dict, data: VariableUpdate) -> None:
    changes = data.model_dump(exclude_unset=True)
    try:
        with transaction.atomic():
            variable = Variable.objects.select_for_update().filter(**lookup).first()
            if variable is None:
                raise NotFound("Variable not found.")
            for name, value in changes.items():
                if name == "value" or value is not None:
                    setattr(variable, name, value)
            variable.save()
    except IntegrityError:
        raise Conflict(f"A variable with the name {changes.get('name')!r} already exists.") from None


def variable_delete(*, lookup: dict) -> None:
    deleted, _ = Variable.objects.filter(**lookup).delete()
    if not deleted:
        raise NotFound("Variable not found.")
