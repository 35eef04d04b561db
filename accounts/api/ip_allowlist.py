"""``ip_allowlist…``: the account's IP allowlist, the caller's access and a dry run."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

from access.views import MEMBERS
from accounts import ip_allowlist
from accounts.api.base import AccountApi, Body
from audit.context import client_ip
from core.errors import Unprocessable


class Entries(Body):
    entries: Any = None  # checked entry by entry by the service


class IpAllowlistApi(AccountApi):
    """``GET``/``PUT ip_allowlist``: the whole list, ``{"entries": [{ip_network, enabled,
    description, last_seen}]}`` (what ``prefect cloud ip-allowlist`` reads and writes)."""

    required_permissions = {"GET": "read:ip_allowlist", "PUT": "update:ip_allowlist"}

    def get(self, request, **kwargs):
        return Response(ip_allowlist.allowlist_read(self.account))

    def put(self, request, **kwargs):
        body = self.parse(Entries)
        if "entries" not in body.model_fields_set:
            raise Unprocessable("The body must hold entries.", code="invalid_body")
        return Response(
            ip_allowlist.allowlist_replace(
                account=self.account,
                entries=body.entries,
                actor=request.user,
                requester_ip=client_ip(request),
            )
        )


class IpAllowlistMyAccessApi(AccountApi):
    """``GET ip_allowlist/my_access``: would the caller's address be allowed with enforcement on."""

    required_permissions = {"GET": MEMBERS}
    ip_allowlist_exempt = True

    def get(self, request, **kwargs):
        return Response(ip_allowlist.my_access(self.account, client_ip(request)))


class IpAllowlistDryRunApi(AccountApi):
    """``POST ip_allowlist/dry_run`` with a proposed ``{"entries": […]}``: which members and keys,
    by the addresses they were seen at in the last 30 days, it would block. Nothing is saved."""

    required_permissions = {"POST": "update:ip_allowlist"}

    def post(self, request, **kwargs):
        return Response(ip_allowlist.dry_run(self.account, self.parse(Entries).entries))
