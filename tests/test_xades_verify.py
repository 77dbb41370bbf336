"""Verification of incoming signed documents (workflow/signing/verify.py, `ezd verify`).

1. Conformance: every signed file in ../shared/testdata/external/signxml-xades and esig-dss,
   run through `ezd verify` with the options their SOURCES.md states (trust anchors, validation
   at the signing time, SHA-1 allowed where noted), against a table of expected verdicts.
2. Bad input: XXE, billion laughs, external DTD, XInclude, DOCTYPE, invalid UTF-8, signature
   wrapping, a signature over the wrong element, swapped / missing / forged certificates,
   untrusted CA, expired / not yet valid at signing time, SHA-1 without --allow-sha1, tampered
   time-stamps, a second bad signature. Nothing may read a local file or touch the network.
3. Fresh signatures made here (a throwaway CA, signer with KeyUsage nonRepudiation only):
   enveloped, enveloping, detached over a binary file, XAdES-T with our own TSA, chains.
4. A 20 MB attachment, verified in a child process whose peak RSS is measured.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import SignatureConstructionMethod
from signxml.exceptions import InvalidCertificate
from signxml.xades import XAdESSignatureConfiguration, XAdESSigner, XAdESVerifier

from workflow.signing.report import CLI_KEYS, VerificationReport
from workflow.signing.trust import TrustStore
from workflow.signing.verify import verify_command, verify_xades

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = REPO.parent / "shared" / "testdata" / "external"
ANCHORS = EXTERNAL / "trust-anchors"
DS = "http://www.w3.org/2000/09/xmldsig#"
XA = "http://uri.etsi.org/01903/v1.3.2#"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)

#: Peak RSS growth allowed while verifying the 20 MB attachment (a 28 MB XML document).
MEMORY_BUDGET_MB = 400


@pytest.fixture(scope="module", autouse=True)
def external() -> Path:
    if not EXTERNAL.is_dir():
        pytest.fail(f"the conformance material is missing: {EXTERNAL}")
    return EXTERNAL


# =============================================================================================
# 1. conformance
# =============================================================================================
@dataclass(frozen=True)
class Row:
    file: str  # "<folder>/<name>"
    expected: str  # indication
    sub: str | None = None  # sub-indication, when the table pins it
    trust: tuple[str, ...] = ("pinned",)  # anchor files in trust-anchors/, or "pinned"
    at: str | None = "signing_time"  # "signing_time", an ISO time, or None (= now)
    sha1: bool = False
    detached: str | None = None
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.file}:{self.note}" if self.note else self.file


P, F, I = "TOTAL_PASSED", "TOTAL_FAILED", "INDETERMINATE"  # noqa: E741
SX, ED = "signxml-xades/", "esig-dss/"
NOWINA, ASCERTIA = "nowina-pki-test-root-ca-2020.pem", "ascertia-root-ca.pem"
LUX_ROOT, LUX_CA3 = "luxtrust-global-root-2.pem", "luxtrust-global-qualified-ca-3.pem"
NBP = "pl-tsl-operator-nbp-signer.pem"

#: "pinned" = the first ds:X509Certificate of the file is the trust anchor, as upstream's test
#: does (x509_cert = first certificate); SOURCES.md names anchors for the others.
CONFORMANCE = [
    # signxml-xades: SOURCES.md verdicts
    Row(SX + "dss-signed.xml", P),
    Row(SX + "dss-signed-altered-signedPropsRemoved.xml", F, "SIG_CRYPTO_FAILURE"),
    Row(SX + "nonconformant-dss-signed-altered-refRemoved.xml", F, "SIG_CRYPTO_FAILURE"),
    Row(SX + "X_AT_SIT_1.xml", P),
    Row(SX + "xades-ecc-brainpool.xml", P),
    Row(SX + "Signature-X-UK_ASC-2.xml", P, trust=(ASCERTIA,)),
    Row(SX + "Signature-X-SK_DIT-1.xml", P),
    Row(SX + "Signature-X-CZ_SEF-4.xml", P),
    Row(SX + "Signature-X-HU_POL-3.xml", P),
    Row(SX + "TEST_S1a_C1a_InTL_VALID.xml", P),
    Row(SX + "document.signed.bes.ptcc.xml", P, sha1=True),
    Row(SX + "document.signed.bes.ptcc.xml", F, "CRYPTO_CONSTRAINTS_FAILURE", note="no-sha1"),
    Row(SX + "factura_ejemplo2_32v1.xml", P, sha1=True),
    Row(SX + "factura_ejemplo2_32v1.xml", F, "CRYPTO_CONSTRAINTS_FAILURE", note="no-sha1"),
    Row(SX + "document.signed.c.xml", P),
    Row(SX + "document.signed.c.xml", P, at=None, note="today"),
    Row(SX + "xades-extended-xl.xml", P),
    Row(SX + "xades-lta-valid.xml", P, trust=(NOWINA,)),
    # no SigningTime, no time-stamp: SOURCES.md validates at mid-validity of the signing cert
    Row(SX + "xades-extended-epes.xml", P, at="2021-12-03T00:00:00+00:00"),
    Row(SX + "xades-extended-epes.xml", I, "NO_POE", note="no-signing-time"),
    Row(SX + "xades-extended-t.xml", P),  # no SigningTime: the time-stamp's genTime
    Row(SX + "xades-wrong-sign-cert-digest.xml", F, "HASH_FAILURE"),
    Row(SX + "xades-sign-cert-v2-wrong-digest.xml", F, "FORMAT_FAILURE"),  # DigestValue "..."
    Row(SX + "xades-unsupported-signature-algorithm.xml", F, "FORMAT_FAILURE"),
    Row(SX + "xades-ocsp-before-cert-validity.xml", F, "NOT_YET_VALID"),
    # "EXPIRED if checked at today's date": without a proof of the signing time that is
    # INDETERMINATE / OUT_OF_BOUNDS_NO_POE in EN 319 102-1 terms
    Row(SX + "dss-signed.xml", I, "OUT_OF_BOUNDS_NO_POE", at=None, note="today"),
    # wrong trust anchor (SOURCES: "NEGATIVE use ... must fail")
    Row(SX + "dss-signed.xml", I, "NO_CERTIFICATE_CHAIN_FOUND", (NOWINA,), note="wrong-anchor"),
    Row(SX + "dss-signed.xml", I, "NO_CERTIFICATE_CHAIN_FOUND", (), note="no-trust"),
    # esig-dss
    Row(ED + "PL-trusted-list-NBP-seq110.xml", P, trust=(NBP,)),
    Row(
        ED + "PL-trusted-list-NBP-seq110.xml", I, "OUT_OF_BOUNDS_NO_POE", (NBP,), None, note="today"
    ),
    Row(ED + "xades-detached.xml", P, detached="sample.xml"),
    Row(ED + "xades-detached.xml", F, "HASH_FAILURE", detached="simple-test.xml", note="wrong"),
    Row(ED + "xades-detached.xml", I, "SIGNED_DATA_NOT_FOUND", note="no-content"),
    Row(
        ED + "xades-detached.xml",
        I,
        "NO_CERTIFICATE_CHAIN_FOUND",
        (NOWINA,),
        detached="sample.xml",
        note="wrong-anchor",
    ),
    Row(
        ED + "simple-test-signed-xades-baseline-b.xml",
        P,
        trust=(LUX_ROOT, LUX_CA3),
        sha1=True,
        detached="simple-test.xml",
    ),
    Row(
        ED + "simple-test-signed-xades-baseline-b.xml",
        F,
        "CRYPTO_CONSTRAINTS_FAILURE",
        (LUX_ROOT, LUX_CA3),
        detached="simple-test.xml",
        note="no-sha1",
    ),
    Row(
        ED + "simple-test-signed-xades-baseline-b.xml",
        I,
        "NO_CERTIFICATE_CHAIN_FOUND",
        (LUX_ROOT,),
        sha1=True,
        detached="simple-test.xml",
        note="intermediate-missing",
    ),
    # a data reference without URI: supported, resolved to the supplied content (DSS agrees)
    Row(
        ED + "simple-test.signed-only-detached-LuxTrustCA3.xml",
        P,
        trust=(LUX_ROOT,),
        detached="simple-test.xml",
    ),
]
CONTENT_FILES = {"sample.xml", "simple-test.xml"}


def first_certificate_pem(path: Path) -> bytes:
    root = etree.parse(str(path), etree.XMLParser(huge_tree=True, resolve_entities=False))
    el = next(root.getroot().iter(f"{{{DS}}}X509Certificate"))
    der = base64.b64decode("".join(el.text.split()))
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def cns(subjects: list[str]) -> list[str]:
    return [next(p[3:] for p in s.split(",") if p.startswith("CN=")) for s in subjects]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = verify_command(argv)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    return code, json.loads(out[0])


def test_the_table_covers_every_signed_file() -> None:
    on_disk = {
        f"{p.parent.name}/{p.name}"
        for folder in ("signxml-xades", "esig-dss")
        for p in (EXTERNAL / folder).glob("*.xml")
        if p.name not in CONTENT_FILES
    }
    assert on_disk == {r.file for r in CONFORMANCE}


@pytest.mark.parametrize("row", CONFORMANCE, ids=lambda r: r.id)
def test_conformance(row: Row, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = EXTERNAL / row.file
    argv = [str(path)]
    for anchor in row.trust:
        if anchor == "pinned":
            pem = tmp_path / "pinned.pem"
            pem.write_bytes(first_certificate_pem(path))
            argv += ["--trust", str(pem)]
        else:
            argv += ["--trust", str(ANCHORS / anchor)]
    if row.at == "signing_time":
        argv.append("--at-signing-time")
    elif row.at is not None:
        argv += ["--at", row.at]
    if row.sha1:
        argv.append("--allow-sha1")
    if row.detached:
        argv += ["--detached-content", str(path.parent / row.detached)]
    code, result = run_cli(argv, capsys)
    assert tuple(result) == CLI_KEYS
    assert (result["indication"], code) == (row.expected, {P: 0, F: 1, I: 2}[row.expected]), result
    if row.sub is not None:
        assert result["sub_indication"] == row.sub, result
    if row.expected == P:
        assert result["errors"] == [] and result["signed_by"] and result["level"], result
    else:
        assert result["errors"], result


def test_conformance_report_details() -> None:
    pl = (EXTERNAL / ED / "PL-trusted-list-NBP-seq110.xml").read_bytes()
    report = verify_xades(
        pl, trust=TrustStore.from_pem((ANCHORS / NBP).read_bytes()), at="signing_time"
    )
    assert report.passed
    assert report.signed_by == "Polish TSL Operator, National Bank of Poland"
    assert report.signing_time == dt.datetime(2019, 8, 26, 12, 47, 6, tzinfo=dt.UTC)
    assert report.level == "XAdES-BES"
    assert report.signed_data == ["document <TrustServiceStatusList>"]
    json.dumps(report.to_json())  # JSON-safe
    assert VerificationReport.from_json(report.to_json()) == report

    lta = (EXTERNAL / SX / "xades-lta-valid.xml").read_bytes()
    report = verify_xades(
        lta, trust=TrustStore.from_pem((ANCHORS / NOWINA).read_bytes()), at="signing_time"
    )
    assert report.passed and report.level == "XAdES-B-LTA"
    # the time-stamp's genTime is the proven time and the validation time
    assert report.timestamp_time == dt.datetime(2021, 8, 12, 13, 27, tzinfo=dt.UTC)
    assert report.signing_time == report.validation_time == report.timestamp_time
    assert report.claimed_signing_time == dt.datetime(2021, 7, 13, 13, 27, 44, tzinfo=dt.UTC)
    assert cns(report.certificate_chain) == ["good-user", "good-ca", "root-ca"]

    two = (EXTERNAL / SX / "TEST_S1a_C1a_InTL_VALID.xml").read_bytes()
    report = verify_xades(
        two,
        trust=TrustStore.from_pem(
            first_certificate_pem(EXTERNAL / SX / "TEST_S1a_C1a_InTL_VALID.xml")
        ),
        at="signing_time",
    )
    assert report.passed and [s.signature_id for s in report.signatures] == ["XSIG1", "XSIG2"]
    assert report.signatures[1].signed_data == ["countersigned SignatureValue of XSIG1"]


def test_polish_trusted_list_gives_the_qualified_cas() -> None:
    pl = (EXTERNAL / ED / "PL-trusted-list-NBP-seq110.xml").read_bytes()
    signer = TrustStore.from_pem((ANCHORS / NBP).read_bytes())
    store = TrustStore()
    added = store.add_trusted_list(pl, signer=signer, verify_at="signing_time")
    # 15 granted CA/QC services for e-signatures/e-seals, one of them with two certificates
    assert added == len(store) == 16
    subjects = {
        a.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value for a in store
    }
    assert {"Certum QCA 2017", "COPE SZAFIR - Kwalifikowany", "CenCert QTSP CA"} <= subjects
    assert all(a.source.startswith("TL PL #110: ") for a in store)
    assert len(store.anchors("timestamp")) == 12  # granted qualified TSA services
    # the list's own signature must verify against the pinned signer, at a time it was valid
    from workflow.signing.trust import TrustListRefused

    with pytest.raises(TrustListRefused, match="NO_CERTIFICATE_CHAIN_FOUND"):
        TrustStore().add_trusted_list(
            pl,
            signer=TrustStore.from_pem((ANCHORS / ASCERTIA).read_bytes()),
            verify_at="signing_time",
        )
    with pytest.raises(TrustListRefused, match="OUT_OF_BOUNDS_NO_POE"):
        TrustStore().add_trusted_list(pl, signer=signer)  # today: the signer expired in 2022
    tampered = pl.replace("Świętokrzyska".encode(), b"Swietokrzyska", 1)
    assert tampered != pl
    with pytest.raises(TrustListRefused, match="HASH_FAILURE"):
        TrustStore().add_trusted_list(tampered, signer=signer, verify_at="signing_time")


# =============================================================================================
# a throwaway PKI and signers
# =============================================================================================
def _name(cn: str, org: str = "Miasto Testowe") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key() -> rsa.RSAPrivateKey:
    # key generation is the slow part: certificates that need no key of their own reuse one
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Issued:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_cert(
    subject: x509.Name,
    issuer: Issued | None,
    *,
    key: rsa.RSAPrivateKey | None = None,
    ca: bool = False,
    key_usage: str = "nonRepudiation",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    eku_timestamping: bool = False,
    basic_constraints: bool = True,
) -> Issued:
    key = key or _key()
    signing_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - 30 * DAY)
        .not_valid_after(not_after or NOW + 365 * DAY)
    )
    if ca:
        if basic_constraints:
            builder = builder.add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
        usage = {"key_cert_sign": True, "crl_sign": True}
    else:
        usage = {
            "nonRepudiation": {"content_commitment": True},
            "digitalSignature": {"digital_signature": True},
            "keyEncipherment": {"key_encipherment": True},
        }[key_usage]
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    flags.update(usage)
    builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    if eku_timestamping:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    return Issued(key, builder.sign(signing_key, hashes.SHA256()))


@dataclass
class Pki:
    root: Issued
    inter: Issued
    signer: Issued  # issued by root, nonRepudiation only (qualified-certificate style)
    signer2: Issued  # issued by inter
    tsa: Issued
    other_root: Issued  # an untrusted CA
    stranger: Issued  # issued by other_root

    @property
    def trust(self) -> TrustStore:
        return TrustStore.from_pem(self.root.pem)


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = make_cert(_name("Test Root CA"), None, ca=True)
    inter = make_cert(_name("Test Qualified CA"), root, ca=True)
    signer = make_cert(_name("Jan Kowalski", "Szkoła Podstawowa nr 58"), root)
    signer2 = make_cert(_name("Anna Nowak", "Wydział Oświaty"), inter)
    tsa = make_cert(_name("Test TSA"), root, key_usage="digitalSignature", eku_timestamping=True)
    other_root = make_cert(_name("Other Root CA", "Elsewhere"), None, ca=True)
    stranger = make_cert(
        _name("Jan Kowalski", "Szkoła Podstawowa nr 58"), other_root, key=signer.key
    )
    return Pki(root, inter, signer, signer2, tsa, other_root, stranger)


def letter(with_id: bool = True) -> etree._Element:
    nsmap = {"ds": DS, "xades": XA}  # declared on the root, like many real forms
    root = etree.Element("Pismo", nsmap=nsmap, **({"Id": "pismo-1"} if with_id else {}))
    etree.SubElement(root, "Odbiorca").text = "Wydział Oświaty"
    etree.SubElement(root, "Tresc").text = "Decyzja: przyznano dofinansowanie 10 000 zł."
    return root


def xades_sign(
    data: Any,
    signer: Issued,
    chain: list[x509.Certificate] | None = None,
    method: SignatureConstructionMethod = SignatureConstructionMethod.enveloped,
    **kwargs: Any,
) -> bytes:
    s = XAdESSigner(method=method, signature_algorithm="rsa-sha256")
    s._parser = etree.XMLParser(huge_tree=True, resolve_entities=False)
    signed = s.sign(data, key=signer.key, cert=[signer.cert, *(chain or [])], **kwargs)
    return etree.tostring(signed)


def _c14n(el: etree._Element) -> bytes:
    return etree.tostring(el, method="c14n")


def timestamp_token(tsa: Issued, data: bytes, gen_time: dt.datetime) -> bytes:
    """An RFC 3161 TimeStampToken over sha256(data), signed by `tsa` (signed attributes)."""
    tst = tsp.TSTInfo(
        {
            "version": "v1",
            "policy": "1.2.3.4.1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(data).digest(),
            },
            "serial_number": 42,
            "gen_time": gen_time,
        }
    )
    tst_der = tst.dump()
    attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
        ]
    )
    signature = tsa.key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    cert = asn1_x509.Certificate.load(tsa.cert.public_bytes(serialization.Encoding.DER))
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": cert.issuer,
                        "serial_number": cert.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": tst},
            "certificates": [cert],
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def manual_xades(
    signer: Issued,
    *,
    content: bytes | None = None,
    name: str = "",
    doc: etree._Element | None = None,
    sig_id: str = "S1",
    signing_time: dt.datetime | None = None,
    tsa: Issued | None = None,
    ts_time: dt.datetime | None = None,
) -> bytes:
    """A XAdES-BES (or -T with `tsa`) built by hand, RSA-SHA256, inclusive C14N 1.0, with
    SigningTime and SigningCertificateV2. Detached (`content`, `name`): Reference URI=name over
    the raw bytes, as a .xades file (signxml can only sign XML). Enveloped (`doc`): Reference
    URI="" with the enveloped-signature and XPath not(ancestor-or-self::ds:Signature) transforms,
    the form parallel signatures need (signxml cannot produce it)."""

    def el(
        parent: etree._Element, ns: str, tag: str, text: str | None = None, **attrs: str
    ) -> etree._Element:
        e = etree.SubElement(parent, f"{{{ns}}}{tag}", **attrs)
        e.text = text
        return e

    sig = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS, "xades": XA}, Id=sig_id)
    si = el(sig, DS, "SignedInfo")
    el(si, DS, "CanonicalizationMethod", Algorithm=C14N)
    el(si, DS, "SignatureMethod", Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    if doc is not None:
        bare = copy.deepcopy(doc)
        for other in list(bare.iter(f"{{{DS}}}Signature")):
            other.getparent().remove(other)
        data_digest = hashlib.sha256(_c14n(bare)).digest()
        data_ref = el(si, DS, "Reference", URI="", Id=f"{sig_id}-r-data")
        transforms = el(data_ref, DS, "Transforms")
        el(
            transforms,
            DS,
            "Transform",
            Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        )
        xpath = el(
            transforms, DS, "Transform", Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"
        )
        el(xpath, DS, "XPath", "not(ancestor-or-self::ds:Signature)")
        el(transforms, DS, "Transform", Algorithm=C14N)
        doc.append(sig)
    else:
        assert content is not None
        data_digest = hashlib.sha256(content).digest()
        data_ref = el(si, DS, "Reference", URI=name, Id=f"{sig_id}-r-data")
    el(data_ref, DS, "DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
    el(data_ref, DS, "DigestValue", base64.b64encode(data_digest).decode())
    sp_ref = el(
        si, DS, "Reference", URI=f"#{sig_id}-sp", Type="http://uri.etsi.org/01903#SignedProperties"
    )
    el(el(sp_ref, DS, "Transforms"), DS, "Transform", Algorithm=C14N)
    el(sp_ref, DS, "DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
    sp_digest = el(sp_ref, DS, "DigestValue")
    value = el(sig, DS, "SignatureValue", Id=f"{sig_id}-value")
    der = signer.cert.public_bytes(serialization.Encoding.DER)
    el(
        el(el(sig, DS, "KeyInfo"), DS, "X509Data"),
        DS,
        "X509Certificate",
        base64.b64encode(der).decode(),
    )
    qp = el(el(sig, DS, "Object"), XA, "QualifyingProperties", Target=f"#{sig_id}")
    sp = el(qp, XA, "SignedProperties", Id=f"{sig_id}-sp")
    ssp = el(sp, XA, "SignedSignatureProperties")
    el(ssp, XA, "SigningTime", (signing_time or NOW).isoformat(timespec="seconds"))
    cert_digest = el(el(el(ssp, XA, "SigningCertificateV2"), XA, "Cert"), XA, "CertDigest")
    el(cert_digest, DS, "DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
    el(cert_digest, DS, "DigestValue", base64.b64encode(hashlib.sha256(der).digest()).decode())
    sp_digest.text = base64.b64encode(hashlib.sha256(_c14n(sp)).digest()).decode()
    value.text = base64.b64encode(
        signer.key.sign(_c14n(si), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    if tsa is not None:
        token = timestamp_token(tsa, _c14n(value), ts_time or NOW)
        usp = el(el(qp, XA, "UnsignedProperties"), XA, "UnsignedSignatureProperties")
        stamp = el(usp, XA, "SignatureTimeStamp", Id=f"{sig_id}-ts")
        el(stamp, DS, "CanonicalizationMethod", Algorithm=C14N)
        el(stamp, XA, "EncapsulatedTimeStamp", base64.b64encode(token).decode())
    return etree.tostring(doc if doc is not None else sig, xml_declaration=True, encoding="UTF-8")


def detached_xades(content: bytes, name: str, signer: Issued, **kwargs: Any) -> bytes:
    return manual_xades(signer, content=content, name=name, **kwargs)


def check(
    report: VerificationReport, indication: str, sub: str | None = None, text: str = ""
) -> None:
    assert report.indication == indication, report.to_json()
    if sub is not None:
        assert report.sub_indication == sub, report.to_json()
    if text:
        assert any(text in e for e in report.errors), report.errors


# =============================================================================================
# 3. fresh signatures
# =============================================================================================
def test_fresh_enveloped_signature_passes(pki: Pki, tmp_path: Path) -> None:
    data = xades_sign(letter(), pki.signer)
    report = verify_xades(data, trust=pki.trust)
    check(report, "TOTAL_PASSED")
    assert report.signed_by == "Jan Kowalski, Szkoła Podstawowa nr 58"
    assert report.message_pl == "Podpis prawidłowy"
    assert report.level == "XAdES-BES"
    assert (
        report.signer_certificate_sha256
        == hashlib.sha256(pki.signer.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    now = dt.datetime.now(dt.UTC)  # not NOW: the module may have been imported long before
    assert report.signing_time is not None
    assert abs(report.signing_time - now) < dt.timedelta(minutes=5)
    assert report.signed_data == ["document <Pismo>"]
    assert "revocation status not checked (offline verification)" in report.warnings
    assert verify_xades(data, trust=pki.trust, at="signing_time").passed
    # signxml's own chain policy refuses this nonRepudiation-only (qualified-style) certificate
    (tmp_path / "root.pem").write_bytes(pki.root.pem)
    with pytest.raises(InvalidCertificate, match="digitalSignature"):
        XAdESVerifier().verify(data, ca_pem_file=str(tmp_path / "root.pem"))


def test_signed_content_with_a_processing_instruction_verifies(pki: Pki) -> None:
    """A processing instruction inside the signed content is part of what was digested: the
    hardened parser keeps it for verification (it used to drop it: HASH_FAILURE)."""
    doc = letter()
    doc.insert(0, etree.ProcessingInstruction("ezd-form", 'version="2"'))
    data = xades_sign(doc, pki.signer)
    assert b"<?ezd-form" in data
    check(verify_xades(data, trust=pki.trust), "TOTAL_PASSED")


def test_fresh_enveloping_and_chain_through_an_intermediate(pki: Pki) -> None:
    data = xades_sign(
        letter(with_id=False), pki.signer2, [pki.inter.cert], SignatureConstructionMethod.enveloping
    )
    report = verify_xades(data, trust=pki.trust)
    check(report, "TOTAL_PASSED")
    assert report.signed_data == ["ds:Object object"]
    assert cns(report.certificate_chain) == ["Anna Nowak", "Test Qualified CA", "Test Root CA"]
    # without the intermediate in the signature there is no path
    alone = xades_sign(
        letter(with_id=False), pki.signer2, None, SignatureConstructionMethod.enveloping
    )
    check(verify_xades(alone, trust=pki.trust), "INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")
    # ... unless the intermediate is itself an anchor
    check(verify_xades(alone, trust=TrustStore.from_pem(pki.inter.pem)), "TOTAL_PASSED")


def test_intermediate_that_is_not_a_ca_breaks_the_chain(pki: Pki) -> None:
    fake_ca = make_cert(_name("Not A CA"), pki.root, ca=True, basic_constraints=False)
    signer = make_cert(_name("Piotr Zieliński"), fake_ca, key=pki.signer.key)
    data = xades_sign(letter(), signer, [fake_ca.cert])
    check(
        verify_xades(data, trust=pki.trust),
        "INDETERMINATE",
        "CHAIN_CONSTRAINTS_FAILURE",
        "not a CA",
    )


def test_key_usage_rule(pki: Pki) -> None:
    for usage in ("nonRepudiation", "digitalSignature"):
        signer = make_cert(_name(f"Signer {usage}"), pki.root, key=pki.signer.key, key_usage=usage)
        check(verify_xades(xades_sign(letter(), signer), trust=pki.trust), "TOTAL_PASSED")
    bad = make_cert(
        _name("Encryption only"), pki.root, key=pki.signer.key, key_usage="keyEncipherment"
    )
    check(
        verify_xades(xades_sign(letter(), bad), trust=pki.trust),
        "INDETERMINATE",
        "CHAIN_CONSTRAINTS_FAILURE",
        "neither digitalSignature nor nonRepudiation",
    )


def test_detached_signature_over_a_binary_file(pki: Pki) -> None:
    pdf = b"%PDF-1.7\n" + os.urandom(50_000) + b"\n%%EOF\n"
    xades = detached_xades(pdf, "wniosek.pdf", pki.signer)
    report = verify_xades(xades, detached_content=pdf, trust=pki.trust, at="signing_time")
    check(report, "TOTAL_PASSED")
    assert report.signed_data == ["detached: wniosek.pdf"]
    check(
        verify_xades(xades, detached_content=pdf[:-1] + b"!", trust=pki.trust),
        "TOTAL_FAILED",
        "HASH_FAILURE",
    )
    check(
        verify_xades(xades, trust=pki.trust),
        "INDETERMINATE",
        "SIGNED_DATA_NOT_FOUND",
        "wniosek.pdf",
    )


def test_fresh_xades_t_with_our_tsa(pki: Pki) -> None:
    pdf = b"%PDF-1.7 podanie\n"
    ts_time = NOW - dt.timedelta(minutes=1)
    xades = detached_xades(
        pdf,
        "podanie.pdf",
        pki.signer,
        signing_time=NOW - 2 * dt.timedelta(minutes=1),
        tsa=pki.tsa,
        ts_time=ts_time,
    )
    report = verify_xades(xades, detached_content=pdf, trust=pki.trust, at="signing_time")
    check(report, "TOTAL_PASSED")
    assert report.level == "XAdES-T"
    assert report.timestamp_time is not None and abs(
        report.timestamp_time - ts_time
    ) < dt.timedelta(seconds=1)
    assert report.signing_time == report.validation_time == report.timestamp_time
    # a time-stamp that proves the signature existed before the certificate was valid
    young = make_cert(
        _name("Nowy Certyfikat"), pki.root, key=pki.signer.key, not_before=NOW - 10 * DAY
    )
    early = detached_xades(pdf, "podanie.pdf", young, tsa=pki.tsa, ts_time=NOW - 20 * DAY)
    check(
        verify_xades(early, detached_content=pdf, trust=pki.trust), "TOTAL_FAILED", "NOT_YET_VALID"
    )


def test_tampered_time_stamps_are_reported(pki: Pki) -> None:
    pdf = b"%PDF-1.7 podanie\n"
    xades = detached_xades(pdf, "podanie.pdf", pki.signer, tsa=pki.tsa)
    root = etree.fromstring(xades)
    stamp = root.find(f".//{{{XA}}}EncapsulatedTimeStamp")
    token = bytearray(base64.b64decode(stamp.text))
    token[-1] ^= 0x01  # the TSA's signature is the last field of the token
    stamp.text = base64.b64encode(bytes(token)).decode()
    check(
        verify_xades(etree.tostring(root), detached_content=pdf, trust=pki.trust),
        "INDETERMINATE",
        "SIG_CONSTRAINTS_FAILURE",
        "the TSA's signature over the token does not verify",
    )
    # a genuine token, but for another signature (the unsigned property was swapped)
    other = detached_xades(b"other", "podanie.pdf", pki.signer, tsa=pki.tsa)
    stamp.text = etree.fromstring(other).find(f".//{{{XA}}}EncapsulatedTimeStamp").text
    check(
        verify_xades(etree.tostring(root), detached_content=pdf, trust=pki.trust),
        "INDETERMINATE",
        "SIG_CONSTRAINTS_FAILURE",
        "message imprint does not match",
    )
    # and in a third-party file: xades-extended-t.xml with the time-stamp of xades-lta-valid.xml
    t = etree.fromstring((EXTERNAL / SX / "xades-extended-t.xml").read_bytes())
    lta = etree.fromstring((EXTERNAL / SX / "xades-lta-valid.xml").read_bytes())
    t.find(f".//{{{XA}}}EncapsulatedTimeStamp").text = lta.find(
        f".//{{{XA}}}EncapsulatedTimeStamp"
    ).text
    pinned = TrustStore.from_pem(first_certificate_pem(EXTERNAL / SX / "xades-extended-t.xml"))
    check(
        verify_xades(etree.tostring(t), trust=pinned, at="signing_time"),
        "INDETERMINATE",
        "SIG_CONSTRAINTS_FAILURE",
    )


# =============================================================================================
# 2. bad input
# =============================================================================================
_AUDIT: list[tuple[str, str]] | None = None


def _audit_hook(event: str, args: tuple[Any, ...]) -> None:
    if _AUDIT is not None and event in (
        "open",
        "socket.connect",
        "socket.getaddrinfo",
        "urllib.Request",
    ):
        _AUDIT.append((event, str(args[0]) if args else ""))


sys.addaudithook(_audit_hook)


@contextmanager
def no_io(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A canary file and a listening socket that the input refers to: neither may be read or
    contacted, and no Python-level open() of the canary or connect() may happen."""
    global _AUDIT
    canary = tmp_path / "sekret.txt"
    canary.write_text("TAJNE-DANE-KANARKA")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/evil.dtd"
    _AUDIT = []
    try:
        yield canary, url
        events = list(_AUDIT)
    finally:
        _AUDIT = None
    try:
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()
    assert not [e for e in events if e[0] != "open"], events
    assert not [e for e in events if e[1] == str(canary)], events


