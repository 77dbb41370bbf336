"""E-service use cases: submit (register, start the process, sign the receipt), track, add a
supplement, issue the signed decision, and e-mail the applicant on every status change.

Everything a citizen does runs as ezd itself (there is no account): the tracking code and PIN
are the only key to a submission (`access.check_access`), and nothing answered reveals another
case. Files and texts the citizen gives are stored as given and escaped wherever they are shown.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from workflow.cases.models import Case
from workflow.cases.repository import CaseRepository
from workflow.cases.service import WARSAW
from workflow.db import utcnow
from workflow.documents.models import Document
from workflow.documents.repository import DocumentRepository
from workflow.documents.service import DocumentMeta, create_document, spooled, store_uploads
from workflow.engine.runtime import Engine
from workflow.errors import Conflict, DomainError, NotFound, ValidationFailed
from workflow.eservices import access
from workflow.eservices.catalogue import Catalogue, Service, validate_form
from workflow.eservices.documents import (
    AttachmentLine,
    Decision,
    Receipt,
    build_decision_xml,
    build_receipt_xml,
)
from workflow.eservices.models import Submission, SubmissionEvent, SubmissionStatus
from workflow.org.models import Unit, UnitKind
from workflow.org.repository import OrgRepository
from workflow.ports import BlobStore, SpooledUpload
from workflow.principal import SYSTEM
from workflow.registry.schemas import Party, RegisterIncoming
from workflow.registry.service import register_incoming_item
from workflow.signing.keys import SigningIdentity
from workflow.signing.repository import SigningRepository
from workflow.signing.sign import sign_enveloped
from workflow.uow import UnitOfWork

XML = "application/xml"
SUPPLEMENT_MESSAGE = "uzupelnienie_wniosku"
DECISION_MESSAGE = "decyzja_podpisana"
# What a citizen may attach: documents and photos/scans, recognised by content (not by name).
ALLOWED_TYPES = frozenset(
    {
        "application/pdf",
        "image/jpeg",
        "image/png",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)
MAX_FORM_BYTES = 64 * 1024

STATUS_LABELS = {
    SubmissionStatus.registered: "Wniosek zarejestrowany",
    SubmissionStatus.assigned: "Sprawa przydzielona pracownikowi",
    SubmissionStatus.supplement_requested: "Potrzebne uzupełnienie wniosku",
    SubmissionStatus.supplement_received: "Uzupełnienie przyjęte",
    SubmissionStatus.in_progress: "Sprawa w toku",
    SubmissionStatus.awaiting_approval: "Czeka na decyzję dyrektora",
    SubmissionStatus.decided: "Wydano rozstrzygnięcie",
    SubmissionStatus.closed: "Sprawa zakończona",
}
STATUS_LABELS_EN = {
    SubmissionStatus.registered: "Application registered",
    SubmissionStatus.assigned: "Assigned to a case handler",
    SubmissionStatus.supplement_requested: "The application needs a supplement",
    SubmissionStatus.supplement_received: "Supplement received",
    SubmissionStatus.in_progress: "In progress",
    SubmissionStatus.awaiting_approval: "Awaiting the head's decision",
    SubmissionStatus.decided: "Decision issued",
    SubmissionStatus.closed: "Case closed",
}


@dataclass(frozen=True)
class Sealer:
    """The addressed unit's seal and the time-stamping authority (XAdES-T when set), given by
    the composition root so the core never sees the key-encryption key."""

    identity: Callable[[UnitOfWork, Unit], SigningIdentity]
    tsa_url: str | None


class ServiceUnavailable(DomainError):
    code = "receipt_unavailable"
    status = 503


def _refuse(pl: str, en: str, code: str, status: int = 422, **details: Any) -> ValidationFailed:
    return ValidationFailed(pl, en, code=code, status=status, details=details or None)


# ---------------------------------------------------------------------------------------------
# Catalogue


def addressable_units(uow: UnitOfWork, service: Service) -> list[Unit]:
    kinds = {UnitKind(k) for k in service.unit_kinds}
    return sorted(
        (u for u in OrgRepository(uow.session).units() if u.kind in kinds and u.active),
        key=lambda u: u.name,
    )


def _addressed_unit(uow: UnitOfWork, service: Service, code: str) -> Unit:
    for u in addressable_units(uow, service):
        if u.code == code:
            return u
    raise _refuse(
        "Wybierz szkołę lub przedszkole z listy.",
        "Choose a school or kindergarten from the list.",
        "unit_not_addressable",
    )


# ---------------------------------------------------------------------------------------------
# Submission


def _clean_text(value: Any) -> bool:
    """No control characters (other than line breaks and tabs) in anything the citizen typed."""
    if isinstance(value, str):
        return not any(unicodedata.category(c) in ("Cc", "Cs") and c not in "\n\r\t" for c in value)
    if isinstance(value, dict):
        return all(_clean_text(v) for v in value.values())
    if isinstance(value, list):
        return all(_clean_text(v) for v in value)
    return True


def parse_form(service: Service, raw: str) -> dict[str, Any]:
    if len(raw.encode("utf-8")) > MAX_FORM_BYTES:
        raise _refuse(
            f"Formularz jest zbyt duży (najwyżej {MAX_FORM_BYTES // 1024} kB).",
            f"The form is too large (at most {MAX_FORM_BYTES // 1024} kB).",
            "form_too_large",
            status=413,
            limit_bytes=MAX_FORM_BYTES,
        )
    try:
        data = json.loads(raw)
    except ValueError:
        raise _refuse(
            "Formularz nie jest poprawnym JSON.", "The form is not valid JSON.", "form_invalid"
        ) from None
    if not _clean_text(data):
        raise _refuse(
            "Formularz zawiera niedozwolone znaki sterujące.",
            "The form contains control characters.",
            "form_invalid",
        )
    return validate_form(service, data)


def check_uploads(uploads: Sequence[SpooledUpload], max_files: int) -> None:
    if len(uploads) > max_files:
        raise _refuse(
            f"Najwyżej {max_files} załączników.",
            f"At most {max_files} attachments.",
            "too_many_files",
        )
    for up in uploads:
        if up.detected_type not in ALLOWED_TYPES:
            raise _refuse(
                f"Plik „{up.file_name}” ma niedozwolony typ ({up.detected_type}). "
                "Dozwolone: PDF, JPEG, PNG, ODT, DOCX.",
                f"File '{up.file_name}' has a type that is not allowed ({up.detected_type}). "
                "Allowed: PDF, JPEG, PNG, ODT, DOCX.",
                "file_type_not_allowed",
                status=415,
                file_name=up.file_name,
                detected=up.detected_type,
            )


def _summary(service: Service, form: dict[str, Any]) -> str:
    """The form as readable lines for the register's notes (shown, escaped, to staff)."""
    props = service.schema.get("properties", {})
    lines = [f"E-usługa: {service.title}"]
    for key, value in form.items():
        title = props.get(key, {}).get("title", key)
        lines.append(f"{title}: {value}")
    return "\n".join(lines)[:20000]


