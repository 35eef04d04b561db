"""Automations as Prefect's server validates them (``prefect.server.events.schemas.automations``
and the action models of ``prefect.server.events.actions``): event, compound and sequence
triggers, every action type with its checks, and the create, update and partial-update bodies.

Stored with ``model_dump(mode="json")`` (durations as seconds, as Prefect's JSON has them) and read
back with the same models, so what an engine evaluates later is exactly what was validated here.

Beyond Prefect's server: a Prefect Cloud-only type the client knows (a ``declare-incident`` action,
a ``metric`` trigger) is refused with one error saying so, where the unions would give one error per
member; and a create or update body's ``within`` is bounded (``MAX_WITHIN``).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import typing
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from orchestration.schemas.base import iso
from orchestration.schemas.hydration import HydrationContext, hydrate, hydration_errors
from orchestration.schemas.templates import maybe_template, template_error

_CONFIG = ConfigDict(ser_json_timedelta="float", extra="ignore")


class _Model(BaseModel):
    model_config = _CONFIG


class _Body(BaseModel):
    """Prefect's ``ActionBaseModel``: request bodies refuse unknown fields."""

    model_config = ConfigDict(ser_json_timedelta="float", extra="forbid")


def _non_negative(value: dt.timedelta) -> dt.timedelta:
    if value < dt.timedelta(0):
        raise ValueError("timedelta must be non-negative")
    return value


NonNegativeTimeDelta = Annotated[dt.timedelta, AfterValidator(_non_negative)]
StateTypeName = Literal[
    "SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"
]


# --- resource specifications --------------------------------------------------------------------


class ResourceSpecification(RootModel[dict[str, str | list[str]]]):
    def matches_every_resource_of_kind(self, prefix: str) -> bool:
        if not self.root:
            return True
        if len(self.root) == 1:
            resource_id = self.root.get("prefect.resource.id")
            if resource_id:
                values = [resource_id] if isinstance(resource_id, str) else resource_id
                return any(value == f"{prefix}.*" for value in values)
        return False


# --- actions ------------------------------------------------------------------------------------


def _template(value: str, name: str) -> str:
    error = template_error(value)
    if error:
        raise ValueError(f"{name!r} is not a valid template: {error}")
    return value


class _Selected(_Model):
    """Actions that act on a selected object (its id given) or one inferred from the event."""

    _id_field = ""
    source: Literal["selected", "inferred"] = "selected"

    @model_validator(mode="after")
    def _selected_requires_id(self):
        wants = self.source == "selected"
        has = bool(getattr(self, self._id_field))
        if wants != has:
            raise ValueError(f"{self._id_field} is " + ("not allowed" if has else "required"))
        return self


class DoNothing(_Model):
    type: Literal["do-nothing"] = "do-nothing"


class _DeploymentAction(_Selected):
    _id_field = "deployment_id"
    deployment_id: uuid.UUID | None = None


def _wrap_v1_template(template: str) -> dict[str, Any]:
    stripped = template.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
        inner = stripped[2:-2].strip()
        return {"__prefect_kind": "json",
                "value": {"__prefect_kind": "jinja", "template": "{{ " + inner + " | tojson }}"}}  # fmt: skip
    return {"__prefect_kind": "jinja", "template": template}


