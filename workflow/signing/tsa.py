"""RFC 3161 time-stamping: a client for a time-stamping authority (TSA) and tools to read and
verify time-stamp tokens (the CMS SignedData with a TSTInfo that XAdES-T embeds).

`cryptography` does not parse CMS or TSTInfo, so the ASN.1 is handled with asn1crypto and the
signature and certificate checks with `cryptography`.

- `build_request` / `request_timestamp`: ask a TSA over HTTP(S) for a token on a digest; the reply
  is checked (status granted, same nonce, same message imprint) before the token is returned.
- `parse_token`: what a token says, without checking it.
- `verify_token`: the full check — imprint, the CMS signature over the signed attributes
  (content type, messageDigest of the TSTInfo, ESS signing certificate), the TSA certificate
  chain to one of the given roots at the token's time, and extendedKeyUsage timeStamping.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from workflow.errors import DomainError, ValidationFailed

#: Hash names accepted for message imprints and what `hashlib` / `cryptography` call them.
_HASHES: dict[str, tuple[int, type[hashes.HashAlgorithm]]] = {
    "sha256": (32, hashes.SHA256),
    "sha384": (48, hashes.SHA384),
    "sha512": (64, hashes.SHA512),
}
#: Only for reading older tokens' internals (ESS signing certificate v1 is SHA-1 by definition).
_LEGACY_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
}

MAX_REPLY_BYTES = 1 << 20
#: No proxies from the environment (settings are the only configuration source, DESIGN.md).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TimestampError(DomainError):
    """The time-stamping authority could not be reached or refused the request."""

    code = "timestamp_unavailable"
    status = 502
    message_pl = "Usługa znacznika czasu jest niedostępna lub odrzuciła żądanie."
    message_en = "The time-stamping authority is unavailable or refused the request."


class TimestampInvalid(ValidationFailed):
    """A time-stamp token is malformed, does not match the data or is not trusted."""

    code = "timestamp_invalid"
    message_pl = "Znacznik czasu jest nieprawidłowy."
    message_en = "The time-stamp token is invalid."


def _invalid(pl: str, en: str) -> TimestampInvalid:
    return TimestampInvalid(f"Znacznik czasu jest nieprawidłowy: {pl}", f"Invalid time-stamp: {en}")


@dataclass(frozen=True)
class TimestampInfo:
    """What a time-stamp token states (`parse_token`) or proves (`verify_token`)."""

    gen_time: dt.datetime
    hash_name: str
    message_imprint: bytes
    serial: int
    tsa_certificates: list[x509.Certificate] = field(default_factory=list)
    policy: str = ""
    nonce: int | None = None
    #: the TSA certificate that signed the token; set by `verify_token` only
    signer_certificate: x509.Certificate | None = None


def hash_data(data: bytes, hash_name: str = "sha256") -> bytes:
    if hash_name not in _HASHES:
        raise ValueError(f"unsupported hash for time-stamping: {hash_name}")
    return hashlib.new(hash_name, data).digest()


def build_request(digest: bytes, hash_name: str = "sha256", nonce: int | None = None) -> bytes:
    """DER TimeStampReq for `digest` (certReq is set, so the TSA includes its certificate)."""
    if hash_name not in _HASHES:
        raise ValueError(f"unsupported hash for time-stamping: {hash_name}")
    if len(digest) != _HASHES[hash_name][0]:
        raise ValueError(
            f"a {hash_name} digest has {_HASHES[hash_name][0]} bytes, not {len(digest)}"
        )
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": hash_name},
            "hashed_message": digest,
        },
        "cert_req": True,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    dumped: bytes = tsp.TimeStampReq(fields).dump()
    return dumped


def request_timestamp(
    url: str,
    digest: bytes,
    *,
    timeout: float = 10,
    hash_name: str = "sha256",
    trust_roots: Sequence[x509.Certificate] | None = None,
) -> bytes:
    """POST a time-stamp query to `url` and return the DER TimeStampToken (a CMS ContentInfo).

    The reply must be granted and carry our nonce and message imprint. With `trust_roots` the
    token is also fully verified (`verify_token`) before it is returned.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise TimestampError(
            f"Adres usługi znacznika czasu musi zaczynać się od http(s)://: {url}",
            f"The time-stamping authority URL must be http(s)://: {url}",
            code="timestamp_url_invalid",
            status=400,
        )
    nonce = secrets.randbits(63) | 1
    query = build_request(digest, hash_name, nonce)
    request = urllib.request.Request(
        url,
        data=query,
        method="POST",
        headers={
            "Content-Type": "application/timestamp-query",
            "Accept": "application/timestamp-reply",
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_REPLY_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise TimestampError(
            f"Nie udało się uzyskać znacznika czasu z {url}: {e}",
            f"Could not get a time-stamp from {url}: {e}",
        ) from e
    if len(body) > MAX_REPLY_BYTES:
        raise TimestampError(
            "Odpowiedź usługi znacznika czasu jest za duża.",
            "The time-stamping authority's reply is too large.",
        )
    token = _token_from_reply(body, url)
    info = parse_token(token)
    if info.nonce != nonce:
        raise TimestampError(
            "Znacznik czasu ma inny nonce niż żądanie.",
            "The time-stamp token's nonce does not match the request.",
        )
    if info.hash_name != hash_name or not hmac.compare_digest(info.message_imprint, digest):
        raise TimestampError(
            "Znacznik czasu dotyczy innych danych niż żądanie.",
            "The time-stamp token's message imprint does not match the request.",
        )
    if trust_roots is not None:
        verify_token(token, digest, list(trust_roots))
    return token


def _token_from_reply(body: bytes, url: str) -> bytes:
    try:
        reply = tsp.TimeStampResp.load(body)
        status = reply["status"]["status"].native
        texts = reply["status"]["status_string"].native or []
        fail_info = reply["status"]["fail_info"].native
    except (ValueError, TypeError, KeyError) as e:
        raise TimestampError(
            f"Odpowiedź z {url} nie jest odpowiedzią RFC 3161.",
            f"The reply from {url} is not an RFC 3161 time-stamp response.",
        ) from e
    if status not in ("granted", "granted_with_mods"):
        detail = "; ".join([str(status), *map(str, texts), *(sorted(fail_info or []))])
        raise TimestampError(
            f"Usługa znacznika czasu odmówiła: {detail}",
            f"The time-stamping authority refused: {detail}",
        )
    token = reply["time_stamp_token"]
    if not isinstance(token, cms.ContentInfo) or token.contents is None:
        raise TimestampError(
            "Odpowiedź usługi znacznika czasu nie zawiera znacznika.",
            "The time-stamping authority's reply carries no token.",
        )
    dumped: bytes = token.dump()
    return dumped


def _load_token(token_der: bytes) -> tuple[cms.SignedData, tsp.TSTInfo, bytes]:
    """(SignedData, TSTInfo, the exact DER of the TSTInfo) or TimestampInvalid."""
    try:
        content_info = cms.ContentInfo.load(token_der)
        if content_info["content_type"].native != "signed_data":
            raise _invalid("to nie jest CMS SignedData", "not a CMS SignedData")
        signed_data = content_info["content"]
        encap = signed_data["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise _invalid("brak TSTInfo", "the content is not a TSTInfo")
        tst_info = encap["content"].parsed
        tst_der = encap["content"].contents
        if not isinstance(tst_info, tsp.TSTInfo) or not isinstance(tst_der, bytes):
            raise _invalid("brak TSTInfo", "no TSTInfo")
        # touch every field we use so that malformed DER fails here, not later
        _ = tst_info.native
        return signed_data, tst_info, tst_der
    except TimestampInvalid:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise _invalid("uszkodzona struktura ASN.1", f"malformed ASN.1 ({e})") from e


def _token_certificates(signed_data: cms.SignedData) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for choice in signed_data["certificates"] or []:
        if choice.name != "certificate":
            continue
        try:
            certs.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        except ValueError as e:
            raise _invalid("uszkodzony certyfikat", f"malformed certificate ({e})") from e
    return certs


def _info(tst_info: tsp.TSTInfo, certs: list[x509.Certificate]) -> TimestampInfo:
    imprint = tst_info["message_imprint"]
    gen_time = tst_info["gen_time"].native
    if gen_time.tzinfo is None:
        gen_time = gen_time.replace(tzinfo=dt.UTC)
    return TimestampInfo(
        gen_time=gen_time,
        hash_name=str(imprint["hash_algorithm"]["algorithm"].native),
        message_imprint=bytes(imprint["hashed_message"].native),
        serial=int(tst_info["serial_number"].native),
        tsa_certificates=certs,
        policy=str(tst_info["policy"].dotted),
        nonce=tst_info["nonce"].native,
    )


def parse_token(token_der: bytes) -> TimestampInfo:
    """Read a TimeStampToken without checking it (use `verify_token` to trust it)."""
    signed_data, tst_info, _ = _load_token(token_der)
    return _info(tst_info, _token_certificates(signed_data))


def _hash_class(name: str) -> type[hashes.HashAlgorithm]:
    if name in _HASHES:
        return _HASHES[name][1]
    if name in _LEGACY_HASHES:
        return _LEGACY_HASHES[name]
    raise _invalid(f"nieobsługiwany skrót {name}", f"unsupported digest algorithm {name}")


def _attr(signer_info: cms.SignerInfo, name: str) -> Any:
    values = [a["values"] for a in signer_info["signed_attrs"] if a["type"].native == name]
    if len(values) != 1 or len(values[0]) != 1:
        return None
    return values[0][0]


def _find_signer(
    signer_info: cms.SignerInfo, candidates: list[x509.Certificate]
) -> x509.Certificate:
    sid = signer_info["sid"]
    for cert in candidates:
        if sid.name == "issuer_and_serial_number":
            iss = sid.chosen["issuer"].dump()
            serial = sid.chosen["serial_number"].native
            if (
                cert.serial_number == serial
                and cert.issuer.public_bytes(serialization.Encoding.DER) == iss
            ):
                return cert
        elif sid.name == "subject_key_identifier":
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if ski.value.digest == sid.chosen.native:
                return cert
    raise _invalid(
        "brak certyfikatu TSA w znaczniku",
        "the TSA certificate is not in the token (request it with certReq)",
    )


def _check_ess(signer_info: cms.SignerInfo, signer: x509.Certificate) -> None:
    """RFC 3161 §2.4.1 / RFC 5816: the ESS signing-certificate attribute names the TSA cert."""
    der = signer.public_bytes(serialization.Encoding.DER)
    v2 = _attr(signer_info, "signing_certificate_v2")
    if v2 is not None:
        first = v2["certs"][0]
        alg = first["hash_algorithm"]["algorithm"].native
        expected = hashlib.new(alg, der).digest()
        if not hmac.compare_digest(first["cert_hash"].native, expected):
            raise _invalid("certyfikat ESS nie pasuje", "ESS signing-certificate-v2 mismatch")
        return
    v1 = _attr(signer_info, "signing_certificate")
    if v1 is not None:
        if not hmac.compare_digest(v1["certs"][0]["cert_hash"].native, hashlib.sha1(der).digest()):
            raise _invalid("certyfikat ESS nie pasuje", "ESS signing-certificate mismatch")
        return
    raise _invalid("brak atrybutu signing-certificate", "no ESS signing-certificate attribute")


def _verify_cms_signature(signer_info: cms.SignerInfo, signer: x509.Certificate) -> None:
    signed_attrs = signer_info["signed_attrs"].dump()
    # The signature is over the DER of the attributes as a SET OF (tag 0x31), not [0] IMPLICIT.
    to_verify = b"\x31" + signed_attrs[1:]
    signature = signer_info["signature"].native
    sig_alg = signer_info["signature_algorithm"]
    alg_name = sig_alg["algorithm"].native
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    hash_cls = _hash_class(digest_name)
    key = signer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if alg_name == "rsassa_pss":
                params = sig_alg["parameters"]
                pss_hash = _hash_class(params["hash_algorithm"]["algorithm"].native)
                mgf_hash = _hash_class(
                    params["mask_gen_algorithm"]["parameters"]["algorithm"].native
                )
                key.verify(
                    signature,
                    to_verify,
                    padding.PSS(padding.MGF1(mgf_hash()), int(params["salt_length"].native)),
                    pss_hash(),
                )
            elif alg_name in ("rsassa_pkcs1v15", "sha256_rsa", "sha384_rsa", "sha512_rsa"):
                if alg_name != "rsassa_pkcs1v15":
                    hash_cls = _hash_class(alg_name.split("_")[0])
                key.verify(signature, to_verify, padding.PKCS1v15(), hash_cls())
            else:
                raise _invalid(
                    f"algorytm {alg_name}", f"unsupported signature algorithm {alg_name}"
                )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if alg_name.endswith("_ecdsa") and alg_name != "ecdsa":
                hash_cls = _hash_class(alg_name.split("_")[0])
            elif alg_name != "ecdsa":
                raise _invalid(
                    f"algorytm {alg_name}", f"unsupported signature algorithm {alg_name}"
                )
            key.verify(signature, to_verify, ec.ECDSA(hash_cls()))
        else:
            raise _invalid("nieobsługiwany klucz TSA", "unsupported TSA key type")
    except InvalidSignature as e:
        raise _invalid("podpis TSA się nie zgadza", "the TSA signature does not verify") from e


def _timestamping_eku(
    policy: verification.Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    if eku is None or ExtendedKeyUsageOID.TIME_STAMPING not in eku:
        raise ValueError("TSA certificate lacks extendedKeyUsage timeStamping")


def _ca_constraints(
    policy: verification.Policy, cert: x509.Certificate, bc: x509.BasicConstraints | None
) -> None:
    if bc is None or not bc.ca:
        raise ValueError("issuer is not a CA (basicConstraints)")


def _ca_key_usage(
    policy: verification.Policy, cert: x509.Certificate, ku: x509.KeyUsage | None
) -> None:
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("issuer KeyUsage does not allow keyCertSign")


def _verify_chain(
    signer: x509.Certificate,
    intermediates: list[x509.Certificate],
    trust_roots: list[x509.Certificate],
    at: dt.datetime,
) -> None:
    if not trust_roots:
        raise _invalid("brak zaufanych certyfikatów", "no trust roots given")
    ee_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _timestamping_eku
    )
    ca_policy = (
        verification.ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, _ca_constraints)
        .may_be_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _ca_key_usage)
    )
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store(trust_roots))
        .time(at)
        .extension_policies(ee_policy=ee_policy, ca_policy=ca_policy)
    )
    try:
        builder.build_client_verifier().verify(signer, intermediates)
    except verification.VerificationError as e:
        raise _invalid(
            "certyfikat TSA nie prowadzi do zaufanego urzędu lub nie służy do znakowania czasem",
            f"the TSA certificate is not trusted for time-stamping ({e})",
        ) from e


