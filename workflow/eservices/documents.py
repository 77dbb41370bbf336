"""The e-service documents ezd signs with the addressed unit's seal: the receipt of a submission
(PotwierdzenieZlozenia) and the decision (Rozstrzygniecie), in ezd's schema `eservices.xsd`
(namespace `urn:ezd:e-uslugi:2026`). Each is checked against the schema before it is signed."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lxml import etree

NS = "urn:ezd:e-uslugi:2026"
SCHEMA_PATH = Path(__file__).with_name("eservices.xsd")


@dataclass(frozen=True, kw_only=True)
class AttachmentLine:
    file_name: str
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class Receipt:
    receipt_id: uuid.UUID
    tracking_code: str
    service_code: str
    service_title: str
    unit_code: str
    unit_name: str
    applicant: str
    rpw_number: str
    case_reference: str
    submitted_at: datetime
    deadline: datetime | None
    form_sha256: str
    attachments: tuple[AttachmentLine, ...]


@dataclass(frozen=True, kw_only=True)
class Decision:
    document_id: uuid.UUID
    tracking_code: str
    service_code: str
    service_title: str
    unit_code: str
    unit_name: str
    case_reference: str
    issued_at: datetime
    granted: bool
    operative_part: str
    justification: str


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, _q(name))
    if text is not None:
        el.text = text
    return el


def _pair(parent: etree._Element, name: str, a: tuple[str, str], b: tuple[str, str]) -> None:
    el = _sub(parent, name)
    _sub(el, a[0], a[1])
    _sub(el, b[0], b[1])


@functools.cache
def schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), parser=parser))


def _finish(root: etree._Element) -> bytes:
    s = schema()
    if not s.validate(root):
        raise ValueError(f"e-service document does not match its schema: {s.error_log}")
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


def _line(value: str) -> str:
    return value.strip()[:500] or "-"


def build_receipt_xml(r: Receipt) -> bytes:
    root = etree.Element(_q("PotwierdzenieZlozenia"), nsmap={"eu": NS})
    _sub(root, "IdentyfikatorPotwierdzenia", str(r.receipt_id))
    _sub(root, "KodSledzenia", r.tracking_code)
    _pair(root, "Usluga", ("Kod", r.service_code), ("Nazwa", _line(r.service_title)))
    _pair(root, "Adresat", ("KodJednostki", r.unit_code), ("Nazwa", _line(r.unit_name)))
    _sub(root, "Wnioskodawca", _line(r.applicant))
    _sub(root, "NumerWpisu", r.rpw_number)
    _sub(root, "ZnakSprawy", r.case_reference)
    _sub(root, "DataZlozenia", r.submitted_at.isoformat(timespec="seconds"))
    if r.deadline is not None:
        _sub(root, "TerminZalatwienia", r.deadline.isoformat(timespec="seconds"))
    _sub(root, "SkrotFormularza", r.form_sha256)
    files = _sub(root, "Zalaczniki")
    for a in r.attachments:
        el = _sub(files, "Zalacznik")
        _sub(el, "NazwaPliku", _line(a.file_name))
        _sub(el, "Rozmiar", str(a.size))
        _sub(el, "Skrot", a.sha256)
    return _finish(root)


def build_decision_xml(d: Decision) -> bytes:
    root = etree.Element(_q("Rozstrzygniecie"), nsmap={"eu": NS})
    _sub(root, "IdentyfikatorDokumentu", str(d.document_id))
    _sub(root, "KodSledzenia", d.tracking_code)
    _pair(root, "Usluga", ("Kod", d.service_code), ("Nazwa", _line(d.service_title)))
    _pair(root, "Organ", ("KodJednostki", d.unit_code), ("Nazwa", _line(d.unit_name)))
    _sub(root, "ZnakSprawy", d.case_reference)
    _sub(root, "DataWydania", d.issued_at.isoformat(timespec="seconds"))
    _sub(root, "Wynik", "uwzglednienie" if d.granted else "odmowa")
    _sub(root, "Sentencja", _line(d.operative_part))
    _sub(root, "Uzasadnienie", d.justification[:20000])
    return _finish(root)
