"""Creating and changing accounts and workspaces (tenants): the services that also make the first
Owner's membership, check the plan and write the audit record."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.permissions import AccountRole
from accounts.services import membership_add
from audit import events
from audit.services import audit_record, audited_update
from billing import entitlements
from billing.plans import get_plan
from billing.services import read_only_recheck_on_commit
from core.errors import Conflict, InvalidInput
from tenants.handles import handle_from_name, validate_handle
from tenants.models import Account, Workspace


def _clean_name(name: str, what: str) -> str:
    if name is not None and not isinstance(name, str):
        raise InvalidInput(f"A {what}'s name must be a string.", code="invalid_name")
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput(f"A {what} needs a name of 1 to 200 characters.", code="invalid_name")
    return name


def _clean_description(description) -> str:
    if description is not None and not isinstance(description, str):
        raise InvalidInput("A description must be a string.", code="invalid_description")
    return description or ""


def _checked_handle(handle: str) -> str:
    if not isinstance(handle, str):
        raise InvalidInput("A handle must be a string.", code="invalid_handle")
    try:
        validate_handle(handle)
    except ValidationError as error:
        raise InvalidInput(error.messages[0], code="invalid_handle") from None
    return handle


def _free_handle(base: str, taken) -> str:
    candidate, n = base, 1
    while taken(candidate):
        n += 1
        suffix = f"-{n}"
        candidate = base[: 63 - len(suffix)].rstrip("-") + suffix
    return candidate


def account_create(*, name: str, owner, actor, handle: str | None = None, plan: str | None = None) -> Account:
    """A new account with ``owner`` as its first Owner."""
    name = _clean_name(name, "account")
    plan_key = plan or settings.DEFAULT_PLAN
    try:
        get_plan(plan_key)
    except ValueError as error:
        raise InvalidInput(str(error), code="invalid_plan") from None
    with transaction.atomic():
        if handle:
            handle = _checked_handle(handle)
            if Account.objects.filter(handle=handle).exists():
                raise Conflict(f"The account handle {handle!r} is taken.", code="handle_taken")
        else:
            handle = _free_handle(handle_from_name(name), lambda h: Account.objects.filter(handle=h).exists())
        try:
            with transaction.atomic():
                account = Account.objects.create(name=name, handle=handle, plan=plan_key)
        except IntegrityError:
            raise Conflict(f"The account handle {handle!r} is taken.", code="handle_taken") from None
        audit_record(event=events.ACCOUNT_CREATED, actor=actor, account=account, target=account)
        membership_add(account=account, user=owner, role=AccountRole.OWNER, actor=actor)
    return account


def workspace_create(
    *, account: Account, name: str, actor, handle: str | None = None, description: str = ""
) -> Workspace:
    name = _clean_name(name, "workspace")
    description = _clean_description(description)
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        entitlements.ensure_workspace(account)
        siblings = Workspace.objects.filter(account=account)
        if siblings.filter(name=name).exists():
            raise Conflict(f"A workspace named {name!r} already exists in this account.", code="name_taken")
        if handle:
            handle = _checked_handle(handle)
            if siblings.filter(handle=handle).exists():
                raise Conflict(
                    f"The workspace handle {handle!r} is taken in this account.", code="handle_taken"
                )
        else:
            handle = _free_handle(handle_from_name(name), lambda h: siblings.filter(handle=h).exists())
        try:
            with transaction.atomic():
                workspace = Workspace.objects.create(
                    account=account, name=name, handle=handle, description=description
                )
        except IntegrityError:
            raise Conflict(
                "A workspace with this name or handle already exists.", code="name_taken"
            ) from None
        audit_record(
            event=events.WORKSPACE_CREATED,
            actor=actor,
            account=account,
            workspace=workspace,
            target=workspace,
        )
    return workspace


def account_change_plan(*, account: Account, plan: str, actor) -> Account:
    try:
        get_plan(plan)
    except ValueError as error:
        raise InvalidInput(str(error), code="invalid_plan") from None
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        old_plan = account.plan
        if old_plan != plan:
            account.plan = plan
            account.save(update_fields=["plan", "updated"])
            audit_record(
                event=events.ACCOUNT_PLAN_CHANGED,
                actor=actor,
                account=account,
                target=account,
                payload={"plan": plan, "old_plan": old_plan},
            )
    return account


def _workspace_snapshot(workspace: Workspace) -> dict:
    return {"name": workspace.name, "handle": workspace.handle, "description": workspace.description}


def workspace_update(
    *, workspace: Workspace, actor, name: str | None = None, handle: str | None = None, description=None
) -> Workspace:
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=workspace.account_id)
        workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
        siblings = Workspace.objects.filter(account=account).exclude(pk=workspace.pk)
        with audited_update(
            instance=workspace,
            snapshot=_workspace_snapshot,
            event=events.WORKSPACE_UPDATED,
            actor=actor,
            account=account,
            workspace=workspace,
        ):
            if name is not None:
                name = _clean_name(name, "workspace")
                if siblings.filter(name=name).exists():
                    raise Conflict(
                        f"A workspace named {name!r} already exists in this account.", code="name_taken"
                    )
                workspace.name = name
            if handle is not None:
                handle = _checked_handle(handle)
                if siblings.filter(handle=handle).exists():
                    raise Conflict(
                        f"The workspace handle {handle!r} is taken in this account.", code="handle_taken"
                    )
                workspace.handle = handle
            if description is not None:
                workspace.description = _clean_description(description)
            workspace.save()
    return workspace


def workspace_delete(*, workspace: Workspace, actor) -> None:
    """Delete the workspace and everything in it. The audit trail keeps the record."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=workspace.account_id)
        audit_record(
            event=events.WORKSPACE_DELETED,
            actor=actor,
            account=account,
            workspace=workspace,
            target=workspace,
            payload={"before": {"name": workspace.name, "handle": workspace.handle}, "after": None},
        )
        workspace.delete()
        read_only_recheck_on_commit(account=account, actor=actor)


def _account_snapshot(account: Account) -> dict:
    return {"name": account.name, "handle": account.handle}


def account_update(*, account: Account, actor, name: str | None = None, handle: str | None = None) -> Account:
    """Rename the account or change its handle (unique across the installation)."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        with audited_update(
            instance=account,
            snapshot=_account_snapshot,
            event=events.ACCOUNT_UPDATED,
            actor=actor,
            account=account,
        ):
            if name is not None:
                account.name = _clean_name(name, "account")
            if handle is not None:
                handle = _checked_handle(handle)
                if Account.objects.filter(handle=handle).exclude(pk=account.pk).exists():
                    raise Conflict(f"The account handle {handle!r} is taken.", code="handle_taken")
                account.handle = handle
            account.save()
    return account