def upgrade_v1_templates(parameters: dict[str, Any]) -> None:
    """Prefect's ``_upgrade_v1_templates``: plain strings holding a template become jinja placeholders
    (in place)."""
    for key, value in parameters.items():
        if isinstance(value, dict):
            if "__prefect_kind" not in value:
                upgrade_v1_templates(value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    upgrade_v1_templates(item)
                elif isinstance(item, str) and maybe_template(item):
                    value[index] = _wrap_v1_template(item)
        elif isinstance(value, str) and maybe_template(value):
            parameters[key] = _wrap_v1_template(value)


class RunDeployment(_DeploymentAction):
    type: Literal["run-deployment"] = "run-deployment"
    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None
    schedule_after: NonNegativeTimeDelta = Field(default_factory=lambda: dt.timedelta(0))

    @field_validator("parameters", "job_variables")
    @classmethod
    def _valid_values(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        """Prefect's check of the parameters; the job variables, rendered the same way when the
        action runs (Prefect passes them through), are checked the same way."""
        if not value:
            return value
        testing = copy.deepcopy(value)
        upgrade_v1_templates(testing)
        problems = hydration_errors(hydrate(testing, HydrationContext()))
        if not problems:
            return value
        what = "parameters" if info.field_name == "parameters" else "job variables"
        raise ValueError(
            f"Invalid {what}: \n"
            + "\n  ".join(f"{k + ':' if k else ''} {e.message}" for k, e in problems.items())
        )


class PauseDeployment(_DeploymentAction):
    type: Literal["pause-deployment"] = "pause-deployment"


class ResumeDeployment(_DeploymentAction):
    type: Literal["resume-deployment"] = "resume-deployment"


class ChangeFlowRunState(_Model):
    type: Literal["change-flow-run-state"] = "change-flow-run-state"
    name: str | None = None
    state: StateTypeName
    message: str | None = None
    force: bool = False


class CancelFlowRun(_Model):
    type: Literal["cancel-flow-run"] = "cancel-flow-run"


class DeleteFlowRun(_Model):
    type: Literal["delete-flow-run"] = "delete-flow-run"


class SuspendFlowRun(_Model):
    type: Literal["suspend-flow-run"] = "suspend-flow-run"


class ResumeFlowRun(_Model):
    type: Literal["resume-flow-run"] = "resume-flow-run"


class CallWebhook(_Model):
    type: Literal["call-webhook"] = "call-webhook"
    block_document_id: uuid.UUID
    payload: str = ""

    @field_validator("payload", mode="before")
    @classmethod
    def _payload_is_a_string(cls, value: Any) -> Any:
        # Older UIs send a JSON object; Prefect stores it as its indented JSON text.
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, indent=2)

    @field_validator("payload")
    @classmethod
    def _payload_template(cls, value: str) -> str:
        return _template(value, "payload") if value else value


class SendNotification(_Model):
    type: Literal["send-notification"] = "send-notification"
    block_document_id: uuid.UUID
    subject: str = "Prefect automated notification"
    body: str

    @field_validator("subject", "body")
    @classmethod
    def _templates(cls, value: str, info: ValidationInfo) -> str:
        return _template(value, str(info.field_name))


class _WorkPoolAction(_Selected):
    _id_field = "work_pool_id"
    work_pool_id: uuid.UUID | None = None


class PauseWorkPool(_WorkPoolAction):
    type: Literal["pause-work-pool"] = "pause-work-pool"


class ResumeWorkPool(_WorkPoolAction):
    type: Literal["resume-work-pool"] = "resume-work-pool"


class _WorkQueueAction(_Selected):
    _id_field = "work_queue_id"
    work_queue_id: uuid.UUID | None = None


class PauseWorkQueue(_WorkQueueAction):
    type: Literal["pause-work-queue"] = "pause-work-queue"


class ResumeWorkQueue(_WorkQueueAction):
    type: Literal["resume-work-queue"] = "resume-work-queue"


class _AutomationAction(_Selected):
    _id_field = "automation_id"
    automation_id: uuid.UUID | None = None


class PauseAutomation(_AutomationAction):
    type: Literal["pause-automation"] = "pause-automation"


class ResumeAutomation(_AutomationAction):
    type: Literal["resume-automation"] = "resume-automation"


# --- Prefect Cloud's own types ------------------------------------------------------------------

#: Action and trigger types the ``prefect`` client knows (``prefect.events.actions``,
#: ``prefect.events.schemas.automations``) that only Prefect Cloud serves, not Prefect's server.
CLOUD_ONLY_ACTION_TYPES = frozenset({"declare-incident"})
CLOUD_ONLY_TRIGGER_TYPES = frozenset({"metric"})


def _cloud_only(kind: str, type_name: str, where: str = "") -> PydanticCustomError:
    message = f"{where}{type_name!r} is a Prefect Cloud-only {kind} type, not supported by this server"
    # The message is the whole template: braces a client sent are not placeholders.
    return PydanticCustomError("prefect_cloud_only", message.replace("{", "(").replace("}", ")"))


def _refuse_cloud_only_action(value: Any, info: ValidationInfo) -> Any:
    """One clear error for a Cloud-only action, instead of one per member of the action union; and
    for an action whose ``type`` names one member, that member's errors alone (a bad template in a
    ``call-webhook`` would otherwise be one error among one per member)."""
    if not isinstance(value, dict):
        return value
    if value.get("type") in CLOUD_ONLY_ACTION_TYPES:
        raise _cloud_only("action", str(value["type"]))
    adapter = _ACTION_ADAPTERS.get(value.get("type")) if isinstance(value.get("type"), str) else None
    if adapter is not None:
        try:
            adapter.validate_python(value, context=info.context)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in e['loc'][1:])}: {e['msg']}" if e["loc"][1:] else e["msg"]
                for e in error.errors(include_url=False, include_context=False, include_input=False)
            )
            message = f"Invalid {value['type']} action: {problems}"
            # The message is the whole template: braces a client sent are not placeholders.
            raise PydanticCustomError("invalid_action", message.replace("{", "(").replace("}", ")")) from None
    return value


