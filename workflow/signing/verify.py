"""Verification of incoming XAdES / XML-DSig signed documents (ETSI EN 319 102-1 style report).

`verify_xades(data, ...)` returns a `VerificationReport`; `verify_command(argv)` is `ezd verify`.

What is checked, per ds:Signature in the document (every one, by position and Id; signxml on its
own looks only at the first):

1. Format: the bytes are parsed only with the hardened parser (`workflow.xmlsafe`): DOCTYPE,
   entities, XInclude, malformed or non-UTF-8 input and oversize files are refused
   (TOTAL_FAILED / FORMAT_FAILURE). signxml gets the pre-parsed tree and the same hardened
   parser for its internal copies, never the raw bytes with its own parser.
2. Algorithms: unknown SignatureMethod / DigestMethod -> FORMAT_FAILURE; SHA-1 (or MD5) in the
   signature method or a reference digest -> TOTAL_FAILED / CRYPTO_CONSTRAINTS_FAILURE unless
   `allow_sha1`. A SHA-1 CertDigest only identifies a certificate: warning.
3. Cryptography (signxml, with our own signing certificate and our own chain logic): the
   SignatureValue (SIG_CRYPTO_FAILURE) and every ds:Reference digest (HASH_FAILURE), plus the
   in-document references of signed ds:Manifests. Schema errors -> FORMAT_FAILURE.
4. Signing certificate: identified by the signed xades:SigningCertificate(V2) digest; a
   mismatch with the certificate that verifies the signature -> HASH_FAILURE; none at all ->
   INDETERMINATE / NO_SIGNING_CERTIFICATE_FOUND.
5. Signature wrapping: what the application reads must be what was verified. An enveloped
   signature must cover the document root (URI="" or the root's Id), an enveloping one every
   ds:Object holding data, a counter-signature the countersigned SignatureValue, a detached one
   the supplied content. Anything else -> TOTAL_FAILED / FORMAT_FAILURE. The xades:SignedProperties
   used must be the signed one, inside this signature, targeting it.
6. Time: xades:SigningTime (claimed) and the signature time-stamp (RFC 3161 token: imprint over
   the canonicalized ds:SignatureValue, messageDigest, the TSA's CMS signature). A signing time
   before the certificate's notBefore -> TOTAL_FAILED / NOT_YET_VALID, a claimed one after its
   notAfter -> TOTAL_FAILED / EXPIRED.
7. Chain: built by us with `cryptography` from the certificates in the signature to a
   `TrustStore` anchor (issuer/subject, signature, validity at the validation time, CA
   basicConstraints, keyCertSign, pathLen; for the signer digitalSignature OR nonRepudiation).
   No store -> INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND (never the system or web bundle);
   signer out of its validity at the validation time -> INDETERMINATE / OUT_OF_BOUNDS_NO_POE.
   Revocation is not checked (offline): a warning says so.

The validation time is `at`: None = now, a datetime, or "signing_time" = the verified
time-stamp's genTime, else the claimed SigningTime, else INDETERMINATE / NO_POE.

Memory: the input is limited to `max_bytes` (50 MB by default); signxml serializes and re-parses
the tree several times while it verifies, so peak RSS grows by about 7 x the XML size: a 20 MB
attachment (28 MB of XML) takes ~190 MB and ~1.3 s; tests/test_xades_verify.py asserts a 400 MB
budget for it. A detached file is only hashed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import cryptography.exceptions
from asn1crypto import cms, tsp  # type: ignore[import-untyped, unused-ignore]
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidDigest, InvalidInput, InvalidSignature, SignXMLException
from signxml.verifier import XMLVerifier
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from workflow.signing.report import VerificationReport
from workflow.signing.trust import TrustStore, cert_sha256
from workflow.xmlsafe import XmlRefused, hardened_parser, parse_untrusted_xml

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
XADES141_NS = "http://uri.etsi.org/01903/v1.4.1#"
_DS = "{" + DS_NS + "}"
_XA = "{" + XADES_NS + "}"
NS = {"ds": DS_NS, "xades": XADES_NS, "xades141": XADES141_NS}

ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XPATH_TRANSFORM = "http://www.w3.org/TR/1999/REC-xpath-19991116"
BASE64_TRANSFORM = "http://www.w3.org/2000/09/xmldsig#base64"
#: The XPath filter parallel enveloped signatures use to leave each other out.
_EXCLUDE_SIGNATURES = re.compile(
    r"^not\(ancestor-or-self::(?:(?P<prefix>[A-Za-z_][\w.-]*):)?Signature\)$"
)
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"

DEFAULT_MAX_BYTES = 50_000_000
#: Enough for a 140-certificate trusted list or a long form; far below a billion-laughs blow-up.
MAX_ELEMENTS = 1_000_000
#: Each signature costs a few copies of the document in signxml: refuse absurd counts.
MAX_SIGNATURES = 32
#: A claimed SigningTime may run this much ahead of the time-stamp (clock skew) before a warning.
CLOCK_SKEW = timedelta(minutes=5)

#: Broken algorithms that signxml does not even recognise: refused by policy, not as "unknown".
_BROKEN_ALGORITHMS = {
    "http://www.w3.org/2001/04/xmldsig-more#md5",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-md5",
}

_CRYPTO_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}

#: Extensions `cryptography` does not parse but a verifier may accept when critical.
_KNOWN_CRITICAL_OIDS = {
    "1.3.6.1.5.5.7.1.3",  # qcStatements (ETSI EN 319 412-5), critical in some qualified certs
}

#: asn1crypto registers the TSTInfo content type when its tsp module is imported.
_TSP_LOADED = tsp.TSTInfo

At = datetime | Literal["signing_time"] | None


# ---------------------------------------------------------------------------------------------
# findings
# ---------------------------------------------------------------------------------------------
@dataclass
class _Findings:
    """Every problem found; the first TOTAL_FAILED one decides, else the first INDETERMINATE."""

    failed: list[tuple[str, str]] = field(default_factory=list)
    undecided: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def fail(self, sub: str, message: str) -> None:
        self.failed.append((sub, message))

    def indeterminate(self, sub: str, message: str) -> None:
        self.undecided.append((sub, message))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def apply(self, report: VerificationReport) -> None:
        if self.failed:
            report.indication, report.sub_indication = "TOTAL_FAILED", self.failed[0][0]
        elif self.undecided:
            report.indication, report.sub_indication = "INDETERMINATE", self.undecided[0][0]
        else:
            report.indication, report.sub_indication = "TOTAL_PASSED", None
        report.errors = [f"{sub}: {msg}" for sub, msg in self.failed + self.undecided]
        report.warnings = list(self.warnings)


class _SignedDataNotFound(InvalidInput):
    """A reference names data that the caller did not supply (detached content)."""


# ---------------------------------------------------------------------------------------------
# signxml, driven: one chosen signature, our certificate, detached content without file reads
# ---------------------------------------------------------------------------------------------
def _hardened_parser() -> etree.XMLParser:
    """workflow.xmlsafe's settings, for signxml's internal re-parsing of the tree; processing
    instructions kept (signed content must stay as signed)."""
    return hardened_parser(huge_tree=True, keep_pis=True)


class _DrivenMixin:
    """Overrides shared by the XAdES and the plain XML-DSig verifier.

    - `_get_signature`: the signature at position `index` in document order (signxml would take
      the first one; it calls this again on its private copies, where the order is the same);
    - `_check_cert_validity`: no-op, validity is checked by us at the right time;
    - `_verify_cert_digests`: no-op, the SigningCertificate binding is checked by us;
    - `_resolve_reference`: references without a URI or with an external URI resolve to the
      detached content the caller passed in (bytes, or the parsed XML when the reference
      canonicalizes it); nothing is ever read from a file or the network;
    - `_apply_transforms`: the XPath transform `not(ancestor-or-self::ds:Signature)` (parallel
      enveloped signatures) removes every ds:Signature from the payload; signxml would ignore
      it. Other transforms signxml does not know are left out, as signxml does, so the digest
      covers the untransformed data (a note says so).
    """

    _index: int = 0
    _detached: bytes | None = None
    _detached_uri: str | None = None
    _max_bytes: int = DEFAULT_MAX_BYTES
    _notes: list[str]

    def _apply_transforms(self, payload: Any, *, transforms_node: Any, signature: Any) -> Any:
        known = {ENVELOPED, BASE64_TRANSFORM, *(m.value for m in CanonicalizationMethod)}
        for transform in [] if transforms_node is None else transforms_node:
            if not isinstance(transform.tag, str) or transform.tag != _DS + "Transform":
                continue
            algorithm = transform.get("Algorithm")
            if algorithm == XPATH_TRANSFORM and _excludes_signatures(transform):
                if isinstance(payload, etree._Element):
                    for sig in list(payload.iter(_DS + "Signature")):
                        if sig is not payload:
                            _remove_keeping_tail(sig)
            elif algorithm not in known:
                self._notes.append(
                    f"transform {algorithm} is not applied; the digest matched the "
                    "untransformed data"
                )
        return super()._apply_transforms(  # type: ignore[misc]
            payload, transforms_node=transforms_node, signature=signature
        )

    def _get_signature(self, root: Any) -> Any:
        for i, sig in enumerate(root.iter(_DS + "Signature")):
            if i == self._index:
                return sig
        raise InvalidInput(f"signature #{self._index} not found")

    def _check_cert_validity(self, cert: Any, cert_source: Any) -> None:
        return None

    def _verify_cert_digests(self, verify_result: Any) -> None:
        return None

    def _resolve_reference(self, doc_root: Any, reference: Any, uri_resolver: Any = None) -> Any:
        uri = reference.get("URI")
        if uri is not None and (uri == "" or uri.startswith("#")):
            return super()._resolve_reference(  # type: ignore[misc]
                doc_root, reference, uri_resolver=uri_resolver
            )
        return self._detached_payload(uri, reference)

    def _detached_payload(self, uri: str | None, reference: Any) -> Any:
        shown = "(no URI)" if uri is None else uri
        if self._detached is None:
            raise _SignedDataNotFound(
                f"the reference {shown} names detached content that was not supplied"
            )
        key = uri or ""
        if self._detached_uri is None:
            self._detached_uri = key
        elif self._detached_uri != key:
            raise _SignedDataNotFound(
                f"the signature references a second detached object {shown}; only one "
                "detached content can be supplied"
            )
        transforms = reference.findall(f"{_DS}Transforms/{_DS}Transform")
        if not transforms:
            return self._detached
        try:
            return parse_untrusted_xml(
                self._detached,
                max_bytes=self._max_bytes,
                max_elements=MAX_ELEMENTS,
                huge_tree=True,
                what="detached content",
                keep_processing_instructions=True,
            )
        except XmlRefused as e:
            raise InvalidInput(
                f"the reference {shown} transforms the detached content as XML, but it is not "
                f"acceptable XML: {e.message_en}"
            ) from e


class _XAdESVerifier(_DrivenMixin, XAdESVerifier):
    pass


class _XMLDSigVerifier(_DrivenMixin, XMLVerifier):
    pass


def _make_verifier(
    xades: bool, index: int, detached: bytes | None, max_bytes: int
) -> _XAdESVerifier | _XMLDSigVerifier:
    verifier: _XAdESVerifier | _XMLDSigVerifier = _XAdESVerifier() if xades else _XMLDSigVerifier()
    verifier._index = index
    verifier._detached = detached
    verifier._max_bytes = max_bytes
    verifier._notes = []
    return verifier


def _has_processing_instructions(data: bytes) -> bool:
    """workflow.xmlsafe drops processing instructions, so a digest over signed content that held
    one cannot match: a HASH_FAILURE then says why. Any "<?" after the XML declaration counts."""
    start = 0
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<?xml"):
        start = data.find(b"?>") + 2
    return data.find(b"<?", start) != -1


def _excludes_signatures(transform: Any) -> bool:
    xpath = transform.find(_DS + "XPath")
    if xpath is None:
        return False
    match = _EXCLUDE_SIGNATURES.match("".join((xpath.text or "").split()))
    if match is None:
        return False
    prefix = match.group("prefix")
    if prefix is None:  # an unprefixed name matches no ds:Signature in XPath 1.0
        return False
    # exclusive C14N of SignedInfo may drop the (text-only) prefix declaration: unbound is fine
    return xpath.nsmap.get(prefix) in (None, DS_NS)


def _remove_keeping_tail(el: Any) -> None:
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        previous = el.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def _b64(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()), validate=True)


def _load_cert(text: str | None) -> x509.Certificate:
    return x509.load_der_x509_certificate(_b64(text))


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "<unreadable subject>"


def _display_name(cert: x509.Certificate) -> str:
    def attr(oid: x509.ObjectIdentifier) -> str | None:
        values = cert.subject.get_attributes_for_oid(oid)
        if not values:
            return None
        v = values[0].value
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

    cn = attr(x509.NameOID.COMMON_NAME)
    org = attr(x509.NameOID.ORGANIZATION_NAME)
    if cn and org:
        return f"{cn}, {org}"
    return cn or org or _subject(cert)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_xs_datetime(text: str | None) -> datetime | None:
    if not text or not text.strip():
        return None
    return _utc(datetime.fromisoformat(text.strip()))


def _localname(el: Any) -> str:
    tag = el.tag
    return str(etree.QName(tag).localname) if isinstance(tag, str) else ""


def _same_document_target(root: Any, uri: str) -> Any:
    """Resolve "" or "#id" exactly as signxml does (first by Id, then ID, id), or None."""
    if uri == "":
        return root
    if uri.startswith("#xpointer(") or not uri.startswith("#"):
        return None
    for id_attribute in ("Id", "ID", "id", "xml:id"):
        found = root.xpath(f"//*[@*[local-name() = '{id_attribute}']=$uri]", uri=uri[1:])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return None
    return None


def _describe(el: Any) -> str:
    ident = next((el.get(a) for a in ("Id", "ID", "id") if el.get(a)), None)
    return f"<{_localname(el)}{f' Id={ident!r}' if ident else ''}>"


def _is_within(el: Any, ancestor: Any) -> bool:
    return el is ancestor or any(a is ancestor for a in el.iterancestors())


# ---------------------------------------------------------------------------------------------
# the verifier proper
# ---------------------------------------------------------------------------------------------
def verify_xades(
    data: bytes,
    *,
    detached_content: bytes | None = None,
    trust: TrustStore | None,
    at: At = None,
    allow_sha1: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> VerificationReport:
    """Verify every signature in `data`; see the module docstring for what that means."""
    if detached_content is not None and len(detached_content) > max_bytes:
        return VerificationReport.refused(
            "FORMAT_FAILURE",
            f"xml_too_large: the detached content is larger than the limit of {max_bytes} bytes",
        )
    try:
        root = parse_untrusted_xml(
            data,
            max_bytes=max_bytes,
            max_elements=MAX_ELEMENTS,
            huge_tree=True,
            what="XAdES",
            keep_processing_instructions=True,
        )
    except XmlRefused as e:
        return VerificationReport.refused("FORMAT_FAILURE", f"{e.code}: {e.message_en}")
    signatures = list(root.iter(_DS + "Signature"))
    if not signatures:
        return VerificationReport.refused(
            "FORMAT_FAILURE", "no_signature: the document contains no ds:Signature element"
        )
    if len(signatures) > MAX_SIGNATURES:
        return VerificationReport.refused(
            "FORMAT_FAILURE",
            f"too_many_signatures: {len(signatures)} ds:Signature elements "
            f"(limit {MAX_SIGNATURES})",
        )
    now = datetime.now(UTC)
    has_pis = _has_processing_instructions(data)
    reports = [
        _SignatureCheck(
            root=root,
            sig=sig,
            index=i,
            detached=detached_content,
            trust=trust,
            at=_utc(at) if isinstance(at, datetime) else at,
            now=now,
            allow_sha1=allow_sha1,
            max_bytes=max_bytes,
            has_pis=has_pis,
        ).run()
        for i, sig in enumerate(signatures)
    ]
    return VerificationReport.summarise(reports)


@dataclass
class _Timestamp:
    gen_time: datetime
    tsa: x509.Certificate


class _SignatureCheck:
    def __init__(
        self,
        *,
        root: Any,
        sig: Any,
        index: int,
        detached: bytes | None,
        trust: TrustStore | None,
        at: At,
        now: datetime,
        allow_sha1: bool,
        max_bytes: int,
        has_pis: bool = False,
    ) -> None:
        self.root, self.sig, self.index = root, sig, index
        self.detached, self.trust, self.at, self.now = detached, trust, at, now
        self.allow_sha1, self.max_bytes, self.has_pis = allow_sha1, max_bytes, has_pis
        self.f = _Findings()
        self.report = VerificationReport(indication="INDETERMINATE", signature_id=sig.get("Id"))
        self.signed_properties: Any = None
        self.qualifying_properties: Any = None
        self._targets: dict[str, Any] = {}

    def _target(self, uri: str) -> Any:
        """`_same_document_target`, once per URI (each lookup scans the whole document)."""
        if uri not in self._targets:
            self._targets[uri] = _same_document_target(self.root, uri)
        return self._targets[uri]

    # -- driver -----------------------------------------------------------------------------
    def run(self) -> VerificationReport:
        try:
            self._run()
        except Exception as e:  # a malformed signature must give a report, never a 500
            self.f.fail("FORMAT_FAILURE", f"the signature could not be processed: {e!r}")
        self.f.apply(self.report)
        return self.report

    def _run(self) -> None:
        signed_info = self.sig.find("ds:SignedInfo", NS)
        if signed_info is None or self.sig.find("ds:SignatureValue", NS) is None:
            self.f.fail("FORMAT_FAILURE", "ds:Signature has no ds:SignedInfo or ds:SignatureValue")
            return
        references = signed_info.findall("ds:Reference", NS)
        if not self._check_algorithms(signed_info, references):
            return
        self._find_signed_properties(references)
        self.report.level = self._level()
        keyinfo_certs, extra_certs = self._certificates()
        signer, bound = self._identify_signer(keyinfo_certs, extra_certs)
        if signer is None:
            return
        self.report.signed_by = _display_name(signer)
        self.report.signer_certificate_sha256 = cert_sha256(signer)
        verifier = self._crypto(signer)
        if verifier is None:
            if not bound:
                self.f.fail(
                    "SIG_CRYPTO_FAILURE",
                    "the certificate in ds:KeyInfo is not the one named by the signed "
                    "xades:SigningCertificate (certificate swapped?)",
                )
            return
        if not bound:
            self.f.fail(
                "HASH_FAILURE",
                "the digest in xades:SigningCertificate does not match the signing certificate",
            )
        self._check_coverage(references, verifier)
        self._check_signed_properties_binding()
        times = self._times(extra_certs)
        self._check_chain(signer, keyinfo_certs + extra_certs, times)

    # -- 2. algorithms ----------------------------------------------------------------------
    def _check_algorithms(self, signed_info: Any, references: list[Any]) -> bool:
        method = signed_info.find("ds:SignatureMethod", NS)
        uri = method.get("Algorithm") if method is not None else None
        if uri in _BROKEN_ALGORITHMS:
            self.f.fail("CRYPTO_CONSTRAINTS_FAILURE", f"signature algorithm {uri} is forbidden")
            return False
        try:
            sig_alg = SignatureMethod(uri)
        except (InvalidInput, ValueError):
            self.f.fail("FORMAT_FAILURE", f"unrecognised SignatureMethod algorithm {uri!r}")
            return False
        if sig_alg.name.startswith("HMAC_"):
            self.f.fail("FORMAT_FAILURE", "HMAC signatures identify no signer and are refused")
            return False
        if "SHA1" in sig_alg.name and not self.allow_sha1:
            self.f.fail(
                "CRYPTO_CONSTRAINTS_FAILURE",
                f"signature algorithm {sig_alg.name} uses SHA-1, which is not allowed "
                "(--allow-sha1 for legacy documents)",
            )
        if not references:
            self.f.fail("FORMAT_FAILURE", "ds:SignedInfo has no ds:Reference")
            return False
        for ref in references:
            dm = ref.find("ds:DigestMethod", NS)
            duri = dm.get("Algorithm") if dm is not None else None
            if duri in _BROKEN_ALGORITHMS:
                self.f.fail("CRYPTO_CONSTRAINTS_FAILURE", f"digest algorithm {duri} is forbidden")
                return False
            try:
                dalg = DigestAlgorithm(duri)
            except (InvalidInput, ValueError):
                self.f.fail("FORMAT_FAILURE", f"unrecognised DigestMethod algorithm {duri!r}")
                return False
            if dalg is DigestAlgorithm.SHA1 and not self.allow_sha1:
                self.f.fail(
                    "CRYPTO_CONSTRAINTS_FAILURE",
                    f"reference {ref.get('URI')!r} uses the SHA-1 digest, which is not allowed",
                )
        return True

    # -- XAdES properties -------------------------------------------------------------------
    def _find_signed_properties(self, references: list[Any]) -> None:
        for ref in references:
            uri = ref.get("URI")
            if uri is None or not uri.startswith("#"):
                continue
            target = self._target(uri)
            if target is not None and target.tag == _XA + "SignedProperties":
                self.signed_properties = target
                parent = target.getparent()
                if parent is not None and parent.tag == _XA + "QualifyingProperties":
                    self.qualifying_properties = parent
                return

    def _own_qp_find(self, path: str) -> list[Any]:
        qp = self.qualifying_properties
        return list(qp.iterfind(path, NS)) if qp is not None else []

    def _level(self) -> str:
        if self.signed_properties is None:
            return "XMLDSig"
        ssp = "xades:SignedProperties/xades:SignedSignatureProperties/"
        usp = "xades:UnsignedProperties/xades:UnsignedSignatureProperties/"

        def has(path: str) -> bool:
            return bool(self._own_qp_find(path))

        level = "XAdES-EPES" if has(ssp + "xades:SignaturePolicyIdentifier") else "XAdES-BES"
        if has(usp + "xades:SignatureTimeStamp"):
            level = "XAdES-T"
        refs = has(usp + "xades:CompleteCertificateRefs") or has(
            usp + "xades141:CompleteCertificateRefsV2"
        )
        values = has(usp + "xades:CertificateValues") and has(usp + "xades:RevocationValues")
        archive = has(usp + "xades141:ArchiveTimeStamp") or has(usp + "xades:ArchiveTimeStamp")
        if refs:
            level = "XAdES-C"
            if has(usp + "xades:SigAndRefsTimeStamp") or has(usp + "xades:RefsOnlyTimeStamp"):
                level = "XAdES-X-L" if values else "XAdES-X"
            if archive:
                level = "XAdES-A"
        elif values:
            level = "XAdES-B-LTA" if archive else "XAdES-B-LT"
        return level

    def _certificates(self) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
        keyinfo: list[x509.Certificate] = []
        for el in self.sig.iterfind("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS):
            try:
                keyinfo.append(_load_cert(el.text))
            except (ValueError, binascii.Error) as e:
                self.f.fail("FORMAT_FAILURE", f"a ds:X509Certificate cannot be read: {e}")
        extra: list[x509.Certificate] = []
        usp = "xades:UnsignedProperties/xades:UnsignedSignatureProperties/"
        paths = (
            usp + "xades:CertificateValues/xades:EncapsulatedX509Certificate",
            usp + "xades141:TimeStampValidationData/xades:CertificateValues/"
            "xades:EncapsulatedX509Certificate",
        )
        for path in paths:
            for el in self._own_qp_find(path):
                try:
                    extra.append(_load_cert(el.text))
                except (ValueError, binascii.Error):
                    self.f.warn("an unsigned xades:EncapsulatedX509Certificate cannot be read")
        return keyinfo, extra

    # -- 4. signing certificate -------------------------------------------------------------
    def _identify_signer(
        self, keyinfo: list[x509.Certificate], extra: list[x509.Certificate]
    ) -> tuple[x509.Certificate | None, bool]:
        """(the certificate to verify with, whether the signed properties bind it)."""
        refs: list[Any] = []
        if self.signed_properties is not None:
            ssp = self.signed_properties.find("xades:SignedSignatureProperties", NS)
            if ssp is not None:
                v1 = ssp.findall("xades:SigningCertificate/xades:Cert", NS)
                v2 = ssp.findall("xades:SigningCertificateV2/xades:Cert", NS)
                if v1 and v2:
                    self.f.fail(
                        "FORMAT_FAILURE",
                        "both xades:SigningCertificate and xades:SigningCertificateV2 present",
                    )
                refs = v1 or v2
        leaf = _leaf(keyinfo)
        if not refs:
            if leaf is None:
                self.f.indeterminate(
                    "NO_SIGNING_CERTIFICATE_FOUND", "no X.509 certificate in ds:KeyInfo"
                )
                return None, False
            if self.signed_properties is not None and not self._keyinfo_signed():
                self.f.indeterminate(
                    "NO_SIGNING_CERTIFICATE_FOUND",
                    "neither xades:SigningCertificate nor a signed ds:KeyInfo identifies the "
                    "signing certificate",
                )
            return leaf, True
        first = refs[0]
        dm = first.find("xades:CertDigest/ds:DigestMethod", NS)
        dv = first.find("xades:CertDigest/ds:DigestValue", NS)
        try:
            alg = DigestAlgorithm(dm.get("Algorithm") if dm is not None else None)
            wanted = _b64(dv.text if dv is not None else None)
        except (InvalidInput, ValueError, binascii.Error):
            self.f.fail("FORMAT_FAILURE", "xades:SigningCertificate CertDigest is malformed")
            if leaf is None:
                return None, False
            return leaf, True
        if alg is DigestAlgorithm.SHA1:
            self.f.warn("xades:SigningCertificate identifies the signer by a SHA-1 digest")
        impl = alg.implementation()
        for cert in keyinfo + extra:
            if hmac.compare_digest(cert.fingerprint(impl), wanted):
                self._check_issuer_serial(first, cert)
                return cert, True
        if leaf is None:
            self.f.indeterminate(
                "NO_SIGNING_CERTIFICATE_FOUND",
                "the certificate named by xades:SigningCertificate is not in the signature",
            )
            return None, False
        return leaf, False

    def _keyinfo_signed(self) -> bool:
        keyinfo = self.sig.find("ds:KeyInfo", NS)
        if keyinfo is None:
            return False
        for ref in self.sig.iterfind("ds:SignedInfo/ds:Reference", NS):
            target = self._target(ref.get("URI") or "-")
            if target is not None and _is_within(keyinfo, target):
                return True
        return False

    def _check_issuer_serial(self, cert_ref: Any, cert: x509.Certificate) -> None:
        serial = cert_ref.findtext("xades:IssuerSerial/ds:X509SerialNumber", None, NS)
        serial = (serial or "").strip()
        if serial.lstrip("-").isdigit() and int(serial) != cert.serial_number:
            self.f.warn("xades:IssuerSerial names another serial number than the certificate")

    # -- 3. cryptography (signxml) ------------------------------------------------------------
    def _crypto(self, signer: x509.Certificate) -> _XAdESVerifier | _XMLDSigVerifier | None:
        xades = self.signed_properties is not None
        verifier = _make_verifier(xades, self.index, self.detached, self.max_bytes)
        config = XAdESSignatureConfiguration(
            expect_references=True,
            signature_methods=frozenset(SignatureMethod),
            digest_algorithms=frozenset(DigestAlgorithm),
        )
        try:
            verifier.verify(
                self.root,
                x509_cert=signer,
                parser=_hardened_parser(),
                expect_config=config,
            )
        except _SignedDataNotFound as e:
            self.f.indeterminate("SIGNED_DATA_NOT_FOUND", str(e))
            return None
        except InvalidDigest as e:
            hint = (
                "; the document holds processing instructions, which the hardened parser "
                "removes, so signed content containing one cannot be verified"
                if self.has_pis
                else ""
            )
            self.f.fail("HASH_FAILURE", f"{e} (the signed data was altered{hint})")
            return None
        except InvalidSignature as e:
            self.f.fail("SIG_CRYPTO_FAILURE", f"the signature value does not verify: {e}")
            return None
        except cryptography.exceptions.InvalidSignature as e:
            self.f.fail("SIG_CRYPTO_FAILURE", f"the signature value does not verify: {e!r}")
            return None
        except etree.DocumentInvalid as e:
            self.f.fail("FORMAT_FAILURE", f"the signature is not schema-valid XML-DSig: {e}")
            return None
        except (SignXMLException, ValueError, KeyError, TypeError, etree.LxmlError) as e:
            self.f.fail("FORMAT_FAILURE", f"{e}")
            return None
        finally:
            for note in verifier._notes:
                self.f.warn(note)
        return verifier

    # -- 5. wrapping ----------------------------------------------------------------------------
    def _check_coverage(
        self, references: list[Any], verifier: _XAdESVerifier | _XMLDSigVerifier
    ) -> None:
        covered: list[Any] = []
        external: list[str] = []
        for ref in references:
            uri = ref.get("URI")
            if uri is None or not (uri == "" or uri.startswith("#")):
                external.append("(no URI)" if uri is None else uri)
                continue
            target = self._target(uri)
            if target is None:  # signxml resolved it, so this cannot happen; be strict anyway
                self.f.fail("FORMAT_FAILURE", f"reference {uri!r} cannot be resolved")
                return
            covered.append(target)
        self._verify_manifests(covered, verifier)
        covered_set = set(covered)

        def is_covered(el: Any) -> bool:
            return el in covered_set or any(a in covered_set for a in el.iterancestors())

        parent_sig = next((a for a in self.sig.iterancestors() if a.tag == _DS + "Signature"), None)
        counter = any(a.tag == _XA + "CounterSignature" for a in self.sig.iterancestors())
        if counter and parent_sig is not None:
            value = parent_sig.find("ds:SignatureValue", NS)
            if value is None or not is_covered(value):
                self.f.fail(
                    "FORMAT_FAILURE",
                    "the counter-signature does not cover the countersigned ds:SignatureValue",
                )
            else:
                self.report.signed_data.append(
                    f"countersigned SignatureValue of {parent_sig.get('Id') or 'the signature'}"
                )
            return
        if self.sig is self.root:
            self._check_enveloping(is_covered, external)
        else:
            uncovered = self._uncovered(self.root, is_covered)
            if uncovered:
                own = (_XA + "SignedProperties", _DS + "KeyInfo")
                data = [el for el in covered if el.tag not in own]
                signed = ", ".join(_describe(el) for el in data[:3]) or "only its own properties"
                self.f.fail(
                    "FORMAT_FAILURE",
                    f"signature wrapping: the signature covers {signed}, not the document "
                    f"<{_localname(self.root)}> the application reads "
                    f"({'; '.join(uncovered[:3])} not signed)",
                )
            else:
                self.report.signed_data.append(f"document <{_localname(self.root)}>")
        self.report.signed_data.extend(f"detached: {u}" for u in external)

    def _check_enveloping(self, is_covered: Callable[[Any], bool], external: list[str]) -> None:
        data_objects = [
            o
            for o in self.sig.findall("ds:Object", NS)
            if o.find("xades:QualifyingProperties", NS) is None
            and o.find("xades:QualifyingPropertiesReference", NS) is None
        ]
        if not data_objects and not external:
            self.f.indeterminate("SIGNED_DATA_NOT_FOUND", "the signature signs no data object")
            return
        for obj in data_objects:
            uncovered = self._uncovered(obj, is_covered)
            label = f"ds:Object {obj.get('Id') or '(no Id)'}"
            if uncovered:
                self.f.fail(
                    "FORMAT_FAILURE",
                    f"signature wrapping: {label} is not covered by the signature "
                    f"({'; '.join(uncovered[:3])} not signed)",
                )
            else:
                self.report.signed_data.append(label)

    def _uncovered(self, top: Any, is_covered: Callable[[Any], bool]) -> list[str]:
        """Parts of `top` that no verified reference covers (signatures excluded: each is
        checked on its own). A wrapper that only holds covered children is fine, with a
        warning that its own tag and attributes are not signed."""
        problems: list[str] = []
        stack = [top]
        while stack:
            el = stack.pop()
            if is_covered(el) or el.tag == _DS + "Signature":
                continue
            children = [c for c in el if isinstance(c.tag, str)]
            text = (el.text or "").strip() or any((c.tail or "").strip() for c in el)
            if text or not children:
                problems.append(f"<{_localname(el)}>")
                continue
            if el.attrib:
                self.f.warn(
                    f"the attributes of <{_localname(el)}> are not covered by the signature"
                )
            stack.extend(reversed(children))
        return problems

    def _verify_manifests(
        self, covered: list[Any], verifier: _XAdESVerifier | _XMLDSigVerifier
    ) -> None:
        """In-document references of signed ds:Manifests are checked (signxml does not);
        external ones cannot be (no file or network access): warning."""
        manifests: list[Any] = []
        for el in covered:
            if el.tag == _DS + "Manifest":
                manifests.append(el)
        for manifest in manifests:
            for idx, ref in enumerate(manifest.findall("ds:Reference", NS)):
                uri = ref.get("URI")
                if uri is None or not (uri == "" or uri.startswith("#")):
                    self.f.warn(f"manifest reference {uri!r} is outside the document: not checked")
                    continue
                dm = ref.find("ds:DigestMethod", NS)
                try:
                    dalg = DigestAlgorithm(dm.get("Algorithm") if dm is not None else None)
                except (InvalidInput, ValueError):
                    self.f.fail("FORMAT_FAILURE", f"manifest reference {uri!r}: unknown digest")
                    continue
                if dalg is DigestAlgorithm.SHA1 and not self.allow_sha1:
                    self.f.fail(
                        "CRYPTO_CONSTRAINTS_FAILURE", f"manifest reference {uri!r} uses SHA-1"
                    )
                try:
                    cast(Any, verifier)._verify_reference(
                        ref, idx, self.root, None, None, self.sig, b""
                    )
                except InvalidDigest:
                    self.f.fail("HASH_FAILURE", f"manifest reference {uri!r}: digest mismatch")
                    continue
                except (SignXMLException, ValueError) as e:
                    self.f.fail("FORMAT_FAILURE", f"manifest reference {uri!r}: {e}")
                    continue
                target = self._target(uri)
                if target is not None:
                    covered.append(target)

    def _check_signed_properties_binding(self) -> None:
        sp = self.signed_properties
        if sp is None:
            if self.sig.find("ds:Object/xades:QualifyingProperties", NS) is not None:
                self.f.fail(
                    "FORMAT_FAILURE",
                    "xades:QualifyingProperties present but its SignedProperties are not signed",
                )
            return
        if not _is_within(sp, self.sig) or self.qualifying_properties is None:
            self.f.fail(
                "FORMAT_FAILURE", "the signed xades:SignedProperties are not this signature's"
            )
            return
        sig_id = self.sig.get("Id")
        target = self.qualifying_properties.get("Target")
        if sig_id and target != f"#{sig_id}":
            # The binding that matters is the signed reference from this signature's SignedInfo
            # to SignedProperties inside this signature; real signers get Target wrong (case).
            self.f.warn(
                f"xades:QualifyingProperties Target {target!r} does not name this signature "
                f"(#{sig_id})"
            )
        own_sps = [
            el
            for obj in self.sig.findall("ds:Object", NS)
            for el in obj.iterfind("xades:QualifyingProperties/xades:SignedProperties", NS)
        ]
        if len(own_sps) > 1:
            self.f.fail("FORMAT_FAILURE", "more than one xades:SignedProperties in the signature")

    # -- 6. time ------------------------------------------------------------------------------
    def _times(self, extra: list[x509.Certificate]) -> tuple[datetime | None, datetime | None]:
        """(claimed SigningTime, verified time-stamp genTime)."""
        claimed: datetime | None = None
        if self.signed_properties is not None:
            text = self.signed_properties.findtext(
                "xades:SignedSignatureProperties/xades:SigningTime", None, NS
            )
            try:
                claimed = _parse_xs_datetime(text)
            except ValueError:
                self.f.fail("FORMAT_FAILURE", f"xades:SigningTime {text!r} is not a dateTime")
        self.report.claimed_signing_time = claimed
        stamps = self._own_qp_find(
            "xades:UnsignedProperties/xades:UnsignedSignatureProperties/xades:SignatureTimeStamp"
        )
        proven: datetime | None = None
        for stamp in stamps:
            ts = self._check_timestamp(stamp, extra)
            if ts is not None and (proven is None or ts.gen_time < proven):
                proven = ts.gen_time
        self.report.timestamp_time = proven
        if claimed is not None and proven is not None and claimed > proven + CLOCK_SKEW:
            self.f.warn(
                f"the claimed SigningTime {claimed.isoformat()} is after the time-stamp "
                f"{proven.isoformat()}"
            )
        self.report.signing_time = proven or claimed
        return claimed, proven

    def _check_timestamp(self, stamp: Any, extra: list[x509.Certificate]) -> _Timestamp | None:
        cm = stamp.find("ds:CanonicalizationMethod", NS)
        c14n_uri = cm.get("Algorithm") if cm is not None else C14N_10
        encapsulated = stamp.find("xades:EncapsulatedTimeStamp", NS)
        if encapsulated is None:
            self.f.warn("a xades:SignatureTimeStamp without EncapsulatedTimeStamp is ignored")
            return None
        try:
            c14n = CanonicalizationMethod(c14n_uri)
            value = self.sig.find("ds:SignatureValue", NS)
            imprint_input = etree.tostring(
                value,
                method="c14n",
                exclusive=c14n.value.startswith("http://www.w3.org/2001/10/xml-exc-c14n#"),
                with_comments=c14n.value.endswith("#WithComments"),
            )
            return _verify_timestamp_token(
                _b64(encapsulated.text), imprint_input, extra, self.allow_sha1, self.trust, self.f
            )
        except _TimestampProblem as e:
            self.f.indeterminate("SIG_CONSTRAINTS_FAILURE", f"signature time-stamp invalid: {e}")
        except (InvalidInput, ValueError, binascii.Error, KeyError, TypeError) as e:
            self.f.indeterminate(
                "SIG_CONSTRAINTS_FAILURE", f"signature time-stamp cannot be read: {e}"
            )
        return None

    # -- 7. chain, key usage, validity --------------------------------------------------------
    def _check_chain(
        self,
        signer: x509.Certificate,
        pool: list[x509.Certificate],
        times: tuple[datetime | None, datetime | None],
    ) -> None:
        claimed, proven = times
        nb, na = signer.not_valid_before_utc, signer.not_valid_after_utc
        if claimed is not None and claimed < nb:
            self.f.fail(
                "NOT_YET_VALID",
                f"signed (claimed SigningTime {claimed.isoformat()}) before the signing "
                f"certificate became valid ({nb.isoformat()})",
            )
        elif proven is not None and proven < nb:
            self.f.fail(
                "NOT_YET_VALID",
                f"the time-stamp proves the signature existed at {proven.isoformat()}, before "
                f"the signing certificate became valid ({nb.isoformat()})",
            )
        if claimed is not None and claimed > na:
            self.f.fail(
                "EXPIRED",
                f"signed (claimed SigningTime {claimed.isoformat()}) after the signing "
                f"certificate expired ({na.isoformat()})",
            )

        when: datetime | None
        if self.at == "signing_time":
            when = proven or claimed
            if when is None:
                self.f.indeterminate(
                    "NO_POE",
                    "validation at the signing time was asked for, but the signature has "
                    "neither a time-stamp nor a xades:SigningTime",
                )
        else:
            when = self.at if isinstance(self.at, datetime) else self.now
        self.report.validation_time = when

        ku = _extension(signer, x509.KeyUsage)
        if ku is not None and not (ku.digital_signature or ku.content_commitment):
            self.f.indeterminate(
                "CHAIN_CONSTRAINTS_FAILURE",
                "the signing certificate's KeyUsage allows neither digitalSignature nor "
                "nonRepudiation",
            )
        signer_time_failed = any(sub in ("NOT_YET_VALID", "EXPIRED") for sub, _ in self.f.failed)
        if when is not None and not (nb <= when <= na) and not signer_time_failed:
            sub = "OUT_OF_BOUNDS_NO_POE"
            state = "expired" if when > na else "not yet valid"
            self.f.indeterminate(
                sub,
                f"the signing certificate is {state} at the validation time {when.isoformat()} "
                f"(valid {nb.isoformat()} .. {na.isoformat()})"
                + ("; validate at the signing time for archived documents" if when > na else ""),
            )

        if self.trust is None or len(self.trust) == 0:
            self.f.indeterminate(
                "NO_CERTIFICATE_CHAIN_FOUND",
                "no trust anchors are configured; the signing certificate cannot be trusted "
                "(the system or web CA bundle is never used)",
            )
            self.report.certificate_chain = [_subject(signer)]
            return
        path, reason = _build_path(signer, pool, self.trust)
        if path is None:
            self.f.indeterminate("NO_CERTIFICATE_CHAIN_FOUND", reason)
            self.report.certificate_chain = [_subject(signer)]
            return
        self.report.certificate_chain = [_subject(c) for c in path]
        for problem in _path_problems(path, when):
            self.f.indeterminate(problem[0], problem[1])
        if not self.f.failed and not self.f.undecided:
            self.f.warn("revocation status not checked (offline verification)")


# ---------------------------------------------------------------------------------------------
# certificates and paths
# ---------------------------------------------------------------------------------------------
def _extension(cert: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension: treat as absent, path checks will flag CA ones
        return None


def _leaf(certs: list[x509.Certificate]) -> x509.Certificate | None:
    """The certificate in ds:KeyInfo that issued no other one there (the signer), else first."""
    for cert in certs:
        if not any(o is not cert and o.issuer == cert.subject for o in certs):
            return cert
    return certs[0] if certs else None


@functools.lru_cache(maxsize=4096)
def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` signed `cert`; remembered per pair (certificates compare by their DER,
    so the answer for equal pairs cannot differ)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, cryptography.exceptions.InvalidSignature):
        return False
    except cryptography.exceptions.UnsupportedAlgorithm:
        return False
    return True


def _build_path(
    signer: x509.Certificate, pool: Sequence[x509.Certificate], trust: TrustStore
) -> tuple[list[x509.Certificate] | None, str]:
    """Depth-first path from the signer to an anchor (signer first). Anchors win over the
    certificates the signature carries; every link's signature is checked."""
    if trust.anchor_for(signer) is not None:
        return [signer], ""
    anchors = trust.certificates()
    untrusted = [c for c in pool if trust.anchor_for(c) is None]
    best: list[x509.Certificate] = [signer]

    def walk(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        nonlocal best
        if len(path) > len(best):
            best = path
        if len(path) > 8:
            return None
        cert = path[-1]
        for anchor in anchors:
            if _issued_by(cert, anchor):
                return [*path, anchor]
        seen = {_der(c) for c in path}
        for candidate in untrusted:
            if _der(candidate) in seen or not _issued_by(cert, candidate):
                continue
            found = walk([*path, candidate])
            if found is not None:
                return found
        return None

    path = walk([signer])
    if path is not None:
        return path, ""
    top = best[-1]
    if top.issuer == top.subject:
        why = f"the chain ends at the self-signed {_subject(top)}, which is not a trust anchor"
    else:
        why = (
            f"the chain ends at {_subject(top)}; its issuer {top.issuer.rfc4514_string()} is "
            "neither in the signature nor a trust anchor"
        )
    return None, f"no certificate chain to a trust anchor: {why}"


def _path_problems(path: list[x509.Certificate], when: datetime | None) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for i, cert in enumerate(path):
        for ext in cert.extensions:
            if (
                ext.critical
                and isinstance(ext.value, x509.UnrecognizedExtension)
                and ext.oid.dotted_string not in _KNOWN_CRITICAL_OIDS
            ):
                problems.append(
                    (
                        "CHAIN_CONSTRAINTS_FAILURE",
                        f"{_subject(cert)} has an unknown critical extension "
                        f"{ext.oid.dotted_string}",
                    )
                )
        if i == 0:
            continue
        if when is not None and not (cert.not_valid_before_utc <= when <= cert.not_valid_after_utc):
            problems.append(
                (
                    "OUT_OF_BOUNDS_NO_POE",
                    f"the CA certificate {_subject(cert)} is not valid at the validation time "
                    f"{when.isoformat()} (valid {cert.not_valid_before_utc.isoformat()} .. "
                    f"{cert.not_valid_after_utc.isoformat()})",
                )
            )
        is_anchor = i == len(path) - 1
        bc = _extension(cert, x509.BasicConstraints)
        if (bc is None and not is_anchor) or (bc is not None and not bc.ca):
            problems.append(
                ("CHAIN_CONSTRAINTS_FAILURE", f"{_subject(cert)} is not a CA (basicConstraints)")
            )
        elif bc is not None and bc.path_length is not None and i - 1 > bc.path_length:
            problems.append(
                ("CHAIN_CONSTRAINTS_FAILURE", f"{_subject(cert)}: path length constraint exceeded")
            )
        ku = _extension(cert, x509.KeyUsage)
        if ku is not None and not ku.key_cert_sign:
            problems.append(
                ("CHAIN_CONSTRAINTS_FAILURE", f"{_subject(cert)}: KeyUsage lacks keyCertSign")
            )
    return problems


# ---------------------------------------------------------------------------------------------
# RFC 3161 signature time-stamp
# ---------------------------------------------------------------------------------------------
class _TimestampProblem(Exception):
    pass


def _attr_value(signer_info: Any, name: str) -> Any:
    for attr in signer_info["signed_attrs"] or []:
        if attr["type"].native == name:
            values = attr["values"]
            return values[0] if len(values) == 1 else None
    return None


def _verify_timestamp_token(
    der: bytes,
    imprint_input: bytes,
    extra: Iterable[x509.Certificate],
    allow_sha1: bool,
    trust: TrustStore | None,
    findings: _Findings,
) -> _Timestamp | None:
    content_info = cms.ContentInfo.load(der)
    if content_info["content_type"].native != "signed_data":
        raise _TimestampProblem("not a CMS SignedData")
    signed_data = content_info["content"]
    encap = signed_data["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise _TimestampProblem("the content is not a TSTInfo")
    tst_info = encap["content"].parsed
    tst_der: bytes = encap["content"].contents
    imprint = tst_info["message_imprint"]
    hash_name = str(imprint["hash_algorithm"]["algorithm"].native)
    if hash_name not in _CRYPTO_HASHES:
        raise _TimestampProblem(f"unsupported imprint hash {hash_name}")
    if not hmac.compare_digest(
        hashlib.new(hash_name, imprint_input).digest(), bytes(imprint["hashed_message"].native)
    ):
        raise _TimestampProblem(
            "its message imprint does not match this signature's ds:SignatureValue"
        )
    gen_time = _utc(tst_info["gen_time"].native)
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise _TimestampProblem("expected exactly one SignerInfo")
    signer_info = signer_infos[0]
    digest_name = str(signer_info["digest_algorithm"]["algorithm"].native)
    if digest_name not in _CRYPTO_HASHES:
        raise _TimestampProblem(f"unsupported digest {digest_name}")
    if "sha1" in (hash_name, digest_name) and not allow_sha1:
        findings.warn(
            "the signature time-stamp uses SHA-1 and is not used as proof of the signing time"
        )
        return None
    certs: list[x509.Certificate] = []
    for choice in signed_data["certificates"] or []:
        if choice.name == "certificate":
            certs.append(x509.load_der_x509_certificate(choice.chosen.dump()))
    certs.extend(extra)
    tsa = _find_sid(signer_info["sid"], certs)
    if tsa is None:
        raise _TimestampProblem("the TSA certificate is neither in the token nor the signature")
    if signer_info["signed_attrs"]:
        message_digest = _attr_value(signer_info, "message_digest")
        if message_digest is None or not hmac.compare_digest(
            bytes(message_digest.native), hashlib.new(digest_name, tst_der).digest()
        ):
            raise _TimestampProblem("its messageDigest does not match the TSTInfo")
        signed_bytes = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    else:
        signed_bytes = tst_der
    _verify_cms_signature(signer_info, tsa, signed_bytes, digest_name)
    if trust is not None and not _tsa_trusted(tsa, certs, trust):
        findings.warn(
            f"the time-stamping authority {_display_name(tsa)} is not a configured trust anchor "
            "(its time is used as claimed by a correctly signed token)"
        )
    if not (tsa.not_valid_before_utc <= gen_time <= tsa.not_valid_after_utc):
        raise _TimestampProblem("the TSA certificate was not valid at the time-stamp's genTime")
    return _Timestamp(gen_time=gen_time, tsa=tsa)


def _tsa_trusted(tsa: x509.Certificate, pool: list[x509.Certificate], trust: TrustStore) -> bool:
    if trust.anchor_for(tsa, "timestamp") is not None or trust.anchor_for(tsa) is not None:
        return True
    ts_store = TrustStore(trust.anchors("timestamp") + trust.anchors("signature"))
    path, _ = _build_path(tsa, pool, ts_store)
    return path is not None


def _find_sid(sid: Any, certs: list[x509.Certificate]) -> x509.Certificate | None:
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            chosen = sid.chosen
            if (
                cert.serial_number == chosen["serial_number"].native
                and cert.issuer.public_bytes() == chosen["issuer"].dump()
            ):
                return cert
        elif sid.name == "subject_key_identifier":
            ski = _extension(cert, x509.SubjectKeyIdentifier)
            if ski is not None and ski.digest == sid.chosen.native:
                return cert
    return None


def _verify_cms_signature(
    signer_info: Any, cert: x509.Certificate, data: bytes, digest_name: str
) -> None:
    sig_alg = signer_info["signature_algorithm"]
    algo = sig_alg.signature_algo
    try:
        hash_name = sig_alg.hash_algo
    except ValueError:
        hash_name = digest_name
    if hash_name not in _CRYPTO_HASHES:
        raise _TimestampProblem(f"unsupported signature hash {hash_name}")
    hash_alg = _CRYPTO_HASHES[hash_name]()
    signature = bytes(signer_info["signature"].native)
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey) and algo == "rsassa_pss":
            params = sig_alg["parameters"]
            pss_hash = _CRYPTO_HASHES[params["hash_algorithm"]["algorithm"].native]()
            mgf_hash = _CRYPTO_HASHES[
                params["mask_gen_algorithm"]["parameters"]["algorithm"].native
            ]()
            key.verify(
                signature,
                data,
                padding.PSS(padding.MGF1(mgf_hash), int(params["salt_length"].native)),
                pss_hash,
            )
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hash_alg))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, data, hash_alg)
        else:
            raise _TimestampProblem("unsupported TSA key type")
    except cryptography.exceptions.InvalidSignature as e:
        raise _TimestampProblem("the TSA's signature over the token does not verify") from e


