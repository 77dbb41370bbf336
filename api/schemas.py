"""Response schemas of the HTTP API. Request bodies reuse the core's commands
(`workflow.registry.schemas`), so validation rules live in one place."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class RoleOut(BaseModel):
    unit: str
    role: str


class MeOut(BaseModel):
    username: str
    full_name: str
    roles: list[RoleOut]


class UnitOut(BaseModel):
    code: str
    name: str
    kind: str
    jrwa_plan: str
    address: str | None


class DepartmentOut(BaseModel):
    code: str
    name: str


class UserOut(BaseModel):
    username: str
    full_name: str
    email: str | None
    active: bool


class JrwaClassOut(BaseModel):
    symbol: str
    title: str
    leaf: bool
    parent: str | None
    category_lead: str | None
    category_other: str | None
    source: str


class JrwaPlanOut(BaseModel):
    code: str
    version: str
    title: str
    legal_basis: str
    valid_from: date
    valid_to: date | None
    classes: list[JrwaClassOut]


class VersionOut(BaseModel):
    version: int
    file_name: str
    size: int
    sha256: str
    media_type: str
    created_at: datetime
    note: str


class DocumentOut(BaseModel):
    id: uuid.UUID
    identifier: str
    title: str
    creator: str
    date: date
    format: str
    access: str
    type: str
    relation: str | None
    recipient: str | None
    grouping: str | None
    qualification: str | None
    language: str
    description: str | None
    rights: str | None
    case_reference: str | None
    versions: list[VersionOut]
    signature_report: dict[str, Any] | None = None


class IncomingOut(BaseModel):
    id: uuid.UUID
    rpw_number: str
    unit: str
    case_reference: str | None
    subject: str
    sender: dict[str, Any]
    channel: str
    received_at: datetime
    registered_at: datetime
    sender_reference: str
    letter_date: date | None
    attachments_count: int
    jrwa: str | None
    notes: str
    documents: list[DocumentOut]


class IncomingListOut(BaseModel):
    items: list[IncomingOut]


class OutgoingOut(BaseModel):
    id: uuid.UUID
    number: str
    unit: str
    case_reference: str | None
    subject: str
    recipients: list[dict[str, Any]]
    channel: str
    status: str
    dispatched_at: datetime | None
    letter_id: uuid.UUID | None = Field(
        None, description="Internal e-delivery: the id of the signed letter (idDokumentu)"
    )
    delivered_at: datetime | None = Field(
        None, description="Internal e-delivery: delivery time stated by the signed receipt"
    )
    created_at: datetime


class CaseOut(BaseModel):
    reference: str
    unit: str
    department: str | None
    jrwa: str
    jrwa_title: str
    jrwa_plan_version: str
    retention_category: str | None
    year: int
    seq: int
    title: str
    status: str
    opened_at: datetime
    documents: list[DocumentOut] = []
    incoming: list[str] = []


class CaseListOut(BaseModel):
    unit: str
    year: int
    jrwa: str | None
    cases: list[CaseOut]


class RecordEntryOut(BaseModel):
    at: datetime
    person: str
    action: str
    document_id: str | None
    details: dict[str, Any]


class AuditVerifyOut(BaseModel):
    ok: bool
    entries_checked: int
    first_bad_seq: int | None
    problem: str | None


class SearchHitOut(BaseModel):
    type: str = Field(description="incoming | outgoing | case | document")
    id: uuid.UUID
    unit: str
    title: str
    date: date
    number: str | None = Field(None, description="RPW / outgoing number, case reference, id")
    case_reference: str | None = None
    sender: str | None = None
    jrwa: str | None = None
    status: str | None = None
    retention_category: str | None = None
    score: float | None = None
    highlights: dict[str, list[str]] = Field(
        default_factory=dict, description="HTML-escaped text with matches in <em>"
    )
    open_url: str = Field(description="Opens the object (the view is written to the audit trail)")


class FacetBucketOut(BaseModel):
    value: str
    count: int


class SearchOut(BaseModel):
    total: int
    hits: list[SearchHitOut]
    facets: dict[str, list[FacetBucketOut]]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")
