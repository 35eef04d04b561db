"""Prefect's ``EventFilter`` grammar, two ways: as a queryset filter over stored events, and as a
predicate over one event (for the live stream of ``/events/out``).

Semantics follow ``prefect.server.events.filters``:

* lists are ORs of their values, criteria are ANDed, an empty list (or ``None``) means "any";
* label values are glob patterns (``*``, ``?``), a leading ``!`` negates one; a label the resource
  does not carry matches nothing (negated or not); an empty list of values matches nothing;
* ``related`` criteria must all hold for one and the same related resource; ``any_resource``
  criteria for one resource among the primary one and the related ones; the role label of a related
  resource is compared exactly.

Ids and roles are read from ``EventResource`` (Prefect's ``event_resources``: one row per event and
resource it involves, the primary one in the role ``""``), as a semi-join ``id IN (SELECT event_id
…)`` bounded by the workspace and the filter's window, which the index ``(workspace, resource_id,
occurred)`` answers: the feed of one flow run or deployment reads that resource's rows, not every
event of the window. The primary resource's id and prefix stay on ``Event.resource_id`` (indexed the
same way), as Prefect keeps them on its events table. Labels other than id and role are kept only in
the event's JSON, so a criterion with labels is checked there, as ``EXISTS`` over the JSON array
(``json_each`` on SQLite, ``jsonb_array_elements`` on PostgreSQL), after the side table has narrowed
the events by id when the criterion names ids. Globs are ``GLOB`` on SQLite (case-sensitive, as
``fnmatchcase``) and ``LIKE`` on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import operator
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import BooleanField, F, Q, QuerySet, TextField, Value, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Concat, Lower, RowNumber, Substr
from django.db.models.lookups import Exact

from orchestration.events.schemas import (
    EventAnyResourceFilter,
    EventFilter,
    EventRelatedFilter,
    EventResourceFilter,
)
from orchestration.models import Event, EventResource

RESOURCE_ID = "prefect.resource.id"
RESOURCE_ROLE = "prefect.resource.role"


# --- Python side: does one event match? ------------------------------------------------------------


def glob_matches(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    if pattern.startswith("!"):
        return not fnmatch.fnmatchcase(value, pattern[1:])
    return fnmatch.fnmatchcase(value, pattern)


def _labels_match(labels: dict[str, list[str]], resource: dict[str, str], role: str | None) -> bool:
    """``role`` is the resource's role (``""`` for the primary resource in ``any_resource``), or
    None where the role label is matched like any other label."""
    for label, patterns in labels.items():
        if label == RESOURCE_ROLE and role is not None:
            if role not in patterns:
                return False
        elif not any(glob_matches(pattern, resource.get(label)) for pattern in patterns):
            return False
    return True


def name_matches(flt: EventFilter, name: str) -> bool:
    criteria = flt.event
    if criteria is None:
        return True
    if criteria.prefix and not any(name.startswith(prefix) for prefix in criteria.prefix):
        return False
    if criteria.exclude_prefix and any(name.startswith(prefix) for prefix in criteria.exclude_prefix):
        return False
    if criteria.name and name not in criteria.name:
        return False
    return not (criteria.exclude_name and name in criteria.exclude_name)


def occurred_matches(flt: EventFilter, occurred: dt.datetime) -> bool:
    return flt.occurred.since <= occurred <= flt.occurred.until


def _resource_matches(criteria: EventResourceFilter, resource: dict[str, str]) -> bool:
    resource_id = resource.get(RESOURCE_ID, "")
    if criteria.id and resource_id not in criteria.id:
        return False
    if criteria.id_prefix and not any(resource_id.startswith(prefix) for prefix in criteria.id_prefix):
        return False
    return not (criteria.labels and not _labels_match(criteria.labels, resource, role=None))


def _related_matches(criteria: EventRelatedFilter, related: Iterable[dict[str, str]]) -> bool:
    if not (criteria.id or criteria.role or criteria.resources_in_roles or criteria.labels):
        return True
    for resource in related:
        resource_id, role = resource.get(RESOURCE_ID), resource.get(RESOURCE_ROLE, "")
        if criteria.id and resource_id not in criteria.id:
            continue
        if criteria.role and role not in criteria.role:
            continue
        if criteria.resources_in_roles and (resource_id, role) not in {
            tuple(pair) for pair in criteria.resources_in_roles
        }:
            continue
        if criteria.labels and not _labels_match(criteria.labels, resource, role=role):
            continue
        return True
    return False


def _any_resource_matches(
    criteria: EventAnyResourceFilter, resource: dict[str, str], related: Iterable[dict[str, str]]
) -> bool:
    candidates = [(resource, ""), *((r, r.get(RESOURCE_ROLE, "")) for r in related)]
    for candidate, role in candidates:
        resource_id = candidate.get(RESOURCE_ID, "")
        if criteria.id and resource_id not in criteria.id:
            continue
        if criteria.id_prefix and not any(resource_id.startswith(prefix) for prefix in criteria.id_prefix):
            continue
        if criteria.labels and not _labels_match(criteria.labels, candidate, role=role):
            continue
        return True
    return False


def parse_text_query(query: str) -> tuple[list[str], list[str], list[str]]:
    """Prefect's text-search syntax: space-separated terms are ORed, ``-term``/``!term`` excluded,
    ``+term`` required, ``"quoted phrases"`` kept whole. Returns (include, exclude, required)."""
    include: list[str] = []
    exclude: list[str] = []
    required: list[str] = []
    i, n = 0, len(query)
    while i < n:
        if query[i].isspace():
            i += 1
            continue
        prefix = None
        if query[i] in "-!+":
            if i + 1 < n and not query[i + 1].isspace():
                prefix = query[i]
            i += 1
            if prefix is None:
                continue
        if i < n and query[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and query[i] != '"':
                if query[i] == "\\" and i + 1 < n and query[i + 1] in '"\\':
                    chars.append(query[i + 1])
                    i += 2
                    continue
                chars.append(query[i])
                i += 1
            i += 1  # the closing quote (if any)
            term = "".join(chars)
            if not term.strip():
                continue
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] != '"':
                i += 1
            term = query[start:i]
            if not term:
                continue
        {"-": exclude, "!": exclude, "+": required}.get(prefix or "", include).append(term)
    return include, exclude, required


def _text_matches(query: str, event: dict[str, Any]) -> bool:
    include, exclude, required = parse_text_query(query)
    parts = [event["event"], *event["resource"].values()]
    for related in event["related"]:
        parts.extend(related.values())
    parts.append(str(event["payload"]))
    text = " ".join(parts).lower()
    if include and not any(term.lower() in text for term in include):
        return False
    if exclude and any(term.lower() in text for term in exclude):
        return False
    return all(term.lower() in text for term in required)


def matches(flt: EventFilter, event: dict[str, Any]) -> bool:
    """Does ``event`` (keys ``id``, ``event``, ``occurred`` as an aware datetime, ``resource``,
    ``related``, ``payload``) pass ``flt``? ``resource.distinct`` and ``order`` do not apply to
    single events."""
    if not occurred_matches(flt, event["occurred"]) or not name_matches(flt, event["event"]):
        return False
    if flt.id.id and str(event["id"]) not in {str(i) for i in flt.id.id}:
        return False
    if flt.resource is not None and not _resource_matches(flt.resource, event["resource"]):
        return False
    for criteria in flt.related_filters:
        if not _related_matches(criteria, event["related"]):
            return False
    for criteria in flt.any_resource_filters:
        if not _any_resource_matches(criteria, event["resource"], event["related"]):
            return False
    return not (flt.text is not None and flt.text.query.strip() and not _text_matches(flt.text.query, event))


# --- SQL side -------------------------------------------------------------------------------------


class _Sql:
    """Builds one boolean SQL fragment (with its parameters) for the current database."""

    def __init__(self):
        self.vendor = connection.vendor
        quote = connection.ops.quote_name
        self.table = quote(Event._meta.db_table)
        self.resource = f"{self.table}.{quote('resource')}"
        self.related = f"{self.table}.{quote('related')}"
        self.resource_id = f"{self.table}.{quote('resource_id')}"

    # A JSON object's label as text (NULL when absent).
    def label(self, obj: str, label: str) -> tuple[str, list]:
        if self.vendor == "postgresql":
            return f"({obj} ->> %s)", [label]
        if '"' in label or "\\" in label:
            return "NULL", []
        return f"json_extract({obj}, %s)", [f'$."{label}"']

    def glob(self, expr: tuple[str, list], pattern: str) -> tuple[str, list]:
        sql, params = expr
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if self.vendor == "postgresql":
            like = "".join(
                {"*": "%", "?": "_", "%": "\\%", "_": "\\_", "\\": "\\\\"}.get(ch, ch) for ch in pattern
            )
            clause, clause_params = f"{sql} LIKE %s ESCAPE '\\'", [*params, like]
        else:
            clause, clause_params = f"{sql} GLOB %s", [*params, pattern]
        return (f"NOT ({clause})" if negated else clause), clause_params

    def starts_with(self, expr: tuple[str, list], prefix: str) -> tuple[str, list]:
        sql, params = expr
        return f"substr({sql}, 1, %s) = %s", [*params, len(prefix), prefix]

    @staticmethod
    def is_in(expr: tuple[str, list], values: list) -> tuple[str, list]:
        sql, params = expr
        return f"{sql} IN ({', '.join(['%s'] * len(values))})", [*params, *values]

    @staticmethod
    def any_of(clauses: list[tuple[str, list]]) -> tuple[str, list]:
        if not clauses:
            return "1 = 0", []
        return "(" + " OR ".join(f"({c})" for c, _ in clauses) + ")", [p for _, ps in clauses for p in ps]

    @staticmethod
    def all_of(clauses: list[tuple[str, list]]) -> tuple[str, list]:
        if not clauses:
            return "1 = 1", []
        return "(" + " AND ".join(f"({c})" for c, _ in clauses) + ")", [p for _, ps in clauses for p in ps]

    def exists_related(self, condition) -> tuple[str, list]:
        """``EXISTS`` a related resource (bound as ``_r.value``) for which ``condition(obj)`` holds."""
        sql, params = condition("_r.value")
        if self.vendor == "postgresql":
            source = f"jsonb_array_elements({self.related}) AS _r(value)"
        else:
            source = f"json_each({self.related}) AS _r"
        # Only quoted identifiers and built fragments are interpolated; values are parameters.
        return f"EXISTS (SELECT 1 FROM {source} WHERE {sql})", params  # noqa: S608

    def label_criteria(
        self,
        obj: str,
        labels: dict[str, list[str]],
        *,
        role_sql: tuple[str, list] | None,
        role_const: str | None,
    ) -> list[tuple[str, list]]:
        clauses = []
        for label, patterns in labels.items():
            if label == RESOURCE_ROLE and (role_sql is not None or role_const is not None):
                if role_const is not None:
                    clauses.append(("1 = 1", []) if role_const in patterns else ("1 = 0", []))
                else:
                    clauses.append(self.is_in(role_sql, patterns) if patterns else ("1 = 0", []))
                continue
            expr = (
                (self.resource_id, [])
                if (obj == self.resource and label == RESOURCE_ID)
                else self.label(obj, label)
            )
            clauses.append(self.any_of([self.glob(expr, pattern) for pattern in patterns]))
        return clauses


def _raw(sql: str, params: list) -> RawSQL:
    return RawSQL(sql, params, output_field=BooleanField())  # noqa: S611 - values are parameters


def _related_condition(sql: _Sql, criteria: EventRelatedFilter):
    def condition(obj: str) -> tuple[str, list]:
        resource_id = sql.label(obj, RESOURCE_ID)
        role = sql.label(obj, RESOURCE_ROLE)
        clauses = []
        if criteria.id:
            clauses.append(sql.is_in(resource_id, criteria.id))
        if criteria.role:
            clauses.append(sql.is_in(role, criteria.role))
        if criteria.resources_in_roles:
            clauses.append(
                sql.any_of(
                    [
                        sql.all_of([sql.is_in(resource_id, [rid]), sql.is_in(role, [rrole])])
                        for rid, rrole in criteria.resources_in_roles
                    ]
                )
            )
        if criteria.labels:
            clauses.extend(sql.label_criteria(obj, criteria.labels, role_sql=role, role_const=None))
        return sql.all_of(clauses)

    return condition


def _any_resource_clause(sql: _Sql, criteria: EventAnyResourceFilter) -> tuple[str, list]:
    """The exact ``any_resource`` condition over the event's JSON (needed when it has labels)."""

    def condition(obj: str, *, primary: bool) -> tuple[str, list]:
        resource_id = (sql.resource_id, []) if primary else sql.label(obj, RESOURCE_ID)
        clauses = []
        if criteria.id:
            clauses.append(sql.is_in(resource_id, criteria.id))
        if criteria.id_prefix:
            clauses.append(
                sql.any_of([sql.starts_with(resource_id, prefix) for prefix in criteria.id_prefix])
            )
        if criteria.labels:
            clauses.extend(
                sql.label_criteria(
                    obj,
                    criteria.labels,
                    role_sql=None if primary else sql.label(obj, RESOURCE_ROLE),
                    role_const="" if primary else None,
                )
            )
        return sql.all_of(clauses)

    related = sql.exists_related(lambda obj: condition(obj, primary=False))
    return sql.any_of([condition(sql.resource, primary=True), related])


