"""SCIM 2.0 (RFC 7643/7644) protocol pieces: errors, list responses, filters and PATCH.

Filters are parsed with ``scim2-filter-parser`` (django-scim2's parser) and translated here into a
Django ``Q`` over a map of the resource's attributes, so the account bound, the filter and the
count all run in SQL. PATCH operations are applied to the resource's SCIM representation in every
form Okta and Microsoft Entra ID send (capitalised ops, path-less value objects, ``"True"`` /
``"False"`` strings, value-filtered paths such as ``emails[type eq "work"].value`` and
``members[value eq "…"]``, extension URNs in paths), and the result is then saved like a PUT.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.db.models.functions import Lower
from django.db.models.lookups import Exact
from django_scim.constants import SCIM_CONTENT_TYPE, SchemaURI
from django_scim.schemas import ALL
from scim2_filter_parser import ast as fast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser

from core.ids import as_uuid

CONTENT_TYPE = SCIM_CONTENT_TYPE
ERROR_SCHEMA = SchemaURI.ERROR
LIST_SCHEMA = SchemaURI.LIST_RESPONSE
PATCH_SCHEMA = SchemaURI.PATCH_OP
USER_SCHEMA = SchemaURI.USER
GROUP_SCHEMA = SchemaURI.GROUP
ENTERPRISE_USER_SCHEMA = SchemaURI.ENTERPRISE_USER

MAX_PAGE = 200
MAX_START_INDEX = 2**62


class ScimError(Exception):
    """An error answered in SCIM's shape (RFC 7644 §3.12)."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def bad_request(detail: str, scim_type: str = "invalidValue") -> ScimError:
    return ScimError(400, detail, scim_type)


def not_found(detail: str = "Resource not found.") -> ScimError:
    return ScimError(404, detail)


# --- paging ---------------------------------------------------------------------------------------


def paging(params: Mapping[str, str]) -> tuple[int, int]:
    """``(startIndex, count)``: 1-based, clamped as RFC 7644 §3.4.2.4 says (a start below 1 is 1,
    a negative count is 0); non-integers are a 400."""
    try:
        start = int(params.get("startIndex", "1") or "1")
        count = int(params.get("count", str(MAX_PAGE)) or str(MAX_PAGE))
    except ValueError:
        raise bad_request("startIndex and count must be integers.") from None
    # A start past any table's size is an empty page, not a number the database cannot hold.
    return max(1, min(start, MAX_START_INDEX)), max(0, min(count, MAX_PAGE))


def list_response(resources: list[dict], *, total: int, start: int) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "itemsPerPage": len(resources),
        "startIndex": start,
        "Resources": resources,
    }


# --- filters --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attr:
    """A filterable attribute: the ORM path, its kind, and whether string matching ignores case
    (RFC 7643 ``caseExact``)."""

    field: str
    kind: str = "string"  # string | boolean | datetime | reference
    case_exact: bool = False


def parse_filter(text: str):
    try:
        return SCIMParser().parse(SCIMLexer().tokenize(text))
    except Exception:
        raise bad_request(f"The filter {text!r} is not a valid SCIM filter.", "invalidFilter") from None


def filter_q(text: str, attributes: Mapping[str, Attr]) -> Q:
    """A ``Q`` for a SCIM filter over ``attributes`` (keys lower-cased: ``username``,
    ``emails.value``, ``emails[type eq "work"].value`` is ``emails.value`` with the type check)."""
    tree = parse_filter(text)
    return _node_q(tree, attributes, prefix="")


def _attr_name(path: fast.AttrPath, prefix: str) -> str:
    name = str(path.attr_name)
    uri = getattr(path, "uri", None)
    if uri and str(uri).rstrip(":").lower() not in (USER_SCHEMA.lower(), GROUP_SCHEMA.lower()):
        name = f"{str(uri).rstrip(':')}:{name}"
    sub = getattr(path, "sub_attr", None)
    if sub is not None:
        name = f"{name}.{sub.value}"
    return (f"{prefix}.{name}" if prefix else name).lower()


