"""A real SAML 2.0 Identity Provider for tests, built on pysaml2 (``saml2.server.Server``).

It signs genuine responses and logout messages for our service provider (SP), which validates them
with python3-saml. It runs in-process: no HTTP server, the test carries what it produces to our views
(the base64 ``SAMLResponse`` of the HTTP-POST binding, or a redirect URL of the HTTP-Redirect binding)
and hands it what the SP sent (the redirect URLs of the SP's AuthnRequest and logout messages).

Each :class:`SamlIdp` has its own RSA-2048 key and self-signed certificate, written to a private
temporary directory (pysaml2 signs with the ``xmlsec1`` binary, which reads key files); two instances
with the same entity id therefore sign with different keys, which is the "signature from another key"
attack. Pass the same ``key_name`` to share one key between instances of a test process.

Besides valid messages it produces the usual attack set from a valid response, as base64 again:

* :func:`tamper_attribute` / :func:`tamper_name_id`: content changed after signing, signatures kept;
* :func:`strip_signatures`: every ``ds:Signature`` removed;
* :func:`inject_comment`: an XML comment splitting a signed NameID and email (CVE-2017-11427);
* :func:`wrap_signature`: XML signature wrapping (XSW1 to XSW8, see :data:`XSW_VARIANTS`);
* expired, not yet valid, wrong audience, wrong recipient or destination, another issuer, the
  InResponseTo of another request: through :meth:`SamlIdp.login_response`'s parameters.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import shutil
import tempfile
import uuid
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from lxml import etree

with warnings.catch_warnings():  # pysaml2 still imports the CFB cipher mode from its old place
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, VERSION, SamlBase, samlp
    from saml2.config import IdPConfig
    from saml2.s_utils import do_attribute_statement
    from saml2.saml import (
        NAME_FORMAT_BASIC,
        NAMEID_FORMAT_EMAILADDRESS,
        NAMEID_FORMAT_ENTITY,
        Issuer,
        NameID,
    )
    from saml2.samlp import SessionIndex
    from saml2.server import Server
    from saml2.sigver import (
        CryptoBackendXmlSec1,
        get_xmlsec_binary,
        pre_signature_part,
        signed_instance_factory,
    )
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256


__all__ = [
    "XSW_VARIANTS",
    "AuthnRequestInfo",
    "LogoutRequestInfo",
    "LogoutResponseInfo",
    "SamlIdp",
    "decode",
    "encode",
    "inject_comment",
    "strip_signatures",
    "tamper_attribute",
    "tamper_name_id",
    "wrap_signature",
]

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
STATUS_RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
PASSWORD_PROTECTED_TRANSPORT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"

_KEYS: dict[str, tuple[bytes, bytes]] = {}  # key_name -> (key PEM, cert PEM), for this process


def _utc(when: dt.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_key(common_name: str) -> tuple[bytes, bytes]:
    """A fresh RSA-2048 key and a self-signed certificate for it (PEM, PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _query(url: str) -> dict[str, str]:
    """The (single-valued) query parameters of a redirect URL, decoded."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


_REDIRECT_HASHES = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512,
}


def verify_redirect_signature(redirect_url: str, certificate_pem: str) -> None:
    """Check an HTTP-Redirect binding signature (SAML bindings §3.4.4.1): RSA over
    ``SAMLRequest=…&RelayState=…&SigAlg=…`` exactly as the query carries them. Raises ValueError."""
    from urllib.parse import unquote_plus

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding

    raw = dict(part.split("=", 1) for part in urlsplit(redirect_url).query.split("&") if "=" in part)
    message = "SAMLRequest" if "SAMLRequest" in raw else "SAMLResponse"
    if "Signature" not in raw or "SigAlg" not in raw:
        raise ValueError("The request is not signed.")
    algorithm = _REDIRECT_HASHES.get(unquote_plus(raw["SigAlg"]))
    if algorithm is None:
        raise ValueError(f"Unsupported signature algorithm {unquote_plus(raw['SigAlg'])!r}.")
    signed = "&".join(f"{name}={raw[name]}" for name in (message, "RelayState", "SigAlg") if name in raw)
    key = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    try:
        key.verify(
            base64.b64decode(unquote_plus(raw["Signature"])), signed.encode(), padding.PKCS1v15(), algorithm()
        )
    except (InvalidSignature, ValueError) as error:
        raise ValueError("The request's signature does not verify.") from error


def decode(b64: str) -> bytes:
    """The XML of a base64 ``SAMLResponse`` (HTTP-POST binding)."""
    return base64.b64decode(b64)


def encode(xml: bytes | str) -> str:
    """Base64 of ``xml``, as it goes into the ``SAMLResponse`` form field."""
    return base64.b64encode(xml.encode() if isinstance(xml, str) else xml).decode("ascii")


def _parse(b64: str) -> etree._Element:
    return etree.fromstring(decode(b64), etree.XMLParser(resolve_entities=False, no_network=True))


def _serialise(root: etree._Element) -> str:
    return encode(etree.tostring(root))


@dataclass(frozen=True)
class AuthnRequestInfo:
    """What the IdP read from an SP's AuthnRequest."""

    id: str
    issuer: str
    acs_url: str | None
    relay_state: str | None
    destination: str | None
    name_id_format: str | None


@dataclass(frozen=True)
class LogoutRequestInfo:
    """What the IdP read from an SP's LogoutRequest (SP-initiated logout)."""

    id: str
    issuer: str
    name_id: str | None
    session_index: str | None
    session_indexes: list[str] = field(default_factory=list)
    destination: str | None = None
    relay_state: str | None = None


@dataclass(frozen=True)
class LogoutResponseInfo:
    """What the IdP read from an SP's LogoutResponse (the answer to an IdP-initiated logout)."""

    id: str
    issuer: str
    in_response_to: str | None
    status: str
    destination: str | None = None
    relay_state: str | None = None

    @property
    def success(self) -> bool:
        return self.status == STATUS_SUCCESS


class _InProcessXmlSec1(CryptoBackendXmlSec1):
    """pysaml2's xmlsec1 backend, but signing in process with the ``xmlsec`` binding (the same
    libxmlsec1) rather than two ``xmlsec1`` runs per signature: a signed response takes a few
    milliseconds instead of a few hundred. The signature template is still pysaml2's
    (``pre_signature_part``), filled in exactly as ``xmlsec1 --sign --id-attr:ID <node>`` does."""

    def sign_statement(self, statement, node_name, key_file, node_id):
        if isinstance(statement, SamlBase):
            statement = str(statement)
        data = statement.encode() if isinstance(statement, str) else statement
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
        namespace, _, tag = node_name.rpartition(":")
        for node in root.iter(f"{{{namespace}}}{tag}"):
            if node_id is None or node.get("ID") == node_id:
                break
        else:
            raise ValueError(f"No {node_name} with ID {node_id} to sign.")
        signature = node.find("ds:Signature", NS)
        if signature is None:
            raise ValueError(f"The {node_name} has no signature template.")
        xmlsec.tree.add_ids(root, ["ID"])
        ctx = xmlsec.SignatureContext()
        ctx.key = xmlsec.Key.from_file(key_file, xmlsec.constants.KeyDataFormatPem)
        ctx.sign(signature)
        return '<?xml version="1.0"?>\n' + etree.tostring(root, encoding="unicode") + "\n"


def _sp_metadata(entity_id: str, acs_url: str, slo_url: str | None, certificate: str | None = None) -> str:
    slo = (
        f'<md:SingleLogoutService Binding="{BINDING_HTTP_REDIRECT}" Location="{slo_url}"/>' if slo_url else ""
    )
    key = ""
    if certificate:
        body = "".join(line for line in certificate.strip().splitlines() if "CERTIFICATE" not in line)
        key = (
            '<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
            f"<ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data>"
            "</ds:KeyInfo></md:KeyDescriptor>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity_id}">'
        '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" '
        f'AuthnRequestsSigned="{"true" if certificate else "false"}" WantAssertionsSigned="true">'
        f"{key}{slo}"
        f"<md:NameIDFormat>{NAMEID_FORMAT_EMAILADDRESS}</md:NameIDFormat>"
        f'<md:AssertionConsumerService Binding="{BINDING_HTTP_POST}" Location="{acs_url}" index="1"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )


class SamlIdp:
    """A SAML 2.0 IdP (pysaml2) with its own signing key, trusting the SPs given to :meth:`add_sp`.

    ``sso_url`` is ``<base_url>/sso`` and ``slo_url`` is ``<base_url>/slo`` unless given. Give the SP
    ``entity_id``, ``sso_url``, ``slo_url`` and ``cert_pem`` as its IdP configuration.

    ``key_name``: instances given the same name share one key (and certificate) in this process;
    without it each instance has a fresh key. ``in_process_signing=False`` signs XML with pysaml2's
    own ``xmlsec1`` subprocess backend (slower; the output is the same).
    """

    def __init__(
        self,
        entity_id: str = "https://idp.example.test/saml/metadata",
        base_url: str = "https://idp.example.test/saml",
        *,
        sso_url: str | None = None,
        slo_url: str | None = None,
        key_name: str | None = None,
        in_process_signing: bool = True,
    ) -> None:
        self.entity_id = entity_id
        self.base_url = base_url.rstrip("/")
        self.sso_url = sso_url or f"{self.base_url}/sso"
        self.slo_url = slo_url or f"{self.base_url}/slo"
        if key_name is None:
            key_pem, cert_pem = _new_key(entity_id)
        else:
            if key_name not in _KEYS:
                _KEYS[key_name] = _new_key(entity_id)
            key_pem, cert_pem = _KEYS[key_name]
        self.cert_pem: str = cert_pem.decode("ascii")
        self._dir = Path(tempfile.mkdtemp(prefix="saml-idp-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._key_file = self._dir / "idp.key"
        self._cert_file = self._dir / "idp.crt"
        self._key_file.write_bytes(key_pem)
        self._key_file.chmod(0o600)
        self._cert_file.write_bytes(cert_pem)
        self._sps: dict[str, str] = {}  # SP entity id -> its metadata XML
        self._sp_certificates: dict[str, str] = {}  # SP entity id -> its signing certificate (PEM)
        self.last_logout_request_id: str | None = None
        self._in_process_signing = in_process_signing
        self._server = self._build_server()

    # -- configuration ------------------------------------------------------------------------

    @property
    def cert_b64(self) -> str:
        """The certificate without its PEM armour (the form inside ``ds:X509Certificate``)."""
        return "".join(line for line in self.cert_pem.splitlines() if "CERTIFICATE" not in line)

    @property
    def server(self) -> Server:
        """The underlying pysaml2 server."""
        return self._server

    def _config(self) -> dict:
        return {
            "entityid": self.entity_id,
            "xmlsec_binary": shutil.which("xmlsec1") or get_xmlsec_binary(),
            "key_file": str(self._key_file),
            "cert_file": str(self._cert_file),
            "metadata": {"inline": list(self._sps.values())},
            "accepted_time_diff": 60,
            "delete_tmpfiles": True,
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [
                            (self.sso_url, BINDING_HTTP_REDIRECT),
                            (self.sso_url, BINDING_HTTP_POST),
                        ],
                        "single_logout_service": [(self.slo_url, BINDING_HTTP_REDIRECT)],
                    },
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                    "want_authn_requests_signed": False,
                    "sign_response": False,
                    "sign_assertion": False,
                    "policy": {"default": {"lifetime": {"minutes": 5}}},
                }
            },
        }

    def _build_server(self) -> Server:
        config = IdPConfig()
        config.load(self._config())
        server = Server(config=config)
        if self._in_process_signing:
            server.sec.crypto = _InProcessXmlSec1(server.sec.crypto.xmlsec)
        return server

    def add_sp(
        self, entity_id: str, acs_url: str, slo_url: str | None = None, certificate: str | None = None
    ) -> None:
        """Trust an SP: its metadata (HTTP-POST ACS, HTTP-Redirect SLO, and its signing certificate
        when given, which the signatures of its redirect-binding requests are then checked with) joins
        the IdP's metadata store. Adding an SP again replaces its metadata."""
        xml = _sp_metadata(entity_id, acs_url, slo_url, certificate)
        if certificate:
            self._sp_certificates[entity_id] = certificate
        else:
            self._sp_certificates.pop(entity_id, None)
        if entity_id in self._sps:
            self._sps[entity_id] = xml
            self._server = self._build_server()  # the store cannot drop one inline source
        else:
            self._sps[entity_id] = xml
            self._server.metadata.load("inline", xml)

    def _trusted(self, issuer, what: str, redirect_url: str | None = None) -> str:
        """The issuer's entity id, if it is a known SP; with ``redirect_url``, the HTTP-Redirect
        binding signature is also required and checked when the SP was added with a certificate."""
        entity_id = (issuer.text or "").strip() if issuer is not None else ""
        if entity_id not in self._sps:
            raise ValueError(f"{what} from an unknown SP: {entity_id!r}")
        certificate = self._sp_certificates.get(entity_id)
        if redirect_url is not None and certificate:
            verify_redirect_signature(redirect_url, certificate)
        return entity_id

    # -- single sign-on -----------------------------------------------------------------------

    def parse_authn_request(self, redirect_url: str) -> AuthnRequestInfo:
        """Read the AuthnRequest in the redirect URL the SP produced (HTTP-Redirect binding).

        pysaml2 parses it and checks its destination (this IdP's SSO URL) and issue instant; the issuer
        must be an SP given to :meth:`add_sp`. Raises ``ValueError`` (or pysaml2's error) otherwise.
        """
        args = _query(redirect_url)
        parsed = self._server.parse_authn_request(
            args["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=args.get("RelayState"),
            sigalg=args.get("SigAlg"),
            signature=args.get("Signature"),
        )
        if parsed is None:
            raise ValueError("The AuthnRequest was not accepted.")
        message = parsed.message
        policy = message.name_id_policy
        return AuthnRequestInfo(
            id=message.id,
            issuer=self._trusted(message.issuer, "AuthnRequest", redirect_url),
            acs_url=message.assertion_consumer_service_url,
            relay_state=args.get("RelayState"),
            destination=message.destination,
            name_id_format=policy.format if policy is not None else None,
        )

    def login_response(
        self,
        sp_entity_id: str,
        acs_url: str,
        in_response_to: str | None = None,
        name_id: str = "alice@acme.example",
        attributes: dict[str, list[str]] | None = None,
        *,
        sign_response: bool = True,
        sign_assertion: bool = True,
        audience: str | None = None,
        destination: str | None = None,
        recipient: str | None = None,
        issuer: str | None = None,
        not_before: dt.datetime | None = None,
        not_on_or_after: dt.datetime | None = None,
        session_index: str | None = None,
        assertion_id: str | None = None,
        response_id: str | None = None,
        name_id_format: str = NAMEID_FORMAT_EMAILADDRESS,
        status: str = STATUS_SUCCESS,
    ) -> str:
        """A ``samlp:Response`` for the SP, base64 (the ``SAMLResponse`` field of the HTTP-POST binding).

        ``in_response_to=None`` is an IdP-initiated (unsolicited) response. ``audience`` defaults to
        the SP entity id, ``destination`` and ``recipient`` to ``acs_url``, ``issuer`` (of response and
        assertion) to this IdP. The validity window is ``not_before`` (default one minute ago) to
        ``not_on_or_after`` (default in five minutes), used for the Conditions and the bearer
        SubjectConfirmationData alike; give past datetimes for an expired response. Attributes are
        sent with ``Name`` = the key and the basic name format.
        """
        if attributes is None:
            attributes = {
                "email": [name_id],
                "firstName": ["Alice"],
                "lastName": ["Liddell"],
                "groups": ["engineers", "admins"],
            }
        now = dt.datetime.now(dt.UTC)
        not_before = not_before or now - dt.timedelta(minutes=1)
        not_on_or_after = not_on_or_after or now + dt.timedelta(minutes=5)
        response = self._server.create_authn_response(
            {},
            in_response_to,
            acs_url,
            sp_entity_id,
            name_id=NameID(format=name_id_format, text=name_id),
            authn={"class_ref": PASSWORD_PROTECTED_TRANSPORT, "authn_auth": self.entity_id},
            issuer=issuer,
            sign_response=False,
            sign_assertion=False,
        )
        if isinstance(response, str | list):  # pysaml2 answers with an error response as text
            raise RuntimeError(f"pysaml2 refused the response: {response}")

        response.id = response_id or f"_{uuid.uuid4().hex}"
        response.destination = destination or acs_url
        response.in_response_to = in_response_to
        if status != STATUS_SUCCESS:
            response.status = samlp.Status(status_code=samlp.StatusCode(value=status))

        assertion = response.assertion
        assertion.id = assertion_id or f"_{uuid.uuid4().hex}"
        conditions = assertion.conditions
        conditions.not_before = _utc(not_before)
        conditions.not_on_or_after = _utc(not_on_or_after)
        conditions.audience_restriction[0].audience[0].text = audience or sp_entity_id
        for confirmation in assertion.subject.subject_confirmation:
            data = confirmation.subject_confirmation_data
            data.recipient = recipient or acs_url
            data.in_response_to = in_response_to
            data.not_on_or_after = _utc(not_on_or_after)
        statement = assertion.authn_statement[0]
        statement.session_index = session_index or f"_{uuid.uuid4().hex}"
        if attributes:
            statement_ = do_attribute_statement({k: (list(v), "") for k, v in attributes.items()})
            for attribute in statement_.attribute:
                attribute.name_format = NAME_FORMAT_BASIC
            assertion.attribute_statement = [statement_]

        to_sign = []
        my_cert = self._server.sec.my_cert
        if sign_assertion:
            assertion.signature = pre_signature_part(
                assertion.id, my_cert, 2, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
            )
            to_sign.append(("urn:oasis:names:tc:SAML:2.0:assertion:Assertion", assertion.id))
        if sign_response:  # after the assertion: the response's digest covers the signed assertion
            response.signature = pre_signature_part(
                response.id, my_cert, 1, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
            )
            to_sign.append(("urn:oasis:names:tc:SAML:2.0:protocol:Response", response.id))
        xml = signed_instance_factory(response, self._server.sec, to_sign)
        if not isinstance(xml, str):
            xml = xml.to_string().decode()
        return encode(xml)

    # -- single logout ------------------------------------------------------------------------

    def _redirect(
        self, location: str, xml: str, *, response: bool, relay_state: str | None, sign: bool
    ) -> str:
        info = self._server.apply_binding(
            BINDING_HTTP_REDIRECT,
            xml,
            destination=location,
            relay_state=relay_state or "",
            response=response,
            sign=sign,
            sigalg=SIG_RSA_SHA256,
        )
        return dict(info["headers"])["Location"]

    def logout_request_url(
        self,
        sp_slo_url: str,
        name_id: str,
        session_index: str | None,
        sp_entity_id: str,
        *,
        relay_state: str | None = None,
        request_id: str | None = None,
        sign: bool = True,
        name_id_format: str = NAMEID_FORMAT_EMAILADDRESS,
        not_on_or_after: dt.datetime | None = None,
    ) -> str:
        """IdP-initiated logout: the SP's SLO URL with a ``SAMLRequest`` (HTTP-Redirect binding),
        signed with ``SigAlg`` (rsa-sha256) and ``Signature`` query parameters unless ``sign=False``.

        The request's id is ``request_id`` (generated when not given), kept in
        ``last_logout_request_id`` to check the SP's answer with.
        """
        request_id = request_id or f"_{uuid.uuid4().hex}"
        _, request = self._server.create_logout_request(
            sp_slo_url,
            sp_entity_id,
            name_id=NameID(format=name_id_format, text=name_id, sp_name_qualifier=None),
            session_indexes=[SessionIndex(text=session_index)] if session_index else None,
            message_id=request_id,
            expire=_utc(not_on_or_after) if not_on_or_after else None,
            sign=False,
        )
        self.last_logout_request_id = request_id
        return self._redirect(sp_slo_url, str(request), response=False, relay_state=relay_state, sign=sign)

    def parse_logout_request(self, redirect_url: str) -> LogoutRequestInfo:
        """Read the LogoutRequest in the redirect URL the SP produced (SP-initiated logout); its issuer
        must be an SP given to :meth:`add_sp`."""
        args = _query(redirect_url)
        parsed = self._server.parse_logout_request(
            args["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=args.get("RelayState"),
            sigalg=args.get("SigAlg"),
            signature=args.get("Signature"),
        )
        if parsed is None:
            raise ValueError("The LogoutRequest was not accepted.")
        message = parsed.message
        indexes = [si.text for si in message.session_index or []]
        return LogoutRequestInfo(
            id=message.id,
            issuer=self._trusted(message.issuer, "LogoutRequest", redirect_url),
            name_id=message.name_id.text if message.name_id is not None else None,
            session_index=indexes[0] if indexes else None,
            session_indexes=indexes,
            destination=message.destination,
            relay_state=args.get("RelayState"),
        )

    def logout_response_url(
        self,
        sp_slo_url: str,
        in_response_to: str,
        sp_entity_id: str | None = None,
        status_success: bool = True,
        *,
        relay_state: str | None = None,
        sign: bool = True,
        issuer: str | None = None,
    ) -> str:
        """The answer to an SP-initiated logout: the SP's SLO URL with a ``SAMLResponse``
        (HTTP-Redirect binding), signed unless ``sign=False``. ``sp_entity_id`` is informative only
        (a LogoutResponse names no audience)."""
        status = samlp.Status(
            status_code=samlp.StatusCode(value=STATUS_SUCCESS if status_success else STATUS_RESPONDER)
        )
        response = samlp.LogoutResponse(
            id=f"_{uuid.uuid4().hex}",
            version=VERSION,
            issue_instant=_utc(dt.datetime.now(dt.UTC)),
            issuer=Issuer(text=issuer or self.entity_id, format=NAMEID_FORMAT_ENTITY),
            status=status,
            in_response_to=in_response_to,
            destination=sp_slo_url,
        )
        return self._redirect(sp_slo_url, str(response), response=True, relay_state=relay_state, sign=sign)

    def parse_logout_response(self, redirect_url: str) -> LogoutResponseInfo:
        """Read the LogoutResponse in the redirect URL the SP produced (its answer to
        :meth:`logout_request_url`)."""
        args = _query(redirect_url)
        parsed = self._server.parse_logout_request_response(args["SAMLResponse"], BINDING_HTTP_REDIRECT)
        if parsed is None:
            raise ValueError("The LogoutResponse was not accepted.")
        response = parsed.response
        return LogoutResponseInfo(
            id=response.id,
            issuer=self._trusted(response.issuer, "LogoutResponse"),
            in_response_to=response.in_response_to,
            status=response.status.status_code.value,
            destination=response.destination,
            relay_state=args.get("RelayState"),
        )


# -- the attack set --------------------------------------------------------------------------


def _assertion(root: etree._Element) -> etree._Element:
    found = root.find("saml:Assertion", NS)
    if found is None:
        raise ValueError("The response has no (plain) assertion.")
    return found


def _set_attribute(assertion: etree._Element, name: str, value: str) -> None:
    values = assertion.findall(f".//saml:Attribute[@Name='{name}']/saml:AttributeValue", NS)
    if not values:
        raise ValueError(f"The assertion has no attribute {name!r}.")
    values[0].text = value


def _set_name_id(assertion: etree._Element, value: str) -> None:
    name_id = assertion.find("saml:Subject/saml:NameID", NS)
    if name_id is None:
        raise ValueError("The assertion has no NameID.")
    name_id.text = value


def tamper_attribute(b64: str, name: str, new_value: str) -> str:
    """The response with the first value of attribute ``name`` (in every assertion) changed after
    signing; the signature elements stay as they were."""
    root = _parse(b64)
    for assertion in root.iter(f"{{{NS['saml']}}}Assertion"):
        _set_attribute(assertion, name, new_value)
    return _serialise(root)


def tamper_name_id(b64: str, new_value: str) -> str:
    """The response with the subject's NameID changed after signing, signatures kept."""
    root = _parse(b64)
    for assertion in root.iter(f"{{{NS['saml']}}}Assertion"):
        _set_name_id(assertion, new_value)
    return _serialise(root)


def strip_signatures(b64: str) -> str:
    """The response with every ``ds:Signature`` removed: an unsigned response."""
    root = _parse(b64)
    for signature in list(root.iter(f"{{{NS['ds']}}}Signature")):
        signature.getparent().remove(signature)
    return _serialise(root)


def inject_comment(b64: str, prefix: str) -> str:
    """The comment-injection attack (CVE-2017-11427 and siblings): every NameID or AttributeValue
    whose text starts with ``prefix`` but goes on (``alice@acme.example.evil.example``) is split by
    an XML comment after ``prefix`` (``alice@acme.example<!---->.evil.example``). Canonicalisation
    drops comments, so the signature still verifies; an SP reading only the first text node would
    see ``prefix``. Sign the longer value (an account the attacker holds), then inject."""
    root = _parse(b64)
    hit = False
    for tag in (f"{{{NS['saml']}}}NameID", f"{{{NS['saml']}}}AttributeValue"):
        for element in root.iter(tag):
            text = element.text or ""
            if text.startswith(prefix) and text != prefix and len(element) == 0:
                element.text = prefix
                comment = etree.Comment("")
                comment.tail = text[len(prefix) :]
                element.append(comment)
                hit = True
    if not hit:
        raise ValueError(f"No NameID or attribute value extends {prefix!r}.")
    return _serialise(root)


def _strip_own_signature(element: etree._Element) -> etree._Element:
    signature = element.find("ds:Signature", NS)
    if signature is not None:
        element.remove(signature)
    return element


# Where the signed original ends up inside the ds:Signature itself (XSW1, XSW6, XSW8), xmlsec's
# enveloped-signature transform removes it from the digest input, so under libxmlsec1 the signature
# no longer verifies: those variants only fool verifiers that implement the transform as "drop the
# referenced element's own Signature child". In the others the original signature still verifies.
XSW_VARIANTS: dict[str, str] = {
    # Response signature (the SP must want the response signed): Somorovsky et al., "On Breaking
    # SAML: Be Whoever You Want to Be" (2012), as also implemented by SAML Raider.
    "XSW1": "Response signature. A copy of the original response (signature removed) is appended"
    " inside the response's ds:Signature; the outer response gets a new ID and the evil assertion.",
    "XSW2": "Response signature. As XSW1, but the original response copy is inserted before the"
    " ds:Signature, as a sibling (a detached signature).",
    # Assertion signature (the SP wants assertions signed, the default): the response is not signed.
    "XSW3": "Assertion signature. An evil assertion (new ID, no signature) is inserted before the"
    " original signed assertion, as the response's first assertion.",
    "XSW4": "Assertion signature. The original signed assertion is moved inside the evil assertion"
    " (new ID, no signature of its own), which takes its place.",
    "XSW5": "Assertion signature. The original assertion is changed in place to the evil one (new ID,"
    " keeps the now dangling signature) and an unsigned copy of the original is appended to the response.",
    "XSW6": "Assertion signature. As XSW5, but the unsigned copy of the original goes inside the evil"
    " assertion's ds:Signature.",
    "XSW7": "Assertion signature. The original signed assertion is moved into a samlp:Extensions"
    " element of the response; the evil assertion (same ID, no signature) takes its place.",
    "XSW8": "Assertion signature. The evil assertion (same ID) keeps the signature, which gets a"
    " ds:Object holding an unsigned copy of the original assertion.",
}


def wrap_signature(
    b64: str,
    evil_email: str = "mallory@evil.example",
    variant: str = "XSW3",
    *,
    evil_name_id: str | None = None,
    email_attribute: str = "email",
) -> str:
    """An XML signature wrapping attack on a valid response: the signed content stays reachable by
    its ID (so the signature still verifies) while an evil assertion with ``evil_email`` (NameID and
    ``email_attribute``) sits where a naive SP reads it. See :data:`XSW_VARIANTS` for each variant;
    XSW1/2 need a response signature, XSW3 to XSW8 an assertion signature."""
    if variant not in XSW_VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; one of {', '.join(XSW_VARIANTS)}.")
    evil_name_id = evil_name_id or evil_email
    root = _parse(b64)
    ds_ = f"{{{NS['ds']}}}"

    def make_evil(assertion: etree._Element) -> None:
        _set_name_id(assertion, evil_name_id)
        _set_attribute(assertion, email_attribute, evil_email)

    evil_id = f"_evil_{uuid.uuid4().hex}"
    if variant in ("XSW1", "XSW2"):
        signature = root.find("ds:Signature", NS)
        if signature is None:
            raise ValueError(f"{variant} needs a signed response.")
        original = _strip_own_signature(copy.deepcopy(root))
        if variant == "XSW1":
            signature.append(original)
        else:
            signature.addprevious(original)
        root.set("ID", evil_id)
        make_evil(_assertion(root))
        return _serialise(root)

    assertion = _assertion(root)
    signature = assertion.find("ds:Signature", NS)
    if signature is None:
        raise ValueError(f"{variant} needs a signed assertion.")
    if variant == "XSW3":
        evil = _strip_own_signature(copy.deepcopy(assertion))
        evil.set("ID", evil_id)
        make_evil(evil)
        assertion.addprevious(evil)
    elif variant == "XSW4":
        evil = _strip_own_signature(copy.deepcopy(assertion))
        evil.set("ID", evil_id)
        make_evil(evil)
        assertion.addprevious(evil)
        evil.append(assertion)  # moves the original inside the evil one
    elif variant in ("XSW5", "XSW6"):
        original = _strip_own_signature(copy.deepcopy(assertion))
        assertion.set("ID", evil_id)
        make_evil(assertion)
        if variant == "XSW5":
            root.append(original)
        else:
            signature.append(original)
    elif variant == "XSW7":
        evil = _strip_own_signature(copy.deepcopy(assertion))
        make_evil(evil)
        extensions = etree.Element(f"{{{NS['samlp']}}}Extensions")
        status = root.find("samlp:Status", NS)
        (status if status is not None else assertion).addprevious(extensions)
        assertion.addprevious(evil)
        extensions.append(assertion)  # moves the signed original into Extensions
    else:  # XSW8
        original = _strip_own_signature(copy.deepcopy(assertion))
        make_evil(assertion)
        obj = etree.SubElement(signature, f"{ds_}Object")
        obj.append(original)
    return _serialise(root)
