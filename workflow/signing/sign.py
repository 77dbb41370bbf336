"""XAdES signing with signxml: enveloped XAdES-BES for XML letters, detached (`.xades`) for binary
attachments, and XAdES-T by adding an RFC 3161 signature time-stamp.

signxml 5.2 makes XAdES-BES/EPES only and cannot sign external (non-XML) data. `_EzdSigner`
is a small subclass of `signxml.xades.xades.XAdESSigner` that changes just this:

- enveloped: the data reference is always `URI=""` (the whole document), with the
  enveloped-signature transform and signxml's default C14N 1.1;
- detached: the reference is the (percent-encoded) file name and its digest is over the given
  bytes as they are, with no transforms, as for any octet stream (`_unpack` supplies the bytes
  and `_c14n` passes bytes through untouched);
- C14N of SignedInfo, SignedProperties and KeyInfo: the xml:lang/xml:space in scope from the
  document root are given to the subtree's apex as C14N requires (lxml's subtree c14n omits
  them, and xmlsec1 then rejects the signature); xml:base on the root is refused;
- ids: the Signature gets our id and the SignatureValue an Id (EN 319 132 uses it), set by a
  signature annotator that runs before signxml builds the XAdES object;
- parsing: signxml re-parses its input with our hardened parser (no DTD, no entities, no
  network, huge_tree for large base64 attachments);
- KeyInfo carries the X.509 certificates only (no KeyValue, which verifiers such as xmlsec1
  would otherwise use instead of the certificate).

XAdES-T is a post-processing step in one function, `add_signature_timestamp`: after signxml has
produced the signature, ds:SignatureValue is canonicalized in its final place (exclusive C14N,
declared in the time-stamp's ds:CanonicalizationMethod; XAdES 1.3.2 §7.3 / EN 319 132-1
§5.3), hashed with SHA-256 and time-stamped by the TSA, and the token is inserted as
xades:QualifyingProperties/xades:UnsignedProperties/xades:UnsignedSignatureProperties/
xades:SignatureTimeStamp/xades:EncapsulatedTimeStamp. Unsigned properties lie outside
SignedInfo, so adding them does not change what was signed.

Every input document is parsed with `workflow.xmlsafe.parse_untrusted_xml`; keys are loaded once
into a `SigningIdentity` (keys.py) and never re-read here.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import urllib.parse
from dataclasses import replace
from typing import Any

from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import SignatureReference
from signxml.util import SigningSettings, namespaces
from signxml.xades.xades import XAdESDataObjectFormat, XAdESSigner

from workflow.errors import ValidationFailed
from workflow.signing.keys import SigningIdentity, check_certificate_usable
from workflow.signing.tsa import request_timestamp
from workflow.xmlsafe import hardened_parser, parse_untrusted_xml

DS_NS = namespaces.ds
XADES_NS = namespaces.xades  # http://uri.etsi.org/01903/v1.3.2#
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_10_COMMENTS = C14N_10 + "#WithComments"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
C14N_11_COMMENTS = C14N_11 + "#WithComments"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS = EXC_C14N + "WithComments"
#: the algorithm we declare for the SignatureTimeStamp input: exclusive C14N imports neither
#: namespaces nor xml:* attributes from the ancestors, so every implementation agrees on it
TIMESTAMP_C14N = EXC_C14N
TIMESTAMP_HASH = "sha256"

#: a 50 MB attachment (the default upload limit) in base64 with room for the letter around it
MAX_DOCUMENT_BYTES = 100 * 1024 * 1024
MAX_DOCUMENT_ELEMENTS = 500_000
XML_MEDIA_TYPE = "text/xml"

_XML_NS = "http://www.w3.org/XML/1998/namespace"
_XML_BASE = f"{{{_XML_NS}}}base"
_C14N11_INHERITED = (f"{{{_XML_NS}}}lang", f"{{{_XML_NS}}}space")
_C14N10_INHERITED = (*_C14N11_INHERITED, f"{{{_XML_NS}}}id", _XML_BASE)
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")


class SigningRefused(ValidationFailed):
    code = "signing_refused"
    message_pl = "Nie można podpisać dokumentu."
    message_en = "The document cannot be signed."


def ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


def xades(tag: str) -> str:
    return f"{{{XADES_NS}}}{tag}"


def _signing_parser() -> etree.XMLParser:
    # What signxml uses when it re-parses our (already checked) input: hardened, huge_tree for
    # large base64 attachments, processing instructions kept (they are signed content).
    return hardened_parser(huge_tree=True, keep_pis=True)


class _EzdSigner(XAdESSigner):
    """XAdESSigner with ezd's reference rules and ids (see the module docstring)."""

    def __init__(
        self,
        identity: SigningIdentity,
        *,
        method: SignatureConstructionMethod,
        data_object_format: XAdESDataObjectFormat,
        signature_id: str,
        external: tuple[str, bytes] | None = None,
    ) -> None:
        super().__init__(
            method=method,
            signature_algorithm=identity.signature_algorithm,
            digest_algorithm=identity.digest_algorithm,
            data_object_format=data_object_format,
        )
        self._parser = _signing_parser()
        self._signature_id = signature_id
        self._external = external
        self.signature_annotators.insert(0, self._prepare_signature)

    # --- signxml hooks -------------------------------------------------------------------
    def _unpack(self, data: Any, references: Any) -> Any:
        if self._external is not None:
            uri, content = self._external
            sig_root = etree.Element(ds("Signature"), nsmap=self.namespaces)
            reference = SignatureReference(URI=uri, c14n_method=self.c14n_alg)
            return sig_root, sig_root, [content], [reference]
        sig_root, doc_root, c14n_inputs, refs = super()._unpack(data, references)
        # the whole document, whatever Id its root carries
        return sig_root, doc_root, c14n_inputs, [replace(r, URI="") for r in refs]

    def _c14n(self, nodes: Any, algorithm: Any, inclusive_ns_prefixes: Any = None) -> Any:
        if isinstance(nodes, bytes):  # detached binary content: the octets are the data
            return nodes
        added: list[str] = []
        if isinstance(nodes, etree._Element) and not str(algorithm.value).startswith(EXC_C14N):
            # Inclusive C14N gives the apex of a subtree the xml:* attributes in scope from its
            # ancestors; lxml's subtree c14n leaves them out, so with xml:lang on the document
            # root the SignedInfo/SignedProperties/KeyInfo bytes would differ from xmlsec1's
            # (and the spec's). SignedInfo uses the declared C14N 1.1 (xml:lang, xml:space);
            # SignedProperties and KeyInfo are references without transforms, which verifiers
            # turn into octets with C14N 1.0 (every xml:* attribute is inherited).
            names = _C14N11_INHERITED if nodes.tag == ds("SignedInfo") else _C14N10_INHERITED
            added = _inherit_xml_attributes(nodes, names)
        try:
            return super()._c14n(
                nodes, algorithm=algorithm, inclusive_ns_prefixes=inclusive_ns_prefixes
            )
        finally:
            for name in added:
                del nodes.attrib[name]

    def _prepare_signature(
        self, sig_root: etree._Element, signing_settings: SigningSettings
    ) -> None:
        sig_root.set("Id", self._signature_id)
        signature_value = sig_root.find(ds("SignatureValue"))
        if signature_value is not None:
            signature_value.set("Id", f"{self._signature_id}-SignatureValue")
        if self._external is not None:
            # an octet stream has no transforms; signxml leaves an empty (schema-invalid) element
            for transforms in sig_root.iterfind(
                f"{ds('SignedInfo')}/{ds('Reference')}/{ds('Transforms')}"
            ):
                if len(transforms) == 0:
                    parent = transforms.getparent()
                    assert parent is not None
                    parent.remove(transforms)

    def sign_element(self, data: Any, identity: SigningIdentity) -> etree._Element:
        signed: etree._Element = self.sign(
            data,
            key=identity.private_key,
            cert=identity.certificates,
            always_add_key_value=False,
            exclude_c14n_transform_element=self._external is not None,
        )
        return signed


