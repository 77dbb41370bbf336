"""Turn core rows into response schemas. Reads go through repositories; no SQL here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from api.schemas import CaseOut, DocumentOut, IncomingOut, OutgoingOut, VersionOut
from workflow.cases.models import Case
from workflow.cases.repository import CaseRepository
from workflow.documents.models import Blob, Document, DocumentVersion
from workflow.documents.repository import DocumentRepository
from workflow.documents.service import StoredFile
from workflow.jrwa.repository import JrwaRepository
from workflow.org.repository import OrgRepository
from workflow.registry.models import IncomingItem, OutgoingItem
from workflow.registry.repository import RegistryRepository
from workflow.registry.service import RegisteredItem
from workflow.uow import UnitOfWork


class Presenter:
    def __init__(self, uow: UnitOfWork) -> None:
        self.org = OrgRepository(uow.session)
        self.docs = DocumentRepository(uow.session)
        self.cases = CaseRepository(uow.session)
        self.jrwa = JrwaRepository(uow.session)
        self.registry = RegistryRepository(uow.session)
        self._unit_codes: dict[object, str] = {}

    def unit_code(self, unit_id: object) -> str:
        if unit_id not in self._unit_codes:
            unit = self.org.unit(unit_id)  # type: ignore[arg-type]
            self._unit_codes[unit_id] = unit.code if unit else "?"
        return self._unit_codes[unit_id]

    def case_reference(self, case_id: object | None) -> str | None:
        if case_id is None:
            return None
        case = self.cases.by_id(case_id)  # type: ignore[arg-type]
        return case.reference if case else None

    def version(self, v: DocumentVersion) -> VersionOut:
        blob = self.docs.blob(v.blob_id)
        assert blob is not None
        return _version_out(v.version_no, v.file_name, blob, v.created_at, v.note)

    def document(self, doc: Document) -> DocumentOut:
        versions = [self.version(v) for v in self.docs.versions(doc.id)]
        return _document_out(doc, self.case_reference(doc.case_id), versions)

    def incoming(self, item: IncomingItem, *, with_documents: bool = True) -> IncomingOut:
        jrwa = self.jrwa.class_by_id(item.jrwa_class_id) if item.jrwa_class_id else None
        docs: Sequence[Document] = self.docs.for_incoming(item.id) if with_documents else []
        return _incoming_out(
            item,
            self.unit_code(item.unit_id),
            self.case_reference(item.case_id),
            jrwa.symbol if jrwa else None,
            [self.document(d) for d in docs],
        )

    def registered(self, r: RegisteredItem) -> IncomingOut:
        """The answer to a registration, from what the service holds in memory."""
        case_ref = r.case.reference if r.case else None
        return _incoming_out(
            r.item,
            r.unit_code,
            case_ref,
            r.jrwa_symbol,
            [self._new_document(d, f, case_ref) for d, f in r.documents],
        )

    @staticmethod
    def _new_document(doc: Document, f: StoredFile, case_ref: str | None) -> DocumentOut:
        version = _version_out(1, f.upload.file_name, f.blob, doc.created_at, "")
        return _document_out(doc, case_ref, [version])

    def outgoing(self, item: OutgoingItem) -> OutgoingOut:
        return OutgoingOut(
            id=item.id,
            number=item.number,
            unit=self.unit_code(item.unit_id),
            case_reference=self.case_reference(item.case_id),
            subject=item.subject,
            recipients=item.recipients,
            channel=item.channel,
            status=item.status,
            dispatched_at=item.dispatched_at,
            letter_id=item.letter_id,
            delivered_at=item.delivered_at,
            created_at=item.created_at,
        )

    def case(self, case: Case, *, full: bool = False) -> CaseOut:
        cls = self.jrwa.class_by_id(case.jrwa_class_id)
        assert cls is not None
        dept = self.org.department_by_id(case.department_id) if case.department_id else None
        out = CaseOut(
            reference=case.reference,
            unit=self.unit_code(case.unit_id),
            department=dept.code if dept else None,
            jrwa=case.jrwa_symbol,
            jrwa_title=cls.title,
            jrwa_plan_version=self._plan_version(cls.plan_id),
            retention_category=cls.category_lead,
            year=case.year,
            seq=case.seq,
            title=case.title,
            status=case.status,
            opened_at=case.opened_at,
        )
        if full:
            out.documents = [self.document(d) for d in self.docs.for_case(case.id)]
            out.incoming = [i.rpw_number for i in self.registry.incoming_for_case(case.id)]
        return out

    def _plan_version(self, plan_id: object) -> str:
        plan = self.jrwa.plan_by_id(plan_id)  # type: ignore[arg-type]
        return plan.version if plan else "?"


def _version_out(
    number: int, file_name: str, blob: Blob, created_at: datetime, note: str
) -> VersionOut:
    return VersionOut(
        version=number,
        file_name=file_name,
        size=blob.size,
        sha256=blob.sha256,
        media_type=blob.media_type,
        created_at=created_at,
        note=note,
    )


def _document_out(doc: Document, case_ref: str | None, versions: list[VersionOut]) -> DocumentOut:
    return DocumentOut(
        id=doc.id,
        identifier=doc.identifier,
        title=doc.title,
        creator=doc.creator,
        date=doc.document_date,
        format=doc.format,
        access=doc.access,
        type=doc.type,
        relation=doc.relation,
        recipient=doc.recipient,
        grouping=doc.grouping,
        qualification=doc.qualification,
        language=doc.language,
        description=doc.description,
        rights=doc.rights,
        case_reference=case_ref,
        versions=versions,
        signature_report=doc.signature_report,
    )


def _incoming_out(
    item: IncomingItem,
    unit_code: str,
    case_ref: str | None,
    jrwa: str | None,
    documents: list[DocumentOut],
) -> IncomingOut:
    return IncomingOut(
        id=item.id,
        rpw_number=item.rpw_number,
        unit=unit_code,
        case_reference=case_ref,
        subject=item.subject,
        sender=item.sender,
        channel=item.channel,
        received_at=item.received_at,
        registered_at=item.registered_at,
        sender_reference=item.sender_reference,
        letter_date=item.letter_date,
        attachments_count=item.attachments_count,
        jrwa=jrwa,
        notes=item.notes,
        documents=documents,
    )