def _node_q(node, attributes: Mapping[str, Attr], prefix: str) -> Q:
    if isinstance(node, fast.Filter):
        namespace = getattr(node, "namespace", None)
        inner_prefix = prefix
        if namespace is not None:  # emails[type eq "work"]: the bracket filter applies to emails
            inner_prefix = _attr_name(namespace, prefix)
        q = _node_q(node.expr, attributes, inner_prefix)
        return ~q if node.negated else q
    if isinstance(node, fast.LogExpr):
        left = _node_q(node.expr1, attributes, prefix)
        right = _node_q(node.expr2, attributes, prefix)
        return (left & right) if str(node.op).lower() == "and" else (left | right)
    if isinstance(node, fast.AttrExpr):
        path = node.attr_path
        if isinstance(path, fast.AttrPath) and isinstance(getattr(path, "attr_name", None), str):
            name = _attr_name(path, prefix)
            value_filter = None
        else:  # a value path: emails[type eq "work"].value eq "…"
            value_filter = path
            name = None
        if value_filter is not None:
            return _value_path_q(node, value_filter, attributes, prefix)
        return _compare(name, str(node.value).lower(), node.comp_value, attributes)
    raise bad_request("This filter is not supported.", "invalidFilter")


def _value_path_q(node, path, attributes, prefix) -> Q:
    """``emails[type eq "work"].value eq "…"``: the attribute is ``emails.value``. Only one value
    of each multi-valued attribute is stored in a column (the address the person signs in with),
    so the bracket's condition cannot narrow it further and is not applied."""
    value_filter = path.attr_name
    namespace = getattr(value_filter, "namespace", None)
    if not isinstance(value_filter, fast.Filter) or namespace is None:
        raise bad_request("This filter is not supported.", "invalidFilter")
    name = _attr_name(namespace, prefix)
    if getattr(path, "sub_attr", None) is not None:
        name = f"{name}.{path.sub_attr.value}".lower()
    return _compare(name, str(node.value).lower(), node.comp_value, attributes)


def _coerce(value: Any, attr: Attr) -> Any:
    if attr.kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "false"):
            return text == "true"
        raise bad_request(f"{value!r} is not a boolean.", "invalidFilter")
    if attr.kind == "datetime":
        try:
            return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"{value!r} is not a date and time.", "invalidFilter") from None
    if attr.kind == "reference":
        return as_uuid(value) if isinstance(value, str) else None
    return value


_LOOKUPS = {
    "eq": ("exact", "iexact"),
    "co": ("contains", "icontains"),
    "sw": ("startswith", "istartswith"),
    "ew": ("endswith", "iendswith"),
    "gt": ("gt", "gt"),
    "ge": ("gte", "gte"),
    "lt": ("lt", "lt"),
    "le": ("lte", "lte"),
}


def _compare(name: str, op: str, comp, attributes: Mapping[str, Attr]) -> Q:
    attr = attributes.get(name)
    if attr is None:
        # An attribute this service does not store matches nothing (RFC 7644 §3.4.2.2).
        return Q(pk__in=[])
    if op == "pr":
        if attr.kind == "string":
            return Q(**{f"{attr.field}__isnull": False}) & ~Q(**{attr.field: ""})
        return Q(**{f"{attr.field}__isnull": False})
    raw = comp.value if comp is not None else None
    if raw is None:  # ``eq null``
        return Q(**{f"{attr.field}__isnull": True}) if op == "eq" else Q(**{f"{attr.field}__isnull": False})
    value = _coerce(raw, attr)
    if attr.kind == "reference" and value is None and op in ("eq", "ne"):
        # Not an id this service hands out (ids are UUIDs): no resource has it.
        return Q(pk__in=[]) if op == "eq" else Q()
    if attr.kind == "reference" and value is None:
        raise bad_request(f"{raw!r} is not an id.", "invalidFilter")
    if op == "ne":
        return ~_compare(name, "eq", comp, attributes)
    if op not in _LOOKUPS:
        raise bad_request(f"The operator {op!r} is not supported.", "invalidFilter")
    if op in ("co", "sw", "ew") and attr.kind != "string":
        raise bad_request(f"{op} applies to strings only.", "invalidFilter")
    exact, insensitive = _LOOKUPS[op]
    if op == "eq" and attr.kind == "string" and not attr.case_exact:
        # LOWER(column) = lower(value): what the case-insensitive unique indexes are built on.
        return Q(Exact(Lower(attr.field), str(value).lower()))
    lookup = exact if (attr.case_exact or attr.kind != "string") else insensitive
    return Q(**{f"{attr.field}__{lookup}": value})


