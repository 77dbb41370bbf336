"""The readable views of an e-service receipt: a printable HTML page and a PDF (fpdf2, DejaVu
Sans, like the case record in api/printing.py). Both are drawn from the signed XML itself, so
they show exactly what the unit's seal covers, plus the PIN when the one asking gave it (it is
never stored in clear, so it cannot be shown otherwise)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workflow.cases.service import WARSAW
from workflow.eservices.access import display_code
from workflow.eservices.documents import NS
from workflow.xmlsafe import parse_untrusted_xml

DS = "http://www.w3.org/2000/09/xmldsig#"


@dataclass(frozen=True)
class ReceiptView:
    tracking_code: str
    service: str
    unit: str
    applicant: str
    rpw_number: str
    case_reference: str
    submitted_at: str
    deadline: str
    form_sha256: str
    attachments: list[tuple[str, int, str]]
    signed: bool
    timestamped: bool

    def rows(self, pin: str | None) -> list[tuple[str, str]]:
        rows = [("Kod sprawy", display_code(self.tracking_code))]
        if pin:
            rows.append(("PIN", pin))
        return [
            *rows,
            ("Usługa", self.service),
            ("Adresat", self.unit),
            ("Wnioskodawca", self.applicant),
            ("Numer w rejestrze przesyłek wpływających", self.rpw_number),
            ("Znak sprawy", self.case_reference),
            ("Data złożenia", self.submitted_at),
            ("Termin załatwienia", self.deadline or "—"),
            ("Skrót formularza (SHA-256)", self.form_sha256),
        ]


def _when(raw: str) -> str:
    if not raw:
        return ""
    return datetime.fromisoformat(raw).astimezone(WARSAW).strftime("%Y-%m-%d %H:%M")


def read_receipt(xml: bytes) -> ReceiptView:
    root = parse_untrusted_xml(xml, max_bytes=2_000_000, max_elements=5000, what="XML")
    ns = {"eu": NS, "ds": DS}

    def text(path: str) -> str:
        found = root.find(path, ns)
        return (found.text or "") if found is not None else ""

    return ReceiptView(
        tracking_code=text("eu:KodSledzenia"),
        service=text("eu:Usluga/eu:Nazwa"),
        unit=text("eu:Adresat/eu:Nazwa"),
        applicant=text("eu:Wnioskodawca"),
        rpw_number=text("eu:NumerWpisu"),
        case_reference=text("eu:ZnakSprawy"),
        submitted_at=_when(text("eu:DataZlozenia")),
        deadline=_when(text("eu:TerminZalatwienia"))[:10],
        form_sha256=text("eu:SkrotFormularza"),
        attachments=[
            (
                a.findtext("eu:NazwaPliku", "", ns),
                int(a.findtext("eu:Rozmiar", "0", ns)),
                a.findtext("eu:Skrot", "", ns),
            )
            for a in root.findall("eu:Zalaczniki/eu:Zalacznik", ns)
        ],
        signed=root.find("ds:Signature", ns) is not None,
        timestamped=bool(root.xpath("//*[local-name()='SignatureTimeStamp']")),
    )


def receipt_html(view: ReceiptView, pin: str | None) -> str:
    from api.web.render import environment

    return (
        environment("pl")
        .get_template("public/receipt_print.html")
        .render(view=view, rows=view.rows(pin), pin=pin)
    )


def receipt_pdf(view: ReceiptView, pin: str | None) -> bytes:
    from api.printing import new_pdf

    pdf = new_pdf(f"Potwierdzenie złożenia wniosku {display_code(view.tracking_code)}")
    pdf.set_font("DejaVu", "B", 14)
    pdf.multi_cell(0, 8, "Potwierdzenie złożenia wniosku", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    for label, value in view.rows(pin):
        pdf.multi_cell(0, 6, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("DejaVu", "B", 10)
    pdf.cell(0, 6, "Załączniki", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 8)
    for name, size, sha in view.attachments or [("brak", 0, "")]:
        pdf.multi_cell(0, 5, f"{name} ({size} B) {sha}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "", 9)
    pdf.multi_cell(0, 5, _seal_note(view), new_x="LMARGIN", new_y="NEXT")
    if pin:
        pdf.multi_cell(0, 5, PIN_NOTE, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


PIN_NOTE = (
    "Zachowaj kod sprawy i PIN: są potrzebne do sprawdzenia stanu sprawy, dosłania "
    "dokumentów i pobrania rozstrzygnięcia. Nie przechowujemy PIN-u w postaci jawnej "
    "i nie możemy go odtworzyć."
)


def _seal_note(view: ReceiptView) -> str:
    level = "ze znacznikiem czasu (XAdES-T)" if view.timestamped else "(XAdES)"
    return (
        f"Potwierdzenie w postaci pliku XML podpisano pieczęcią elektroniczną jednostki "
        f"„{view.unit}” {level}. Ten wydruk jest jego czytelną postacią."
    )
