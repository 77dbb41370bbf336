"""Internal e-delivery: a unit's signed official letter to another unit, and the signed receipt.

A school writes to the city office (or the office answers a school) from a process. Each step is
one transaction, runs after the previous one committed (outbox), and may run again safely:

1. `send_official_letter` — the process's service task: registers an outgoing item (channel
   `internal`) in the sender's register and enqueues `letter.dispatch`. Refuses at once, as an
   incident the admin sees, when the sender has no signing key or the addressee does not exist.
2. `dispatch_official_letter` — sender's side: writes the letter (wnio:Dokument), signs it with
   the sender unit's seal (XAdES-T when a time-stamping authority is configured, else XAdES-BES),
   keeps it as the outgoing item's document, marks the item dispatched, enqueues `letter.deliver`.
3. `deliver_official_letter` — addressee's side: verifies the letter and registers it in the
   addressee's incoming register with its report (joining the case it answers, or a new case),
   hands the process message to the addressee's processes (a new process for a new letter, the
   waiting one for a reply) and enqueues `letter.receipt`.
4. `return_delivery_receipt` — addressee's side: signs a delivery receipt (poświadczenie
   doręczenia) with the addressee's seal and keeps it, with its verification report, with the
   sender's outgoing item, which becomes `delivered`.

The signing identity and trust store come from the caller (the worker wiring), so this module
never sees the key-encryption key.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from workflow.cases.models import Case
from workflow.cases.repository import CaseRepository
from workflow.cases.service import WARSAW
from workflow.correspondence.service import receive_official_letter
from workflow.db import utcnow
from workflow.documents.models import Document
from workflow.documents.repository import DocumentRepository
from workflow.documents.service import DocumentMeta, create_document, spooled, store_uploads
from workflow.engine.runtime import Engine
from workflow.errors import ValidationFailed
from workflow.letters.letter import Letter, Party, build_letter_xml
from workflow.letters.receipt import DeliveryReceipt, ReceiptParty, build_receipt_xml
from workflow.org.models import Unit
from workflow.org.repository import OrgRepository
from workflow.ports import BlobStore
from workflow.principal import SYSTEM
from workflow.registry.models import IncomingItem, OutgoingItem, OutgoingStatus
from workflow.registry.repository import RegistryRepository
from workflow.registry.schemas import Party as RegisterParty
from workflow.registry.schemas import RegisterOutgoing
from workflow.registry.service import register_outgoing_item
from workflow.signing.keys import SigningIdentity
from workflow.signing.report import VerificationReport
from workflow.signing.repository import SigningRepository
from workflow.signing.sign import sign_enveloped
from workflow.signing.trust import TrustStore
from workflow.signing.verify import verify_xades
from workflow.uow import UnitOfWork

DEFAULT_MESSAGE = "pismo_urzedowe"
XML = "application/xml"


@dataclass(frozen=True)
class Signing:
    """What the worker gives the delivery steps: each unit's seal, the TSA, the trust store."""

    identity: Callable[[UnitOfWork, Unit], SigningIdentity]
    tsa_url: str | None
    trust: Callable[[UnitOfWork], TrustStore]
    max_bytes: int


class DeliveryRefused(ValidationFailed):
    code = "delivery_refused"


# ---------------------------------------------------------------------------------------------
# 1. In the sender's process


