"""Signing keys of a unit: a qualified certificate of a person or an electronic seal.

An admin imports a PKCS#12 (.p12/.pfx) or PEM file (private key + certificate + chain). The import
refuses, with a clear error, a wrong password, a file without a key or certificate, a key that
does not match the certificate, an unsupported or weak key, and a certificate that is expired,
not yet valid or not meant for signing.

At rest the private key is stored only encrypted (`encrypt_private_key`): AES-256-GCM with a
random 96-bit nonce under a master key from the settings, the associated data binding the
SHA-256 fingerprint of the certificate, so a blob cannot be paired with another certificate. The
certificates are public and stored separately as PEM (`certificates_pem`).

A `SigningIdentity` holds the loaded key object: load it once and sign many times. Its repr and
str name the certificate only; the key is never logged or returned.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs12
from signxml.algorithms import DigestAlgorithm, SignatureMethod

from workflow.errors import ValidationFailed

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

MIN_RSA_BITS = 2048
_EC_ALGORITHMS: dict[str, SignatureMethod] = {
    "secp256r1": SignatureMethod.ECDSA_SHA256,
    "secp384r1": SignatureMethod.ECDSA_SHA384,
    "secp521r1": SignatureMethod.ECDSA_SHA512,
}
_BLOB_MAGIC = b"EZDK1"
_NONCE_BYTES = 12
_AAD_PREFIX = b"ezd-signing-key-v1:"
_PEM_KEY = re.compile(
    rb"-----BEGIN ((?:ENCRYPTED |RSA |EC )?PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL
)


class SigningKeyRefused(ValidationFailed):
    """A signing key or certificate cannot be used; `code` says why."""

    code = "signing_key_refused"
    message_pl = "Nie można użyć tego klucza do podpisu."
    message_en = "This key cannot be used for signing."


def _refuse(code: str, pl: str, en: str) -> SigningKeyRefused:
    return SigningKeyRefused(pl, en, code=code)


@dataclass(frozen=True, repr=False)
class SigningIdentity:
    """A loaded private key with its certificate and chain (issuing CAs, no root)."""

    private_key: SigningKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    signature_algorithm: SignatureMethod
    digest_algorithm: DigestAlgorithm = DigestAlgorithm.SHA256

    @property
    def certificates(self) -> list[x509.Certificate]:
        """The signing certificate followed by its chain, as signxml takes them."""
        return [self.certificate, *self.chain]

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def fingerprint_sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def __repr__(self) -> str:
        return (
            f"SigningIdentity(subject={self.subject!r}, serial={self.certificate.serial_number:x}, "
            f"algorithm={self.signature_algorithm.name}, "
            f"not_after={self.certificate.not_valid_after_utc.isoformat()}, private_key=<hidden>)"
        )

    __str__ = __repr__


def signature_algorithm_for(key: object) -> SignatureMethod:
    """The XML-DSig signature method matching `key` (RSA → RSA-SHA256, P-256 → ECDSA-SHA256, …)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise _refuse(
                "signing_key_weak",
                f"Klucz RSA ma {key.key_size} bitów; wymagane co najmniej {MIN_RSA_BITS}.",
                f"The RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are required.",
            )
        return SignatureMethod.RSA_SHA256
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(key.curve.name)
        if alg is None:
            raise _refuse(
                "signing_key_unsupported",
                f"Krzywa eliptyczna {key.curve.name} nie jest obsługiwana (P-256, P-384, P-521).",
                f"The elliptic curve {key.curve.name} is not supported (P-256, P-384, P-521).",
            )
        return alg
    raise _refuse(
        "signing_key_unsupported",
        "Obsługiwane są tylko klucze RSA i ECDSA.",
        "Only RSA and ECDSA keys are supported.",
    )