@dataclass(frozen=True)
class Submitted:
    submission: Submission
    pin: str
    service: Service
    unit: Unit
    rpw_number: str
    case_reference: str
    receipt_xml: bytes


def _idempotent(uow: UnitOfWork, key: str | None) -> None:
    if (
        key
        and uow.session.execute(
            select(Submission.id).where(Submission.idempotency_key == key)
        ).first()
    ):
        raise Conflict(
            "Ten wniosek został już złożony (powtórzone wysłanie).",
            "This application was already submitted (a repeated request).",
            code="duplicate_submission",
        )


def submit(
    uow: UnitOfWork,
    store: BlobStore,
    engine: Engine,
    sealer: Sealer,
    catalogue: Catalogue,
    *,
    service_code: str,
    unit_code: str,
    form_json: str,
    uploads: Sequence[SpooledUpload],
    idempotency_key: str | None,
    max_files: int = 10,
) -> Submitted:
    """Register the application in the addressed unit's incoming register (channel e-service)
    in a new case, start the service's process and sign the receipt, all in one transaction:
    a refusal at any step leaves nothing behind."""
    from workflow.processes.service import start_process

    uow.actor = SYSTEM
    service = catalogue.get(service_code)
    form = parse_form(service, form_json)
    unit = _addressed_unit(uow, service, unit_code)
    check_uploads(uploads, max_files)
    _idempotent(uow, idempotency_key)
    if SigningRepository(uow.session).active_key(unit.id) is None:
        raise ServiceUnavailable(
            "Ta jednostka nie może teraz przyjmować wniosków elektronicznych (brak pieczęci "
            "elektronicznej). Spróbuj później lub złóż wniosek w sekretariacie.",
            "This unit cannot take electronic applications now (no electronic seal). Try "
            "later or apply at the office.",
        )
    form_bytes = json.dumps(
        {"service": service.code, "unit": unit.code, "form": form},
        ensure_ascii=False,
        indent=2,
        sort_keys=True,
    ).encode()
    form_sha = hashlib.sha256(form_bytes).hexdigest()
    applicant = str(form.get("applicant_name") or "Wnioskodawca")
    email = form.get("applicant_email")
    cmd = RegisterIncoming(
        unit=unit.code,
        subject=f"{service.title} (e-usługa)"[:500],
        sender=Party(
            name=applicant[:200],
            kind="person",
            address=str(form.get("applicant_address") or "nie podano")[:500],
        ),
        channel="e_service",
        jrwa=service.jrwa,
        new_case=True,
        case_title=f"{service.title}: {applicant}"[:500],
        notes=_summary(service, form),
    )
    with spooled(form_bytes, "wniosek.json", "application/json") as form_file:
        registered = register_incoming_item(uow, store, cmd, [form_file, *uploads])
    case = registered.case
    assert case is not None
    code = _unique_code(uow)
    pin = access.new_pin()
    now = utcnow()
    submission = Submission(
        tracking_code=code,
        pin_hash=access.hash_pin(pin),
        service_code=service.code,
        unit_id=unit.id,
        incoming_item_id=registered.item.id,
        case_id=case.id,
        applicant_email=str(email) if email else None,
        form_sha256=form_sha,
        idempotency_key=idempotency_key,
        status=SubmissionStatus.registered,
        submitted_at=now,
        updated_at=now,
    )
    uow.session.add(submission)
    uow.flush()
    start_process(
        uow,
        engine,
        service.process,
        unit,
        case=case,
        data={"service_code": service.code, "tracking_code": code},
    )
    receipt = Receipt(
        receipt_id=uuid.uuid4(),
        tracking_code=code,
        service_code=service.code,
        service_title=service.title,
        unit_code=unit.code,
        unit_name=unit.name,
        applicant=applicant,
        rpw_number=registered.item.rpw_number,
        case_reference=case.reference,
        submitted_at=now,
        deadline=submission.deadline,
        form_sha256=form_sha,
        attachments=tuple(
            AttachmentLine(file_name=u.file_name, size=u.size, sha256=u.sha256) for u in uploads
        ),
    )
    signed, doc = _seal_and_keep(
        uow,
        store,
        sealer,
        build_receipt_xml(receipt),
        unit=unit,
        case=case,
        file_name=f"potwierdzenie-{code}.xml",
        title="Potwierdzenie złożenia wniosku (e-usługa)",
        identifier=f"{unit.code}/{registered.item.rpw_number}/UPP",
        incoming_item_id=registered.item.id,
    )
    submission.receipt_document_id = doc.id
    uow.audit(
        "eservice.submitted",
        "eservice_submission",
        submission.id,
        unit_id=unit.id,
        case_id=case.id,
        details={
            "service": service.code,
            "rpw_number": registered.item.rpw_number,
            "files": len(uploads),
            "form_sha256": form_sha,
        },
    )
    return Submitted(
        submission, pin, service, unit, registered.item.rpw_number, case.reference, signed
    )