def send_official_letter(
    uow: UnitOfWork,
    unit: Unit,
    *,
    to_unit: str,
    subject: str,
    body: str,
    case: Case | None,
    message: str = DEFAULT_MESSAGE,
    correlation_key: str,
    your_reference: str | None = None,
    from_instance: str | None = None,
) -> OutgoingItem:
    org = OrgRepository(uow.session)
    addressee = org.unit_by_code(to_unit)
    if addressee is None or not addressee.active:
        raise DeliveryRefused(f"Nieznana jednostka {to_unit}.", f"Unknown unit {to_unit}.")
    if addressee.id == unit.id:
        raise DeliveryRefused(
            "Jednostka nie wysyła pisma urzędowego do siebie.",
            "A unit does not send an official letter to itself.",
        )
    if SigningRepository(uow.session).active_key(unit.id) is None:
        raise DeliveryRefused(
            f"Jednostka {unit.code} nie ma aktywnego klucza podpisu: administrator jednostki "
            "musi go zaimportować, zanim pismo zostanie wysłane.",
            f"Unit {unit.code} has no active signing key: the unit's administrator must import "
            "one before the letter can be sent.",
            code="signing_key_missing",
        )
    if not subject.strip() or not body.strip():
        raise DeliveryRefused(
            "Pismo musi mieć tytuł i treść.", "A letter needs a subject and a body."
        )
    item = register_outgoing_item(
        uow,
        RegisterOutgoing(
            unit=unit.code,
            subject=subject[:500],
            recipients=[
                RegisterParty(
                    name=addressee.name[:200],
                    kind="institution",
                    address=(addressee.address or "nieznany")[:500],
                )
            ],
            channel="internal",
            case_reference=case.reference if case else None,
        ),
    )
    item.letter_id = uuid.uuid4()
    uow.enqueue(
        "letter.dispatch",
        {
            "outgoing_item_id": str(item.id),
            "to_unit": addressee.code,
            "subject": subject[:500],
            "body": body,
            "message": message,
            "correlation_key": correlation_key,
            "your_reference": your_reference,
            "from_instance": from_instance,
        },
        dedupe_key=f"letter.dispatch:{item.id}",
    )
    uow.audit(
        "letter.sent",
        "outgoing_item",
        item.id,
        unit_id=unit.id,
        case_id=item.case_id,
        details={"to_unit": addressee.code, "number": item.number, "subject": subject[:200]},
    )
    return item


# ---------------------------------------------------------------------------------------------
# 2. Sender's side, in the worker


def _place(unit: Unit) -> str:
    """The town of the unit's address ("…, 00-001 Miasto"), for the letter's heading."""
    match = re.search(r"\d{2}-\d{3}\s+([^,]+)$", unit.address or "")
    return match[1].strip() if match else "Miasto"


def letter_party(unit: Unit) -> Party:
    lines = tuple(p.strip() for p in (unit.address or "").split(",") if p.strip())
    return Party(name=unit.name, unit_code=unit.code, address_lines=lines)


def _paragraphs(body: str) -> tuple[str, ...]:
    parts = [p.strip() for p in re.split(r"\n\s*\n", body.replace("\r\n", "\n"))]
    return tuple(p for p in parts if p) or (body.strip(),)


@dataclass(frozen=True)
class Kept:
    document: Document
    signed: bytes
    report: VerificationReport


def _sign_and_keep(
    uow: UnitOfWork,
    store: BlobStore,
    signing: Signing,
    unsigned: bytes,
    *,
    signer: Unit,
    item: OutgoingItem,
    file_name: str,
    title: str,
    n: int,
) -> Kept:
    """Sign XML made by ezd with `signer`'s seal, verify it as a recipient would, and keep it
    with its report as a document of the (sender's) outgoing item."""
    signed = sign_enveloped(unsigned, signing.identity(uow, signer), tsa_url=signing.tsa_url)
    report = verify_xades(signed, trust=signing.trust(uow), at="signing_time")
    unit = _unit(uow, item.unit_id)
    case = CaseRepository(uow.session).by_id(item.case_id) if item.case_id else None
    with spooled(signed, file_name, XML) as upload:
        (stored,) = store_uploads(uow, store, [upload])
        document = create_document(
            uow,
            unit_id=unit.id,
            identifier=f"{unit.code}/{item.number}/{n}",
            meta=DocumentMeta(
                title=title,
                creator=signer.name,
                document_date=utcnow().astimezone(WARSAW).date(),
                relation=item.number,
                recipient=", ".join(str(r.get("name", "")) for r in item.recipients)[:300],
                grouping=case.reference if case else None,
                description=item.subject,
            ),
            file=stored,
            case_id=item.case_id,
            outgoing_item_id=item.id,
        )
    uow.flush()
    DocumentRepository(uow.session).set_signature_report(document.id, report.to_json())
    return Kept(document, signed, report)