def _refuse_cloud_only_triggers(value: Any) -> Any:
    """One clear error for a Cloud-only trigger anywhere in a trigger tree (a child's would
    otherwise fail every member of the union at every level above it)."""
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        where, trigger = pending.pop()
        if not isinstance(trigger, dict):
            continue
        if trigger.get("type") in CLOUD_ONLY_TRIGGER_TYPES:
            raise _cloud_only("trigger", str(trigger["type"]), f"trigger{where}: " if where else "")
        children = trigger.get("triggers")
        if isinstance(children, list):
            pending.extend((f"{where}.triggers[{i}]", child) for i, child in enumerate(children))
    return value


# Not discriminated, as Prefect's union is not: pydantic picks the model a body fits.
Action = Annotated[
    DoNothing | RunDeployment | PauseDeployment | ResumeDeployment | CancelFlowRun | DeleteFlowRun
    | ChangeFlowRunState | PauseWorkQueue | ResumeWorkQueue | SendNotification | CallWebhook | PauseAutomation
    | ResumeAutomation | SuspendFlowRun | ResumeFlowRun | PauseWorkPool | ResumeWorkPool,
    BeforeValidator(_refuse_cloud_only_action),
]  # fmt: skip
#: Each action type's own model, to report the errors of the one a body names.
_ACTION_ADAPTERS: dict[str, TypeAdapter] = {
    (typing.get_args(member)[0] if typing.get_origin(member) is Annotated else member)
    .model_fields["type"]
    .default: TypeAdapter(member)
    for member in typing.get_args(typing.get_args(Action)[0])
}


# --- triggers -----------------------------------------------------------------------------------


def _spec(value: Any) -> Any:
    if isinstance(value, dict):
        return ResourceSpecification.model_validate(value)
    if isinstance(value, list):
        return [ResourceSpecification.model_validate(v) if isinstance(v, dict) else v for v in value]
    return value