def _inherit_xml_attributes(element: etree._Element, names: tuple[str, ...]) -> list[str]:
    """Set on `element` the xml:* attributes `names` in scope from its ancestors that it lacks
    (the nearest ancestor's value); return them so that the caller removes them again."""
    added: list[str] = []
    for name in names:
        if element.get(name) is not None:
            continue
        for ancestor in element.iterancestors():
            value = ancestor.get(name)
            if value is not None:
                element.set(name, value)
                added.append(name)
                break
    return added


def _refuse_xml_base(root: etree._Element) -> None:
    # C14N 1.1 "fixes up" an inherited xml:base (URI resolution along the ancestors), which
    # lxml does not do: refuse rather than make a signature that other verifiers reject.
    if root.get(_XML_BASE) is not None:
        raise SigningRefused(
            "Nie można podpisać dokumentu z atrybutem xml:base na elemencie głównym.",
            "A document with xml:base on its root element cannot be signed.",
            code="signing_xml_base_unsupported",
        )


def _refuse_if_signed_whole(root: etree._Element) -> None:
    # A signature already covering the whole document (URI="" or the root's Id) would break
    # when another enveloped signature is appended to the root: co-signers sign detached.
    root_id = next((root.get(a) for a in ("Id", "ID", "id") if root.get(a)), None)
    covering = {"", f"#{root_id}"} if root_id else {""}
    for signature in root.iter(ds("Signature")):
        for reference in signature.iterfind(f"{ds('SignedInfo')}/{ds('Reference')}"):
            if reference.get("URI") in covering:
                raise SigningRefused(
                    "Dokument jest już podpisany w całości; kolejny podpis otoczony unieważniłby "
                    "poprzedni. Złóż podpis zewnętrzny (.xades).",
                    "The document already carries a signature over all of it; another enveloped "
                    "signature would invalidate it. Make a detached (.xades) signature instead.",
                    code="signing_already_signed",
                )


