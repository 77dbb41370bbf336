"""Text extraction for search: real PDF, DOCX, ODT, XML letters, plain text and OCR (tesseract
with Polish data, installed by scripts/services.sh); hostile files (a zip bomb disguised as
DOCX, an encrypted or corrupt PDF) are recorded as skipped, never crash the worker."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from search.extract import DOCX, ODT, Extractor
from tests.conftest import IN_CI, Backend
from tests.helpers import letter_meta, register, token
from workflow.db import utcnow
from workflow.outbox.models import OutboxEvent
from workflow.search.models import DocumentText

TEXT = "Skarga rodzica na ocenę z matematyki"


def make_pdf(text: str) -> bytes:
    """A one-page PDF with a text layer (Helvetica, ASCII)."""
    stream = f"BT /F1 18 Tf 50 750 Td ({text}) Tj ET".encode()
    objs = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R"
        b"/Resources<</Font<</F1 5 0 R>>>>>>",
        b"<</Length %d>>stream\n" % len(stream) + stream + b"\nendstream",
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref))
    return out.getvalue()


def make_docx(text: str) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading("Pismo", 1)
    d.add_paragraph(text)
    table = d.add_table(rows=1, cols=1)
    table.cell(0, 0).text = "Tabela: zwolnienie lekarskie"
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def make_odt(text: str) -> bytes:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    d = OpenDocumentText()
    d.text.addElement(H(outlinelevel=1, text="Pismo"))
    d.text.addElement(P(text=text))
    buf = io.BytesIO()
    d.write(buf)
    return buf.getvalue()


def render(text: str, fmt: str) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (1400, 200), "white")
    draw = ImageDraw.Draw(img)
    draw.text((30, 60), text, fill="black", font=ImageFont.load_default(size=48))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def zip_bomb_docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"<w:document>" + b"\0" * (40 * 1024 * 1024))
    return buf.getvalue()


def encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf("Tajne"))))
    w.encrypt(user_password="tajne", owner_password="tajne2")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def extract(tmp_path: Path, data: bytes, media_type: str, name: str) -> object:
    p = tmp_path / name
    p.write_bytes(data)
    return Extractor().extract(p, media_type, name)


def need_ocr() -> None:
    if not Extractor().ocr_available():
        msg = "tesseract with Polish data is not installed (scripts/services.sh up installs it)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


def test_text_formats(tmp_path: Path) -> None:
    from workflow.letters.letter import Letter, Party, build_letter_xml

    cases = [
        (make_pdf("Skarga rodzica na ocene z matematyki"), "application/pdf", "a.pdf", "pdf"),
        (make_docx(TEXT), DOCX, "a.docx", "docx"),
        (make_odt(TEXT), ODT, "a.odt", "odt"),
        (TEXT.encode("cp1250"), "text/plain", "a.txt", "text"),
        (f"<pismo><tresc>{TEXT}</tresc></pismo>".encode(), "application/xml", "a.xml", "xml"),
    ]
    for data, mt, name, method in cases:
        r = extract(tmp_path, data, mt, name)
        assert r.status == "ok" and r.method == method, (name, r)  # type: ignore[attr-defined]
        assert "Skarga rodzica" in r.text, name  # type: ignore[attr-defined]
    assert "zwolnienie lekarskie" in extract(tmp_path, make_docx(TEXT), DOCX, "b.docx").text  # type: ignore[attr-defined]

    from datetime import date

    letter = Letter(
        sender=Party(name="Szkoła Podstawowa nr 58"),
        addressee=Party(name="Wydział Oświaty"),
        letter_date=date(2026, 3, 2),
        place="Miasto",
        our_reference="SP58.431.1.2026",
        subject="Arkusz organizacyjny",
        body=("Przesyłamy arkusz organizacyjny szkoły.",),
    )
    r = extract(tmp_path, build_letter_xml(letter), "application/xml", "pismo.xml")
    assert r.status == "ok" and r.method == "letter"  # type: ignore[attr-defined]
    assert "Przesyłamy arkusz" in r.text and "Wydział Oświaty" in r.text  # type: ignore[attr-defined]


def test_hostile_files_are_refused_with_a_reason(tmp_path: Path) -> None:
    r = extract(tmp_path, zip_bomb_docx(), DOCX, "bomb.docx")
    assert r.status == "skipped" and "zip bomb" in r.reason  # type: ignore[attr-defined]
    r = extract(tmp_path, encrypted_pdf(), "application/pdf", "tajne.pdf")
    assert r.status == "skipped" and "encrypted" in r.reason  # type: ignore[attr-defined]
    for data, name in [
        (b"%PDF-1.4\n garbage \x00\xff", "zly.pdf"),
        (b"PK\x03\x04 not a zip", "zly.docx"),
        (b"<a><b></a>", "zly.xml"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "dtd.xml"),
    ]:
        r = extract(tmp_path, data, "application/octet-stream", name)
        assert r.status in ("failed", "skipped", "empty"), (name, r)  # type: ignore[attr-defined]


def test_ocr_of_an_image_and_an_image_only_pdf(tmp_path: Path) -> None:
    need_ocr()
    r = extract(tmp_path, render("Skarga rodzica w sprawie oceny", "PNG"), "image/png", "s.png")
    assert r.status == "ok" and r.method == "ocr", r  # type: ignore[attr-defined]
    assert "Skarga" in r.text and "rodzica" in r.text  # type: ignore[attr-defined]
    r = extract(
        tmp_path, render("Zwolnienie lekarskie nauczyciela", "PDF"), "application/pdf", "scan.pdf"
    )
    assert r.status == "ok" and r.method == "pdf+ocr", r  # type: ignore[attr-defined]
    assert "Zwolnienie" in r.text  # type: ignore[attr-defined]


def test_worker_extracts_indexes_and_records_refusals(
    sqlite_backend: Backend, tmp_path: Path
) -> None:
    with sqlite_backend.client() as client:
        h = token(client, "clerk.sp58")
        files = [
            ("pismo.docx", make_docx("Prośba o zwolnienie z zajęć wychowania fizycznego"), DOCX),
            ("bomba.docx", zip_bomb_docx(), DOCX),
            ("tajne.pdf", encrypted_pdf(), "application/pdf"),
            ("zly.pdf", b"%PDF-1.4\n garbage", "application/pdf"),
        ]
        r = register(client, h, letter_meta(subject="Pismo od rodzica"), files)
        assert r.status_code == 201, r.text
        c = sqlite_backend.container
        later = utcnow() + timedelta(hours=1)
        while c.worker.run_once(later):
            pass
        with c.uow() as uow:
            texts = {t.version_id: t for t in uow.session.execute(select(DocumentText)).scalars()}
            events = (
                uow.session.execute(select(OutboxEvent).where(OutboxEvent.topic == "search.index"))
                .scalars()
                .all()
            )
            uow.session.expunge_all()
        assert events and all(e.status == "done" for e in events)
        statuses = sorted((t.status, t.method) for t in texts.values())
        assert ("ok", "docx") in statuses
        assert ("skipped", "docx") in statuses and ("skipped", "pdf") in statuses
        assert any(s == "failed" for s, _ in statuses)
        body = client.get(
            "/api/v1/search", params={"q": "zwolnienia z zajęć", "type": "document"}, headers=h
        ).json()
        assert [x["title"] for x in body["hits"]] == ["pismo.docx"]
        assert body["hits"][0]["highlights"]["content"]
