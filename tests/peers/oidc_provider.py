"""A real OpenID Connect provider for tests: the npm package ``oidc-provider`` run by Node on 127.0.0.1
(``tests/peers/oidc/provider.mjs``), behind a small tamper proxy written in Python.

The issuer the provider announces is the proxy's URL, so every request (a browser's, the Django test
client's hand-offs, our server's back-channel calls) goes through the proxy. The proxy forwards
requests and responses unchanged unless a tamper hook is set:

- ``tamper_id_token``: ``callable(payload: dict) -> dict`` rewrites the payload of the id_token in the
  token endpoint's JSON response *without re-signing it* (header and signature are kept).
- ``tamper_response``: ``callable(ProxiedResponse) -> ProxiedResponse | None`` sees (and may replace)
  every response, for the odd test that needs more.

``requests`` lists the ``(method, path)`` of every request the proxy saw; ``request_log`` keeps the
details (query, headers, body, status).

Passwords: an account whose claims carry a ``"password"`` entry signs in with exactly that password
(the entry is never released as a claim); an account without one signs in with any non-empty
password. Consent is automatic.

Starting Node takes about a second, so reuse one provider per test session where possible:
``OidcProvider.shared(...)`` keeps one started provider per configuration and stops them all at exit;
add clients and accounts to a running provider with ``add_client`` and ``add_account``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import http.client
import http.server
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

NODE_DIR = Path(__file__).resolve().parent / "oidc"
STARTUP_TIMEOUT = 45.0
# A start that stalls (seen once on a fresh checkout: no READY, nothing on stderr) is tried again.
STARTUP_ATTEMPTS = 2
DEFAULT_SCOPES = "openid email profile groups"

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


class OidcProviderError(RuntimeError):
    """The provider could not be started, or an interaction did not go as expected."""


class _StartupStalled(OidcProviderError):
    """The provider started but did not say READY in time."""


@dataclass
class ProxiedRequest:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    status: int | None = None


@dataclass
class ProxiedResponse:
    request: ProxiedRequest
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""


@dataclass
class _Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    token_endpoint_auth_method: str = "client_secret_post"
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        metadata = {
            **self.extra,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }
        if self.post_logout_redirect_uris:
            metadata["post_logout_redirect_uris"] = list(self.post_logout_redirect_uris)
        return metadata


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _b64url_encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def tamper_jwt_payload(token: str, tamper: Callable[[dict], dict]) -> str:
    """The compact JWS ``token`` with its payload replaced by ``tamper(payload)``; header and
    signature are kept as they are, so the signature no longer matches."""
    header, payload, signature = token.split(".")
    changed = tamper(json.loads(_b64url_decode(payload)))
    encoded = _b64url_encode(json.dumps(changed, separators=(",", ":")).encode())
    return f"{header}.{encoded}.{signature}"


class _Proxy(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: OidcProvider):
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True
    server: _Proxy

    def log_message(self, format, *args):
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        body = self._read_body()
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
        record = ProxiedRequest(self.command, split.path, split.query, headers, body)
        owner._record(record)

        try:
            upstream = http.client.HTTPConnection("127.0.0.1", owner._node_port, timeout=30)
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for key, value in headers:
                if key.lower() != "content-length":
                    upstream.putheader(key, value)
            if body or self.command in ("POST", "PUT", "PATCH"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body or None)
            answer = upstream.getresponse()
            response = ProxiedResponse(
                record,
                answer.status,
                answer.reason,
                [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP],
                answer.read(),
            )
            upstream.close()
        except OSError as error:
            response = ProxiedResponse(
                record, 502, "Bad Gateway", [("Content-Type", "text/plain")], f"proxy: {error}\n".encode()
            )

        response = owner._tamper(response)
        record.status = response.status

        self.send_response_only(response.status, response.reason)
        for key, value in response.headers:
            if key.lower() != "content-length":
                self.send_header(key, value)
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        if not no_body:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if not no_body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _forward


class _FormParser(HTMLParser):
    """The forms of a page: action, method and the inputs' names and values."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._form: dict[str, Any] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self._form = {
                "id": attributes.get("id"),
                "action": attributes.get("action") or "",
                "method": (attributes.get("method") or "get").upper(),
                "fields": {},
            }
            self.forms.append(self._form)
        elif tag == "input" and attributes.get("name"):
            form = self._form
            if form is None and attributes.get("form"):
                form = next((f for f in self.forms if f["id"] == attributes["form"]), None)
            if form is not None:
                form["fields"][attributes["name"]] = attributes.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


def _forms(html: str) -> list[dict[str, Any]]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def _origin(url: str) -> tuple[str, str]:
    split = urlsplit(url)
    return split.scheme, split.netloc


