"""Receiving a signed official letter: verify its signature, then register it in the addressed
unit's incoming register (channel `internal`) with the signed XML as the document and the
verification report stored with that document. The letter joins the case it answers (its
"znak sprawy adresata" names an open case of the addressed unit) or opens a new one.

A letter whose signature fails is still registered — it was received, and the clerk must see
it — but its report says TOTAL_FAILED and the registration notes say so; a file that is not a
letter, or a letter addressed to another unit, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflow.cases.models import Case, CaseStatus
from workflow.cases.repository import CaseRepository
from workflow.documents.repository import DocumentRepository
from workflow.documents.service import spooled
from workflow.errors import ValidationFailed
from workflow.letters.letter import Letter, parse_letter_xml
from workflow.org.models import Unit
from workflow.ports import BlobStore
from workflow.registry.schemas import Party, RegisterIncoming
from workflow.registry.service import RegisteredItem, register_incoming_item
from workflow.signing.report import VerificationReport
from workflow.signing.trust import TrustStore
from workflow.signing.verify import verify_xades
from workflow.uow import UnitOfWork

INDICATION_PL = {
    "TOTAL_PASSED": "podpis prawidłowy",
    "TOTAL_FAILED": "podpis NIEPRAWIDŁOWY",
    "INDETERMINATE": "podpisu nie można potwierdzić",
}


@dataclass(frozen=True)
class ReceivedLetter:
    registered: RegisteredItem
    letter: Letter
    report: VerificationReport


def answered_case(uow: UnitOfWork, unit: Unit, letter: Letter) -> Case | None:
    """The open case of `unit` that the letter answers (its addressee's reference), if any."""
    if not letter.your_reference:
        return None
    case = CaseRepository(uow.session).by_reference(letter.your_reference)
    if case is None or case.unit_id != unit.id or case.status != CaseStatus.open:
        return None
    return case


def receive_official_letter(
    uow: UnitOfWork,
    store: BlobStore,
    unit: Unit,
    signed: bytes,
    *,
    trust: TrustStore,
    jrwa: str,
    max_bytes: int,
    idempotency_key: str | None = None,
) -> ReceivedLetter:
    letter = parse_letter_xml(signed, max_bytes=max_bytes)
    if letter.addressee.unit_code != unit.code:
        raise ValidationFailed(
            f"Pismo jest zaadresowane do {letter.addressee.unit_code or letter.addressee.name}, "
            f"nie do {unit.code}.",
            f"The letter is addressed to {letter.addressee.unit_code or letter.addressee.name}, "
            f"not to {unit.code}.",
            code="letter_misaddressed",
        )
    report = verify_xades(signed, trust=trust, at="signing_time", max_bytes=max_bytes)
    verdict = INDICATION_PL[report.indication]
    case = answered_case(uow, unit, letter)
    with spooled(signed, f"pismo-{letter.our_reference}.xml", "application/xml") as upload:
        registered = register_incoming_item(
            uow,
            store,
            RegisterIncoming(
                unit=unit.code,
                subject=letter.subject[:500],
                sender=Party(name=letter.sender.name[:200], kind="institution"),
                channel="internal",
                jrwa=None if case else jrwa,
                new_case=case is None,
                case_reference=case.reference if case else None,
                sender_reference=letter.our_reference[:200],
                letter_date=letter.letter_date,
                notes=f"Pismo urzędowe podpisane elektronicznie: {verdict}"
                + (f" ({report.sub_indication})" if report.sub_indication else "")
                + (f"; podpisał: {report.signed_by}" if report.signed_by else ""),
            ),
            [upload],
            idempotency_key=idempotency_key,
        )
    documents = DocumentRepository(uow.session)
    for document, _stored in registered.documents:
        documents.set_signature_report(document.id, report.to_json())
        document.signature_report = report.to_json()  # the detached copy the answer is built from
    uow.audit(
        "letter.received",
        "incoming_item",
        registered.item.id,
        unit_id=unit.id,
        case_id=registered.item.case_id,
        details={
            "from": letter.sender.unit_code or letter.sender.name,
            "reference": letter.our_reference,
            "indication": report.indication,
            "sub_indication": report.sub_indication,
        },
    )
    return ReceivedLetter(registered, letter, report)
