"""Unit signing keys and trust anchors: importing (admins only), listing without key material,
decrypting a unit's identity for signing (once per process), and the trust store used to
verify incoming signatures."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from workflow.db import utcnow
from workflow.errors import Forbidden, NotFound, ValidationFailed
from workflow.org.models import Unit
from workflow.signing.keys import (
    SigningIdentity,
    decrypt_identity,
    encrypt_private_key,
    load_identity,
)
from workflow.signing.models import TrustAnchor, UnitSigningKey
from workflow.signing.repository import SigningRepository
from workflow.signing.trust import TrustStore
from workflow.uow import UnitOfWork


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def import_signing_key(
    uow: UnitOfWork,
    unit: Unit,
    data: bytes,
    password: bytes | None,
    *,
    label: str,
    key_encryption_key: Callable[[], bytes],
) -> UnitSigningKey:
    """Import a PKCS#12 or PEM key with its certificate for a unit. The private key is stored
    encrypted; the audit entry names the certificate, never the key."""
    if not uow.actor.can_admin_unit(unit.id):
        raise Forbidden(
            "Klucze podpisu jednostki importuje jej administrator.",
            "Only the unit's administrator imports its signing keys.",
        )
    identity = load_identity(data, password)
    cert = identity.certificate
    repo = SigningRepository(uow.session)
    fingerprint = _fingerprint(cert)
    if repo.key_by_fingerprint(fingerprint) is not None:
        raise ValidationFailed(
            "Ten certyfikat został już zaimportowany.",
            "This certificate has already been imported.",
            code="signing_key_exists",
        )
    record = UnitSigningKey(
        id=uuid.uuid4(),
        unit_id=unit.id,
        label=label[:200],
        subject=cert.subject.rfc4514_string()[:500],
        issuer=cert.issuer.rfc4514_string()[:500],
        certificate_sha256=fingerprint,
        certificate_pem=_pem(cert),
        chain_pem="".join(_pem(c) for c in identity.chain),
        encrypted_private_key=encrypt_private_key(identity, key_encryption_key()),
        not_before=cert.not_valid_before_utc.astimezone(UTC),
        not_after=cert.not_valid_after_utc.astimezone(UTC),
        active=True,
        created_by=None if uow.actor.system else uow.actor.user_id,
        created_at=utcnow(),
    )
    repo.add(record)
    uow.audit(
        "signing_key.imported",
        "signing_key",
        record.id,
        unit_id=unit.id,
        details={"subject": record.subject, "certificate_sha256": fingerprint, "label": label},
    )
    return record


def unit_keys(uow: UnitOfWork, unit: Unit) -> Sequence[UnitSigningKey]:
    if not uow.actor.can_admin_unit(unit.id):
        raise Forbidden()
    return SigningRepository(uow.session).keys_of_unit(unit.id)


def deactivate_key(uow: UnitOfWork, key_id: uuid.UUID) -> UnitSigningKey:
    record = SigningRepository(uow.session).key(key_id)
    if record is None or not uow.actor.can_admin_unit(record.unit_id):
        raise NotFound("Nie znaleziono klucza.", "Key not found.", code="signing_key_not_found")
    record.active = False
    uow.audit("signing_key.deactivated", "signing_key", record.id, unit_id=record.unit_id)
    return record


_identities: dict[uuid.UUID, SigningIdentity] = {}
_identities_lock = threading.Lock()


def unit_identity(
    uow: UnitOfWork, unit: Unit, key_encryption_key: Callable[[], bytes]
) -> SigningIdentity:
    """The unit's active signing identity, decrypted once per process (keys never change)."""
    record = SigningRepository(uow.session).active_key(unit.id)
    if record is None:
        raise ValidationFailed(
            f"Jednostka {unit.code} nie ma aktywnego klucza podpisu.",
            f"Unit {unit.code} has no active signing key.",
            code="signing_key_missing",
        )
    with _identities_lock:
        identity = _identities.get(record.id)
    if identity is None:
        identity = decrypt_identity(
            record.encrypted_private_key,
            (record.certificate_pem + record.chain_pem).encode("ascii"),
            key_encryption_key(),
        )
        with _identities_lock:
            _identities[record.id] = identity
    return identity


def add_trust_anchors(
    uow: UnitOfWork, pem: bytes, *, label: str, source: str = "pem"
) -> list[TrustAnchor]:
    """Add CA certificates (PEM, one or more) that incoming signatures may chain to."""
    if not uow.actor.is_admin:
        raise Forbidden(
            "Zaufane certyfikaty ustala administrator miasta.",
            "Only the city's administrator manages trust anchors.",
        )
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise ValidationFailed(
            "To nie jest certyfikat PEM.", "This is not a PEM certificate.", code="pem_invalid"
        ) from e
    repo = SigningRepository(uow.session)
    added = []
    for cert in certs:
        fingerprint = _fingerprint(cert)
        if repo.anchor_by_fingerprint(fingerprint) is not None:
            continue
        anchor = TrustAnchor(
            id=uuid.uuid4(),
            label=label[:200],
            subject=cert.subject.rfc4514_string()[:500],
            certificate_sha256=fingerprint,
            certificate_pem=_pem(cert),
            source=source,
            not_after=cert.not_valid_after_utc.astimezone(UTC),
            created_by=None if uow.actor.system else uow.actor.user_id,
            created_at=utcnow(),
        )
        repo.add(anchor)
        uow.audit(
            "trust_anchor.added",
            "trust_anchor",
            anchor.id,
            details={"subject": anchor.subject, "certificate_sha256": fingerprint},
        )
        added.append(anchor)
    return added


def trust_anchors(uow: UnitOfWork) -> Sequence[TrustAnchor]:
    return SigningRepository(uow.session).anchors()


def trust_store(uow: UnitOfWork) -> TrustStore:
    anchors = SigningRepository(uow.session).anchors()
    return TrustStore.from_pem(*(a.certificate_pem.encode("ascii") for a in anchors))