class OidcProvider:
    """One Node ``oidc-provider`` behind a tamper proxy, on 127.0.0.1.

    ``redirect_uris`` (and the other client arguments) describe the first client, whose id and
    secret are ``client_id`` and ``client_secret`` (generated unless given); ``clients`` adds more
    (dicts of client metadata). ``accounts`` maps a login to its claims (``sub`` defaults to the
    login; an optional ``password`` entry is the account's password). ``scope_claims`` replaces the
    scope -> claims mapping (default: openid: sub; email: email, email_verified; profile: name,
    given_name, family_name, preferred_username; groups: groups).

    Use as a context manager, or ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        redirect_uris: Iterable[str] = (),
        accounts: dict[str, dict[str, Any]] | None = None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        post_logout_redirect_uris: Iterable[str] = (),
        token_endpoint_auth_method: str = "client_secret_post",
        clients: Iterable[dict[str, Any]] = (),
        scope_claims: dict[str, list[str]] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ):
        self._clients: list[_Client] = []
        redirect_uris = list(redirect_uris)
        if redirect_uris or client_id:
            self._clients.append(
                _Client(
                    client_id or f"client-{uuid.uuid4().hex[:12]}",
                    client_secret or secrets.token_urlsafe(32),
                    redirect_uris,
                    list(post_logout_redirect_uris),
                    token_endpoint_auth_method,
                )
            )
        for metadata in clients:
            self._clients.append(self._client_from_metadata(metadata))
        self._accounts: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (accounts or {}).items()}
        self._scope_claims = scope_claims
        self._startup_timeout = startup_timeout

        self.tamper_id_token: Callable[[dict], dict] | None = None
        self.tamper_response: Callable[[ProxiedResponse], ProxiedResponse | None] | None = None
        self.requests: list[tuple[str, str]] = []
        self.request_log: list[ProxiedRequest] = []
        self._lock = threading.Lock()

        self._process: subprocess.Popen | None = None
        self._proxy: _Proxy | None = None
        self._proxy_thread: threading.Thread | None = None
        self._node_port: int | None = None
        self._stderr: deque[str] = deque(maxlen=200)
        self._discovery: dict[str, Any] | None = None

    # -- the clients and accounts --------------------------------------------------------------

    @staticmethod
    def _client_from_metadata(metadata: dict[str, Any]) -> _Client:
        metadata = dict(metadata)
        return _Client(
            metadata.pop("client_id", None) or f"client-{uuid.uuid4().hex[:12]}",
            metadata.pop("client_secret", None) or secrets.token_urlsafe(32),
            list(metadata.pop("redirect_uris", [])),
            list(metadata.pop("post_logout_redirect_uris", [])),
            metadata.pop("token_endpoint_auth_method", "client_secret_post"),
            metadata,
        )

    @property
    def client_id(self) -> str:
        return self._first_client().client_id

    @property
    def client_secret(self) -> str:
        return self._first_client().client_secret

    @property
    def redirect_uris(self) -> list[str]:
        return list(self._first_client().redirect_uris)

    @property
    def clients(self) -> list[dict[str, Any]]:
        return [client.metadata() for client in self._clients]

    def _first_client(self) -> _Client:
        if not self._clients:
            raise OidcProviderError("this provider has no client: pass redirect_uris or use add_client()")
        return self._clients[0]

    def add_client(
        self,
        redirect_uris: Iterable[str],
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        post_logout_redirect_uris: Iterable[str] = (),
        token_endpoint_auth_method: str = "client_secret_post",
        **metadata: Any,
    ) -> dict[str, Any]:
        """Add (or replace, by client_id) a client on the running provider; returns its metadata,
        including the generated client_id and client_secret."""
        client = self._client_from_metadata(
            {
                **metadata,
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": list(redirect_uris),
                "post_logout_redirect_uris": list(post_logout_redirect_uris),
                "token_endpoint_auth_method": token_endpoint_auth_method,
            }
        )
        if self._process is not None:
            self._peer_post("/_peer/clients", client.metadata())
        self._clients = [c for c in self._clients if c.client_id != client.client_id] + [client]
        return client.metadata()

    def add_account(self, login: str, claims: dict[str, Any]) -> None:
        """Add (or replace) an account; ``claims`` as in the constructor's ``accounts``."""
        if self._process is not None:
            self._peer_post("/_peer/accounts", {"login": login, "claims": claims})
        self._accounts[login] = dict(claims)

    def _peer_post(self, path: str, payload: dict[str, Any]) -> None:
        response = httpx.post(f"http://127.0.0.1:{self._node_port}{path}", json=payload, timeout=10)
        if response.status_code != 200:
            raise OidcProviderError(f"{path} refused: {response.status_code} {response.text}")

    # -- addresses ------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        if self._proxy is None:
            raise OidcProviderError("the provider is not started")
        return f"http://127.0.0.1:{self._proxy.server_address[1]}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def discovery(self) -> dict[str, Any]:
        """The discovery document (fetched once, directly from the provider, not via the proxy)."""
        if self._discovery is None:
            response = httpx.get(
                f"http://127.0.0.1:{self._node_port}/.well-known/openid-configuration",
                headers={"Host": urlsplit(self.issuer).netloc},
                timeout=10,
            )
            response.raise_for_status()
            self._discovery = response.json()
        return self._discovery

    @property
    def authorization_endpoint(self) -> str:
        return self.discovery["authorization_endpoint"]

    @property
    def token_endpoint(self) -> str:
        return self.discovery["token_endpoint"]

    @property
    def jwks_uri(self) -> str:
        return self.discovery["jwks_uri"]

    @property
    def userinfo_endpoint(self) -> str:
        return self.discovery["userinfo_endpoint"]

    @property
    def end_session_endpoint(self) -> str:
        return self.discovery["end_session_endpoint"]

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> OidcProvider:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> OidcProvider:
        for attempt in range(1, STARTUP_ATTEMPTS + 1):
            try:
                return self._start()
            except _StartupStalled:
                if attempt == STARTUP_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _start(self) -> OidcProvider:
        if self._process is not None:
            return self
        node = shutil.which("node")
        if node is None:
            raise OidcProviderError(
                "node is not installed (Node.js 20 or later is needed to run the OIDC test provider)"
            )
        _ensure_node_modules()

        self._proxy = _Proxy(self)
        self._proxy_thread = threading.Thread(
            target=self._proxy.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="oidc-tamper-proxy",
            daemon=True,
        )
        self._proxy_thread.start()

        env = {
            **os.environ,
            "ISSUER": self.issuer,
            "PORT": "0",
            "CLIENTS": json.dumps([client.metadata() for client in self._clients]),
            "ACCOUNTS": json.dumps(self._accounts),
            "EXIT_WITH_STDIN": "1",
        }
        if self._scope_claims is not None:
            env["CLAIMS"] = json.dumps(self._scope_claims)
        try:
            self._process = subprocess.Popen(
                [node, "provider.mjs"],
                cwd=NODE_DIR,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as error:
            self.stop()
            raise OidcProviderError(f"could not run node: {error}") from error
        ready = threading.Event()
        port: list[int] = []

        def read_stdout(stream):
            for line in stream:
                if not ready.is_set() and line.startswith("READY "):
                    port.append(int(line.split()[1]))
                    ready.set()

        def read_stderr(stream):
            for line in stream:
                self._stderr.append(line.rstrip("\n"))

        threading.Thread(target=read_stdout, args=(self._process.stdout,), daemon=True).start()
        threading.Thread(target=read_stderr, args=(self._process.stderr,), daemon=True).start()

        deadline = time.monotonic() + self._startup_timeout
        while not ready.wait(0.05):
            if self._process.poll() is not None or time.monotonic() > deadline:
                reason = (
                    f"exited with status {self._process.returncode}"
                    if self._process.poll() is not None
                    else f"did not print READY within {self._startup_timeout:.0f} s"
                )
                time.sleep(0.1)  # let the stderr reader catch up
                stderr = self.stderr
                exited = self._process.poll() is not None
                self.stop()
                error = OidcProviderError if exited else _StartupStalled
                raise error(f"the OIDC test provider {reason}; its stderr:\n{stderr}")
        self._node_port = port[0]
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            proxy.shutdown()
            proxy.server_close()
        self._node_port = None
        self._discovery = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def stderr(self) -> str:
        """The last lines the Node process wrote to stderr (warnings, stack traces)."""
        return "\n".join(self._stderr)

    def reset(self) -> None:
        """Clear the tamper hooks and the request logs (for a shared provider between tests)."""
        self.tamper_id_token = None
        self.tamper_response = None
        with self._lock:
            self.requests.clear()
            self.request_log.clear()

    # -- shared instances -----------------------------------------------------------------------

    _shared: dict[str, OidcProvider] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, **config: Any) -> OidcProvider:
        """A started provider for this configuration (same keyword arguments as the constructor),
        started once per process and reused; reset (no tamper hooks, empty logs) when handed out.
        Every shared provider is stopped at exit."""
        key = json.dumps(config, sort_keys=True, default=list)
        with cls._shared_lock:
            provider = cls._shared.get(key)
            if provider is None or not provider.running:
                provider = cls(**config).start()
                cls._shared[key] = provider
        provider.reset()
        return provider

    @classmethod
    def stop_shared(cls) -> None:
        with cls._shared_lock:
            providers, cls._shared = list(cls._shared.values()), {}
        for provider in providers:
            provider.stop()

    # -- the proxy's hooks ------------------------------------------------------------------------

    def _record(self, record: ProxiedRequest) -> None:
        with self._lock:
            self.requests.append((record.method, record.path))
            self.request_log.append(record)

    def _tamper(self, response: ProxiedResponse) -> ProxiedResponse:
        tamper_id_token = self.tamper_id_token
        if (
            tamper_id_token is not None
            and response.request.method == "POST"
            and response.request.path == urlsplit(self.token_endpoint).path
            and response.status == 200
        ):
            document = json.loads(response.body)
            if isinstance(document.get("id_token"), str):
                document["id_token"] = tamper_jwt_payload(document["id_token"], tamper_id_token)
                response.body = json.dumps(document).encode()
        tamper_response = self.tamper_response
        if tamper_response is not None:
            response = tamper_response(response) or response
        return response

    # -- driving the provider's pages with plain HTTP --------------------------------------------

    def login_via_http(
        self, authorize_url: str, login: str, password: str, client: httpx.Client | None = None
    ) -> str:
        """Sign ``login`` in at the provider, starting from ``authorize_url`` (an authorization
        request to this provider), with plain HTTP: follows the provider's redirects, fills the
        login form (consent is automatic) and returns the first redirect that leaves the provider's
        origin -- the client's redirect_uri with ``code`` and ``state`` (or ``error``) -- without
        fetching it. Pass ``client`` to keep the provider's cookies (its SSO session) across calls.
        Raises OidcProviderError when the login is refused or a page is unexpected."""
        return self._drive(authorize_url, client, credentials=(login, password))

    def logout_via_http(self, end_session_url: str, client: httpx.Client | None = None) -> str:
        """Follow an RP-initiated logout request (``end_session_url``), confirm the sign-out, and
        return the redirect that leaves the provider (the post_logout_redirect_uri), or the URL of
        the provider's own "signed out" page when there is none."""
        return self._drive(end_session_url, client, credentials=None)

    def _drive(self, url: str, client: httpx.Client | None, credentials: tuple[str, str] | None) -> str:
        origin = _origin(self.issuer)
        if _origin(url) != origin:
            raise OidcProviderError(f"{url} is not on this provider ({self.issuer})")
        own_client = client is None
        http_client = client or httpx.Client(timeout=10)
        try:
            method, data = "GET", None
            submitted_login = False
            for _ in range(20):
                response = http_client.request(method, url, data=data, follow_redirects=False)
                if response.is_redirect:
                    location = urljoin(url, response.headers["Location"])
                    if _origin(location) != origin:
                        return location
                    method, data, url = "GET", None, location
                    continue
                if response.status_code == 401 and submitted_login:
                    raise OidcProviderError(f"the provider refused the login: {response.text}")
                if response.status_code != 200:
                    raise OidcProviderError(
                        f"unexpected {response.status_code} from {url}: {response.text[:2000]}"
                    )
                forms = _forms(response.text)
                login_form = next((f for f in forms if "login" in f["fields"]), None)
                logout_form = next((f for f in forms if "xsrf" in f["fields"]), None)
                if credentials is not None and login_form is not None:
                    if submitted_login:
                        raise OidcProviderError("the provider asked for the login again")
                    submitted_login = True
                    data = {**login_form["fields"], "login": credentials[0], "password": credentials[1]}
                    method, url = login_form["method"], urljoin(url, login_form["action"])
                    continue
                if credentials is None and logout_form is not None:
                    data = {**logout_form["fields"], "logout": "yes"}
                    method, url = logout_form["method"], urljoin(url, logout_form["action"])
                    continue
                if credentials is None and "signed-out" in response.text:
                    return url
                raise OidcProviderError(f"unexpected page at {url}: {response.text[:2000]}")
            raise OidcProviderError("too many redirects at the provider")
        finally:
            if own_client:
                http_client.close()


def _ensure_node_modules() -> None:
    """Install the provider's npm packages from the lockfile (``npm ci``) when they are missing."""
    marker = NODE_DIR / "node_modules" / "oidc-provider" / "package.json"
    if marker.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise OidcProviderError("npm is not installed: it is needed to install the OIDC test provider")
    with open(NODE_DIR / ".npm-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker.exists():
                return
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if result.returncode != 0:
                raise OidcProviderError(
                    f"npm ci failed in {NODE_DIR.name}:\n{result.stdout}\n{result.stderr}"
                )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


atexit.register(OidcProvider.stop_shared)


@pytest.fixture
def oidc_provider_factory():
    """``factory(**config) -> OidcProvider``: a shared, started provider per configuration (see
    ``OidcProvider.shared``), reset after the test."""
    handed_out: list[OidcProvider] = []

    def factory(**config: Any) -> OidcProvider:
        provider = OidcProvider.shared(**config)
        handed_out.append(provider)
        return provider

    yield factory
    for provider in handed_out:
        provider.reset()
