"""The browser side of single sign-on: starting a sign-in at an account's identity provider, the
SAML assertion consumer and single-logout endpoints, the OIDC callback, and sign-out.

Every refusal (a response social-core or python3-saml rejects, a replay, an address outside the
account's verified domains, no free seat…) is an ``sso.login-failed`` audit event in the IdP's
account with the reason, and a plain page that says what happened; nothing is created.
"""

from __future__ import annotations

import json
import zlib
from datetime import timedelta
from importlib import import_module
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.sessions.backends.base import SessionBase
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from requests import RequestException
from social_core.actions import do_auth, do_complete
from social_core.backends.saml import SAML_RESPONSE_ERRORS
from social_core.exceptions import SocialAuthBaseException
from social_django.utils import load_strategy

from accounts.models import IdentityProvider, SsoSession
from accounts.sso import enforcement, tester
from accounts.sso.backends import AccountOidcAuth, AccountSamlAuth, backend_for
from accounts.sso.errors import TITLES, SsoRefused
from audit import events
from audit.actors import SYSTEM
from audit.services import audit_record
from billing import entitlements

_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# What python3-saml can raise on a malformed message (bad base64 or deflate, XML, signatures).
_SAML_MESSAGE_ERRORS = (*SAML_RESPONSE_ERRORS, zlib.error)
_LOGOUT_REQUEST_KEY = "sso_logout_request"


def _provider(provider_id, kind: str | None = None) -> IdentityProvider:
    found = IdentityProvider.objects.select_related("account").filter(pk=provider_id).first()
    if found is None or (kind is not None and found.kind != kind):
        raise Http404("No such identity provider.")
    return found


def _safe_next(request, url) -> str:
    if (
        isinstance(url, str)
        and url
        and url_has_allowed_host_and_scheme(
            url, allowed_hosts={request.get_host(), urlsplit(settings.PUBLIC_URL).netloc}, require_https=False
        )
    ):
        return url
    return "/"


def refuse(request, *, provider, reason: str, message: str, status: int = 403, email: str | None = None):
    """Audit a refused sign-in and show the person why."""
    audit_record(
        event=events.SSO_LOGIN_FAILED,
        actor=SYSTEM,
        account=provider.account if provider is not None else None,
        target=provider,
        payload={
            "reason": reason,
            "detail": message[:500],
            "email": email,
            "provider": provider.name if provider is not None else None,
            "provider_id": str(provider.id) if provider is not None else None,
        },
    )
    return render(
        request,
        "accounts/sso_error.html",
        {"title": TITLES.get(reason, "Sign-in failed"), "message": message, "reason": reason},
        status=status,
    )


def _describe(error: SocialAuthBaseException) -> tuple[str, str]:
    code = getattr(error, "code", None) or type(error).__name__
    text = getattr(error, "detail", "") or str(error) or code
    return code, f"The identity provider's answer could not be accepted: {text}"


@never_cache
@require_POST
@csrf_protect
def sso_start(request, provider_id):
    """``POST /sso/login/<idp id>/`` (a form with the CSRF token and an optional ``next``): send the
    browser to the identity provider."""
    provider = _provider(provider_id)
    unavailable = _unavailable(request, provider)
    if unavailable is not None:
        return unavailable
    strategy = load_strategy(request)
    backend = backend_for(provider, strategy)
    request.social_strategy, request.backend = strategy, backend
    try:
        return do_auth(backend, redirect_name="next")
    except SocialAuthBaseException as error:
        reason, message = _describe(error)
        return refuse(request, provider=provider, reason=reason, message=message, status=502)


def _unavailable(request, provider: IdentityProvider):
    """The refusal page when the IdP is turned off or the plan lacks SSO, else None."""
    if not provider.enabled:
        return refuse(
            request, provider=provider, reason="provider_disabled",
            message=f"The identity provider {provider.name} is turned off.",
        )  # fmt: skip
    feature = entitlements.check_feature(provider.account, "sso")
    if not feature:
        return refuse(request, provider=provider, reason="plan", message=feature.reason)
    return None


