"""Reading tenants: an account or workspace named in a URL by id or by handle."""

from __future__ import annotations

from core.ids import as_uuid
from tenants.models import Account, Workspace


def resolve_account(ref: str) -> Account | None:
    """The account named by ``ref``: its id, or else its handle."""
    if "\x00" in ref:  # names nothing (no handle holds a NUL; PostgreSQL would refuse the query)
        return None
    ref_id = as_uuid(ref)
    if ref_id is not None:
        account = Account.objects.filter(pk=ref_id).first()
        if account is not None:
            return account
    return Account.objects.filter(handle=ref).first()


def resolve_workspace(account: Account, ref: str) -> Workspace | None:
    """The workspace of ``account`` named by ``ref`` (id or handle); never one of another account."""
    if "\x00" in ref:
        return None
    workspaces = Workspace.objects.filter(account=account).select_related("account")
    ref_id = as_uuid(ref)
    if ref_id is not None:
        workspace = workspaces.filter(pk=ref_id).first()
        if workspace is not None:
            return workspace
    return workspaces.filter(handle=ref).first()


def workspace_plans() -> list[tuple]:
    """``(workspace id, its account's plan key, the account's contract limits)`` of every
    workspace: what a sweep across tenants (retention) needs to know."""
    return list(Workspace.objects.values_list("id", "account__plan", "account__plan_limits"))
