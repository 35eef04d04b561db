"""Prefect's UI under each workspace: ``/account/<account>/workspace/<workspace>/`` (the base
Prefect Cloud's UI uses, and the one the Cloud-mode client prints after every run).

Every page is the bundle's entry document (``console.ui_bundle``) with that workspace's base, so
deep links (``…/runs/flow-run/<id>``) open in the UI's router; ``…/ui-settings`` names the
workspace's API (``api_url``), with CSRF on. The V1 UI answers at the base, the V2 UI at
``<base>/v2``; a bare base goes to the browser's saved choice (the ``prefect_ui_version`` cookie
the UIs' switch sets) or the default, V2, as Prefect's server does.

These pages stand on the gate like the API (``access.views.WorkspaceApiView``): a browser session
(or a key), the workspace resolved from the path, the account's door (IP allowlist, SSO
enforcement), any access to the workspace. Not signed in: the sign-in page, coming back here after;
no access: 404, never the entry document. A base addressed by handles redirects to the same page
by ids, so the UI's router base, the API prefix and what the client prints agree.
"""

from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from rest_framework import exceptions

from access.views import MEMBERS, WorkspaceApiView
from console.ui_bundle import Bundle, bundles, entry_document
from core.errors import NotFound

UI_VERSION_COOKIE = "prefect_ui_version"
DEFAULT_UI = "v2"
V2_SEGMENT = "v2"


def ui_base(account_id, workspace_id) -> str:
    return f"/account/{account_id}/workspace/{workspace_id}"


def api_prefix(account_id, workspace_id) -> str:
    return f"/api/accounts/{account_id}/workspaces/{workspace_id}"


def _default_ui(available: dict[str, Bundle]) -> str:
    return DEFAULT_UI if DEFAULT_UI in available else next(iter(available))


class _WorkspaceUiView(WorkspaceApiView):
    schema = None  # a browser page, not part of the API's document
    required_scopes: ClassVar[dict[str, str]] = {"GET": MEMBERS}

    def handle_exception(self, exc):
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)

    def redirect_to_ids(self, request, suffix: str) -> HttpResponse | None:
        """The same page by ids when the path named the account or workspace by handle."""
        account_id, workspace_id = str(self.account.pk), str(self.workspace.pk)
        if (self._account_ref, self._workspace_ref) == (account_id, workspace_id):
            return None
        query = request.META.get("QUERY_STRING", "")
        target = ui_base(account_id, workspace_id) + suffix
        return HttpResponseRedirect(f"{target}?{query}" if query else target)


class WorkspaceUiPage(_WorkspaceUiView):
    """Every page of the UI: the entry document, for the V1 UI at the base and the V2 UI under
    ``<base>/v2``."""

    version: ClassVar[str] = "v1"

    def get(self, request, route: str = ""):
        available = bundles()
        bundle = available.get(self.version)
        if bundle is None:
            raise NotFound("Prefect's UI is not installed on this server.")
        prefix = f"/{V2_SEGMENT}" if self.version == "v2" else ""
        suffix = f"{prefix}/{route}"
        redirect = self.redirect_to_ids(request, suffix)
        if redirect is not None:
            return redirect
        base = ui_base(self.account.pk, self.workspace.pk)
        if self.version == "v1" and not route:
            # A neutral entry point: the browser's saved choice, else the default (Prefect's).
            preferred = request.COOKIES.get(UI_VERSION_COOKIE)
            if preferred not in available:
                preferred = _default_ui(available)
            if preferred == "v2":
                query = request.META.get("QUERY_STRING", "")
                return HttpResponseRedirect(f"{base}/{V2_SEGMENT}/" + (f"?{query}" if query else ""))
        response = HttpResponse(
            entry_document(bundle, base + prefix), content_type="text/html; charset=utf-8"
        )
        # Per workspace and behind the session: never cached by a shared cache, revalidated always.
        response["Cache-Control"] = "no-cache, private"
        response["Vary"] = "Cookie"
        return response


class WorkspaceUiV2Page(WorkspaceUiPage):
    version = "v2"


class WorkspaceUiSettings(_WorkspaceUiView):
    """``<base>/ui-settings``, as Prefect's server answers it, for this workspace."""

    def get(self, request):
        redirect = self.redirect_to_ids(request, "/ui-settings")
        if redirect is not None:
            return redirect
        available = bundles()
        base = ui_base(self.account.pk, self.workspace.pk)
        response = JsonResponse(
            {
                "api_url": request.build_absolute_uri(api_prefix(self.account.pk, self.workspace.pk)),
                "csrf_enabled": True,
                "auth": None,
                "flags": [],
                "default_ui": _default_ui(available) if available else DEFAULT_UI,
                "available_uis": list(available),
                "v1_base_url": base if "v1" in available else None,
                "v2_base_url": f"{base}/{V2_SEGMENT}" if "v2" in available else None,
            }
        )
        response["Cache-Control"] = "no-cache, private"
        return response


def bundle_root_file(request, name: str):
    """Files the UIs name from the server's root rather than their base: ``/favicon.ico`` (which
    browsers ask for on every page, the console's too) and the run-state favicons (V2's
    ``/completed.svg``, V1's ``/ico/completed.svg``), redirected to the shared copies. A name the
    bundles lack (V1 asks ``/ico/undefined.svg`` before a run's state is known) is an empty answer,
    where Prefect's server answers its SPA fallback: no broken request in the browser."""
    for bundle in sorted(bundles().values(), key=lambda b: b.version != DEFAULT_UI):
        for folder in ("", "ico/"):
            if (bundle.root / folder / name).is_file():
                return HttpResponseRedirect(f"{bundle.assets_url}/{folder}{name}")
    return HttpResponse(status=204)