def _relay_test(request) -> bool:
    """A SAML answer whose RelayState says it answers a test sign-in."""
    try:
        relay = json.loads(request.POST.get("RelayState") or "")
    except ValueError:
        return False
    return isinstance(relay, dict) and "test" in relay


def _complete(request, provider: IdentityProvider):
    if tester.sso_test_matches(request, provider) or _relay_test(request):
        return _complete_test(request, provider)
    unavailable = _unavailable(request, provider)
    if unavailable is not None:
        return unavailable
    strategy = load_strategy(request)
    backend = backend_for(provider, strategy)
    request.social_strategy, request.backend = strategy, backend
    try:
        response = do_complete(backend, _do_login, user=None, redirect_name="next", request=request)
    except SsoRefused as refusal:
        return refuse(
            request, provider=provider, reason=refusal.reason, message=refusal.message,
            status=refusal.status, email=refusal.email,
        )  # fmt: skip
    except SocialAuthBaseException as error:
        reason, message = _describe(error)
        return refuse(request, provider=provider, reason=reason, message=message, status=403)
    except ValueError as error:  # social-core's "Disallowed URL" and malformed inputs
        return refuse(request, provider=provider, reason="invalid_request", message=str(error), status=400)
    if isinstance(response, HttpResponseRedirect):
        return HttpResponseRedirect(_safe_next(request, response["Location"]))
    return response


def sso_test_start(request, provider: IdentityProvider):
    """The console's test sign-in: send the administrator's browser to the IdP as a sign-in would,
    the session marked so that the answer is reported rather than signed in (a provider still
    turned off is tested too)."""
    strategy = load_strategy(request)
    backend = backend_for(provider, strategy)
    request.social_strategy, request.backend = strategy, backend
    backend.test_nonce = tester.sso_test_begin(request, provider)
    try:
        response = do_auth(backend, redirect_name="next")
    except SocialAuthBaseException as error:
        reason, message = _describe(error)
        report = tester.sso_test_failed(provider, reason=reason, message=message)
        tester.sso_test_finish(request, provider, report)
        return None
    if isinstance(backend, AccountOidcAuth):
        tester.sso_test_bind(request, response["Location"])
    return response


def _complete_test(request, provider: IdentityProvider):
    """The answer to a test sign-in: validated as any sign-in, reported instead of signed in."""
    result_url = (
        reverse("console-sso-provider", args=[provider.account.handle, provider.pk]) + "#test-heading"
    )
    strategy = load_strategy(request)
    backend = backend_for(provider, strategy)
    request.social_strategy, request.backend = strategy, backend
    matched = tester.sso_test_matches(request, provider)

    def report(backend, *, uid, details, response):
        if not matched:  # a test answer this session did not start: never a sign-in
            raise SsoRefused(
                "test_not_started",
                "This answers a test sign-in that was not started in this browser session, or is "
                "more than 10 minutes old; nobody was signed in.",
            )
        found = tester.sso_test_report(backend, uid=uid, details=details, response=response)
        tester.sso_test_finish(request, provider, found)
        return HttpResponseRedirect(result_url)

    backend.test_sign_in = report
    try:
        response = do_complete(backend, _no_login, user=None, redirect_name="next", request=request)
    except SsoRefused as refusal:
        return refuse(request, provider=provider, reason=refusal.reason, message=refusal.message)
    except (SocialAuthBaseException, ValueError) as error:
        reason, message = (
            _describe(error)
            if isinstance(error, SocialAuthBaseException)
            else ("invalid_request", str(error))
        )
        if not matched:
            return refuse(request, provider=provider, reason=reason, message=message)
        failed = tester.sso_test_failed(provider, reason=reason, message=message)
        tester.sso_test_finish(request, provider, failed)
        return HttpResponseRedirect(result_url)
    return response  # the report's page, or the SAML browser-return page before it


def _no_login(backend, user, social_user) -> None:
    raise AssertionError("A test sign-in never signs anyone in.")  # run_authentication returns a page