def _outgoing(uow: UnitOfWork, item_id: str) -> OutgoingItem:
    item = RegistryRepository(uow.session).outgoing(uuid.UUID(item_id), for_update=True)
    if item is None or item.letter_id is None:
        raise LookupError(f"outgoing item {item_id} with a letter not found")
    return item


def _unit(uow: UnitOfWork, unit_id: uuid.UUID) -> Unit:
    unit = OrgRepository(uow.session).unit(unit_id)
    if unit is None:
        raise LookupError(f"unit {unit_id} not found")
    return unit


def dispatch_official_letter(
    uow: UnitOfWork, store: BlobStore, signing: Signing, payload: Mapping[str, Any]
) -> None:
    item = _outgoing(uow, str(payload["outgoing_item_id"]))
    if item.status != OutgoingStatus.ready:
        return  # dispatched by an earlier run
    assert item.letter_id is not None
    unit = _unit(uow, item.unit_id)
    addressee = OrgRepository(uow.session).unit_by_code(str(payload["to_unit"]))
    if addressee is None:
        raise LookupError(f"unit {payload['to_unit']} not found")
    case = CaseRepository(uow.session).by_id(item.case_id) if item.case_id else None
    letter = Letter(
        sender=letter_party(unit),
        addressee=letter_party(addressee),
        letter_date=utcnow().astimezone(WARSAW).date(),
        place=_place(unit),
        our_reference=case.reference if case else item.number,
        your_reference=payload.get("your_reference") or None,
        subject=str(payload["subject"]),
        body=_paragraphs(str(payload["body"])),
        document_id=item.letter_id,
    )
    kept = _sign_and_keep(
        uow,
        store,
        signing,
        build_letter_xml(letter),
        signer=unit,
        item=item,
        file_name=f"pismo-{letter.our_reference}.xml",
        title=f"Pismo: {letter.subject}"[:500],
        n=1,
    )
    item.status = OutgoingStatus.dispatched
    item.dispatched_at = utcnow()
    uow.audit(
        "letter.dispatched",
        "outgoing_item",
        item.id,
        unit_id=unit.id,
        case_id=item.case_id,
        document_id=kept.document.id,
        details={
            "number": item.number,
            "to_unit": addressee.code,
            "letter_id": str(item.letter_id),
            "level": kept.report.level,
            "sha256": hashlib.sha256(kept.signed).hexdigest(),
        },
    )
    uow.enqueue(
        "letter.deliver",
        {
            "document_id": str(kept.document.id),
            "outgoing_item_id": str(item.id),
            "to_unit": addressee.code,
            "message": payload.get("message") or DEFAULT_MESSAGE,
            "correlation_key": payload.get("correlation_key"),
            "from_instance": payload.get("from_instance"),
        },
        dedupe_key=f"letter.deliver:{item.letter_id}",
    )


# ---------------------------------------------------------------------------------------------
# 3. Addressee's side, in the worker


def _document_bytes(uow: UnitOfWork, store: BlobStore, document_id: uuid.UUID) -> bytes:
    repo = DocumentRepository(uow.session)
    version = repo.version(document_id, 1)
    blob = repo.blob(version.blob_id) if version else None
    if blob is None:
        raise LookupError(f"document {document_id} has no content")
    data = b"".join(store.open(blob.key))
    if hashlib.sha256(data).hexdigest() != blob.sha256:
        raise LookupError(f"document {document_id}: stored content does not match its SHA-256")
    return data


