"""Checks an account admin runs against an identity provider before relying on it; they change nothing.

``oidc_discovery_check``: fetch ``<issuer>/.well-known/openid-configuration`` as the sign-in flow
will (OpenID Connect Discovery 1.0 §4) and say what was found: the document's issuer must be the
configured one (§4.3, the sign-in flow refuses otherwise) and it must name the authorization, token
and JWKS endpoints the code flow needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import requests

DISCOVERY_PATH = "/.well-known/openid-configuration"
TIMEOUT_SECONDS = 5.0
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


@dataclass(frozen=True)
class DiscoveryResult:
    ok: bool
    url: str
    detail: str
    endpoints: dict[str, str] = field(default_factory=dict)


def discovery_url(issuer: str) -> str:
    return f"{issuer.rstrip('/')}{DISCOVERY_PATH}"


def oidc_discovery_check(*, issuer: str) -> DiscoveryResult:
    url = discovery_url(issuer)
    try:
        response = requests.get(url, timeout=TIMEOUT_SECONDS, headers={"Accept": "application/json"})
    except requests.RequestException as error:
        reason = type(error).__name__
        return DiscoveryResult(False, url, f"{url} could not be reached ({reason}).")
    if response.status_code != 200:
        return DiscoveryResult(False, url, f"{url} answered HTTP {response.status_code}.")
    try:
        document = response.json()
    except ValueError:
        return DiscoveryResult(False, url, f"{url} did not answer with JSON.")
    if not isinstance(document, dict):
        return DiscoveryResult(False, url, f"{url} did not answer with a JSON object.")
    announced = document.get("issuer")
    if not isinstance(announced, str) or announced.rstrip("/") != issuer.rstrip("/"):
        return DiscoveryResult(
            False, url, f"The discovery document names the issuer {announced!r}, not {issuer!r}."
        )
    endpoints = {name: document[name] for name in REQUIRED_ENDPOINTS if isinstance(document.get(name), str)}
    missing = [name for name in REQUIRED_ENDPOINTS if name not in endpoints]
    if missing:
        return DiscoveryResult(
            False, url, f"The discovery document lacks {', '.join(missing)}.", endpoints=endpoints
        )
    if isinstance(document.get("end_session_endpoint"), str):
        endpoints["end_session_endpoint"] = document["end_session_endpoint"]
    return DiscoveryResult(True, url, f"Found the issuer {announced} and its endpoints.", endpoints=endpoints)