# ---------------------------------------------------------------------------------------------
# ezd verify
# ---------------------------------------------------------------------------------------------
def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise _CliError(f"cannot read the {what} {path}: {e.strerror or e}") from e


class _CliError(Exception):
    pass


def _parse_at(text: str) -> datetime:
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from e


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ezd verify",
        description="Verify a signed XML document (XAdES / XML-DSig) and print one JSON object "
        '{"indication","sub_indication","signed_by","signing_time","level","errors"}. '
        "Exit code 0 passed, 1 failed, 2 indeterminate.",
    )
    parser.add_argument("file", metavar="FILE", help="the signed XML (.xml, .xades)")
    parser.add_argument(
        "--detached-content",
        metavar="PATH",
        help="the signed file of a detached signature (.xades)",
    )
    parser.add_argument(
        "--trust",
        metavar="PEM",
        action="append",
        default=[],
        help="trust anchor certificate(s) in PEM; repeatable. A trusted list XML "
        "(TrustServiceStatusList) is accepted too: its granted CA/QC services are trusted",
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--at", metavar="ISO_TIME", type=_parse_at, help="validate at this time (default: now)"
    )
    when.add_argument(
        "--at-signing-time",
        action="store_true",
        help="validate at the time-stamp's time, else the claimed xades:SigningTime",
    )
    parser.add_argument("--allow-sha1", action="store_true", help="accept SHA-1 (legacy documents)")
    return parser