def verify_token(
    token_der: bytes, data_digest: bytes, trust_roots: list[x509.Certificate]
) -> TimestampInfo:
    """Verify a TimeStampToken for `data_digest` (computed with the token's hash algorithm,
    see `parse_token(...).hash_name` or use `verify_token_for_data`) against `trust_roots`.

    Returns the TimestampInfo with `signer_certificate` set, or raises TimestampInvalid.
    """
    signed_data, tst_info, tst_der = _load_token(token_der)
    certs = _token_certificates(signed_data)
    info = _info(tst_info, certs)
    if info.hash_name not in _HASHES:
        raise _invalid(f"skrót {info.hash_name}", f"unsupported imprint hash {info.hash_name}")
    if not hmac.compare_digest(info.message_imprint, data_digest):
        raise _invalid("znacznik dotyczy innych danych", "the message imprint does not match")
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise _invalid("oczekiwano jednego podpisu", "expected exactly one SignerInfo")
    signer_info = signer_infos[0]
    if not signer_info["signed_attrs"]:
        raise _invalid("brak podpisanych atrybutów", "no signed attributes")
    content_type = _attr(signer_info, "content_type")
    if content_type is None or content_type.native != "tst_info":
        raise _invalid("zły typ treści", "the content-type attribute is not id-ct-TSTInfo")
    message_digest = _attr(signer_info, "message_digest")
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise _invalid(f"skrót {digest_name}", f"unsupported digest algorithm {digest_name}")
    if message_digest is None or not hmac.compare_digest(
        message_digest.native, hashlib.new(digest_name, tst_der).digest()
    ):
        raise _invalid("skrót TSTInfo się nie zgadza", "messageDigest does not match the TSTInfo")
    signer = _find_signer(signer_info, certs + list(trust_roots))
    _verify_cms_signature(signer_info, signer)
    _check_ess(signer_info, signer)
    intermediates = [c for c in certs if c != signer]
    _verify_chain(signer, intermediates, list(trust_roots), info.gen_time)
    return TimestampInfo(
        gen_time=info.gen_time,
        hash_name=info.hash_name,
        message_imprint=info.message_imprint,
        serial=info.serial,
        tsa_certificates=certs,
        policy=info.policy,
        nonce=info.nonce,
        signer_certificate=signer,
    )


def verify_token_for_data(
    token_der: bytes, data: bytes, trust_roots: list[x509.Certificate]
) -> TimestampInfo:
    """`verify_token` for the data itself, hashed with the token's own algorithm."""
    hash_name = parse_token(token_der).hash_name
    if hash_name not in _HASHES:
        raise _invalid(f"skrót {hash_name}", f"unsupported imprint hash {hash_name}")
    return verify_token(token_der, hash_data(data, hash_name), trust_roots)


__all__ = [
    "TimestampError",
    "TimestampInfo",
    "TimestampInvalid",
    "build_request",
    "hash_data",
    "parse_token",
    "request_timestamp",
    "verify_token",
    "verify_token_for_data",
]