def _unique_code(uow: UnitOfWork) -> str:
    for _ in range(10):
        code = access.new_tracking_code()
        taken = uow.session.execute(
            select(Submission.id).where(Submission.tracking_code == code)
        ).first()
        if not taken:
            return code
    raise RuntimeError("could not draw a free tracking code")


def _seal_and_keep(
    uow: UnitOfWork,
    store: BlobStore,
    sealer: Sealer,
    unsigned: bytes,
    *,
    unit: Unit,
    case: Case,
    file_name: str,
    title: str,
    identifier: str,
    incoming_item_id: uuid.UUID | None = None,
) -> tuple[bytes, Document]:
    """Sign XML made by ezd with the unit's seal and keep it as a document of the case."""
    data = sign_enveloped(unsigned, sealer.identity(uow, unit), tsa_url=sealer.tsa_url)
    with spooled(data, file_name, XML) as up:
        (stored,) = store_uploads(uow, store, [up])
        doc = create_document(
            uow,
            unit_id=unit.id,
            identifier=identifier,
            meta=DocumentMeta(
                title=title,
                creator=unit.name,
                document_date=utcnow().astimezone(WARSAW).date(),
                grouping=case.reference,
                description=title,
            ),
            file=stored,
            case_id=case.id,
            incoming_item_id=incoming_item_id,
        )
    uow.flush()
    return data, doc


