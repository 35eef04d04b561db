"""The audit event registry: each event type is registered once, with a stable id.

Ids are stored in every record and must never be reused or renumbered; names and templates may be
reworded. Registering an id or an api name twice fails at import time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AuditEventType:
    id: int
    name: str  # SCREAMING_SNAKE, for code
    api_name: str  # dotted, for people and exports: "api-key.created"
    template: str  # str.format over the record's payload plus actor/target labels

    def render(self, **values) -> str:
        try:
            return self.template.format(**values)
        except (KeyError, IndexError, ValueError):
            return self.api_name


class DuplicateAuditEvent(ValueError):
    pass


class AuditEventRegistry:
    def __init__(self) -> None:
        self._by_id: dict[int, AuditEventType] = {}
        self._by_api_name: dict[str, AuditEventType] = {}
        self._by_name: dict[str, AuditEventType] = {}

    def register(self, event: AuditEventType) -> AuditEventType:
        for index, key in (
            (self._by_id, event.id),
            (self._by_api_name, event.api_name),
            (self._by_name, event.name),
        ):
            if key in index:
                raise DuplicateAuditEvent(f"audit event {key!r} is already registered")
        self._by_id[event.id] = event
        self._by_api_name[event.api_name] = event
        self._by_name[event.name] = event
        return event

    def get(self, key: int | str) -> AuditEventType:
        if isinstance(key, int):
            return self._by_id[key]
        return self._by_api_name.get(key) or self._by_name[key]

    def all(self) -> list[AuditEventType]:
        return sorted(self._by_id.values(), key=lambda event: event.id)


registry = AuditEventRegistry()


def register(*, id: int, name: str, api_name: str, template: str) -> AuditEventType:  # noqa: A002
    return registry.register(AuditEventType(id=id, name=name, api_name=api_name, template=template))