def _new_signature_id(signature_id: str | None) -> str:
    if signature_id is None:
        return f"ezd-sig-{secrets.token_hex(8)}"
    if not _NCNAME.match(signature_id):
        raise SigningRefused(
            f"Identyfikator podpisu {signature_id!r} nie jest poprawną nazwą XML (NCName).",
            f"The signature id {signature_id!r} is not a valid XML name (NCName).",
            code="signing_id_invalid",
        )
    return signature_id


def signature_timestamp_input(
    signature: etree._Element, c14n_algorithm: str = TIMESTAMP_C14N
) -> bytes:
    """The bytes a SignatureTimeStamp covers: ds:SignatureValue canonicalized in place with
    `c14n_algorithm` (the time-stamp's ds:CanonicalizationMethod; C14N 1.0 when absent).

    `signature` is the ds:Signature element inside its document (namespaces in scope matter).
    C14N 1.1 is computed as 1.0: they differ only in xml:id/xml:base inheritance, which
    ds:SignatureValue in practice never carries.
    """
    signature_value = signature.find(ds("SignatureValue"))
    if signature_value is None:
        raise SigningRefused(
            "Podpis nie zawiera elementu SignatureValue.",
            "The signature has no SignatureValue element.",
            code="signature_malformed",
        )
    c14n: bytes
    if c14n_algorithm in (C14N_10, C14N_11):
        c14n = etree.tostring(signature_value, method="c14n")
        return c14n
    if c14n_algorithm in (C14N_10_COMMENTS, C14N_11_COMMENTS):
        c14n = etree.tostring(signature_value, method="c14n", with_comments=True)
        return c14n
    if c14n_algorithm in (EXC_C14N, EXC_C14N_COMMENTS):
        c14n = etree.tostring(
            signature_value,
            method="c14n",
            exclusive=True,
            with_comments=c14n_algorithm == EXC_C14N_COMMENTS,
        )
        return c14n
    raise SigningRefused(
        f"Nieobsługiwany algorytm kanonikalizacji {c14n_algorithm}.",
        f"Unsupported canonicalization algorithm {c14n_algorithm}.",
        code="signature_c14n_unsupported",
    )


def add_signature_timestamp(
    signature: etree._Element, tsa_url: str, *, timeout: float = 10
) -> bytes:
    """XAdES-T: time-stamp ds:SignatureValue at `tsa_url` and add the token as an unsigned
    property of `signature` (which must sit in its final document). Returns the token (DER)."""
    qualifying = signature.find(f"{ds('Object')}/{xades('QualifyingProperties')}")
    if qualifying is None:
        raise SigningRefused(
            "Podpis nie jest podpisem XAdES (brak QualifyingProperties).",
            "The signature is not XAdES (no QualifyingProperties).",
            code="signature_malformed",
        )
    digest = hashlib.new(TIMESTAMP_HASH, signature_timestamp_input(signature)).digest()
    token = request_timestamp(tsa_url, digest, timeout=timeout, hash_name=TIMESTAMP_HASH)

    unsigned = qualifying.find(xades("UnsignedProperties"))
    if unsigned is None:
        unsigned = etree.SubElement(qualifying, xades("UnsignedProperties"))
    usp = unsigned.find(xades("UnsignedSignatureProperties"))
    if usp is None:
        usp = etree.SubElement(unsigned, xades("UnsignedSignatureProperties"))
    sig_id = signature.get("Id") or "ezd-sig"
    n = len(usp.findall(xades("SignatureTimeStamp")))
    suffix = f"-{n + 1}" if n else ""
    sts = etree.SubElement(
        usp, xades("SignatureTimeStamp"), Id=f"{sig_id}-SignatureTimeStamp{suffix}"
    )
    etree.SubElement(sts, ds("CanonicalizationMethod"), Algorithm=TIMESTAMP_C14N)
    encapsulated = etree.SubElement(
        sts, xades("EncapsulatedTimeStamp"), Id=f"{sig_id}-EncapsulatedTimeStamp{suffix}"
    )
    encapsulated.text = base64.b64encode(token).decode("ascii")
    return token


