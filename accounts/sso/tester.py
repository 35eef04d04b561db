"""The "test sign-in" of an identity provider: an administrator runs the real SAML or OIDC flow
against the account's IdP from the console and sees what came back, without anyone being signed in.

``sso_test_begin`` marks the administrator's session (the provider, and the OIDC ``state`` or a
nonce carried in the SAML RelayState, valid for ``TEST_LIFETIME``) and sends the browser to the IdP
as a sign-in would. The IdP answers at the usual ACS or callback; ``sso_test_matches`` tells the
completion view that this answer is the test's, and the backend then validates the response exactly
as for a sign-in (signatures, audience, issuer, state, nonce, PKCE, replay) but, in place of the
pipeline, calls ``sso_test_report``: the attributes or claims received (tokens left out), the
details read from them, whether the sign-in would be accepted (``check_identity``, which only reads)
and as whom (a linked identity, a person with that address, an invitation, or someone new made
just in time), and what the group mappings would give. Nothing is created, no session starts or
changes hands, no group mapping is applied; the report is kept in the administrator's session for
the console to show and an ``sso.test-sign-in`` audit event records the outcome (a refused response
too, with the reason).
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from django.utils import timezone
from social_django.models import UserSocialAuth

from accounts.models import AccountMembership, IdentityProvider, User
from accounts.sso.errors import SsoRefused
from accounts.sso.mappings import group_mappings_list, group_mappings_resolve
from accounts.sso.pipeline import check_identity
from audit import events
from audit.services import audit_record

SESSION_KEY = "sso_test_sign_in"
RESULTS_KEY = "sso_test_results"
TEST_LIFETIME = timedelta(minutes=10)

# What an OIDC answer carries besides claims: never shown nor kept.
_TOKEN_KEYS = frozenset({"access_token", "id_token", "refresh_token", "token_type", "expires_in", "scope"})
_MAX_VALUE = 500  # characters of one received value kept in the report


def sso_test_begin(request, provider: IdentityProvider) -> str:
    """Mark the session for a test of ``provider``; the nonce a SAML RelayState carries (for OIDC
    the ``state`` social-core makes is recorded after the redirect is built: ``sso_test_bind``)."""
    nonce = secrets.token_urlsafe(16)
    request.session[SESSION_KEY] = {
        "provider_id": str(provider.pk),
        "nonce": nonce,
        "expires": (timezone.now() + TEST_LIFETIME).timestamp(),
        "by": str(request.user.pk) if request.user.is_authenticated else None,
    }
    return nonce


def sso_test_bind(request, redirect_url: str) -> None:
    """After an OIDC redirect was built: the test is the answer that carries its ``state``."""
    marker = request.session.get(SESSION_KEY)
    state = (parse_qs(urlsplit(redirect_url).query).get("state") or [""])[0]
    if marker is not None and state:
        request.session[SESSION_KEY] = {**marker, "nonce": str(state)}


def sso_test_matches(request, provider: IdentityProvider) -> bool:
    """Whether this answer at the ACS or callback is the test the session started (same provider,
    in time, the same OIDC state or SAML RelayState nonce, the same signed-in administrator)."""
    marker = request.session.get(SESSION_KEY)
    if not isinstance(marker, dict) or marker.get("provider_id") != str(provider.pk):
        return False
    if marker.get("expires", 0) < timezone.now().timestamp():
        return False
    if not request.user.is_authenticated or marker.get("by") != str(request.user.pk):
        return False
    if provider.kind == IdentityProvider.Kind.OIDC:
        carried = request.GET.get("state")
    else:
        try:
            relay = json.loads(request.POST.get("RelayState") or "")
        except ValueError:
            relay = None
        carried = relay.get("test") if isinstance(relay, dict) else None
    return isinstance(carried, str) and secrets.compare_digest(carried, str(marker.get("nonce") or ""))


def _shown(value):
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value[:100]]
    if isinstance(value, dict):
        return {str(k)[:100]: _shown(v) for k, v in list(value.items())[:100]}
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:_MAX_VALUE]


def received_of(provider: IdentityProvider, response: dict) -> dict:
    """The SAML attributes (and NameID) or the OIDC claims received, without tokens."""
    if provider.kind == IdentityProvider.Kind.SAML:
        return _shown(dict(response.get("attributes") or {}))
    return _shown({k: v for k, v in response.items() if k not in _TOKEN_KEYS})


def _who(provider: IdentityProvider, *, uid: str, email: str) -> dict:
    """As whom the sign-in would go on, read only."""
    account = provider.account
    linked = UserSocialAuth.objects.filter(provider=provider.kind, uid=uid).select_related("user").first()
    user = linked.user if linked is not None else User.objects.filter(email__iexact=email).first()
    if user is not None and not user.is_active:
        return {"outcome": "refused", "text": f"{user.email} is deactivated: the sign-in would be refused."}
    membership = AccountMembership.objects.filter(account=account, user=user).first() if user else None
    if membership is not None:
        how = "already linked to this identity" if linked is not None else "linked by the verified address"
        return {
            "outcome": "member",
            "text": f"{user.email}, a member ({membership.get_role_display()}), {how}.",
        }
    # A function-level import: rbac imports the SSO package's enforcement, which this module's
    # package imports first.
    from accounts.rbac import invitations_pending

    invitation = invitations_pending(account).filter(email__iexact=email).first()
    person = user.email if user is not None else f"{email}, a new person made just in time,"
    if invitation is not None:
        grants = len(invitation.workspace_grants or [])
        return {
            "outcome": "invited",
            "text": f"{person} would accept the pending invitation: {invitation.get_account_role_display()} "
            f"with {grants} workspace grant{'s' if grants != 1 else ''}.",
        }
    return {"outcome": "joins", "text": f"{person} would join {account.name} as a Member (a seat is taken)."}


def sso_test_report(backend, *, uid: str, details: dict, response: dict) -> dict:
    """What the test found: received values, the details read, the checks and the mappings. Reads
    only (``check_identity`` refuses by raising and writes nothing)."""
    provider = backend.provider
    report = {
        "ok": True,
        "kind": provider.kind,
        "provider": provider.name,
        "at": timezone.now().isoformat(),
        "received": received_of(provider, response),
        "details": _shown(
            {
                "subject": uid.split(":", 1)[1] if ":" in uid else uid,
                "email": details.get("email"),
                "first_name": details.get("first_name"),
                "last_name": details.get("last_name"),
                "groups": details.get("groups"),
            }
        ),
        "refusal": None,
        "who": None,
        "teams": [],
        "grants": [],
        "groups_sent": details.get("groups") is not None,
    }
    # A provider still turned off is tested as if it were on (and the report says it is off).
    enabled, provider.enabled = provider.enabled, True
    report["disabled"] = not enabled
    try:
        checked = check_identity(backend, details, uid=uid)
    except SsoRefused as refusal:
        report.update(ok=False, refusal={"reason": refusal.reason, "message": refusal.message})
    else:
        report["who"] = _who(provider, uid=uid, email=checked["sso_email"])
    finally:
        provider.enabled = enabled
    if report["who"] is not None and report["who"]["outcome"] == "refused":
        report.update(ok=False, refusal={"reason": "deactivated", "message": report["who"]["text"]})
    groups = details.get("groups")
    if groups is not None:
        teams, grants = group_mappings_resolve(group_mappings_list(provider.account), groups)
        report["teams"] = sorted(team.name for team in teams)
        report["grants"] = sorted(f"{workspace.name}: {role.name}" for workspace, role in grants)
    return report


def sso_test_failed(provider: IdentityProvider, *, reason: str, message: str) -> dict:
    """The report of a response the backend refused (a bad signature, a wrong state…)."""
    return {
        "ok": False,
        "kind": provider.kind,
        "provider": provider.name,
        "at": timezone.now().isoformat(),
        "received": {},
        "details": {},
        "refusal": {"reason": reason, "message": message[:_MAX_VALUE]},
        "who": None,
        "teams": [],
        "grants": [],
        "groups_sent": False,
        "disabled": not provider.enabled,
    }


def sso_test_finish(request, provider: IdentityProvider, report: dict) -> None:
    """Keep the report for the console (per provider) and audit the test; the marker is spent."""
    request.session.pop(SESSION_KEY, None)
    results = dict(request.session.get(RESULTS_KEY) or {})
    results[str(provider.pk)] = report
    request.session[RESULTS_KEY] = results
    refusal = report.get("refusal") or {}
    audit_record(
        event=events.SSO_TEST_SIGN_IN,
        actor=request.user,
        account=provider.account,
        target=provider,
        payload={
            "provider": provider.name,
            "provider_id": str(provider.pk),
            "kind": provider.kind,
            "outcome": "accepted" if report["ok"] else f"refused: {refusal.get('reason')}",
            "email": (report.get("details") or {}).get("email"),
            "groups": (report.get("details") or {}).get("groups"),
        },
    )


def sso_test_result(request, provider: IdentityProvider) -> dict | None:
    return (request.session.get(RESULTS_KEY) or {}).get(str(provider.pk))