# --- The side table: events by the ids and roles of the resources they involve ----------------------


def _starts_with(prefix: str) -> Q:
    # ``substr`` rather than ``LIKE``: SQLite's ``LIKE`` ignores case; a prefix is compared exactly.
    return Q(Exact(Substr("resource_id", 1, len(prefix)), Value(prefix)))


def _either(conditions: Iterable[Q]) -> Q:
    return functools.reduce(operator.or_, conditions)


def involving(workspace_id: uuid.UUID, flt: EventFilter, condition: Q) -> QuerySet:
    """The workspace's ``EventResource`` rows in the filter's window for which ``condition``
    holds (an event may have several: its own resource and related ones)."""
    return EventResource.objects.for_workspace(workspace_id).filter(
        condition, occurred__gte=flt.occurred.since, occurred__lte=flt.occurred.until
    )


def _involving(workspace_id: uuid.UUID, flt: EventFilter, condition: Q) -> QuerySet:
    """The ids of the workspace's events in the filter's window that involve a resource for which
    ``condition`` (over ``EventResource``) holds."""
    return involving(workspace_id, flt, condition).values("event_id")


def resource_feed_condition(flt: EventFilter) -> Q | None:
    """When ``flt`` is nothing but its window and one criterion of resource ids, roles or prefixes
    (the feed of one resource: a flow's, a deployment's), that criterion over ``EventResource``,
    which then answers alone which events match and in what order; None otherwise."""
    names = flt.event
    if (
        flt.id.id
        or flt.resource is not None
        or (flt.text is not None and flt.text.query.strip())
        or (names is not None and (names.prefix or names.exclude_prefix or names.name or names.exclude_name))
    ):
        return None
    criteria = [(c, _related_side_condition(c)) for c in flt.related_filters] + [
        (c, _any_resource_side_condition(c)) for c in flt.any_resource_filters
    ]
    if len(criteria) != 1:
        return None
    criterion, side = criteria[0]
    if side is None or criterion.labels:
        return None
    return side