def _with_prolog(doc: bytes, prolog: str) -> bytes:
    body = doc.split(b"?>", 1)[1] if doc.startswith(b"<?xml") else doc
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + prolog.encode() + b"\n" + body.lstrip()


@pytest.fixture(scope="module")
def signed_letter(pki: Pki) -> bytes:
    return xades_sign(letter(), pki.signer)


def _attacks(doc: bytes, canary: Path, url: str) -> dict[str, bytes]:
    text_el = b"<Tresc>"
    return {
        "xxe-file": _with_prolog(
            doc, f'<!DOCTYPE Pismo [<!ENTITY xxe SYSTEM "file://{canary}">]>'
        ).replace(text_el, text_el + b"&xxe;"),
        "xxe-http": _with_prolog(doc, f'<!DOCTYPE Pismo [<!ENTITY xxe SYSTEM "{url}">]>').replace(
            text_el, text_el + b"&xxe;"
        ),
        "billion-laughs": _with_prolog(
            doc,
            '<!DOCTYPE Pismo [<!ENTITY a0 "ha">'
            + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 8))
            + "]>",
        ).replace(text_el, text_el + b"&a7;"),
        "external-dtd": _with_prolog(doc, f'<!DOCTYPE Pismo SYSTEM "{url}">'),
        "parameter-entity": _with_prolog(
            doc, f'<!DOCTYPE Pismo [<!ENTITY % p SYSTEM "{url}"> %p;]>'
        ),
        "doctype-after-long-comment": _with_prolog(
            doc, "<!--" + "x" * 5000 + f'-->\n<!DOCTYPE Pismo SYSTEM "file://{canary}">'
        ),
        "xinclude": doc.replace(
            text_el,
            text_el
            + b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" parse="text" '
            + f'href="file://{canary}"/>'.encode(),
        ),
        "invalid-utf8": doc.replace(b"Decyzja", b"Decyzja \xff\xfe", 1),
    }


