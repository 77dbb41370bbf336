"""A throwaway test PKI built with `cryptography`: root CA, intermediate CA and end-entity
certificates for signing tests (qualified-style signer, electronic seal, expired, not yet valid,
time-stamping authority).

Every certificate is available as objects (`Issued.key`, `.cert`, `.chain`) and as files in the
PKI's directory: `<name>.key.pem` (unencrypted PKCS#8), `<name>.cert.pem`, `<name>.pem` (key +
certificate + chain, what an admin would upload as PEM) and `<name>.p12` (PKCS#12 with
`P12_PASSWORD`). `root.cert.pem` is the trust anchor, `intermediate.cert.pem` the untrusted
intermediate.

Use from any test module:

    from tests.pki import TestPki, pki_fixture  # noqa: F401  (registers the `pki` fixture)

    def test_x(pki: TestPki) -> None: ...

or call `make_pki(directory)` for a private one. Key generation takes a fraction of a second.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

P12_PASSWORD = b"test-p12-haslo"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KeyType = Literal["rsa", "ec", "ec384"]

_ONE_DAY = dt.timedelta(days=1)


def new_key(kind: KeyType = "rsa") -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return ec.generate_private_key(ec.SECP384R1())


def _name(cn: str, org: str = "Miasto Testowe - Wydzial Oswiaty") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass
class Issued:
    """A key and its certificate; `chain` holds the issuing CAs up to, not including, the root."""

    name: str
    key: PrivateKey
    cert: x509.Certificate
    chain: list[x509.Certificate] = field(default_factory=list)
    directory: Path | None = None

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def pem_bundle(self, password: bytes | None = None) -> bytes:
        """Key (encrypted with `password` if given) + certificate + chain, as one PEM file."""
        if password is None:
            key_pem = self.key_pem
        else:
            key_pem = self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(password),
            )
        return key_pem + self.cert_pem + self.chain_pem

    def p12(self, password: bytes | None = P12_PASSWORD) -> bytes:
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            self.name.encode(), self.key, self.cert, self.chain or None, enc
        )

    def path(self, suffix: str) -> Path:
        assert self.directory is not None, "this certificate was not written to a directory"
        return self.directory / f"{self.name}{suffix}"

    @property
    def cert_path(self) -> Path:
        return self.path(".cert.pem")

    @property
    def key_path(self) -> Path:
        return self.path(".key.pem")

    @property
    def bundle_path(self) -> Path:
        return self.path(".pem")

    @property
    def p12_path(self) -> Path:
        return self.path(".p12")

    def write(self, directory: Path) -> Issued:
        self.directory = directory
        self.key_path.write_bytes(self.key_pem)
        self.cert_path.write_bytes(self.cert_pem)
        self.bundle_path.write_bytes(self.pem_bundle())
        self.p12_path.write_bytes(self.p12())
        return self


def _ski(key: PrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def make_root(cn: str = "EZD Test Root CA", kind: KeyType = "rsa") -> Issued:
    key = new_key(kind)
    now = dt.datetime.now(dt.UTC)
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 30 * _ONE_DAY)
        .not_valid_after(now + 3650 * _ONE_DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(_ski(key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued("root", key, cert)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _signing_key_usage(*, digital_signature: bool, non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue(
    issuer: Issued,
    name: str,
    cn: str,
    *,
    kind: KeyType = "rsa",
    ca: bool = False,
    key_usage: x509.KeyUsage | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    eku_critical: bool = True,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    org: str = "Miasto Testowe - Wydzial Oswiaty",
) -> Issued:
    """Issue a certificate signed by `issuer`; the result's chain is issuer + issuer's chain
    (without the self-signed root)."""
    key = new_key(kind)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _ONE_DAY)
        .not_valid_after(not_after or now + 365 * _ONE_DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            key_usage
            or (
                _ca_key_usage()
                if ca
                else _signing_key_usage(digital_signature=True, non_repudiation=True)
            ),
            critical=True,
        )
        .add_extension(_ski(key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
    cert = builder.sign(issuer.key, hashes.SHA256())
    self_signed = issuer.cert.issuer == issuer.cert.subject
    chain = ([] if self_signed else [issuer.cert]) + issuer.chain
    return Issued(name, key, cert, chain)


@dataclass
class TestPki:
    """root → intermediate → end-entity certificates, written to `directory`."""

    __test__ = False  # not a test class, despite the name

    directory: Path
    root: Issued
    intermediate: Issued
    signer: Issued  # RSA, qualified style: KeyUsage nonRepudiation only (critical)
    signer_ec: Issued  # EC P-256, qualified style
    seal: Issued  # RSA electronic seal: digitalSignature + nonRepudiation
    seal_ec: Issued  # EC P-256 seal
    expired: Issued
    not_yet_valid: Issued
    tsa: Issued  # EKU timeStamping (critical), digitalSignature + nonRepudiation
    other_root: Issued  # an unrelated root (not trusted by anyone)
    stranger: Issued  # issued by other_root

    @property
    def root_pem_path(self) -> Path:
        return self.root.cert_path

    @property
    def intermediate_pem_path(self) -> Path:
        return self.intermediate.cert_path

    def all(self) -> list[Issued]:
        return [
            self.root,
            self.intermediate,
            self.signer,
            self.signer_ec,
            self.seal,
            self.seal_ec,
            self.expired,
            self.not_yet_valid,
            self.tsa,
            self.other_root,
            self.stranger,
        ]


def make_pki(directory: Path) -> TestPki:
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    root = make_root()
    inter = issue(root, "intermediate", "EZD Test Qualified CA", ca=True)
    qualified = _signing_key_usage(digital_signature=False, non_repudiation=True)
    other_root = make_root("Unrelated Root CA")
    other_root.name = "other_root"
    pki = TestPki(
        directory=directory,
        root=root,
        intermediate=inter,
        signer=issue(inter, "signer", "Jan Kowalski", key_usage=qualified),
        signer_ec=issue(inter, "signer_ec", "Anna Nowak", kind="ec", key_usage=qualified),
        seal=issue(inter, "seal", "Szkola Podstawowa nr 58 - pieczec"),
        seal_ec=issue(inter, "seal_ec", "Wydzial Oswiaty - pieczec", kind="ec"),
        expired=issue(
            inter,
            "expired",
            "Wygasly Certyfikat",
            not_before=now - 400 * _ONE_DAY,
            not_after=now - 10 * _ONE_DAY,
        ),
        not_yet_valid=issue(
            inter,
            "not_yet_valid",
            "Przyszly Certyfikat",
            not_before=now + 10 * _ONE_DAY,
            not_after=now + 400 * _ONE_DAY,
        ),
        tsa=issue(
            inter,
            "tsa",
            "EZD Test TSA",
            eku=[ExtendedKeyUsageOID.TIME_STAMPING],
        ),
        other_root=other_root,
        stranger=issue(other_root, "stranger", "Obcy Podpisujacy"),
    )
    for issued in pki.all():
        issued.write(directory)
    return pki


@pytest.fixture(scope="session", name="pki")
def pki_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestPki]:
    yield make_pki(tmp_path_factory.mktemp("pki"))