# --- PATCH ----------------------------------------------------------------------------------------

_VALUE_PATH = re.compile(r"^(?P<attr>[^\[\]]+)\[(?P<filter>.+)\](?:\.(?P<sub>[A-Za-z0-9_$-]+))?$")
_SIMPLE_FILTER = re.compile(
    r'^\s*(?P<attr>[A-Za-z0-9_.$-]+)\s+eq\s+(?P<value>"(?:[^"\\]|\\.)*"|true|false|null|[0-9.+-]+)\s*$', re.I
)


def as_bool(value: Any, what: str = "active") -> bool:
    """A SCIM boolean; Entra ID sends ``"True"``/``"False"`` strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise bad_request(f"{what} must be a boolean.")


def _split_urn(path: str, known_urns: tuple[str, ...]) -> tuple[str | None, str]:
    lower = path.lower()
    for urn in known_urns:
        if lower.startswith(urn.lower() + ":"):
            return urn, path[len(urn) + 1 :]
        if lower == urn.lower():
            return urn, ""
    return None, path


def _find_key(obj: Mapping, name: str) -> str | None:
    """Attribute names are case-insensitive (RFC 7643 §2.1)."""
    for key in obj:
        if key.lower() == name.lower():
            return key
    return None


def _matches(item: Any, condition: str) -> bool:
    match = _SIMPLE_FILTER.match(condition)
    if match is None:
        raise bad_request(f"The path filter {condition!r} is not supported.", "invalidPath")
    attr, raw = match.group("attr"), match.group("value")
    if raw.startswith('"'):
        expected: Any = raw[1:-1].replace('\\"', '"')
    elif raw.lower() in ("true", "false"):
        expected = raw.lower() == "true"
    elif raw.lower() == "null":
        expected = None
    else:
        expected = raw
    if not isinstance(item, Mapping):
        return False
    key = _find_key(item, attr)
    actual = item.get(key) if key else None
    if isinstance(expected, str) and isinstance(actual, str):
        return actual.lower() == expected.lower()
    return actual == expected


def _container(resource: dict, urn: str | None) -> dict:
    if urn is None:
        return resource
    key = _find_key(resource, urn) or urn
    if not isinstance(resource.get(key), dict):
        resource[key] = {}
    return resource[key]


def _merge(target: dict, value: Mapping) -> None:
    """``add`` of a complex value: sub-attributes replace, multi-valued ones append."""
    for name, item in value.items():
        key = _find_key(target, name) or name
        if isinstance(item, list) and isinstance(target.get(key), list):
            target[key] = target[key] + [v for v in item if v not in target[key]]
        elif isinstance(item, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], item)
        else:
            target[key] = copy.deepcopy(item)


def schema_attributes(*schema_ids: str) -> frozenset[str]:
    """Lower-cased attribute names the schemas define (RFC 7643 §8.7), plus the common ones."""

    names = {"schemas", "id", "externalid", "meta"}
    for document in ALL:
        if document.get("id") in schema_ids:
            names.update(attribute["name"].lower() for attribute in document.get("attributes", []))
    return frozenset(names)


def apply_patch(
    resource: dict, body: Any, *, known_urns: tuple[str, ...], attributes: frozenset[str] | None = None
) -> dict:
    """``resource`` (a SCIM representation) with the PATCH request ``body`` applied. A path naming
    an attribute outside ``attributes`` (when given) is a 400 ``noTarget``."""
    if not isinstance(body, Mapping):
        raise bad_request("The body must be a SCIM PatchOp object.", "invalidSyntax")
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not operations:
        raise bad_request("Operations must be a non-empty list.", "invalidSyntax")
    result = copy.deepcopy(resource)
    for operation in operations:
        if not isinstance(operation, Mapping):
            raise bad_request("Each operation must be an object.", "invalidSyntax")
        op = str(operation.get("op", "")).strip().lower()
        if op not in ("add", "remove", "replace"):
            raise bad_request(f"Unknown PATCH op {operation.get('op')!r}.", "invalidSyntax")
        path = operation.get("path")
        value = operation.get("value")
        if path in (None, ""):
            _apply_pathless(result, op, value, known_urns)
        elif not isinstance(path, str):
            raise bad_request("path must be a string.", "invalidPath")
        else:
            if attributes is not None:
                _check_target(path.strip(), known_urns, attributes)
            _apply_path(result, op, path.strip(), value, known_urns, has_value="value" in operation)
    return result


def _check_target(path: str, known_urns: tuple[str, ...], attributes: frozenset[str]) -> None:
    urn, rest = _split_urn(path, known_urns)
    if not rest:
        return
    name = re.split(r"[.\[]", rest, maxsplit=1)[0].lower()
    if name not in attributes:
        raise bad_request(f"The path {path!r} names no attribute of this resource.", "noTarget")


def _apply_pathless(result: dict, op: str, value: Any, known_urns: tuple[str, ...]) -> None:
    if op == "remove":
        raise bad_request("remove needs a path.", "noTarget")
    if not isinstance(value, Mapping):
        raise bad_request("Without a path, value must be an object of attributes.", "invalidValue")
    for name, item in value.items():
        # Okta and Entra send ``{"name.givenName": …}`` or extension URNs as keys too.
        _apply_path(result, op, name, item, known_urns, has_value=True)


def _apply_path(
    result: dict, op: str, path: str, value: Any, known_urns: tuple[str, ...], *, has_value: bool
) -> None:
    urn, rest = _split_urn(path, known_urns)
    target = _container(result, urn)
    if not rest:
        if op == "remove":
            key = _find_key(result, urn) if urn else None
            if key:
                result.pop(key)
            return
        if not isinstance(value, Mapping):
            raise bad_request(f"{path} needs an object value.", "invalidValue")
        if op == "replace":
            target.clear()
        _merge(target, value)
        return
    bracket = _VALUE_PATH.match(rest)
    if bracket is not None:
        _apply_value_path(target, op, bracket, value, has_value=has_value, path=path)
        return
    if (
        "[" in rest
        or "]" in rest
        or not all(re.fullmatch(r"[A-Za-z0-9_$-]+", part) for part in rest.split("."))
    ):
        raise bad_request(f"The path {path!r} is not a valid attribute path.", "invalidPath")
    names = rest.split(".")
    if len(names) > 2:
        raise bad_request(f"The path {path!r} is not supported.", "invalidPath")
    parent = target
    if len(names) == 2:
        key = _find_key(parent, names[0]) or names[0]
        if not isinstance(parent.get(key), dict):
            if op == "remove":
                return
            parent[key] = {}
        parent = parent[key]
    name = names[-1]
    key = _find_key(parent, name) or name
    if op == "remove":
        if has_value and isinstance(parent.get(key), list) and isinstance(value, list):
            # Entra ID: {"op": "Remove", "path": "members", "value": [{"value": "<id>"}]} removes
            # only those members, never the whole list.
            drop = [_identity(item) for item in value]
            parent[key] = [item for item in parent[key] if _identity(item) not in drop]
            return
        parent.pop(key, None)
        return
    if not has_value:
        raise bad_request(f"{op} needs a value.", "invalidValue")
    current = parent.get(key)
    if op == "add" and isinstance(current, list):
        items = value if isinstance(value, list) else [value]
        parent[key] = current + [item for item in items if _identity(item) not in map(_identity, current)]
    elif op == "add" and isinstance(current, dict) and isinstance(value, Mapping):
        _merge(current, value)
    else:
        parent[key] = copy.deepcopy(value)


def _identity(item: Any) -> Any:
    if isinstance(item, Mapping):
        key = _find_key(item, "value")
        if key is not None:
            return str(item[key]).lower()
    return item


def _apply_value_path(
    target: dict, op: str, match: re.Match, value: Any, *, has_value: bool, path: str
) -> None:
    attr, condition, sub = match.group("attr"), match.group("filter"), match.group("sub")
    key = _find_key(target, attr) or attr
    items = target.get(key)
    if not isinstance(items, list):
        items = []
    selected = [item for item in items if _matches(item, condition)]
    if op == "remove":
        if sub is None:
            target[key] = [item for item in items if item not in selected]
        else:
            for item in selected:
                sub_key = _find_key(item, sub)
                if sub_key:
                    item.pop(sub_key)
        return
    if not has_value:
        raise bad_request(f"{op} needs a value.", "invalidValue")
    if not selected:
        if op == "replace" and sub is None:
            raise bad_request(f"No value matches {path!r}.", "noTarget")
        # emails[type eq "work"].value on a user without a work email: add one.
        created = _item_from_condition(condition)
        items.append(created)
        selected = [created]
    for item in selected:
        if sub is None:
            if isinstance(value, Mapping):
                if op == "replace":
                    keep = {
                        k: v
                        for k, v in item.items()
                        if _SIMPLE_FILTER.match(condition)
                        and k.lower() == _SIMPLE_FILTER.match(condition).group("attr").lower()
                    }
                    item.clear()
                    item.update(keep)
                _merge(item, value)
            else:
                raise bad_request(f"{path} needs an object value.", "invalidValue")
        else:
            item[_find_key(item, sub) or sub] = copy.deepcopy(value)
    target[key] = items


def _item_from_condition(condition: str) -> dict:
    match = _SIMPLE_FILTER.match(condition)
    if match is None:
        raise bad_request(f"The path filter {condition!r} is not supported.", "invalidPath")
    raw = match.group("value")
    return {match.group("attr"): raw[1:-1] if raw.startswith('"') else raw}


def get_in(resource: Mapping, *names: str, default: Any = None) -> Any:
    """``resource[names[0]][names[1]]…`` with case-insensitive keys."""
    current: Any = resource
    for name in names:
        if not isinstance(current, Mapping):
            return default
        key = _find_key(current, name)
        if key is None:
            return default
        current = current[key]
    return current


def primary_or_typed(values: Any, type_: str | None = "work") -> str | None:
    """The value of a multi-valued attribute (emails): the primary one, else the one of ``type_``,
    else the first."""
    if not isinstance(values, list):
        return None
    entries = [v for v in values if isinstance(v, Mapping) and get_in(v, "value")]
    for check in (
        lambda v: get_in(v, "primary") in (True, "true", "True"),
        lambda v: type_ is not None and str(get_in(v, "type", default="")).lower() == type_,
        lambda v: True,
    ):
        for entry in entries:
            if check(entry):
                return str(get_in(entry, "value"))
    return None


Projector = Callable[[dict], dict]


def projector(params: Mapping[str, str], always: tuple[str, ...] = ("id", "schemas")) -> Projector:
    """``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5) as a function on a resource."""
    include = [a.strip() for a in (params.get("attributes") or "").split(",") if a.strip()]
    exclude = [a.strip() for a in (params.get("excludedAttributes") or "").split(",") if a.strip()]

    def top(name: str) -> str:
        base = name
        for urn in (USER_SCHEMA, GROUP_SCHEMA):
            if base.lower().startswith(urn.lower() + ":"):
                base = base[len(urn) + 1 :]
        return base.split(".")[0].lower()

    def project(resource: dict) -> dict:
        if include:
            wanted = {top(a) for a in include} | {a.lower() for a in always}
            extension_wanted = {a.lower() for a in include}
            return {k: v for k, v in resource.items() if k.lower() in wanted or k.lower() in extension_wanted}
        if exclude:
            unwanted = {top(a) for a in exclude} - {a.lower() for a in always}
            return {k: v for k, v in resource.items() if k.lower() not in unwanted}
        return resource

    return project
