"""Who did something: a user, a service account, or the system itself (or a named system actor
such as "SCIM")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SystemActor:
    label: str = "system"


SYSTEM = SystemActor()


def actor_kind(actor) -> str:
    from accounts.models import ServiceAccount, User

    if isinstance(actor, User):
        return "user"
    if isinstance(actor, ServiceAccount):
        return "service_account"
    if isinstance(actor, SystemActor):
        return "system"
    raise TypeError(f"not an actor: {actor!r}")


def actor_label(actor) -> str:
    if isinstance(actor, SystemActor):
        return actor.label
    return getattr(actor, "email", None) or getattr(actor, "name", None) or str(actor)


SCIM = SystemActor("SCIM")
"""The account's identity provider, acting over SCIM with a SCIM token."""
