"""Who did something: a user, a service account, or the system itself (or a named system actor
such as "SCIM").

Actors are recognised by a small protocol, not by their classes: anything that acts names its kind
in ``audit_actor_kind`` (``accounts.models.User`` says "user", ``ServiceAccount`` says
"service_account") and is labelled by its ``email`` or ``name``. So the audit log knows nothing of
the apps above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

ACTOR_KINDS = ("user", "service_account", "system")


@runtime_checkable
class Actor(Protocol):
    audit_actor_kind: ClassVar[str]


@dataclass(frozen=True)
class SystemActor:
    audit_actor_kind: ClassVar[str] = "system"
    label: str = "system"


SYSTEM = SystemActor()


def actor_kind(actor) -> str:
    kind = getattr(actor, "audit_actor_kind", None)
    if kind not in ACTOR_KINDS:
        raise TypeError(f"not an actor: {actor!r}")
    return kind


def actor_label(actor) -> str:
    if isinstance(actor, SystemActor):
        return actor.label
    return getattr(actor, "email", None) or getattr(actor, "name", None) or str(actor)


SCIM = SystemActor("SCIM")
"""The account's identity provider, acting over SCIM with a SCIM token."""
