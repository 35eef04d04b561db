"""The account admin's side of SCIM: the base URL the IdP is given, its tokens, the IP allowlist
exemption and the activity journal (``/api/accounts/<id>/scim…``). SCIM is configured with single
sign-on, so the SSO permissions govern it, as in Prefect Cloud's settings."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from rest_framework.response import Response

from accounts.api.base import AccountApi, Body, checked, path_id
from accounts.api.scim_v2.views import base_url
from accounts.models import ScimToken
from accounts.scim import services
from accounts.scim.selectors import scim_activity_list, scim_token_get, scim_token_list
from billing import entitlements
from core.errors import InvalidInput, NotFound

MAX_ACTIVITY_PAGE = 200


def _token_wire(token: ScimToken) -> dict:
    return {
        "id": str(token.id),
        "name": token.name,
        "hint": token.hint,
        "created": token.created.isoformat(),
        "created_by": str(token.created_by_id) if token.created_by_id else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


class ScimSettingsChange(Body):
    exempt_from_ip_allowlist: Annotated[
        Any,
        checked(
            lambda value: isinstance(value, bool),
            "exempt_from_ip_allowlist must be true or false.",
            "invalid_body",
        ),
        Field(validate_default=True),
    ] = None


class ScimTokenCreate(Body):
    name: Annotated[
        Any,
        checked(
            lambda value: isinstance(value, str) and bool(value.strip()),
            "name is required: what the token is for (e.g. the IdP's name).",
            "invalid_body",
        ),
        Field(validate_default=True),
    ] = None


class ScimConfigApi(AccountApi):
    """``GET``: what to give the IdP and how it stands; ``PATCH {"exempt_from_ip_allowlist": bool}``."""

    required_permissions = {"GET": "read:sso", "PATCH": "administrate:sso"}

    def get(self, request, **kwargs):
        tokens = scim_token_list(account=self.account)
        return Response(
            {
                "enabled": bool(entitlements.check_feature(self.account, "scim")),
                "base_url": base_url(self.account.id),
                **services.scim_settings(self.account),
                "tokens": [_token_wire(token) for token in tokens],
            }
        )

    def patch(self, request, **kwargs):
        body = self.parse(ScimSettingsChange)
        return Response(
            services.scim_settings_update(
                account=self.account,
                actor=request.user,
                exempt_from_ip_allowlist=body.exempt_from_ip_allowlist,
            )
        )


class ScimTokensApi(AccountApi):
    """``POST {"name": …}``: a new token, its secret shown once in ``token``."""

    required_permissions = {"POST": "administrate:sso"}

    def post(self, request, **kwargs):
        name = self.parse(ScimTokenCreate).name
        token, raw = services.scim_token_create(account=self.account, actor=request.user, name=name)
        return Response({**_token_wire(token), "token": raw}, status=201)


class ScimTokenApi(AccountApi):
    """``DELETE``: revoke (the IdP's next request is refused)."""

    required_permissions = {"DELETE": "administrate:sso"}

    def delete(self, request, token_id: str, **kwargs):
        token = scim_token_get(account=self.account, token_id=path_id(token_id, "SCIM token"))
        if token is None:
            raise NotFound("SCIM token not found.")
        services.scim_token_revoke(token=token, actor=request.user)
        return Response(status=204)


class ScimActivityApi(AccountApi):
    """``GET ?limit=&offset=``: the SCIM journal, newest first."""

    required_permissions = {"GET": "read:sso"}

    def get(self, request, **kwargs):
        try:
            limit = min(MAX_ACTIVITY_PAGE, max(1, int(request.query_params.get("limit", 50))))
            offset = max(0, int(request.query_params.get("offset", 0)))
        except ValueError:
            raise InvalidInput("limit and offset must be integers.", code="invalid_paging") from None
        rows = scim_activity_list(account=self.account, limit=limit, offset=offset)
        return Response(
            [
                {
                    "id": row.id,
                    "occurred": row.occurred.isoformat(),
                    "method": row.method,
                    "path": row.path,
                    "status": row.status,
                    "ip": row.ip,
                    "request_id": row.request_id,
                    "token_id": str(row.token_id) if row.token_id else None,
                    "changes": row.changes,
                    "detail": row.detail,
                }
                for row in rows
            ]
        )