def deliver_official_letter(
    uow: UnitOfWork,
    store: BlobStore,
    engine: Engine,
    signing: Signing,
    payload: Mapping[str, Any],
    *,
    internal_jrwa: str,
) -> None:
    from workflow.processes.service import deliver_message

    document_id = uuid.UUID(str(payload["document_id"]))
    signed = _document_bytes(uow, store, document_id)
    addressee = OrgRepository(uow.session).unit_by_code(str(payload["to_unit"]))
    if addressee is None:
        raise LookupError(f"unit {payload['to_unit']} not found")
    sender_item = RegistryRepository(uow.session).outgoing(uuid.UUID(payload["outgoing_item_id"]))
    if sender_item is None or sender_item.letter_id is None:
        raise LookupError(f"outgoing item {payload['outgoing_item_id']} not found")
    key = f"letter:{sender_item.letter_id}"
    if RegistryRepository(uow.session).incoming_by_idempotency_key(SYSTEM.user_id, key):
        return  # registered by an earlier run
    received = receive_official_letter(
        uow,
        store,
        addressee,
        signed,
        trust=signing.trust(uow),
        jrwa=internal_jrwa,
        max_bytes=signing.max_bytes,
        idempotency_key=key,
    )
    registered, letter, report = received.registered, received.letter, received.report
    case = registered.case
    deliver_message(
        uow,
        engine,
        {
            "name": str(payload.get("message") or DEFAULT_MESSAGE),
            "payload": {
                "subject": letter.subject,
                "body": "\n\n".join(letter.body),
                "from_unit": letter.sender.unit_code,
                "sender_reference": letter.our_reference,
                "correlation_key": payload.get("correlation_key"),
                "incoming_number": registered.item.rpw_number,
                "case_reference": case.reference if case else None,
                "signature": report.indication,
                "signed_by": report.signed_by,
            },
            "correlation_key": payload.get("correlation_key"),
            "from_instance": payload.get("from_instance"),
            "to_unit": addressee.code,
            "case_id": str(case.id) if case else None,
        },
        internal_jrwa=internal_jrwa,
    )
    uow.enqueue(
        "letter.receipt",
        {
            "incoming_item_id": str(registered.item.id),
            "outgoing_item_id": str(sender_item.id),
            "sha256": hashlib.sha256(signed).hexdigest(),
        },
        dedupe_key=f"letter.receipt:{sender_item.letter_id}",
    )


# ---------------------------------------------------------------------------------------------
# 4. The receipt, signed by the addressee, kept with the sender's outgoing item


def receipt_for(
    incoming: IncomingItem, item: OutgoingItem, sender: Unit, addressee: Unit, sha256: str
) -> DeliveryReceipt:
    assert item.letter_id is not None
    return DeliveryReceipt(
        receipt_id=uuid.uuid4(),
        sender=ReceiptParty(unit_code=sender.code, name=sender.name),
        addressee=ReceiptParty(unit_code=addressee.code, name=addressee.name),
        document_id=item.letter_id,
        sender_reference=incoming.sender_reference,
        document_sha256=sha256,
        delivered_at=incoming.received_at,
        registration_number=incoming.rpw_number,
    )


def return_delivery_receipt(
    uow: UnitOfWork, store: BlobStore, signing: Signing, payload: Mapping[str, Any]
) -> None:
    item = _outgoing(uow, str(payload["outgoing_item_id"]))
    if item.delivered_at is not None:
        return  # kept by an earlier run
    incoming = RegistryRepository(uow.session).incoming(uuid.UUID(payload["incoming_item_id"]))
    if incoming is None:
        raise LookupError(f"incoming item {payload['incoming_item_id']} not found")
    sender, addressee = _unit(uow, item.unit_id), _unit(uow, incoming.unit_id)
    receipt = receipt_for(incoming, item, sender, addressee, str(payload["sha256"]))
    kept = _sign_and_keep(
        uow,
        store,
        signing,
        build_receipt_xml(receipt),
        signer=addressee,
        item=item,
        file_name=f"poswiadczenie-doreczenia-{item.number}.xml",
        title=f"Poświadczenie doręczenia ({addressee.code}, {incoming.rpw_number})",
        n=2,
    )
    item.status = OutgoingStatus.delivered
    item.delivered_at = incoming.received_at
    uow.audit(
        "letter.delivery_confirmed",
        "outgoing_item",
        item.id,
        unit_id=sender.id,
        case_id=item.case_id,
        document_id=kept.document.id,
        details={
            "number": item.number,
            "receipt_id": str(receipt.receipt_id),
            "addressee": addressee.code,
            "registration_number": incoming.rpw_number,
            "indication": kept.report.indication,
        },
    )