def _related_side_condition(criteria: EventRelatedFilter) -> Q | None:
    """``criteria``'s ids and roles over ``EventResource`` (related resources only: role not ``""``),
    or None when it names neither."""
    if not (criteria.id or criteria.role or criteria.resources_in_roles):
        return None
    condition = ~Q(resource_role="")
    if criteria.id:
        condition &= Q(resource_id__in=criteria.id)
    if criteria.role:
        condition &= Q(resource_role__in=criteria.role)
    if criteria.resources_in_roles:
        condition &= _either(
            Q(resource_id=resource_id, resource_role=role)
            for resource_id, role in criteria.resources_in_roles
        )
    return condition


def _any_resource_side_condition(criteria: EventAnyResourceFilter) -> Q | None:
    """``criteria``'s ids and prefixes over ``EventResource`` (any role, the primary resource's
    ``""`` included), or None when it names neither."""
    if not (criteria.id or criteria.id_prefix):
        return None
    condition = Q()
    if criteria.id:
        condition &= Q(resource_id__in=criteria.id)
    if criteria.id_prefix:
        condition &= _either(_starts_with(prefix) for prefix in criteria.id_prefix)
    return condition


def apply_filter(queryset: QuerySet, flt: EventFilter, *, workspace_id: uuid.UUID) -> QuerySet:
    """``queryset`` (events of the workspace ``workspace_id``) narrowed by ``flt``; ordering and
    ``distinct`` are left to ``order_events``."""
    sql = _Sql()
    qs = queryset.filter(occurred__gte=flt.occurred.since, occurred__lte=flt.occurred.until)

    names = flt.event
    if names is not None:
        if names.prefix:
            q = Q()
            for prefix in names.prefix:
                q |= Q(event__startswith=prefix)
            qs = qs.filter(q)
        for prefix in names.exclude_prefix or ():
            qs = qs.exclude(event__startswith=prefix)
        if names.name:
            qs = qs.filter(event__in=names.name)
        if names.exclude_name:
            qs = qs.exclude(event__in=names.exclude_name)

    if flt.id.id:
        qs = qs.filter(id__in=flt.id.id)

    resource = flt.resource
    if resource is not None:
        if resource.id:
            qs = qs.filter(resource_id__in=resource.id)
        if resource.id_prefix:
            qs = qs.filter(
                _raw(*sql.any_of([sql.starts_with((sql.resource_id, []), p) for p in resource.id_prefix]))
            )
        if resource.labels:
            qs = qs.filter(
                _raw(
                    *sql.all_of(
                        sql.label_criteria(sql.resource, resource.labels, role_sql=None, role_const=None)
                    )
                )
            )

    for criteria in flt.related_filters:
        side = _related_side_condition(criteria)
        if side is not None:
            qs = qs.filter(id__in=_involving(workspace_id, flt, side))
        if criteria.labels:
            # The labels must hold for the very resource the ids name: checked on the JSON.
            qs = qs.filter(_raw(*sql.exists_related(_related_condition(sql, criteria))))

    for criteria in flt.any_resource_filters:
        side = _any_resource_side_condition(criteria)
        if side is not None:
            qs = qs.filter(id__in=_involving(workspace_id, flt, side))
        if criteria.labels:
            qs = qs.filter(_raw(*_any_resource_clause(sql, criteria)))

    if flt.text is not None and flt.text.query.strip():
        include, exclude, required = parse_text_query(flt.text.query)
        qs = qs.annotate(
            _search=Lower(
                Concat(
                    F("event"),
                    Value(" "),
                    Cast("resource", TextField()),
                    Value(" "),
                    Cast("related", TextField()),
                    Value(" "),
                    Cast("payload", TextField()),
                    output_field=TextField(),
                )
            )
        )
        if include:
            q = Q()
            for term in include:
                q |= Q(_search__contains=term.lower())
            qs = qs.filter(q)
        for term in exclude:
            qs = qs.exclude(_search__contains=term.lower())
        for term in required:
            qs = qs.filter(_search__contains=term.lower())
    return qs


def order_events(queryset: QuerySet, flt: EventFilter) -> QuerySet:
    """Ordered by ``occurred`` (then id, for stable pages); with ``resource.distinct``, only the
    first event of each resource in that order."""
    descending = flt.order == "DESC"
    ordering = ["-occurred", "-id"] if descending else ["occurred", "id"]
    if flt.resource is not None and flt.resource.distinct:
        queryset = queryset.annotate(
            _rank=Window(
                RowNumber(),
                partition_by=[F("resource_id")],
                order_by=[F("occurred").desc(), F("id").desc()]
                if descending
                else [F("occurred").asc(), F("id").asc()],
            )
        ).filter(_rank=1)
    return queryset.order_by(*ordering)


def count_matching(queryset: QuerySet, flt: EventFilter) -> int:
    if flt.resource is not None and flt.resource.distinct:
        return queryset.values("resource_id").distinct().count()
    return queryset.count()