ATTACK_NAMES = [
    "xxe-file",
    "xxe-http",
    "billion-laughs",
    "external-dtd",
    "parameter-entity",
    "doctype-after-long-comment",
    "xinclude",
    "invalid-utf8",
]


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_hostile_xml_is_refused_without_io(
    attack: str, pki: Pki, signed_letter: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with no_io(tmp_path) as (canary, url):
        data = _attacks(signed_letter, canary, url)[attack]
        assert data != signed_letter
        report = verify_xades(data, trust=pki.trust)
        # the CLI too: the same file through `ezd verify`
        path = tmp_path / "attack.xml"
        path.write_bytes(data)
        pem = tmp_path / "root.pem"
        pem.write_bytes(pki.root.pem)
        code, result = run_cli([str(path), "--trust", str(pem)], capsys)
    check(report, "TOTAL_FAILED", "FORMAT_FAILURE")
    expected = (
        "not well-formed"
        if attack == "invalid-utf8"
        else ("XInclude" if attack == "xinclude" else "DTD")
    )
    assert any(expected in e for e in report.errors), report.errors
    assert "TAJNE" not in json.dumps(report.to_json())
    assert (code, result["indication"]) == (1, "TOTAL_FAILED")


def test_the_attack_variants_are_otherwise_intact(pki: Pki, signed_letter: bytes) -> None:
    """The unmodified document passes, so each refusal above is due to its attack alone."""
    check(verify_xades(signed_letter, trust=pki.trust), "TOTAL_PASSED")


def test_oversize_and_unsigned_documents(pki: Pki, signed_letter: bytes) -> None:
    check(
        verify_xades(signed_letter, trust=pki.trust, max_bytes=1000),
        "TOTAL_FAILED",
        "FORMAT_FAILURE",
        "too large",
    )
    check(
        verify_xades(b"<Pismo><Tresc>bez podpisu</Tresc></Pismo>", trust=pki.trust),
        "TOTAL_FAILED",
        "FORMAT_FAILURE",
        "no ds:Signature",
    )
    check(verify_xades(b"", trust=pki.trust), "TOTAL_FAILED", "FORMAT_FAILURE")


def test_signature_wrapping_is_detected(pki: Pki, signed_letter: bytes) -> None:
    """XSW: the signed Pismo is moved into a ds:Object of the signature and a forged Pismo takes
    its place. signxml alone accepts it; the reference no longer covers what the app reads."""
    doc = etree.fromstring(signed_letter)
    sig = doc.find(f"{{{DS}}}Signature")
    original = copy.deepcopy(doc)
    original.remove(original.find(f"{{{DS}}}Signature"))
    evil = etree.Element("Pismo", nsmap={"ds": DS, "xades": XA}, Id="pismo-evil")
    etree.SubElement(evil, "Odbiorca").text = "Wydział Oświaty"
    etree.SubElement(evil, "Tresc").text = "Decyzja: przyznano dofinansowanie 900 000 zł."
    moved = copy.deepcopy(sig)
    etree.SubElement(moved, f"{{{DS}}}Object").append(original)
    evil.append(moved)
    data = etree.tostring(evil)
    XAdESVerifier().verify(  # signxml: references, digests and signature value all fine
        data,
        x509_cert=pki.signer.cert,
        expect_config=XAdESSignatureConfiguration(expect_references=True),
    )
    report = verify_xades(data, trust=pki.trust)
    check(report, "TOTAL_FAILED", "FORMAT_FAILURE", "signature wrapping")
    assert report.message_pl.startswith("Podpis nieprawidłowy: ")


def test_signature_over_the_wrong_element(pki: Pki) -> None:
    """Only <Tresc Id="t"> is signed, but the application reads the whole <Pismo>: the unsigned
    <Odbiorca> could be anything."""
    root = letter(with_id=False)
    root.find("Tresc").set("Id", "t")
    data = xades_sign(root, pki.signer, reference_uri="#t")
    check(verify_xades(data, trust=pki.trust), "TOTAL_FAILED", "FORMAT_FAILURE", "<Odbiorca>")


def test_enveloping_with_an_extra_unsigned_object(pki: Pki) -> None:
    data = xades_sign(
        letter(with_id=False), pki.signer, method=SignatureConstructionMethod.enveloping
    )
    root = etree.fromstring(data)
    forged = etree.SubElement(root, f"{{{DS}}}Object", Id="object-2")
    forged.text = "Decyzja: odmowa"
    check(
        verify_xades(etree.tostring(root), trust=pki.trust),
        "TOTAL_FAILED",
        "FORMAT_FAILURE",
        "object-2",
    )


def test_duplicate_ids_are_refused(pki: Pki, signed_letter: bytes) -> None:
    doc = etree.fromstring(signed_letter)
    twin = etree.SubElement(doc, "Zalacznik", Id="pismo-1")
    twin.text = "x"
    check(
        verify_xades(etree.tostring(doc), trust=pki.trust),
        "TOTAL_FAILED",
        "FORMAT_FAILURE",
        "Ambiguous",
    )


def test_tampering_with_content_or_signature_value(pki: Pki, signed_letter: bytes) -> None:
    check(
        verify_xades(signed_letter.replace(b"10 000", b"90 000"), trust=pki.trust),
        "TOTAL_FAILED",
        "HASH_FAILURE",
    )
    doc = etree.fromstring(signed_letter)
    value = doc.find(f".//{{{DS}}}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 0xFF
    value.text = base64.b64encode(bytes(raw)).decode()
    check(verify_xades(etree.tostring(doc), trust=pki.trust), "TOTAL_FAILED", "SIG_CRYPTO_FAILURE")


def test_every_signature_is_verified(pki: Pki) -> None:
    """Two parallel enveloped signatures (each leaves the other out with the XPath filter, which
    signxml ignores, so on its own it cannot verify even the first) and it looks only at the
    first ds:Signature: here every one is verified and a broken second one fails."""
    doc = letter()
    manual_xades(pki.signer, doc=doc, sig_id="S1")
    data = manual_xades(pki.signer2, doc=doc, sig_id="S2")
    report = verify_xades(data, trust=TrustStore.from_pem(pki.root.pem, pki.inter.pem))
    check(report, "TOTAL_PASSED")
    assert [s.signed_by for s in report.signatures] == [
        "Jan Kowalski, Szkoła Podstawowa nr 58",
        "Anna Nowak, Wydział Oświaty",
    ]
    assert all(s.signed_data == ["document <Pismo>"] for s in report.signatures)
    broken = etree.fromstring(data)
    value = broken.find(f".//{{{DS}}}Signature[@Id='S2']/{{{DS}}}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[5] ^= 0xFF
    value.text = base64.b64encode(bytes(raw)).decode()
    data = etree.tostring(broken)
    report = verify_xades(data, trust=TrustStore.from_pem(pki.root.pem, pki.inter.pem))
    check(report, "TOTAL_FAILED", "SIG_CRYPTO_FAILURE")
    assert [s.indication for s in report.signatures] == ["TOTAL_PASSED", "TOTAL_FAILED"]
    assert report.errors[0].startswith("[S2] SIG_CRYPTO_FAILURE")
    # an unsigned ds:Signature slipped into the document is not ignored either
    junk = etree.fromstring(data)
    for sig in list(junk.iter(f"{{{DS}}}Signature"))[1:]:
        junk.remove(sig)
    etree.SubElement(junk, f"{{{DS}}}Signature", Id="S3")
    check(verify_xades(etree.tostring(junk), trust=pki.trust), "TOTAL_FAILED", "FORMAT_FAILURE")


def _replace_certificate(data: bytes, cert: x509.Certificate | None) -> bytes:
    doc = etree.fromstring(data)
    el = doc.find(f".//{{{DS}}}X509Certificate")
    if cert is None:
        x509_data = el.getparent()
        x509_data.getparent().remove(x509_data)
        for kv in doc.iter(f"{{{DS}}}KeyValue"):
            kv.getparent().remove(kv)
    else:
        el.text = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    return etree.tostring(doc)


def test_swapped_missing_and_forged_certificates(pki: Pki, signed_letter: bytes) -> None:
    # swapped: another trusted certificate (other key) in KeyInfo
    swapped = _replace_certificate(signed_letter, pki.tsa.cert)
    check(
        verify_xades(swapped, trust=pki.trust),
        "TOTAL_FAILED",
        "SIG_CRYPTO_FAILURE",
        "certificate swapped",
    )
    # missing: no certificate at all
    check(
        verify_xades(_replace_certificate(signed_letter, None), trust=pki.trust),
        "INDETERMINATE",
        "NO_SIGNING_CERTIFICATE_FOUND",
    )
    # forged: a certificate naming the trusted root as issuer, signed by the attacker's key
    attacker = Issued(pki.other_root.key, pki.root.cert)  # the root's name, the wrong key
    forged = make_cert(
        _name("Jan Kowalski", "Szkoła Podstawowa nr 58"), attacker, key=pki.signer.key
    )
    assert forged.cert.issuer == pki.root.cert.subject
    check(
        verify_xades(xades_sign(letter(), forged), trust=pki.trust),
        "INDETERMINATE",
        "NO_CERTIFICATE_CHAIN_FOUND",
    )


def test_untrusted_ca_and_no_trust_store(pki: Pki, signed_letter: bytes) -> None:
    data = xades_sign(letter(), pki.stranger, [pki.other_root.cert])
    check(
        verify_xades(data, trust=pki.trust),
        "INDETERMINATE",
        "NO_CERTIFICATE_CHAIN_FOUND",
        "CN=Other Root CA",
    )
    check(verify_xades(data, trust=TrustStore.from_pem(pki.other_root.pem)), "TOTAL_PASSED")
    check(
        verify_xades(signed_letter, trust=None),
        "INDETERMINATE",
        "NO_CERTIFICATE_CHAIN_FOUND",
        "no trust anchors",
    )
    check(
        verify_xades(signed_letter, trust=TrustStore()),
        "INDETERMINATE",
        "NO_CERTIFICATE_CHAIN_FOUND",
    )


def test_expired_and_not_yet_valid_at_signing_time(pki: Pki) -> None:
    expired = make_cert(
        _name("Stary Certyfikat"),
        pki.root,
        key=pki.signer.key,
        not_before=NOW - 400 * DAY,
        not_after=NOW - 30 * DAY,
    )
    data = xades_sign(letter(), expired)  # signxml signs with an expired certificate
    for at in ("signing_time", None):
        check(
            verify_xades(data, trust=pki.trust, at=at),
            "TOTAL_FAILED",
            "EXPIRED",
            "after the signing certificate expired",
        )  # type: ignore[arg-type]
    # validated at a time inside its validity, the claim of a later signing time still fails
    check(verify_xades(data, trust=pki.trust, at=NOW - 100 * DAY), "TOTAL_FAILED", "EXPIRED")
    future = make_cert(
        _name("Przyszły Certyfikat"),
        pki.root,
        key=pki.signer.key,
        not_before=NOW + 30 * DAY,
        not_after=NOW + 400 * DAY,
    )
    check(
        verify_xades(xades_sign(letter(), future), trust=pki.trust, at="signing_time"),
        "TOTAL_FAILED",
        "NOT_YET_VALID",
        "before the signing certificate became valid",
    )
    # a valid signature checked at a time after its certificate expired: no proof of time
    check(
        verify_xades(xades_sign(letter(), pki.signer), trust=pki.trust, at=NOW + 400 * DAY),
        "INDETERMINATE",
        "OUT_OF_BOUNDS_NO_POE",
    )


def test_sha1_is_refused_unless_allowed() -> None:
    path = EXTERNAL / SX / "document.signed.bes.ptcc.xml"
    pinned = TrustStore.from_pem(first_certificate_pem(path))
    report = verify_xades(path.read_bytes(), trust=pinned, at="signing_time")
    check(report, "TOTAL_FAILED", "CRYPTO_CONSTRAINTS_FAILURE", "RSA_SHA1")
    check(
        verify_xades(path.read_bytes(), trust=pinned, at="signing_time", allow_sha1=True),
        "TOTAL_PASSED",
    )


def test_cli_usage(
    pki: Pki, signed_letter: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc, pem = tmp_path / "pismo.xml", tmp_path / "root.pem"
    doc.write_bytes(signed_letter)
    pem.write_bytes(pki.root.pem)
    code, result = run_cli([str(doc), "--trust", str(pem)], capsys)
    assert code == 0 and result["indication"] == "TOTAL_PASSED" and result["signing_time"]
    dt.datetime.fromisoformat(result["signing_time"])
    code, result = run_cli([str(doc)], capsys)
    assert (code, result["sub_indication"]) == (2, "NO_CERTIFICATE_CHAIN_FOUND")
    code, result = run_cli([str(tmp_path / "missing.xml"), "--trust", str(pem)], capsys)
    assert code == 2 and "cannot read" in result["errors"][0]
    assert verify_command([str(doc), "--at", "2020-01-01", "--at-signing-time"]) == 2  # exclusive
    capsys.readouterr()
    # a trusted list passed as --trust is accepted too
    code, result = run_cli(
        [
            str(EXTERNAL / SX / "dss-signed.xml"),
            "--trust",
            str(EXTERNAL / ED / "PL-trusted-list-NBP-seq110.xml"),
            "--at-signing-time",
        ],
        capsys,
    )
    assert (code, result["sub_indication"]) == (2, "NO_CERTIFICATE_CHAIN_FOUND")


# =============================================================================================
# 4. a 20 MB attachment within a memory budget
# =============================================================================================
_CHILD = textwrap.dedent(
    """
    import gc, json, resource, sys, time
    from workflow.signing.trust import TrustStore
    from workflow.signing.verify import verify_xades

    def peak_kb():
        # VmHWM is this process's own peak RSS; getrusage's ru_maxrss would carry the parent's
        # peak across fork+exec on Linux
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    data = open(sys.argv[1], "rb").read()
    trust = TrustStore.from_pem(open(sys.argv[2], "rb").read())
    verify_xades(b"<a/>", trust=trust)  # import-time and first-call allocations
    gc.collect()
    before = peak_kb()
    t = time.perf_counter()
    report = verify_xades(data, trust=trust)
    seconds = time.perf_counter() - t
    print(json.dumps({"report": report.to_json(), "before_kb": before, "peak_kb": peak_kb(),
                      "seconds": seconds, "size": len(data)}))
    """
)


def test_20_mb_attachment_within_memory_budget(pki: Pki, tmp_path: Path) -> None:
    root = letter()
    attachment = etree.SubElement(root, "Zalacznik", nazwa="skan.pdf", kodowanie="base64")
    attachment.text = base64.b64encode(os.urandom(20 * 1024 * 1024)).decode()
    doc, pem = tmp_path / "duzy.xml", tmp_path / "root.pem"
    doc.write_bytes(xades_sign(root, pki.signer))
    pem.write_bytes(pki.root.pem)
    del root, attachment
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(doc), str(pem)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["report"]["indication"] == "TOTAL_PASSED", result["report"]
    growth_mb = (result["peak_kb"] - result["before_kb"]) / 1024
    print(
        f"\n20 MB attachment: {result['size'] / 1e6:.1f} MB XML, peak RSS +{growth_mb:.0f} MB "
        f"(budget {MEMORY_BUDGET_MB} MB), {result['seconds']:.2f} s"
    )
    assert growth_mb < MEMORY_BUDGET_MB
    # detached: the 20 MB file is only hashed
    big = os.urandom(20 * 1024 * 1024)
    xades = detached_xades(big, "skan.pdf", pki.signer)
    check(verify_xades(xades, detached_content=big, trust=pki.trust), "TOTAL_PASSED")