def _do_login(backend, user, social_user) -> None:
    """Start the session: Django's login, then what the session knows of its SSO origin."""
    request = backend.strategy.request
    provider = backend.provider
    request.auth_method = f"sso-{provider.kind}"
    login(request, user, backend=_MODEL_BACKEND)
    account = provider.account
    name_id = session_index = name_id_format = ""
    if isinstance(backend, AccountSamlAuth):
        name_id = social_user.uid.split(":", 1)[1]
        session_index = getattr(backend, "last_session_index", None) or ""
        name_id_format = getattr(backend, "last_name_id_format", None) or ""
    request.session[enforcement.SESSION_KEY] = {
        "account_id": str(account.pk),
        "provider_id": str(provider.pk),
        "kind": provider.kind,
        "name_id": name_id,
        "name_id_format": name_id_format,
        "session_index": session_index,
    }
    if isinstance(backend, AccountOidcAuth) and provider.config.get("single_logout"):
        # The id_token_hint of the RP-initiated logout at sign-out.
        request.session[enforcement.SESSION_KEY]["id_token"] = getattr(backend, "raw_id_token", None)
    # An absolute end (a number would be an idle timeout, pushed back by every write to the session).
    request.session.set_expiry(
        timezone.now() + timedelta(seconds=enforcement.auth_expiration_seconds(account))
    )
    request.session.save()
    SsoSession.objects.create(
        provider=provider,
        user=user,
        session_key=request.session.session_key,
        name_id=name_id[:512],
        session_index=session_index[:255],
    )
    audit_record(
        event=events.SSO_LOGIN_SUCCEEDED,
        actor=user,
        account=account,
        target=user,
        payload={
            "provider": provider.name,
            "provider_id": str(provider.pk),
            "kind": provider.kind,
            "provisioned": bool(getattr(backend, "sso_provisioned", False)),
            "groups": getattr(backend, "sso_groups", None),
        },
    )


@never_cache
@csrf_exempt  # the IdP posts here; the assertion's signature is the credential
@require_POST
def saml_acs(request, provider_id):
    return _complete(request, _provider(provider_id, IdentityProvider.Kind.SAML))


@never_cache
@require_GET
def oidc_callback(request, provider_id):
    return _complete(request, _provider(provider_id, IdentityProvider.Kind.OIDC))


def _end_sessions(sessions) -> int:

    store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore
    ended = 0
    for row in sessions:
        store(session_key=row.session_key).delete()
        row.delete()
        ended += 1
    return ended


@never_cache
@require_http_methods(["GET", "POST"])
def saml_sls(request, provider_id):
    """SAML single logout (HTTP-Redirect): the IdP's LogoutResponse to a sign-out started here, or
    the IdP's LogoutRequest, which ends every session of that NameID (and SessionIndex) started
    through this IdP and answers with a signed LogoutResponse."""
    provider = _provider(provider_id, IdentityProvider.Kind.SAML)
    strategy = load_strategy(request)
    backend = AccountSamlAuth(strategy, provider=provider)
    auth = backend._saml_auth_for_logout()
    try:
        if "SAMLResponse" in request.GET:
            pending = request.session.pop(_LOGOUT_REQUEST_KEY, None)
            auth.process_slo(request_id=pending, keep_local_session=True)
            if auth.get_errors():
                return _logout_refused(request, provider, _slo_errors(auth))
            return redirect("/login/?signed_out=1")
        try:
            url = auth.process_slo(keep_local_session=True)
        except AssertionError:
            # A valid LogoutRequest to an IdP stored without an SLO URL: python3-saml has nowhere
            # to send the LogoutResponse. The sessions still end; the browser stays here.
            if auth.get_errors() or provider.config.get("slo_url"):
                raise
            url = None
        if auth.get_errors():
            return _logout_refused(request, provider, _slo_errors(auth))
        if not provider.config.get("slo_url"):
            url = None  # never python3-saml's fallback to the request's RelayState
        xml = auth.get_last_request_xml()
        name_id = OneLogin_Saml2_Logout_Request.get_nameid(xml)
        indexes = OneLogin_Saml2_Logout_Request.get_session_indexes(xml)
    except _SAML_MESSAGE_ERRORS as error:
        return _logout_refused(request, provider, str(error) or type(error).__name__)
    sessions = SsoSession.objects.filter(provider=provider, name_id=name_id).select_related("user")
    if indexes:
        sessions = sessions.filter(session_index__in=indexes)
    sessions = list(sessions)
    users = {row.user for row in sessions}
    ended = _end_sessions(sessions)
    for user in users:
        audit_record(
            event=events.SSO_LOGOUT,
            actor=SYSTEM,
            account=provider.account,
            target=user,
            payload={"initiator": "IdP", "provider_id": str(provider.pk), "sessions_ended": ended},
        )
    if request.user.is_authenticated and request.user in users:
        logout(request)
    if url is None:
        return redirect("/login/?signed_out=1")
    return HttpResponseRedirect(url)


