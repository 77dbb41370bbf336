"""Signing (workflow/signing/sign.py, keys.py, tsa.py).

Every signature made here is checked by two independent verifiers: `xmlsec1 --verify` (libxml2 +
OpenSSL, taking the key from the certificate chain to our test root) and signxml's
XAdESVerifier; every time-stamp by `verify_token` and by `openssl ts -verify`. The TSA is a
real one on loopback (`openssl ts -reply`, tests/tsa_server.py); the PKI is thrown away
(tests/pki.py). xmlsec1 is required: `scripts/services.sh up` installs it.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import verification
from lxml import etree
from signxml.algorithms import SignatureMethod
from signxml.exceptions import InvalidDigest, InvalidSignature
from signxml.xades.xades import XAdESVerifier

from tests.pki import P12_PASSWORD, TestPki, issue, pki_fixture  # noqa: F401
from tests.tsa_server import RunningTsa, tsa_fixture  # noqa: F401
from workflow.errors import DomainError
from workflow.signing.keys import (
    SigningIdentity,
    SigningKeyRefused,
    certificates_pem,
    decrypt_identity,
    encrypt_private_key,
    load_identity,
)
from workflow.signing.sign import (
    EXC_C14N,
    SigningRefused,
    sign_detached,
    sign_enveloped,
    signature_timestamp_input,
)
from workflow.signing.tsa import (
    TimestampError,
    TimestampInvalid,
    build_request,
    parse_token,
    request_timestamp,
    verify_token,
    verify_token_for_data,
)
from workflow.xmlsafe import XmlRefused

DS = "http://www.w3.org/2000/09/xmldsig#"
XA = "http://uri.etsi.org/01903/v1.3.2#"
NS = {"ds": DS, "xades": XA, "p": "urn:ezd:pismo:1"}
EXTERNAL = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "external"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

LETTER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<pismo xmlns="urn:ezd:pismo:1" xmlns:meta="urn:ezd:meta:1" Id="pismo-1">\n'
    "  <meta:znak>SP58.4430.12.2026</meta:znak>\n"
    "  <adresat>Anna Kowalska, ul. Polna 5, 00-100 Miasto</adresat>\n"
    "  <!-- komentarz nie jest podpisywany -->\n"
    "  <tresc>Uprzejmie informuję, że wniosek o duplikat legitymacji został rozpatrzony "
    "pozytywnie. Zażółć gęślą jaźń.</tresc>\n"
    "</pismo>\n"
).encode()
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\n\x00\xff\x80binary\n%%EOF\n"
PDF_NAME = "załącznik nr 1.pdf"
IDENTITIES = ["signer", "signer_ec", "seal", "seal_ec"]


# ---------------------------------------------------------------------------------------------
# verifiers
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def xmlsec1() -> str:
    path = shutil.which("xmlsec1")
    if path is None:
        pytest.fail(
            "xmlsec1 is not installed: it is the independent verifier of ezd's signatures. "
            "Run `scripts/services.sh up` (or `apt-get install -y xmlsec1`)."
        )
    return path


def run_xmlsec1(
    signed: Path, pki: TestPki, *, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`xmlsec1 --verify` trusting only our test root; the key comes from the certificate in
    X509Data (`--enabled-key-data x509`), never from a KeyValue."""
    return subprocess.run(
        [
            "xmlsec1", "--verify",
            "--enabled-key-data", "x509",
            "--trusted-pem", str(pki.root_pem_path),
            "--untrusted-pem", str(pki.intermediate_pem_path),
            str(signed),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )  # fmt: skip


def assert_xmlsec1_ok(signed: Path, pki: TestPki, *, cwd: Path | None = None) -> None:
    proc = run_xmlsec1(signed, pki, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stderr.splitlines()


def _signing_key_usage(
    policy: verification.Policy, cert: x509.Certificate, ku: x509.KeyUsage | None
) -> None:
    # qualified certificates allow nonRepudiation only; seals have digitalSignature too
    if ku is None or not (ku.digital_signature or ku.content_commitment):
        raise ValueError("KeyUsage allows neither digitalSignature nor nonRepudiation")


EE_POLICY = verification.ExtensionPolicy.permit_all().require_present(
    x509.KeyUsage, verification.Criticality.AGNOSTIC, _signing_key_usage
)


def signxml_verify(data: bytes, pki: TestPki, **kwargs: Any) -> list[Any]:
    results: list[Any] = XAdESVerifier().verify(
        data, ca_pem_file=str(pki.root_pem_path), ee_policy=EE_POLICY, **kwargs
    )
    return results


def openssl_ts_verify(token: bytes, digest: bytes, tsa: RunningTsa, tmp: Path) -> str:
    (tmp / "token.der").write_bytes(token)
    proc = subprocess.run(
        [
            OPENSSL, "ts", "-verify",
            "-digest", digest.hex(),
            "-in", str(tmp / "token.der"), "-token_in",
            "-CAfile", str(tsa.root_pem_path),
            "-untrusted", str(tsa.chain_pem_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    return (proc.stdout + proc.stderr).strip() if proc.returncode == 0 else f"FAILED {proc.stderr}"


def the_timestamp(signed: bytes) -> tuple[etree._Element, bytes, bytes]:
    """(ds:Signature, token, the digest it must cover), read back from the serialized bytes."""
    root = etree.fromstring(signed)
    signature = root if root.tag == f"{{{DS}}}Signature" else root.find("ds:Signature", NS)
    assert signature is not None
    stamps = signature.findall(
        "ds:Object/xades:QualifyingProperties/xades:UnsignedProperties/"
        "xades:UnsignedSignatureProperties/xades:SignatureTimeStamp",
        NS,
    )
    assert len(stamps) == 1
    algorithm = stamps[0].find("ds:CanonicalizationMethod", NS)
    assert algorithm is not None and algorithm.get("Algorithm") == EXC_C14N
    encapsulated = stamps[0].find("xades:EncapsulatedTimeStamp", NS)
    assert encapsulated is not None and encapsulated.text
    token = base64.b64decode(encapsulated.text)
    digest = hashlib.sha256(signature_timestamp_input(signature, EXC_C14N)).digest()
    return signature, token, digest


def check_timestamp(signed: bytes, tsa: RunningTsa, tmp: Path) -> None:
    _, token, digest = the_timestamp(signed)
    info = verify_token(token, digest, [tsa.root])
    assert info.hash_name == "sha256"
    assert info.signer_certificate == tsa.tsa.cert
    assert abs(info.gen_time - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=2)
    assert "Verification: OK" in openssl_ts_verify(token, digest, tsa, tmp)


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def identities(pki: TestPki) -> dict[str, SigningIdentity]:
    """Loaded once per module, as the application does: from PKCS#12 for the qualified
    signers, from PEM for the seals."""
    return {
        "signer": load_identity(pki.signer.p12(), P12_PASSWORD),
        "signer_ec": load_identity(pki.signer_ec.p12(), P12_PASSWORD),
        "seal": load_identity(pki.seal.pem_bundle(), None),
        "seal_ec": load_identity(pki.seal_ec.pem_bundle(b"pem-haslo"), b"pem-haslo"),
    }


# ---------------------------------------------------------------------------------------------
# enveloped
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("who", IDENTITIES)
def test_enveloped_bes_verifies_with_xmlsec1_and_signxml(
    who: str, identities: dict[str, SigningIdentity], pki: TestPki, tmp_path: Path
) -> None:
    identity = identities[who]
    signed = sign_enveloped(LETTER, identity)
    path = tmp_path / "pismo.xml"
    path.write_bytes(signed)
    assert_xmlsec1_ok(path, pki)

    results = signxml_verify(signed, pki)
    # the data reference covers the document root itself (not some element elsewhere)
    assert results[0].signed_xml.tag == "{urn:ezd:pismo:1}pismo"
    assert "Zażółć gęślą jaźń".encode() in results[0].signed_data

    root = etree.fromstring(signed)
    (signature,) = root.findall("ds:Signature", NS)
    refs = signature.findall("ds:SignedInfo/ds:Reference", NS)
    assert refs[0].get("URI") == ""
    transforms = [t.get("Algorithm") for t in refs[0].findall("ds:Transforms/ds:Transform", NS)]
    assert transforms[0] == "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
    method = signature.find("ds:SignedInfo/ds:SignatureMethod", NS)
    assert method is not None
    expected = SignatureMethod.RSA_SHA256 if "ec" not in who else SignatureMethod.ECDSA_SHA256
    assert method.get("Algorithm") == expected.value
    ssp = signature.find(
        "ds:Object/xades:QualifyingProperties/xades:SignedProperties/"
        "xades:SignedSignatureProperties",
        NS,
    )
    assert ssp is not None
    assert ssp.find("xades:SigningTime", NS) is not None
    assert ssp.find("xades:SigningCertificateV2", NS) is not None
    dof = signature.find(".//xades:DataObjectFormat", NS)
    assert dof is not None and dof.get("ObjectReference") == "#" + (refs[0].get("Id") or "")
    assert dof.findtext("xades:MimeType", namespaces=NS) == "text/xml"
    # the certificate, not a bare KeyValue, identifies the key; BES has no unsigned properties
    assert signature.find("ds:KeyInfo/ds:KeyValue", NS) is None
    assert signature.find(".//xades:UnsignedProperties", NS) is None


@pytest.mark.parametrize("who", ["signer", "seal_ec"])
def test_enveloped_t_adds_a_signature_timestamp(
    who: str,
    identities: dict[str, SigningIdentity],
    pki: TestPki,
    tsa: RunningTsa,
    tmp_path: Path,
) -> None:
    signed = sign_enveloped(LETTER, identities[who], tsa_url=tsa.url, signature_id="podpis-1")
    path = tmp_path / "pismo-t.xml"
    path.write_bytes(signed)
    assert_xmlsec1_ok(path, pki)
    signxml_verify(signed, pki)
    check_timestamp(signed, tsa, tmp_path)
    signature, _, _ = the_timestamp(signed)
    assert signature.get("Id") == "podpis-1"
    value = signature.find("ds:SignatureValue", NS)
    assert value is not None and value.get("Id") == "podpis-1-SignatureValue"
    # the unsigned properties come after the signed ones, in the same QualifyingProperties
    qp = signature.find("ds:Object/xades:QualifyingProperties", NS)
    assert qp is not None
    assert [etree.QName(c).localname for c in qp] == ["SignedProperties", "UnsignedProperties"]


def test_enveloped_keeps_the_callers_element_and_accepts_it(
    identities: dict[str, SigningIdentity], pki: TestPki, tmp_path: Path
) -> None:
    from workflow.xmlsafe import parse_untrusted_xml

    root = parse_untrusted_xml(LETTER, max_bytes=10**6, max_elements=1000)
    before = etree.tostring(root)
    signed = sign_enveloped(root, identities["seal"])
    assert etree.tostring(root) == before
    path = tmp_path / "pismo.xml"
    path.write_bytes(signed)
    assert_xmlsec1_ok(path, pki)


@pytest.mark.parametrize(
    "attributes", ['xml:lang="pl"', 'xml:space="preserve"', 'xml:id="p1" xml:lang="pl"']
)
def test_inherited_xml_attributes_on_the_root(
    attributes: str, identities: dict[str, SigningIdentity], pki: TestPki, tmp_path: Path
) -> None:
    # C14N gives SignedInfo/SignedProperties/KeyInfo the xml:* attributes in scope from the
    # root; lxml's subtree c14n (and so plain signxml) omits them and xmlsec1 rejects such
    # signatures. Note: signxml 5.2's verifier has the same defect and rejects these
    # (correct) signatures; verify.py must not rely on it for documents with xml:lang.
    doc = f'<pismo xmlns="urn:ezd:pismo:1" {attributes}><tresc>x</tresc></pismo>'.encode()
    path = tmp_path / "pismo.xml"
    path.write_bytes(sign_enveloped(doc, identities["seal"]))
    assert_xmlsec1_ok(path, pki)


def test_refusals(identities: dict[str, SigningIdentity]) -> None:
    seal = identities["seal"]
    with pytest.raises(XmlRefused):
        sign_enveloped(b'<!DOCTYPE x [<!ENTITY e "boo">]><x>&e;</x>', seal)
    with pytest.raises(XmlRefused):
        sign_enveloped(b"<x><unclosed></x>", seal)
    with pytest.raises(SigningRefused) as e:
        sign_enveloped(b'<x xml:base="http://example.com/"/>', seal)
    assert e.value.code == "signing_xml_base_unsupported"
    with pytest.raises(SigningRefused) as e:
        sign_enveloped(LETTER, seal, signature_id="1 not a name")
    assert e.value.code == "signing_id_invalid"
    # a second enveloped signature would break the first one: co-signers sign detached
    signed = sign_enveloped(LETTER, seal)
    with pytest.raises(SigningRefused) as e:
        sign_enveloped(signed, identities["signer"])
    assert e.value.code == "signing_already_signed"
    for bad in ["", "..", "dir/plik.pdf", "c:\\plik.pdf", "a\nb.pdf"]:
        with pytest.raises(SigningRefused) as e:
            sign_detached(PDF, bad, "application/pdf", seal)
        assert e.value.code == "signing_file_name_invalid"


def test_large_base64_attachment_needs_huge_tree(
    identities: dict[str, SigningIdentity], pki: TestPki
) -> None:
    blob = base64.b64encode(b"\x00" * (9 * 1024 * 1024)).decode()  # one 12 MB text node
    doc = f'<pismo xmlns="urn:ezd:pismo:1"><zalacznik>{blob}</zalacznik></pismo>'.encode()
    signed = sign_enveloped(doc, identities["seal_ec"])
    huge = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)
    signxml_verify(signed, pki, parser=huge)


# ---------------------------------------------------------------------------------------------
# detached
# ---------------------------------------------------------------------------------------------
def _resolver(content: bytes) -> Callable[[str], bytes | None]:
    uri = "za%C5%82%C4%85cznik%20nr%201.pdf"
    return lambda requested: content if requested == uri else None


@pytest.mark.parametrize("who", IDENTITIES)
@pytest.mark.parametrize("level", ["BES", "T"])
def test_detached_verifies_given_the_content(
    who: str,
    level: str,
    identities: dict[str, SigningIdentity],
    pki: TestPki,
    tsa: RunningTsa,
    tmp_path: Path,
) -> None:
    url = tsa.url if level == "T" else None
    xades = sign_detached(PDF, PDF_NAME, "application/pdf", identities[who], tsa_url=url)
    (tmp_path / PDF_NAME).write_bytes(PDF)
    (tmp_path / "podpis.xades").write_bytes(xades)
    # xmlsec1 resolves the relative URI against its working directory
    assert_xmlsec1_ok(Path("podpis.xades"), pki, cwd=tmp_path)
    signxml_verify(xades, pki, uri_resolver=_resolver(PDF))

    signature = etree.fromstring(xades)
    assert signature.tag == f"{{{DS}}}Signature"
    ref = signature.find("ds:SignedInfo/ds:Reference", NS)
    assert ref is not None
    assert ref.get("URI") == "za%C5%82%C4%85cznik%20nr%201.pdf"
    assert ref.find("ds:Transforms", NS) is None  # octets, as they are
    digest = base64.b64decode(ref.findtext("ds:DigestValue", namespaces=NS) or "")
    assert digest == hashlib.sha256(PDF).digest()
    dof = signature.find(".//xades:DataObjectFormat", NS)
    assert dof is not None
    assert dof.findtext("xades:MimeType", namespaces=NS) == "application/pdf"
    assert dof.findtext("xades:Description", namespaces=NS) == PDF_NAME
    if level == "T":
        check_timestamp(xades, tsa, tmp_path)
    else:
        assert signature.find(".//xades:UnsignedProperties", NS) is None


# ---------------------------------------------------------------------------------------------
# tampering
# ---------------------------------------------------------------------------------------------
def test_tampered_enveloped_document_fails_both_verifiers(
    identities: dict[str, SigningIdentity], pki: TestPki, tmp_path: Path
) -> None:
    signed = sign_enveloped(LETTER, identities["signer"])
    variants = {
        "content": signed.replace(b"pozytywnie", b"negatywnie"),
        "attribute": signed.replace(b'Id="pismo-1"', b'Id="pismo-2"'),
        "signing time": signed.replace(b"<xades:SigningTime>2", b"<xades:SigningTime>1"),
    }
    for what, data in variants.items():
        assert data != signed, what
        path = tmp_path / "tampered.xml"
        path.write_bytes(data)
        assert run_xmlsec1(path, pki).returncode != 0, what
        with pytest.raises((InvalidSignature, InvalidDigest)):
            signxml_verify(data, pki)


def test_tampered_detached_content_fails_both_verifiers(
    identities: dict[str, SigningIdentity], pki: TestPki, tmp_path: Path
) -> None:
    xades = sign_detached(PDF, PDF_NAME, "application/pdf", identities["seal"])
    other = PDF.replace(b"binary", b"BINARY")
    (tmp_path / PDF_NAME).write_bytes(other)
    (tmp_path / "podpis.xades").write_bytes(xades)
    assert run_xmlsec1(Path("podpis.xades"), pki, cwd=tmp_path).returncode != 0
    with pytest.raises(InvalidDigest):
        signxml_verify(xades, pki, uri_resolver=_resolver(other))


def test_tampered_timestamp_is_detected(
    identities: dict[str, SigningIdentity], tsa: RunningTsa, tmp_path: Path
) -> None:
    signed = sign_enveloped(LETTER, identities["seal"], tsa_url=tsa.url)
    _, token, digest = the_timestamp(signed)
    # a token for other data: a valid TSA signature, but not over this SignatureValue
    other = request_timestamp(tsa.url, hashlib.sha256(b"something else").digest())
    with pytest.raises(TimestampInvalid, match="imprint"):
        verify_token(other, digest, [tsa.root])
    assert openssl_ts_verify(other, digest, tsa, tmp_path).startswith("FAILED")
    # a changed SignatureValue no longer matches the stamp
    signature, _, _ = the_timestamp(signed)
    value = signature.find("ds:SignatureValue", NS)
    assert value is not None and value.text
    value.text = value.text[::-1]
    changed = hashlib.sha256(signature_timestamp_input(signature, EXC_C14N)).digest()
    with pytest.raises(TimestampInvalid):
        verify_token(token, changed, [tsa.root])
    # a flipped byte inside the signed TSTInfo breaks the CMS signature / messageDigest
    info = parse_token(token)
    serial_der = info.serial.to_bytes((info.serial.bit_length() + 8) // 8, "big")
    assert serial_der in token
    forged = token.replace(serial_der, bytes([serial_der[0] ^ 1]) + serial_der[1:], 1)
    with pytest.raises(TimestampInvalid):
        verify_token(forged, digest, [tsa.root])
    assert openssl_ts_verify(forged, digest, tsa, tmp_path).startswith("FAILED")
    # garbage and an untrusted root
    with pytest.raises(TimestampInvalid):
        verify_token(b"\x30\x03\x02\x01\x01", digest, [tsa.root])
    with pytest.raises(TimestampInvalid, match="not trusted"):
        verify_token(token, digest, [_unrelated_root()])


def _unrelated_root() -> x509.Certificate:
    from tests.pki import make_root

    return make_root("Nobody's Root", kind="ec").cert


# ---------------------------------------------------------------------------------------------
# TSA client
# ---------------------------------------------------------------------------------------------
def test_tsa_client_errors(tsa: RunningTsa) -> None:
    digest = hashlib.sha256(b"x").digest()
    token = request_timestamp(tsa.url, digest, trust_roots=[tsa.root])
    assert verify_token_for_data(token, b"x", [tsa.root]).message_imprint == digest
    assert parse_token(token).policy == "1.2.3.4.1"

    tsa.server.fail_next = "http"
    with pytest.raises(TimestampError) as e:
        request_timestamp(tsa.url, digest)
    assert e.value.code == "timestamp_unavailable"
    tsa.server.fail_next = "garbage"
    with pytest.raises(TimestampError):
        request_timestamp(tsa.url, digest)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/tsa"
    with pytest.raises(TimestampError):
        request_timestamp(closed, digest, timeout=2)
    with pytest.raises(TimestampError) as e:
        request_timestamp("file:///etc/passwd", digest)
    assert e.value.code == "timestamp_url_invalid"
    with pytest.raises(ValueError):
        build_request(b"short")
    with pytest.raises(ValueError):
        build_request(digest, "md5")
    # signing fails cleanly, with the TSA's error, when the TSA is down
    with pytest.raises(TimestampError):
        sign_detached(PDF, "a.pdf", "application/pdf", _any_identity(), tsa_url=closed)


def _any_identity() -> SigningIdentity:
    from tests.pki import make_root

    root = make_root("Throwaway", kind="ec")
    leaf = issue(root, "leaf", "Throwaway signer", kind="ec")
    return load_identity(leaf.pem_bundle(), None)


@pytest.mark.parametrize(
    "name",
    [
        "signxml-xades/xades-extended-t.xml",
        "signxml-xades/Signature-X-CZ_SEF-4.xml",
        "signxml-xades/Signature-X-HU_POL-3.xml",
        "signxml-xades/document.signed.c.xml",
        "signxml-xades/xades-lta-valid.xml",
        "signxml-xades/xades-extended-xl.xml",
    ],
)
def test_timestamp_input_agrees_with_third_party_xades_t(name: str) -> None:
    """Our reading of "the c14n of ds:SignatureValue" matches what DSS and the ETSI plugtest
    implementations time-stamped (inclusive and exclusive C14N)."""
    if not EXTERNAL.is_dir():
        pytest.fail(f"the conformance material is missing: {EXTERNAL}")
    root = etree.parse(str(EXTERNAL / name)).getroot()
    stamp = next(root.iter(f"{{{XA}}}SignatureTimeStamp"))
    signature = next(a for a in stamp.iterancestors() if a.tag == f"{{{DS}}}Signature")
    method = stamp.find("ds:CanonicalizationMethod", NS)
    algorithm = method.get("Algorithm") if method is not None else None
    encapsulated = stamp.findtext("xades:EncapsulatedTimeStamp", namespaces=NS)
    info = parse_token(base64.b64decode(encapsulated or ""))
    data = signature_timestamp_input(signature, algorithm or "")
    assert hashlib.new(info.hash_name, data).digest() == info.message_imprint


# ---------------------------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------------------------
def test_load_identity_from_pkcs12_and_pem(pki: TestPki) -> None:
    rsa_id = load_identity(pki.signer.p12(), P12_PASSWORD)
    assert rsa_id.signature_algorithm is SignatureMethod.RSA_SHA256
    assert rsa_id.certificate == pki.signer.cert
    assert list(rsa_id.chain) == [pki.intermediate.cert]  # the root stays out
    ec_id = load_identity(pki.seal_ec.pem_bundle(), None)
    assert ec_id.signature_algorithm is SignatureMethod.ECDSA_SHA256
    # PEM in any order, with the root and an unrelated certificate: the chain is rebuilt
    messy = (
        pki.root.cert_pem + pki.stranger.cert_pem + pki.seal.cert_pem
        + pki.seal.key_pem + pki.intermediate.cert_pem
    )  # fmt: skip
    seal = load_identity(messy, None)
    assert seal.certificate == pki.seal.cert
    assert list(seal.chain) == [pki.intermediate.cert]
    # a password typed for an unencrypted PEM key does no harm
    assert load_identity(pki.seal.pem_bundle(), b"unneeded").certificate == pki.seal.cert
    # PKCS#12 "without a password" (written by openssl with an empty one)
    empty = subprocess.run(
        [
            OPENSSL, "pkcs12", "-export", "-passout", "pass:",
            "-inkey", str(pki.seal.key_path), "-in", str(pki.seal.cert_path),
            "-certfile", str(pki.intermediate_pem_path),
        ],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    assert load_identity(empty, None).certificate == pki.seal.cert
    assert load_identity(empty, b"").certificate == pki.seal.cert
    # a P-384 key gets ECDSA-SHA384
    p384 = issue(pki.intermediate, "p384", "P-384 seal", kind="ec384")
    p384_identity = load_identity(p384.pem_bundle(), None)
    assert p384_identity.signature_algorithm is SignatureMethod.ECDSA_SHA384


def _code(fn: Callable[..., object], *args: Any) -> str:
    with pytest.raises(SigningKeyRefused) as e:
        fn(*args)
    assert e.value.message_pl and e.value.message_en
    return e.value.code


def test_load_identity_refusals(pki: TestPki) -> None:
    assert _code(lambda: load_identity(pki.signer.p12(), b"wrong")) == "signing_key_bad_password"
    assert _code(lambda: load_identity(pki.signer.p12(), None)) == "signing_key_bad_password"
    encrypted = pki.seal.pem_bundle(b"right")
    assert _code(lambda: load_identity(encrypted, b"wrong")) == "signing_key_bad_password"
    assert _code(lambda: load_identity(encrypted, None)) == "signing_key_password_required"
    assert _code(lambda: load_identity(pki.expired.p12(), P12_PASSWORD)) == (
        "signing_certificate_expired"
    )
    assert _code(lambda: load_identity(pki.not_yet_valid.pem_bundle(), None)) == (
        "signing_certificate_not_yet_valid"
    )
    mismatched = pki.signer.key_pem + pki.seal.cert_pem + pki.intermediate.cert_pem
    assert _code(lambda: load_identity(mismatched, None)) == "signing_key_mismatch"
    from cryptography.hazmat.primitives.serialization import pkcs12

    # (cryptography will not write a PKCS#12 whose certificate mismatches; put it among the CAs)
    p12_mismatch = pkcs12.serialize_key_and_certificates(
        b"x", pki.signer.key, None, [pki.seal.cert, pki.intermediate.cert],
        serialization.BestAvailableEncryption(P12_PASSWORD),
    )  # fmt: skip
    assert _code(lambda: load_identity(p12_mismatch, P12_PASSWORD)) == "signing_key_mismatch"
    assert _code(lambda: load_identity(pki.seal.cert_pem, None)) == "signing_key_missing"
    assert _code(lambda: load_identity(pki.seal.key_pem, None)) == "signing_certificate_missing"
    two_keys = pki.seal.key_pem + pki.signer.key_pem + pki.seal.cert_pem
    assert _code(lambda: load_identity(two_keys, None)) == "signing_key_ambiguous"
    assert _code(lambda: load_identity(b"hello", None)) == "signing_key_malformed"
    assert _code(lambda: load_identity(b"\x30\x82garbage", None)) == "signing_key_bad_password"
    # a CA certificate (keyCertSign only) is not for signing documents
    assert _code(lambda: load_identity(pki.intermediate.pem_bundle(), None)) == (
        "signing_certificate_wrong_usage"
    )
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_pem = weak.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert _code(lambda: load_identity(weak_pem + pki.seal.cert_pem, None)) == "signing_key_weak"
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_pem = ed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert _code(lambda: load_identity(ed_pem + pki.seal.cert_pem, None)) == (
        "signing_key_unsupported"
    )
    assert isinstance(SigningKeyRefused(), DomainError)


def test_signing_refuses_a_certificate_that_has_expired_since_loading(pki: TestPki) -> None:
    long_ago = pki.expired.cert.not_valid_before_utc + dt.timedelta(days=1)
    identity = load_identity(pki.expired.pem_bundle(), None, at=long_ago)
    with pytest.raises(SigningKeyRefused) as e:
        sign_enveloped(LETTER, identity)
    assert e.value.code == "signing_certificate_expired"
    with pytest.raises(SigningKeyRefused):
        sign_detached(PDF, "a.pdf", "application/pdf", identity)


def test_private_key_encrypted_at_rest_round_trip(
    identities: dict[str, SigningIdentity], pki: TestPki, tmp_path: Path
) -> None:
    master = bytes(range(32))
    for who in ("signer", "seal_ec"):
        identity = identities[who]
        blob = encrypt_private_key(identity, master)
        der = identity.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        assert der not in blob and der[-32:] not in blob
        assert encrypt_private_key(identity, master) != blob  # a fresh nonce every time
        cert_pem = certificates_pem(identity)
        restored = decrypt_identity(blob, cert_pem, master)
        assert restored.certificate == identity.certificate
        assert restored.chain == identity.chain
        assert restored.signature_algorithm is identity.signature_algorithm
        assert restored.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == identity.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        path = tmp_path / f"{who}.xml"
        path.write_bytes(sign_enveloped(LETTER, restored))
        assert_xmlsec1_ok(path, pki)

        failed = "signing_key_decrypt_failed"
        assert _code(decrypt_identity, blob, cert_pem, bytes(32)) == failed
        tampered = blob[:-1] + bytes([blob[-1] ^ 1])
        assert _code(decrypt_identity, tampered, cert_pem, master) == failed
        # the blob is bound to its certificate: it does not open with another one in front
        other = pki.seal.cert_pem + cert_pem
        assert _code(decrypt_identity, blob, other, master) == failed
        assert _code(decrypt_identity, b"junk", cert_pem, master) == "signing_key_malformed"
    with pytest.raises(ValueError):
        encrypt_private_key(identities["seal"], b"short")


def test_repr_hides_the_key(identities: dict[str, SigningIdentity]) -> None:
    for identity in identities.values():
        key = identity.private_key
        secrets_: list[str] = []
        if isinstance(key, rsa.RSAPrivateKey):
            numbers = key.private_numbers()
            secrets_ += [str(numbers.d), f"{numbers.d:x}", str(numbers.p)]
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            value = key.private_numbers().private_value
            secrets_ += [str(value), f"{value:x}"]
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        secrets_.append(pem.splitlines()[1])
        for text in (repr(identity), str(identity), f"{identity}", repr([identity])):
            assert "private_key=<hidden>" in text
            assert "CN=" in text
            for secret in secrets_:
                assert secret not in text
        assert "object at" not in repr(identity)
        assert copy.copy(identity) == identity