# ---------------------------------------------------------------------------------------------
# Status changes (from the process) and e-mails


def submission_of_case(uow: UnitOfWork, case_id: uuid.UUID | None) -> Submission | None:
    if case_id is None:
        return None
    return uow.session.execute(
        select(Submission).where(Submission.case_id == case_id)
    ).scalar_one_or_none()


def _deadline(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else None
    return None


def record_status(
    uow: UnitOfWork,
    submission: Submission,
    status: str,
    note: str | None = None,
    deadline: Any = None,
) -> SubmissionEvent:
    """A step of the citizen's timeline; the applicant gets an e-mail about it after commit."""
    status = SubmissionStatus(status)
    now = utcnow()
    event = SubmissionEvent(submission_id=submission.id, status=status, note=(note or None), at=now)
    uow.session.add(event)
    submission.status = status
    submission.status_note = note or None
    submission.updated_at = now
    if deadline is not None and _deadline(deadline) is not None:
        submission.deadline = _deadline(deadline)
    uow.flush()
    uow.audit(
        "eservice.status",
        "eservice_submission",
        submission.id,
        unit_id=submission.unit_id,
        case_id=submission.case_id,
        details={"status": status},
    )
    if submission.applicant_email:
        uow.enqueue("eservice.email", {"event_id": str(event.id)}, dedupe_key=f"es-mail:{event.id}")
    return event


# ---------------------------------------------------------------------------------------------
# Tracking


@dataclass(frozen=True)
class TimelineStep:
    status: str
    label: str
    label_en: str
    at: datetime
    note: str | None


@dataclass(frozen=True)
class TrackingView:
    tracking_code: str
    service_code: str
    service_title: str
    unit_code: str
    unit_name: str
    status: str
    status_label: str
    status_label_en: str
    submitted_at: datetime
    deadline: datetime | None
    rpw_number: str
    case_reference: str
    timeline: list[TimelineStep]
    expected_action: str | None
    supplement_allowed: bool
    decision_available: bool
    decision: str | None


def _title(catalogue: Catalogue, code: str) -> str:
    """The service's title, or its code if the catalogue no longer lists it."""
    try:
        return catalogue.get(code).title
    except NotFound:
        return code


def tracking_view(uow: UnitOfWork, catalogue: Catalogue, s: Submission) -> TrackingView:
    events = uow.session.execute(
        select(SubmissionEvent)
        .where(SubmissionEvent.submission_id == s.id)
        .order_by(SubmissionEvent.at, SubmissionEvent.id)
    ).scalars()
    unit = OrgRepository(uow.session).unit(s.unit_id)
    case = CaseRepository(uow.session).by_id(s.case_id)
    from workflow.registry.repository import RegistryRepository

    item = RegistryRepository(uow.session).incoming(s.incoming_item_id)
    title = _title(catalogue, s.service_code)
    waiting = s.status == SubmissionStatus.supplement_requested
    status = SubmissionStatus(s.status)
    return TrackingView(
        tracking_code=s.tracking_code,
        service_code=s.service_code,
        service_title=title,
        unit_code=unit.code if unit else "",
        unit_name=unit.name if unit else "",
        status=status,
        status_label=STATUS_LABELS[status],
        status_label_en=STATUS_LABELS_EN[status],
        submitted_at=s.submitted_at,
        deadline=s.deadline,
        rpw_number=item.rpw_number if item else "",
        case_reference=case.reference if case else "",
        timeline=[
            TimelineStep(
                e.status,
                STATUS_LABELS[SubmissionStatus(e.status)],
                STATUS_LABELS_EN[SubmissionStatus(e.status)],
                e.at,
                e.note,
            )
            for e in events
        ],
        expected_action=(s.status_note or "Uzupełnij braki wniosku.") if waiting else None,
        supplement_allowed=waiting,
        decision_available=s.decision_document_id is not None,
        decision=s.decision,
    )


def document_bytes(uow: UnitOfWork, store: BlobStore, document_id: uuid.UUID | None) -> bytes:
    repo = DocumentRepository(uow.session)
    version = repo.version(document_id, 1) if document_id else None
    blob = repo.blob(version.blob_id) if version else None
    if blob is None:
        raise NotFound(
            "Dokument nie jest dostępny.", "Document not available.", code="document_not_available"
        )
    data = b"".join(store.open(blob.key))
    if hashlib.sha256(data).hexdigest() != blob.sha256:
        raise DomainError(code="storage_integrity", status=500)
    return data


def receipt_xml(uow: UnitOfWork, store: BlobStore, s: Submission) -> bytes:
    uow.audit(
        "eservice.receipt_read", "eservice_submission", s.id, unit_id=s.unit_id, case_id=s.case_id
    )
    return document_bytes(uow, store, s.receipt_document_id)


def decision_xml(uow: UnitOfWork, store: BlobStore, s: Submission) -> bytes:
    if s.decision_document_id is None:
        raise NotFound(
            "Rozstrzygnięcie nie zostało jeszcze wydane.",
            "No decision has been issued yet.",
            code="decision_not_issued",
        )
    uow.audit(
        "eservice.decision_read", "eservice_submission", s.id, unit_id=s.unit_id, case_id=s.case_id
    )
    return document_bytes(uow, store, s.decision_document_id)


def add_supplement(
    uow: UnitOfWork,
    store: BlobStore,
    s: Submission,
    uploads: Sequence[SpooledUpload],
    *,
    note: str = "",
    idempotency_key: str | None = None,
    max_files: int = 10,
) -> str:
    """The citizen's missing documents: registered in the case, then handed to the waiting
    process (message `uzupelnienie_wniosku`). Returns the register number."""
    uow.actor = SYSTEM
    if s.status != SubmissionStatus.supplement_requested:
        raise Conflict(
            "W tej sprawie nie oczekujemy teraz uzupełnienia.",
            "No supplement is expected in this case now.",
            code="supplement_not_expected",
        )
    if not uploads:
        raise _refuse(
            "Dołącz co najmniej jeden plik.", "Attach at least one file.", "files_required"
        )
    check_uploads(uploads, max_files)
    if not _clean_text(note) or len(note) > 5000:
        raise _refuse(
            "Uwagi są niepoprawne lub zbyt długie.",
            "The note is invalid or too long.",
            "note_invalid",
        )
    case = CaseRepository(uow.session).by_id(s.case_id)
    assert case is not None
    from workflow.registry.repository import RegistryRepository

    first = RegistryRepository(uow.session).incoming(s.incoming_item_id)
    assert first is not None
    cmd = RegisterIncoming(
        unit=OrgRepository(uow.session).unit(s.unit_id).code,  # type: ignore[union-attr]
        subject=f"Uzupełnienie wniosku {access.display_code(s.tracking_code)} (e-usługa)",
        sender=Party(name=first.sender_name, kind="person"),
        channel="e_service",
        case_reference=case.reference,
        notes=note,
    )
    key = f"es-sup:{s.id}:{idempotency_key}"[:100] if idempotency_key else None
    registered = register_incoming_item(uow, store, cmd, uploads, key)
    record_status(uow, s, SubmissionStatus.supplement_received)
    uow.enqueue(
        "process.message",
        {
            "name": SUPPLEMENT_MESSAGE,
            "payload": {"files": len(uploads), "rpw_number": registered.item.rpw_number},
            "correlation_key": case.reference,
        },
    )
    return registered.item.rpw_number


# ---------------------------------------------------------------------------------------------
# The decision


def request_decision(
    uow: UnitOfWork,
    case_id: uuid.UUID | None,
    decision: str,
    justification: str,
    decided_by: uuid.UUID,
) -> bool:
    """The process's decision step: the unit must have a seal (else the step becomes an
    incident the admin resolves); the worker then writes and signs the decision."""
    s = submission_of_case(uow, case_id)
    if s is None:
        raise ValueError("this case did not come from an e-service")
    if decision not in ("grant", "refuse"):
        raise ValueError(f"decision must be grant or refuse, got {decision!r}")
    if SigningRepository(uow.session).active_key(s.unit_id) is None:
        raise ValueError("the unit has no active signing key (seal)")
    uow.enqueue(
        "eservice.decision",
        {
            "submission_id": str(s.id),
            "decision": decision,
            "justification": justification[:20000],
            "decided_by": str(decided_by),
        },
        dedupe_key=f"es-decision:{s.id}",
    )
    return True


def issue_decision(
    uow: UnitOfWork, store: BlobStore, sealer: Sealer, catalogue: Catalogue, payload: dict[str, Any]
) -> None:
    """Worker step (idempotent): write the decision, sign it with the unit's seal, keep it in
    the case, show it to the citizen and let the process close the case."""
    s = uow.session.get(Submission, uuid.UUID(payload["submission_id"]), with_for_update=True)
    if s is None or s.decision_document_id is not None:
        return
    unit = OrgRepository(uow.session).unit(s.unit_id)
    case = CaseRepository(uow.session).by_id(s.case_id)
    assert unit is not None and case is not None
    granted = payload["decision"] == "grant"
    title = _title(catalogue, s.service_code)
    doc_id = uuid.uuid4()
    decision = Decision(
        document_id=doc_id,
        tracking_code=s.tracking_code,
        service_code=s.service_code,
        service_title=title,
        unit_code=unit.code,
        unit_name=unit.name,
        case_reference=case.reference,
        issued_at=utcnow(),
        granted=granted,
        operative_part=("Uwzględniam wniosek." if granted else "Odmawiam uwzględnienia wniosku.")
        + f" Sprawa {case.reference}: {title}.",
        justification=str(payload.get("justification") or ""),
    )
    _signed, doc = _seal_and_keep(
        uow,
        store,
        sealer,
        build_decision_xml(decision),
        unit=unit,
        case=case,
        file_name=f"rozstrzygniecie-{case.reference}.xml",
        title=f"Rozstrzygnięcie: {title}"[:300],
        identifier=f"{unit.code}/{case.reference}/ROZ",
    )
    s.decision_document_id = doc.id
    s.decision = payload["decision"]
    record_status(
        uow,
        s,
        SubmissionStatus.decided,
        "Wniosek uwzględniono." if granted else "Odmówiono uwzględnienia wniosku.",
    )
    uow.enqueue(
        "process.message",
        {
            "name": DECISION_MESSAGE,
            "payload": {"document_id": str(doc.id)},
            "correlation_key": case.reference,
        },
    )


def email_event(uow: UnitOfWork, event_id: uuid.UUID) -> tuple[SubmissionEvent, Submission] | None:
    event = uow.session.get(SubmissionEvent, event_id, with_for_update=True)
    if event is None or event.emailed_at is not None:
        return None
    s = uow.session.get(Submission, event.submission_id)
    if s is None or not s.applicant_email:
        return None
    return event, s