def _slo_errors(auth) -> str:
    return auth.get_last_error_reason() or ", ".join(auth.get_errors())


def _logout_refused(request, provider, detail: str):
    return render(
        request,
        "accounts/sso_error.html",
        {
            "title": "Sign-out failed",
            "message": f"The identity provider's logout message was refused: {detail}",
        },
        status=400,
    )


@never_cache
@require_POST
@csrf_protect
def logout_view(request):
    """Sign out. A session a SAML IdP with a logout URL started also signs out there (SP-initiated
    single logout): the browser goes to the IdP with a LogoutRequest and comes back to ``/sls``. A
    session an OIDC provider with ``single_logout`` started goes to the provider's
    ``end_session_endpoint`` (RP-initiated logout) and comes back to ``/signed-out``. Our session
    ends first either way: a provider that cannot be reached does not keep anyone signed in."""
    facts = enforcement.session_sso(request.session) or {}
    provider = (
        IdentityProvider.objects.select_related("account").filter(pk=facts.get("provider_id")).first()
        if facts.get("provider_id")
        else None
    )
    session_key = request.session.session_key
    user = request.user if request.user.is_authenticated else None
    url = request_id = None
    if (
        provider is not None
        and provider.kind == IdentityProvider.Kind.SAML
        and provider.config.get("slo_url")
    ):
        backend = AccountSamlAuth(load_strategy(request), provider=provider)
        auth = backend._saml_auth_for_logout()
        url = auth.logout(
            name_id=facts.get("name_id") or None,
            session_index=facts.get("session_index") or None,
            # The LogoutRequest names the person as the assertion did (format included).
            name_id_format=facts.get("name_id_format") or None,
        )
        request_id = auth.get_last_request_id()
    elif (
        provider is not None
        and provider.kind == IdentityProvider.Kind.OIDC
        and provider.config.get("single_logout")
    ):
        url = _oidc_end_session_url(request, provider, facts.get("id_token"))
    logout(request)
    if session_key:
        SsoSession.objects.filter(session_key=session_key).delete()
    if url is None:
        return redirect(settings.LOGOUT_REDIRECT_URL)
    if request_id is not None:
        request.session[_LOGOUT_REQUEST_KEY] = request_id
    if user is not None:
        audit_record(
            event=events.SSO_LOGOUT,
            actor=user,
            account=provider.account,
            target=user,
            payload={"initiator": "SP", "provider_id": str(provider.pk), "sessions_ended": 1},
        )
    return HttpResponseRedirect(url)


def _oidc_end_session_url(request, provider: IdentityProvider, id_token: str | None) -> str | None:
    backend = AccountOidcAuth(load_strategy(request), provider=provider)
    try:
        return backend.end_session_url(id_token)
    except (SocialAuthBaseException, RequestException, ValueError):
        # Discovery failed (provider down, or it now names another issuer): sign out here only.
        return None


@never_cache
@require_GET
def oidc_signed_out(request, provider_id):
    """The post_logout_redirect_uri an OIDC provider returns the browser to after ending its session
    (our own session ended before the browser went there)."""
    _provider(provider_id, IdentityProvider.Kind.OIDC)
    return redirect("/login/?signed_out=1")