def _serialize(root: etree._Element) -> bytes:
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data


def sign_enveloped(
    document: bytes | etree._Element,
    identity: SigningIdentity,
    *,
    tsa_url: str | None = None,
    signature_id: str | None = None,
    tsa_timeout: float = 10,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> bytes:
    """Sign the whole XML `document` with an enveloped XAdES-BES signature (XAdES-T with
    `tsa_url`) appended to its root; returns the signed document (UTF-8, with declaration).

    Bytes are parsed with the hardened parser (DOCTYPE/entities refused); an element must come
    from that parser too. The element is not modified (signxml signs a copy).
    """
    check_certificate_usable(identity.certificate)
    if isinstance(document, bytes):
        root = parse_untrusted_xml(
            document,
            max_bytes=max_bytes,
            max_elements=MAX_DOCUMENT_ELEMENTS,
            huge_tree=True,
            what="XML",
        )
    else:
        root = document
    _refuse_xml_base(root)
    _refuse_if_signed_whole(root)
    sig_id = _new_signature_id(signature_id)
    signer = _EzdSigner(
        identity,
        method=SignatureConstructionMethod.enveloped,
        data_object_format=XAdESDataObjectFormat(
            Description="Dokument XML podpisany w EZD", MimeType=XML_MEDIA_TYPE
        ),
        signature_id=sig_id,
    )
    signed = signer.sign_element(root, identity)
    if tsa_url is not None:
        # ours, not a (partial) signature the document already carried
        ours = [s for s in signed.iterchildren(ds("Signature")) if s.get("Id") == sig_id]
        assert len(ours) == 1
        add_signature_timestamp(ours[0], tsa_url, timeout=tsa_timeout)
    return _serialize(signed)


def reference_uri_for(file_name: str) -> str:
    """The ds:Reference URI for a detached file: the percent-encoded bare file name."""
    if (
        not file_name
        or file_name in (".", "..")
        or any(c in file_name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in file_name)
    ):
        raise SigningRefused(
            f"Nazwa pliku {file_name!r} nie nadaje się do podpisu zewnętrznego "
            "(bez katalogów i znaków sterujących).",
            f"The file name {file_name!r} cannot be used for a detached signature "
            "(no directories or control characters).",
            code="signing_file_name_invalid",
        )
    return urllib.parse.quote(file_name, safe="")


def sign_detached(
    content: bytes,
    file_name: str,
    media_type: str,
    identity: SigningIdentity,
    *,
    tsa_url: str | None = None,
    signature_id: str | None = None,
    tsa_timeout: float = 10,
) -> bytes:
    """A detached XAdES-BES (XAdES-T with `tsa_url`) signature of `content`, as the bytes of a
    `.xades` file whose root is ds:Signature. Its data reference has
    `URI=reference_uri_for(file_name)` and a digest over `content` exactly (no transforms):
    verify it with the same bytes (signxml: `uri_resolver` returning them for that URI;
    xmlsec1: the file saved under `file_name` next to the `.xades` file).
    """
    check_certificate_usable(identity.certificate)
    uri = reference_uri_for(file_name)
    signer = _EzdSigner(
        identity,
        method=SignatureConstructionMethod.detached,
        data_object_format=XAdESDataObjectFormat(Description=file_name, MimeType=media_type),
        signature_id=_new_signature_id(signature_id),
        external=(uri, content),
    )
    signature = signer.sign_element(None, identity)
    if tsa_url is not None:
        add_signature_timestamp(signature, tsa_url, timeout=tsa_timeout)
    return _serialize(signature)


__all__ = [
    "C14N_10",
    "TIMESTAMP_C14N",
    "SigningRefused",
    "add_signature_timestamp",
    "reference_uri_for",
    "sign_detached",
    "sign_enveloped",
    "signature_timestamp_input",
]