def _spki(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_certificate_usable(cert: x509.Certificate, at: dt.datetime | None = None) -> None:
    """Refuse a certificate that is outside its validity at `at` (now) or not for signing."""
    at = at or dt.datetime.now(dt.UTC)
    if at > cert.not_valid_after_utc:
        subject = cert.subject.rfc4514_string()
        raise _refuse(
            "signing_certificate_expired",
            f"Certyfikat {subject} wygasł {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC.",
            f"The certificate {subject} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC.",
        )
    if at < cert.not_valid_before_utc:
        subject = cert.subject.rfc4514_string()
        raise _refuse(
            "signing_certificate_not_yet_valid",
            f"Certyfikat {subject} jest ważny dopiero od "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC.",
            f"The certificate {subject} is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC.",
        )
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    # Qualified certificates often allow nonRepudiation (contentCommitment) only: accept either.
    if not (ku.digital_signature or ku.content_commitment):
        subject = cert.subject.rfc4514_string()
        raise _refuse(
            "signing_certificate_wrong_usage",
            f"Certyfikat {subject} nie służy do składania podpisu (KeyUsage).",
            f"The certificate {subject} is not meant for signing (KeyUsage).",
        )


def _build_chain(
    leaf: x509.Certificate, others: Sequence[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """Issuing CAs of `leaf` found among `others`, in order, without a self-signed root."""
    chain: list[x509.Certificate] = []
    current = leaf
    pool = [c for c in others if c != leaf]
    while True:
        issuer = next(
            (
                c
                for c in pool
                if c.subject == current.issuer and c not in chain and _issued_by(current, c)
            ),
            None,
        )
        if issuer is None or issuer.subject == issuer.issuer:
            return tuple(chain)
        chain.append(issuer)
        current = issuer


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _make_identity(
    key: object, certs: Sequence[x509.Certificate], at: dt.datetime | None
) -> SigningIdentity:
    if key is None:
        raise _refuse(
            "signing_key_missing",
            "Plik nie zawiera klucza prywatnego.",
            "The file contains no private key.",
        )
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise _refuse(
            "signing_key_unsupported",
            "Obsługiwane są tylko klucze RSA i ECDSA.",
            "Only RSA and ECDSA keys are supported.",
        )
    if not certs:
        raise _refuse(
            "signing_certificate_missing",
            "Plik nie zawiera certyfikatu.",
            "The file contains no certificate.",
        )
    algorithm = signature_algorithm_for(key)
    spki = _spki(key.public_key())
    leaf = next((c for c in certs if _spki(c.public_key()) == spki), None)
    if leaf is None:
        raise _refuse(
            "signing_key_mismatch",
            "Klucz prywatny nie pasuje do żadnego certyfikatu w pliku.",
            "The private key does not match any certificate in the file.",
        )
    check_certificate_usable(leaf, at)
    return SigningIdentity(
        private_key=key,
        certificate=leaf,
        chain=_build_chain(leaf, certs),
        signature_algorithm=algorithm,
    )


def _load_pkcs12(data: bytes, password: bytes | None) -> tuple[object, list[x509.Certificate]]:
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password or None)
    except (ValueError, TypeError) as e:
        raise _refuse(
            "signing_key_bad_password",
            "Nieprawidłowe hasło lub uszkodzony plik PKCS#12.",
            "Wrong password or damaged PKCS#12 file.",
        ) from e
    except UnsupportedAlgorithm as e:
        raise _refuse(
            "signing_key_unsupported",
            "Plik PKCS#12 używa nieobsługiwanego szyfrowania.",
            "The PKCS#12 file uses unsupported encryption.",
        ) from e
    return key, ([cert] if cert is not None else []) + list(extra)


def _load_pem(data: bytes, password: bytes | None) -> tuple[object, list[x509.Certificate]]:
    blocks = [m.group(0) for m in _PEM_KEY.finditer(data)]
    if len(blocks) > 1:
        raise _refuse(
            "signing_key_ambiguous",
            "Plik zawiera więcej niż jeden klucz prywatny.",
            "The file contains more than one private key.",
        )
    key: object = None
    if blocks:
        try:
            key = serialization.load_pem_private_key(blocks[0], password)
        except TypeError as e:
            if password is None:
                raise _refuse(
                    "signing_key_password_required",
                    "Klucz prywatny jest zaszyfrowany: podaj hasło.",
                    "The private key is encrypted: give the password.",
                ) from e
            # a password typed for a key that is not encrypted: the key is usable as it is
            key = serialization.load_pem_private_key(blocks[0], None)
        except ValueError as e:
            raise _refuse(
                "signing_key_bad_password",
                "Nieprawidłowe hasło lub uszkodzony klucz prywatny.",
                "Wrong password or damaged private key.",
            ) from e
        except UnsupportedAlgorithm as e:
            raise _refuse(
                "signing_key_unsupported",
                "Nieobsługiwany rodzaj klucza prywatnego.",
                "Unsupported private key type.",
            ) from e
    try:
        certs = x509.load_pem_x509_certificates(data) if b"CERTIFICATE-----" in data else []
    except ValueError as e:
        raise _refuse(
            "signing_certificate_malformed",
            "Uszkodzony certyfikat w pliku PEM.",
            "A certificate in the PEM file is damaged.",
        ) from e
    return key, certs


def load_identity(
    data: bytes, password: bytes | None, *, at: dt.datetime | None = None
) -> SigningIdentity:
    """Load a PKCS#12 (.p12/.pfx) or PEM (key + certificate(s)) file for signing.

    Raises SigningKeyRefused with a specific code: signing_key_bad_password,
    signing_key_password_required, signing_key_missing, signing_certificate_missing,
    signing_key_mismatch, signing_certificate_expired, signing_certificate_not_yet_valid,
    signing_certificate_wrong_usage, signing_key_weak, signing_key_unsupported,
    signing_key_ambiguous, signing_key_malformed, signing_certificate_malformed.
    """
    if b"-----BEGIN " in data[: 64 * 1024]:
        key, certs = _load_pem(data, password or None)
    elif data[:1] == b"\x30":
        key, certs = _load_pkcs12(data, password)
    else:
        raise _refuse(
            "signing_key_malformed",
            "Plik nie jest ani PKCS#12 (.p12/.pfx), ani PEM.",
            "The file is neither PKCS#12 (.p12/.pfx) nor PEM.",
        )
    return _make_identity(key, certs, at)


def certificates_pem(identity: SigningIdentity) -> bytes:
    """The signing certificate followed by its chain, as PEM (stored next to the key blob)."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in identity.certificates)


def _aad(cert: x509.Certificate) -> bytes:
    return _AAD_PREFIX + cert.fingerprint(hashes.SHA256())


def _aesgcm(master_key: bytes) -> AESGCM:
    if len(master_key) != 32:
        raise ValueError("the signing-key master key must be 32 bytes (AES-256)")
    return AESGCM(master_key)


def encrypt_private_key(identity: SigningIdentity, master_key: bytes) -> bytes:
    """The private key (PKCS#8 DER) sealed with AES-256-GCM; AAD binds the certificate.

    Layout: b"EZDK1" | 12-byte nonce | ciphertext+tag.
    """
    plaintext = identity.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _aesgcm(master_key).encrypt(nonce, plaintext, _aad(identity.certificate))
    return _BLOB_MAGIC + nonce + sealed


def decrypt_identity(
    blob: bytes, cert_pem: bytes, master_key: bytes, *, at: dt.datetime | None = None
) -> SigningIdentity:
    """Open a blob from `encrypt_private_key`; `cert_pem` starts with the signing certificate
    (as `certificates_pem` writes it). The certificate is checked again for validity at `at`."""
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as e:
        raise _refuse(
            "signing_certificate_malformed",
            "Uszkodzony zapisany certyfikat.",
            "The stored certificate is damaged.",
        ) from e
    if not blob.startswith(_BLOB_MAGIC) or len(blob) < len(_BLOB_MAGIC) + _NONCE_BYTES + 16:
        raise _refuse(
            "signing_key_malformed",
            "Zapisany klucz ma nieznany format.",
            "The stored key has an unknown format.",
        )
    nonce = blob[len(_BLOB_MAGIC) : len(_BLOB_MAGIC) + _NONCE_BYTES]
    sealed = blob[len(_BLOB_MAGIC) + _NONCE_BYTES :]
    try:
        plaintext = _aesgcm(master_key).decrypt(nonce, sealed, _aad(certs[0]))
    except InvalidTag as e:
        raise _refuse(
            "signing_key_decrypt_failed",
            "Nie można odszyfrować klucza: inny klucz główny, inny certyfikat lub uszkodzone dane.",
            "Cannot decrypt the key: another master key, another certificate or damaged data.",
        ) from e
    key = serialization.load_der_private_key(plaintext, password=None)
    return _make_identity(key, certs, at)