def _trust_from_files(paths: list[str]) -> TrustStore | None:
    if not paths:
        return None
    store = TrustStore()
    for path in paths:
        blob = _read(path, "trust file")
        if blob.lstrip().startswith(b"<"):
            store.add_trusted_list(blob)
        else:
            store.add_pem(blob, source=f"pem:{path}")
    return store


def verify_command(argv: list[str]) -> int:
    """`ezd verify FILE [--detached-content PATH] [--trust PEM]... [--at ISO_TIME |
    --at-signing-time] [--allow-sha1]`: print the JSON report, return 0 / 1 / 2."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors (argparse already printed them) and --help
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        data = _read(args.file, "signed file")
        detached = (
            _read(args.detached_content, "detached content") if args.detached_content else None
        )
        trust = _trust_from_files(args.trust)
    except (_CliError, SignXMLException) as e:
        report = VerificationReport(indication="INDETERMINATE", errors=[str(e)])
    except Exception as e:  # a bad PEM / trusted list: report it, do not crash
        report = VerificationReport(indication="INDETERMINATE", errors=[f"{type(e).__name__}: {e}"])
    else:
        at: At = "signing_time" if args.at_signing_time else args.at
        report = verify_xades(
            data,
            detached_content=detached,
            trust=trust,
            at=at,
            allow_sha1=args.allow_sha1,
        )
    sys.stdout.write(json.dumps(report.cli_json(), ensure_ascii=False) + "\n")
    return report.exit_code


__all__ = ["DEFAULT_MAX_BYTES", "build_parser", "verify_command", "verify_xades"]
