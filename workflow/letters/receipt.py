"""The delivery receipt of internal e-delivery (poświadczenie doręczenia, UPO-like).

When a unit receives a signed official letter from another unit, its system answers with this
receipt, signed with the addressee's electronic seal: receipt id, sender, addressee, the letter's
document id and the sender's reference, the SHA-256 of the signed letter as delivered, the
delivery time and the number the letter got in the addressee's register. The sender keeps it with
its outgoing item as proof of delivery.

ePUAP's own UPO schema is not available here, so the structure is ezd's (`receipt.xsd`, namespace
`urn:ezd:poswiadczenie-doreczenia:2026`); reading is strict (hardened parser, XSD, semantic
checks), like the letter's.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lxml import etree

from workflow.errors import ValidationFailed
from workflow.xmlsafe import parse_untrusted_xml

RECEIPT_NS = "urn:ezd:poswiadczenie-doreczenia:2026"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
SCHEMA_PATH = Path(__file__).with_name("receipt.xsd")
MAX_RECEIPT_BYTES = 1_000_000


class ReceiptInvalid(ValidationFailed):
    code = "receipt_invalid"


@dataclass(frozen=True, kw_only=True)
class ReceiptParty:
    unit_code: str
    name: str


@dataclass(frozen=True, kw_only=True)
class DeliveryReceipt:
    receipt_id: uuid.UUID
    sender: ReceiptParty
    addressee: ReceiptParty
    document_id: uuid.UUID
    sender_reference: str
    document_sha256: str
    delivered_at: datetime
    registration_number: str

    def __post_init__(self) -> None:
        if self.delivered_at.tzinfo is None:
            raise ValueError("delivered_at must be timezone-aware")


def _q(name: str) -> str:
    return f"{{{RECEIPT_NS}}}{name}"


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, _q(name))
    if text is not None:
        el.text = text
    return el


def _party(parent: etree._Element, name: str, party: ReceiptParty) -> None:
    el = _sub(parent, name)
    _sub(el, "KodJednostki", party.unit_code)
    _sub(el, "Nazwa", party.name)


def build_receipt_xml(receipt: DeliveryReceipt) -> bytes:
    """UTF-8 XML with a declaration, ready to be signed (enveloped) by the addressee."""
    root = etree.Element(_q("PoswiadczenieDoreczenia"), nsmap={"upo": RECEIPT_NS})
    _sub(root, "IdentyfikatorPoswiadczenia", str(receipt.receipt_id))
    _party(root, "Nadawca", receipt.sender)
    _party(root, "Adresat", receipt.addressee)
    _sub(root, "IdentyfikatorDokumentu", str(receipt.document_id))
    _sub(root, "ZnakSprawyNadawcy", receipt.sender_reference)
    _sub(root, "SkrotDokumentu", receipt.document_sha256).set("algorytm", SHA256_URI)
    _sub(root, "DataDoreczenia", receipt.delivered_at.isoformat(timespec="seconds"))
    _sub(root, "NumerWpisu", receipt.registration_number)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


@functools.cache
def receipt_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), parser=parser))


def _invalid(errors: list[str]) -> ReceiptInvalid:
    shown = "; ".join(errors[:3])
    return ReceiptInvalid(
        f"Poświadczenie doręczenia jest niepoprawne: {shown}",
        f"The delivery receipt is invalid: {shown}",
        details={"errors": errors},
    )


def parse_receipt_xml(data: bytes, *, max_bytes: int = MAX_RECEIPT_BYTES) -> DeliveryReceipt:
    """Read a receipt (signed or not: the signature is the signing module's job)."""
    root = parse_untrusted_xml(data, max_bytes=max_bytes, max_elements=1000, what="XML")
    if root.tag != _q("PoswiadczenieDoreczenia"):
        raise _invalid([f"root element {root.tag}"])
    schema = receipt_schema()
    if not schema.validate(root):
        raise _invalid([f"line {e.line}: {e.message}" for e in list(schema.error_log)[:10]])

    def text(path: str) -> str:
        found = root.find(path, {"upo": RECEIPT_NS})
        assert found is not None  # the schema requires every element read here
        return found.text or ""

    def party(name: str) -> ReceiptParty:
        return ReceiptParty(
            unit_code=text(f"upo:{name}/upo:KodJednostki"), name=text(f"upo:{name}/upo:Nazwa")
        )

    delivered_at = datetime.fromisoformat(text("upo:DataDoreczenia"))
    if delivered_at.tzinfo is None:
        raise _invalid(["DataDoreczenia has no time zone"])
    return DeliveryReceipt(
        receipt_id=uuid.UUID(text("upo:IdentyfikatorPoswiadczenia")),
        sender=party("Nadawca"),
        addressee=party("Adresat"),
        document_id=uuid.UUID(text("upo:IdentyfikatorDokumentu")),
        sender_reference=text("upo:ZnakSprawyNadawcy"),
        document_sha256=text("upo:SkrotDokumentu"),
        delivered_at=delivered_at,
        registration_number=text("upo:NumerWpisu"),
    )