class EventTrigger(_Model):
    type: Literal["event"] = "event"
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    match: ResourceSpecification = Field(default_factory=lambda: ResourceSpecification({}))
    match_related: ResourceSpecification | list[ResourceSpecification] = Field(
        default_factory=lambda: ResourceSpecification({})
    )
    after: set[str] = Field(default_factory=set)
    expect: set[str] = Field(default_factory=set)
    for_each: set[str] = Field(default_factory=set)
    posture: Literal["Reactive", "Proactive"]
    threshold: int = 1
    within: dt.timedelta = Field(dt.timedelta(seconds=0), ge=dt.timedelta(seconds=0))

    _coerce_match = field_validator("match", "match_related", mode="before")(lambda cls, v: _spec(v))

    @model_validator(mode="before")
    @classmethod
    def _minimum_within_for_proactive(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "within" in data and data["within"] is None:
            raise ValueError("`within` should be a valid timedelta")
        within = data.get("within")
        if within is not None and not isinstance(within, dt.timedelta):
            try:
                within = _TIMEDELTA.validate_python(within)
            except ValueError:
                return data  # the field reports the value it cannot read
            data = {**data, "within": within}
        if data.get("posture") == "Proactive":
            if not within or within == dt.timedelta(0):
                data = {**data, "within": dt.timedelta(seconds=10.0)}
            elif within < dt.timedelta(seconds=10.0):
                raise ValueError(
                    "`within` for Proactive triggers must be greater than or equal to 10 seconds"
                )
        return data


class CompoundTrigger(_Model):
    type: Literal["compound"] = "compound"
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    triggers: list[Trigger]
    within: dt.timedelta | None
    require: int | Literal["any", "all"]

    @model_validator(mode="after")
    def _valid_require(self):
        if isinstance(self.require, int):
            if self.require < 1:
                raise ValueError("require must be at least 1")
            if self.require > len(self.triggers):
                raise ValueError("require must be less than or equal to the number of triggers")
        return self


class SequenceTrigger(_Model):
    type: Literal["sequence"] = "sequence"
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    triggers: list[Trigger]
    within: dt.timedelta | None


Trigger = EventTrigger | CompoundTrigger | SequenceTrigger
CompoundTrigger.model_rebuild()
SequenceTrigger.model_rebuild()

#: The longest ``within`` an automation may be created or updated with (a year and a day: a
#: yearly run's proactive trigger, with room). Prefect's server has no bound; past a datetime's
#: range no window can be evaluated, and the engine only holds such a stored window at its ends.
MAX_WITHIN = dt.timedelta(days=366)


def _triggers_with_paths(trigger, where: str = "trigger") -> list[tuple[str, Any]]:
    found = [(where, trigger)]
    if isinstance(trigger, CompoundTrigger | SequenceTrigger):
        for index, child in enumerate(trigger.triggers):
            found.extend(_triggers_with_paths(child, f"{where}.triggers[{index}]"))
    return found


def _bounded_within(trigger):
    for where, each in _triggers_with_paths(trigger):
        if each.within is not None and each.within > MAX_WITHIN:
            raise PydanticCustomError(
                "within_too_long",
                f"{where}.within must be at most {MAX_WITHIN.days} days ({int(MAX_WITHIN.total_seconds())} "
                f"seconds); got {each.within.total_seconds():.15g} seconds",
            )
    return trigger


_TIMEDELTA = TypeAdapter(dt.timedelta)


def _all_triggers(trigger) -> list:
    if isinstance(trigger, CompoundTrigger | SequenceTrigger):
        return [trigger] + [t for child in trigger.triggers for t in _all_triggers(child)]
    return [trigger]


def reset_trigger_ids(trigger) -> None:
    """Prefect gives every trigger a fresh id on create and update."""
    for each in _all_triggers(trigger):
        each.id = uuid.uuid4()


# --- automations --------------------------------------------------------------------------------

_LOOP_EVENTS = {"prefect.flow-run.Scheduled", "prefect.flow-run.Pending", "prefect.flow-run.Running",
                "prefect.flow-run.*"}  # fmt: skip


class AutomationCore(_Model):
    name: str
    description: str = ""
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)
    trigger: Annotated[Trigger, BeforeValidator(_refuse_cloud_only_triggers)]
    actions: list[Action]
    actions_on_trigger: list[Action] = Field(default_factory=list)
    actions_on_resolve: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _prevent_run_deployment_loops(self):
        trigger = self.trigger
        if not self.enabled or not isinstance(trigger, EventTrigger) or trigger.posture != "Reactive":
            return self
        if not any(e.startswith("prefect.flow-run.") for e in trigger.expect):
            return self
        if not _LOOP_EVENTS.intersection(trigger.expect):
            return self
        for action in self.actions:
            if not isinstance(action, RunDeployment):
                continue
            if action.source == "inferred":
                raise ValueError(
                    "Running an inferred deployment from a flow run state change event will lead to an "
                    "infinite loop of flow runs.  Please choose a specific deployment and add additional "
                    "filtering labels to the match or match_related for this automation's trigger."
                )
            if trigger.match.matches_every_resource_of_kind("prefect.flow-run"):
                relateds = (
                    trigger.match_related
                    if isinstance(trigger.match_related, list)
                    else [trigger.match_related]
                )
                if any(r.matches_every_resource_of_kind("prefect.flow-run") for r in relateds):
                    raise ValueError(
                        "Running a selected deployment from a flow run state change event may lead to an "
                        "infinite loop of flow runs.  Please include additional filtering labels on either "
                        "match or match_related to narrow down which flow runs will trigger this automation "
                        "to exclude flow runs from the deployment you've selected."
                    )
        return self

    def all_actions(self) -> list:
        return [*self.actions, *self.actions_on_trigger, *self.actions_on_resolve]

    def stored(self) -> dict[str, Any]:
        """The columns of the stored automation."""
        data = self.model_dump(mode="json", include=set(AutomationCore.model_fields))
        return data


class _AutomationBody(AutomationCore):
    """What a client sends to create or update an automation: its triggers' ``within`` bounded
    (``MAX_WITHIN``); one stored before the bound is still read back and evaluated."""

    model_config = ConfigDict(ser_json_timedelta="float", extra="forbid")

    _within_bounded = field_validator("trigger")(lambda cls, v: _bounded_within(v))


class AutomationCreate(_AutomationBody):
    owner_resource: str | None = None


class AutomationUpdate(_AutomationBody):
    pass


class AutomationPartialUpdate(_Body):
    enabled: bool = True


class Automation(AutomationCore):
    """A stored automation, read back (its id and times come from the row)."""


def automation_document(automation) -> dict[str, Any]:
    """A stored automation as Prefect's ``Automation`` dumps it: its API answer, and the payload
    of its ``prefect.automation.created|updated|deleted`` events."""
    return {
        "id": str(automation.id),
        "created": iso(automation.created),
        "updated": iso(automation.updated),
        "name": automation.name,
        "description": automation.description,
        "enabled": automation.enabled,
        "tags": automation.tags or [],
        "trigger": automation.trigger,
        "actions": automation.actions,
        "actions_on_trigger": automation.actions_on_trigger or [],
        "actions_on_resolve": automation.actions_on_resolve or [],
    }


SORTS = {"CREATED_DESC": ["-created", "-id"], "UPDATED_DESC": ["-updated", "-id"],
         "NAME_ASC": ["name", "id"], "NAME_DESC": ["-name", "-id"]}  # fmt: skip
