"""Printable case record (metryka sprawy) as HTML and PDF, and audit trail exports (CSV/JSON).

The record comes from `workflow.cases.service.case_record` (the audit trail itself); this module
only lays it out. The PDF is drawn with fpdf2 in DejaVu Sans (Polish letters), the font of
Debian's fonts-dejavu-core; without it the PDF answers 503 `pdf_font_missing` and the HTML page
still prints.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from workflow.audit.models import AuditEntry
from workflow.cases.models import Case
from workflow.cases.service import WARSAW, CaseRecordEntry
from workflow.errors import DomainError

if TYPE_CHECKING:
    from fpdf import FPDF

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)

ACTIONS_PL = {
    "case.opened": "Wszczęcie sprawy",
    "case.closed": "Zakończenie sprawy",
    "case.reopened": "Wznowienie sprawy",
    "case.read": "Wgląd w sprawę",
    "incoming.registered": "Rejestracja przesyłki wpływającej",
    "outgoing.registered": "Rejestracja przesyłki wychodzącej",
    "outgoing.dispatched": "Wysłanie przesyłki",
    "document.created": "Dodanie dokumentu",
    "document.version_added": "Nowa wersja dokumentu",
    "document.content_disposed": "Zniszczenie treści dokumentu (brakowanie)",
    "process.started": "Uruchomienie procesu",
    "task.completed": "Wykonanie zadania",
    "task.reassigned": "Dekretacja",
    "letter.sent": "Wysłanie pisma urzędowego",
    "letter.dispatched": "Podpisanie i nadanie pisma",
    "letter.received": "Doręczenie pisma urzędowego",
    "letter.delivery_confirmed": "Poświadczenie doręczenia",
    "archive.transferred": "Przekazanie do archiwum zakładowego",
    "archive.locked": "Zabezpieczenie akt (WORM)",
    "archive.lent": "Udostępnienie akt",
    "archive.returned": "Zwrot akt",
}


class PdfFontMissing(DomainError):
    code = "pdf_font_missing"
    status = 503
    message_pl = "Brak czcionki DejaVu Sans (pakiet fonts-dejavu-core): wydrukuj wersję HTML."
    message_en = "The DejaVu Sans font (package fonts-dejavu-core) is missing: print the HTML."


def _when(at: datetime) -> str:
    return at.astimezone(WARSAW).strftime("%Y-%m-%d %H:%M")


def _rows(entries: Sequence[CaseRecordEntry]) -> list[tuple[str, str, str, str]]:
    return [
        (
            _when(e.at),
            e.person,
            ACTIONS_PL.get(e.action, e.action),
            e.document_id or "",
        )
        for e in entries
    ]


def record_html(case: Case, unit_name: str, entries: Sequence[CaseRecordEntry]) -> str:
    esc = html.escape
    body = "".join(
        f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{esc(c)}</td><td>{esc(d)}</td></tr>"
        for a, b, c, d in _rows(entries)
    )
    closed = _when(case.closed_at) if case.closed_at else "—"
    return f"""<!doctype html>
<html lang="pl"><head><meta charset="utf-8">
<title>Metryka sprawy {esc(case.reference)}</title>
<style>
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #111; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9em; }}
th, td {{ border: 1px solid #444; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }}
th {{ background: #eee; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }}
@media print {{ body {{ margin: 0; }} }}
</style></head>
<body><main>
<h1>Metryka sprawy {esc(case.reference)}</h1>
<dl>
<dt>Jednostka</dt><dd>{esc(unit_name)}</dd>
<dt>Tytuł sprawy</dt><dd>{esc(case.title)}</dd>
<dt>Klasa JRWA</dt><dd>{esc(case.jrwa_symbol)}</dd>
<dt>Wszczęta</dt><dd>{_when(case.opened_at)}</dd>
<dt>Zakończona</dt><dd>{closed}</dd>
</dl>
<table>
<caption>Czynności w sprawie (z dziennika zdarzeń)</caption>
<thead><tr><th scope="col">Data</th><th scope="col">Osoba</th><th scope="col">Czynność</th>
<th scope="col">Identyfikator dokumentu</th></tr></thead>
<tbody>{body}</tbody>
</table>
</main></body></html>
"""


def new_pdf(title: str) -> FPDF:
    """An A4 page in DejaVu Sans ("DejaVu", regular and "B"), Polish letters included."""
    from fpdf import FPDF

    font = next((p for p in FONT_CANDIDATES if p.exists()), None)
    if font is None:
        raise PdfFontMissing()
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_title(title)
    pdf.set_creator("ezd")
    pdf.add_font("DejaVu", "", str(font))
    bold = font.with_name("DejaVuSans-Bold.ttf")
    pdf.add_font("DejaVu", "B", str(bold if bold.exists() else font))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    return pdf


def record_pdf(case: Case, unit_name: str, entries: Sequence[CaseRecordEntry]) -> bytes:
    pdf = new_pdf(f"Metryka sprawy {case.reference}")
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 10, f"Metryka sprawy {case.reference}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    closed = _when(case.closed_at) if case.closed_at else "—"
    for label, value in (
        ("Jednostka", unit_name),
        ("Tytuł sprawy", case.title),
        ("Klasa JRWA", case.jrwa_symbol),
        ("Wszczęta", _when(case.opened_at)),
        ("Zakończona", closed),
    ):
        pdf.multi_cell(0, 6, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "", 8)
    with pdf.table(col_widths=(28, 45, 62, 55), text_align="LEFT") as table:
        header = table.row()
        for title in ("Data", "Osoba", "Czynność", "Identyfikator dokumentu"):
            header.cell(title)
        for values in _rows(entries):
            row = table.row()
            for value in values:
                row.cell(value)
    return bytes(pdf.output())


TRAIL_FIELDS = (
    "seq",
    "occurred_at",
    "actor_name",
    "action",
    "object_type",
    "object_id",
    "document_id",
    "details",
    "entry_hash",
)


def _trail_row(e: AuditEntry) -> dict[str, str]:
    return {
        "seq": str(e.seq),
        "occurred_at": e.occurred_at.isoformat(),
        "actor_name": e.actor_name,
        "action": e.action,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "document_id": str(e.document_id) if e.document_id else "",
        "details": json.dumps(e.details, ensure_ascii=False, sort_keys=True),
        "entry_hash": e.entry_hash,
    }


def _cell(value: str) -> str:
    # a spreadsheet would run a cell starting with = + - @ as a formula (CSV injection)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def trail_csv(entries: Sequence[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TRAIL_FIELDS)
    writer.writeheader()
    for e in entries:
        writer.writerow({k: _cell(v) for k, v in _trail_row(e).items()})
    return out.getvalue()


def trail_json(entries: Sequence[AuditEntry]) -> str:
    return json.dumps([_trail_row(e) for e in entries], ensure_ascii=False, indent=1)
