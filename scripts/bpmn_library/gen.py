"""Generates the process library: bpmn/*.bpmn (with their diagrams laid out in lanes) and
bpmn/forms/*.schema.json. The files in bpmn/ are the product; this is how they were drawn.
Change a process here and regenerate (`python scripts/bpmn_library/gen.py [OUT_DIR]`), or edit
the XML in a BPMN modeler; DMN tables in bpmn/decisions/ are written by hand."""

import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from lib import Proc, dump_json, schema

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "bpmn"

S, R, D, W = "Sekretariat", "Referent", "Dyrektor", "Wydział Oświaty"
A = "Archiwum"


def lit(s):
    return f'"{s}"'


# =========================================================================== forms
USERNAME = {
    "type": "string",
    "title": "Prowadzący sprawę (login)",
    "description": "Nazwa użytkownika osoby, której przydzielasz sprawę.",
    "minLength": 2,
    "maxLength": 80,
    "pattern": "^[a-z0-9._-]{2,80}$",
}


def text(title, max_len, min_len=None, description=None):
    d = {"type": "string", "title": title}
    if description:
        d["description"] = description
    if min_len:
        d["minLength"] = min_len
    d["maxLength"] = max_len
    return d


def choice(title, options, description=None):
    d = {"type": "string", "title": title}
    if description:
        d["description"] = description
    d["oneOf"] = [{"const": v, "title": t} for v, t in options]
    return d


def required_when(field, value, then):
    return {
        "if": {"properties": {field: {"const": value}}, "required": [field]},
        "then": {"required": then},
    }


FORMS = {
    "assignment": schema(
        "Dekretacja",
        {
            "handler": USERNAME,
            "instruction": text(
                "Dyspozycja",
                2000,
                description="Polecenie dla prowadzącego, np. „proszę przygotować odpowiedź”.",
            ),
        },
        ["handler"],
        description="Wskaż osobę, która załatwi sprawę, i przekaż jej dyspozycję.",
    ),
    "overdue_intervention": schema(
        "Przekroczony termin – interwencja",
        {
            "intervention": choice(
                "Podjęte działanie",
                [
                    ("remind_handler", "Ponaglenie prowadzącego sprawę"),
                    (
                        "notify_party_of_delay",
                        "Zawiadomienie strony o niezałatwieniu sprawy w terminie (art. 36 KPA)",
                    ),
                    ("no_action", "Bez dalszych działań – opóźnienie uzasadnione"),
                ],
            ),
            "intervention_note": text("Uwagi", 2000),
        },
        ["intervention"],
        description="Termin załatwienia sprawy minął, a sprawa nie jest zakończona.",
    ),
    # -- incoming_letter
    "incoming_letter_handling": schema(
        "Rozpatrzenie sprawy",
        {
            "reply_needed": {
                "type": "boolean",
                "title": "Sprawa wymaga odpowiedzi na piśmie",
            },
            "reply_addressee": text("Adresat odpowiedzi", 300, 1),
            "reply_summary": text("Projekt odpowiedzi", 10000, 1),
            "handling_note": text("Notatka z rozpatrzenia sprawy", 10000),
        },
        ["reply_needed"],
        extra=required_when("reply_needed", True, ["reply_addressee", "reply_summary"]),
    ),
    "incoming_letter_approval": schema(
        "Akceptacja",
        {
            "decision": choice(
                "Decyzja", [("approve", "Akceptuję"), ("return", "Zwracam do poprawy")]
            ),
            "approval_comment": text("Uwagi", 2000, 1),
        },
        ["decision"],
        extra=required_when("decision", "return", ["approval_comment"]),
    ),
    # -- citizen_application
    "citizen_formal_check": schema(
        "Weryfikacja formalna wniosku",
        {
            "complete": {
                "type": "boolean",
                "title": "Wniosek jest kompletny i spełnia wymogi formalne",
            },
            "missing_items": text(
                "Braki formalne do uzupełnienia",
                5000,
                1,
                description="Treść trafi do wezwania wnioskodawcy (termin 7 dni, art. 64 § 2 KPA).",
            ),
        },
        ["complete"],
        extra=required_when("complete", False, ["missing_items"]),
    ),
    "citizen_examination": schema(
        "Rozpatrzenie wniosku",
        {
            "findings": text("Ustalenia", 10000, 1),
            "proposed_decision": choice(
                "Proponowane rozstrzygnięcie",
                [("grant", "Uwzględnić wniosek"), ("refuse", "Odmówić")],
            ),
        },
        ["findings", "proposed_decision"],
    ),
    "citizen_decision": schema(
        "Decyzja",
        {
            "decision": choice(
                "Rozstrzygnięcie",
                [("grant", "Uwzględniam wniosek"), ("refuse", "Odmawiam")],
            ),
            "justification": text("Uzasadnienie", 10000, 1),
        },
        ["decision", "justification"],
    ),
    "outgoing_dispatch": schema(
        "Wysyłka odpowiedzi",
        {
            "dispatched_on": {
                "type": "string",
                "format": "date",
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                "title": "Data wysłania",
                "description": "Dzień nadania przesyłki (RRRR-MM-DD).",
            },
            "dispatch_note": text("Uwagi (np. numer nadania)", 500),
        },
        ["dispatched_on"],
        description="Wyślij pismo zarejestrowane w dzienniku przesyłek wychodzących i odnotuj wysyłkę.",
    ),
    # -- records_disposal
    "disposal_approval": schema(
        "Zatwierdzenie spisu akt do brakowania",
        {
            "decision": choice(
                "Decyzja",
                [("approve", "Zatwierdzam spis"), ("reject", "Odrzucam spis")],
            ),
            "decision_comment": text("Uwagi", 2000, 1),
        },
        ["decision"],
        extra=required_when("decision", "reject", ["decision_comment"]),
        description="Spis dokumentacji niearchiwalnej (kategoria B) po upływie okresu "
        "przechowywania; po zatwierdzeniu archiwista wystąpi o zgodę archiwum państwowego.",
    ),
    "disposal_consent": schema(
        "Zgoda archiwum państwowego",
        {
            "consent_reference": text("Znak pisma archiwum państwowego", 200, 1),
            "consent_date": {
                "type": "string",
                "format": "date",
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                "title": "Data zgody",
            },
        },
        ["consent_reference", "consent_date"],
        description="Po zapisaniu zgody system usunie treść akt, zachowując metadane, "
        "historię i ślad usunięcia.",
    ),
    # -- official_letter_school
    "official_letter_draft": schema(
        "Przygotowanie pisma",
        {
            "subject": text("Tytuł pisma (w sprawie)", 500, 1),
            "body": text("Treść pisma", 10000, 1),
        },
        ["subject", "body"],
        description="Pismo zostanie wysłane do Wydziału Oświaty po akceptacji dyrektora.",
    ),
    "official_letter_sign": schema(
        "Akceptacja i podpis",
        {
            "decision": choice(
                "Decyzja",
                [("approve", "Akceptuję i podpisuję"), ("return", "Zwracam do poprawy")],
            ),
            "approval_comment": text("Uwagi", 2000, 1),
        },
        ["decision"],
        extra=required_when("decision", "return", ["approval_comment"]),
    ),
    "official_letter_reminder": schema(
        "Ponaglenie",
        {
            "reminder_action": choice(
                "Dalsze kroki",
                [
                    ("keep_waiting", "Ponagliłem(-am) adresata – czekamy jeszcze 14 dni"),
                    ("close", "Zamykam sprawę bez odpowiedzi"),
                ],
            ),
            "reminder_note": text("Uwagi", 2000),
        },
        ["reminder_action"],
        description="Wydział Oświaty nie odpowiedział w terminie.",
    ),
    "official_letter_reply_review": schema(
        "Zapoznanie z odpowiedzią",
        {
            "acknowledged": {
                "type": "boolean",
                "const": True,
                "title": "Zapoznałem(-am) się z odpowiedzią",
            },
            "review_note": text("Uwagi", 5000),
        },
        ["acknowledged"],
    ),
    # -- official_letter_city
    "official_letter_city_reply": schema(
        "Przygotowanie odpowiedzi",
        {"reply_body": text("Treść odpowiedzi", 10000, 1)},
        ["reply_body"],
        description="Odpowiedź trafi do szkoły, która przysłała pismo.",
    ),
    # -- invoice_approval
    "invoice_description": schema(
        "Opis merytoryczny faktury",
        {
            "description": text("Opis merytoryczny (czego dotyczy wydatek)", 5000, 1),
            "budget_classification": {
                "type": "object",
                "title": "Klasyfikacja budżetowa",
                "properties": {
                    "dzial": {
                        "type": "string",
                        "title": "Dział",
                        "description": "Trzy cyfry, np. 801 (Oświata i wychowanie).",
                        "pattern": "^[0-9]{3}$",
                        "maxLength": 3,
                    },
                    "rozdzial": {
                        "type": "string",
                        "title": "Rozdział",
                        "description": "Pięć cyfr, np. 80101 (Szkoły podstawowe).",
                        "pattern": "^[0-9]{5}$",
                        "maxLength": 5,
                    },
                    "paragraf": {
                        "type": "string",
                        "title": "Paragraf",
                        "description": "Trzy cyfry lub cztery z cyfrą źródła finansowania, np. 4210.",
                        "pattern": "^[0-9]{3,4}$",
                        "maxLength": 4,
                    },
                },
                "required": ["dzial", "rozdzial", "paragraf"],
                "additionalProperties": False,
            },
            "procurement_basis": choice(
                "Podstawa udzielenia zamówienia (Pzp)",
                [
                    (
                        "below_threshold",
                        "Wartość poniżej 130 000 zł – bez stosowania Pzp (art. 2 ust. 1 pkt 1)",
                    ),
                    ("basic_procedure", "Tryb podstawowy (art. 275 Pzp)"),
                    ("open_tender", "Przetarg nieograniczony (art. 132 Pzp)"),
                    ("single_source", "Zamówienie z wolnej ręki (art. 305 i 214 Pzp)"),
                    ("framework_agreement", "Umowa ramowa (art. 311 Pzp)"),
                    ("exempt", "Wyłączenie stosowania ustawy (art. 9–14 Pzp)"),
                    ("not_applicable", "Nie dotyczy (np. opłaty ustawowe)"),
                ],
            ),
            "procurement_reference": text("Numer umowy lub zamówienia", 300),
        },
        ["description", "budget_classification", "procurement_basis"],
    ),
    "invoice_formal_check": schema(
        "Kontrola formalno-rachunkowa",
        {
            "formal_ok": {
                "type": "boolean",
                "title": "Faktura jest poprawna pod względem formalnym i rachunkowym",
            },
            "remarks": text("Uwagi", 2000, 1),
        },
        ["formal_ok"],
        extra=required_when("formal_ok", False, ["remarks"]),
    ),
    "invoice_payment_approval": schema(
        "Zatwierdzenie do wypłaty",
        {
            "decision": choice(
                "Decyzja",
                [("approve", "Zatwierdzam do wypłaty"), ("return", "Zwracam do poprawy opisu")],
            ),
            "approval_comment": text("Uwagi", 2000, 1),
        },
        ["decision"],
        extra=required_when("decision", "return", ["approval_comment"]),
    ),
    "invoice_second_approval": schema(
        "Druga akceptacja (Wydział Oświaty)",
        {
            "second_decision": choice(
                "Decyzja",
                [("approve", "Akceptuję wydatek"), ("return", "Zwracam do poprawy opisu")],
            ),
            "second_approval_comment": text("Uwagi", 2000, 1),
        },
        ["second_decision"],
        description="Wydatki powyżej 20 000 zł wymagają akceptacji Wydziału Oświaty.",
        extra=required_when("second_decision", "return", ["second_approval_comment"]),
    ),
    # -- complaint
    "complaint_explanation": schema(
        "Wyjaśnienie skargi",
        {
            "findings": text("Ustalenia wyjaśniające", 10000, 1),
            "proposed_assessment": choice(
                "Proponowana ocena skargi",
                [("justified", "Skarga zasadna"), ("unjustified", "Skarga bezzasadna")],
            ),
        },
        ["findings", "proposed_assessment"],
    ),
    "complaint_answer": schema(
        "Odpowiedź na skargę",
        {
            "decision": choice(
                "Ocena skargi",
                [("justified", "Skarga zasadna"), ("unjustified", "Skarga bezzasadna")],
            ),
            "answer": text(
                "Treść odpowiedzi",
                10000,
                1,
                description="Przy skardze bezzasadnej podaj uzasadnienie faktyczne i prawne (art. 238 KPA).",
            ),
            "remedial_actions": text("Podjęte działania naprawcze", 5000),
        },
        ["decision", "answer"],
    ),
}


# =========================================================================== e-services
# Citizen-facing forms (bpmn/eservices/<code>.schema.json) and the catalogue that names each
# service's process, JRWA class and statutory deadline (bpmn/eservices/catalogue.json).
def person_name(title):
    return text(title, 200, 2)


def date_field(title, description=None):
    d = {
        "type": "string",
        "format": "date",
        "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        "title": title,
    }
    if description:
        d["description"] = description
    return d


APPLICANT = {
    "applicant_name": person_name("Imię i nazwisko wnioskodawcy"),
    "applicant_email": {
        "type": "string",
        "format": "email",
        "title": "Adres e-mail",
        "description": "Na ten adres wyślemy powiadomienia o zmianie statusu sprawy (bez danych osobowych).",
        "maxLength": 254,
        "pattern": "^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}$",
    },
    "applicant_address": text("Adres do korespondencji", 300, 5),
    "applicant_phone": {
        "type": "string",
        "title": "Telefon (nieobowiązkowo)",
        "maxLength": 20,
        "pattern": "^[0-9 +()-]{0,20}$",
    },
}
APPLICANT_REQUIRED = ["applicant_name", "applicant_email", "applicant_address"]
PESEL = {
    "type": "string",
    "title": "PESEL ucznia",
    "description": "11 cyfr.",
    "minLength": 11,
    "maxLength": 11,
    "pattern": "^[0-9]{11}$",
}
CONSENT = {
    "type": "boolean",
    "const": True,
    "title": "Oświadczam, że podane dane są zgodne z prawdą",
}


def citizen_form(title, description, props, required):
    return schema(
        title,
        {**APPLICANT, **props, "truthfulness": CONSENT},
        APPLICANT_REQUIRED + required + ["truthfulness"],
        description=description,
    )


SERVICE_FORMS = {
    "duplikat_legitymacji": citizen_form(
        "Wniosek o duplikat legitymacji szkolnej",
        "Duplikat wydaje szkoła, która wydała legitymację (opłata 9 zł).",
        {
            "pupil_name": person_name("Imię i nazwisko ucznia"),
            "pupil_class": text("Klasa", 10, 1, description="Np. 4b."),
            "pupil_birth_date": date_field("Data urodzenia ucznia", "RRRR-MM-DD."),
            "reason": choice(
                "Powód",
                [("lost", "Utrata"), ("destroyed", "Zniszczenie"), ("stolen", "Kradzież")],
            ),
            "circumstances": text("Okoliczności (nieobowiązkowo)", 2000),
        },
        ["pupil_name", "pupil_class", "pupil_birth_date", "reason"],
    ),
    "przyjecie_spoza_obwodu": citizen_form(
        "Wniosek o przyjęcie do szkoły spoza obwodu",
        "Dla dziecka mieszkającego poza obwodem szkoły; szkoła rozpatruje wniosek, gdy ma wolne miejsca.",
        {
            "pupil_name": person_name("Imię i nazwisko dziecka"),
            "pupil_pesel": PESEL,
            "pupil_birth_date": date_field("Data urodzenia dziecka", "RRRR-MM-DD."),
            "pupil_address": text("Adres zamieszkania dziecka", 300, 5),
            "grade": {"type": "integer", "minimum": 1, "maximum": 8, "title": "Klasa (1–8)"},
            "school_year": text("Rok szkolny", 9, 9, description="Np. 2027/2028."),
            "siblings_in_school": {
                "type": "boolean",
                "title": "Rodzeństwo dziecka uczęszcza do tej szkoły",
            },
            "reasons": text("Uzasadnienie", 5000, 1),
        },
        [
            "pupil_name",
            "pupil_pesel",
            "pupil_birth_date",
            "pupil_address",
            "grade",
            "school_year",
            "reasons",
        ],
    ),
    "zwrot_kosztow_dowozu": citizen_form(
        "Wniosek o zwrot kosztów przewozu ucznia niepełnosprawnego",
        "Zwrot kosztów przewozu dziecka i opiekuna środkami własnymi do szkoły lub przedszkola.",
        {
            "pupil_name": person_name("Imię i nazwisko ucznia"),
            "certificate_number": text(
                "Numer orzeczenia o potrzebie kształcenia specjalnego", 50, 3
            ),
            "route": text("Trasa przewozu (skąd – dokąd)", 500, 5),
            "distance_km": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 500,
                "title": "Odległość w jedną stronę (km)",
            },
            "period_from": date_field("Okres od", "RRRR-MM-DD."),
            "period_to": date_field("Okres do", "RRRR-MM-DD."),
            "bank_account": {
                "type": "string",
                "title": "Numer rachunku bankowego",
                "description": "26 cyfr, bez spacji.",
                "minLength": 26,
                "maxLength": 26,
                "pattern": "^[0-9]{26}$",
            },
        },
        [
            "pupil_name",
            "certificate_number",
            "route",
            "distance_km",
            "period_from",
            "period_to",
            "bank_account",
        ],
    ),
    "skarga_wniosek": citizen_form(
        "Skarga lub wniosek",
        "Skarga na działanie szkoły lub wniosek w sprawie jej pracy (KPA dział VIII).",
        {
            "kind": choice("Rodzaj", [("complaint", "Skarga"), ("proposal", "Wniosek")]),
            "subject": text("Temat", 200, 3),
            "content": text("Treść", 10000, 10),
        },
        ["kind", "subject", "content"],
    ),
}

# code -> (title, summary, JRWA class in the school plan, statutory deadline kind)
SERVICES = {
    "duplikat_legitymacji": (
        "Duplikat legitymacji szkolnej",
        "Wniosek o wydanie duplikatu legitymacji szkolnej w razie jej utraty lub zniszczenia.",
        "431",
        "kpa_35_1m",
    ),
    "przyjecie_spoza_obwodu": (
        "Przyjęcie do szkoły spoza obwodu",
        "Wniosek o przyjęcie dziecka zamieszkałego poza obwodem szkoły.",
        "430",
        "kpa_35_1m",
    ),
    "zwrot_kosztow_dowozu": (
        "Zwrot kosztów dowozu ucznia niepełnosprawnego",
        "Wniosek o zwrot kosztów przewozu dziecka niepełnosprawnego i opiekuna do szkoły.",
        "432",
        "kpa_35_1m",
    ),
    "skarga_wniosek": (
        "Skarga lub wniosek",
        "Skarga na działanie szkoły albo wniosek w sprawie jej pracy.",
        "050",
        "kpa_237",
    ),
}


def catalogue():
    return {
        "services": [
            {
                "code": code,
                "title": title,
                "summary": summary,
                "process": f"eusluga_{code}",
                "form": f"{code}.schema.json",
                "jrwa": jrwa,
                "deadline_kind": kind,
                "unit_kinds": ["school", "kindergarten"],
            }
            for code, (title, summary, jrwa, kind) in SERVICES.items()
        ]
    }


# =========================================================================== processes
def dispatch_steps(p, user_task, col):
    """The clerk sends the registered reply (`outgoing_number`), then ezd records the dispatch:
    the case may close only once every outgoing item is sent."""
    p.user(user_task, "Wysyłka odpowiedzi", S, col, form="outgoing_dispatch")
    p.service(
        "mark_dispatched",
        "Odnotowanie wysyłki",
        S,
        col + 1,
        "dispatch_outgoing_item",
        "dispatched",
        [("number", "str", "outgoing_number"), ("dispatched_on", "str", "dispatched_on")],
    )


def incoming_letter():
    p = Proc(
        "incoming_letter",
        "Pismo przychodzące",
        "Pismo przychodzące – obieg w jednostce",
        [(S, 1), (R, 1), (D, 2)],
        doc=(
            "Obieg pisma przychodzącego: dekretacja, rozpatrzenie, akceptacja, odpowiedź. "
            "Dane startowe: case_reference, subject, unit_code, registered_at. "
            "Termin: art. 35 § 3 KPA (miesiąc); po jego upływie dyrektor dostaje zadanie interwencji."
        ),
    )
    p.start("start", "Pismo zarejestrowane", S, 0)
    p.service(
        "set_deadline",
        "Wyznaczenie terminu załatwienia",
        S,
        1,
        "compute_deadline",
        "deadline",
        [("kind", "str", lit("kpa_35_1m"))],
    )
    p.user("assign", "Dekretacja", D, 2, form="assignment", due="deadline")
    p.user(
        "handle",
        "Rozpatrzenie sprawy",
        R,
        3,
        form="incoming_letter_handling",
        assignee="handler",
        due="deadline",
    )
    p.boundary_timer(
        "handling_overdue", "Termin minął", "handle", interrupting=False, date="deadline"
    )
    p.user(
        "escalate", "Przekroczony termin – interwencja", D, 4, row=1, form="overdue_intervention"
    )
    p.end("escalation_end", "Interwencja podjęta", D, 5, row=1)
    p.user("approve", "Akceptacja", D, 4, form="incoming_letter_approval", due="deadline")
    p.gw("approval_decision", "Akceptacja?", D, 5)
    p.gw("reply_needed_decision", "Odpowiedź potrzebna?", S, 6)
    p.service(
        "register_reply",
        "Rejestracja pisma wychodzącego",
        S,
        7,
        "register_outgoing_item",
        "outgoing_number",
        [("addressee", "str", "reply_addressee"), ("subject", "str", "subject")],
    )
    dispatch_steps(p, "dispatch_reply", 8)
    p.service(
        "finish_case",
        "Zamknięcie sprawy",
        S,
        10,
        "close_case",
        "case_closed",
        [("reason", "str", lit("sprawa załatwiona"))],
    )
    p.end("end", "Sprawa załatwiona", S, 11, terminate=True)

    p.flow("flow_start_deadline", "start", "set_deadline")
    p.flow("flow_deadline_assign", "set_deadline", "assign")
    p.flow("flow_assign_handle", "assign", "handle")
    p.flow("flow_handle_approve", "handle", "approve")
    p.flow("flow_approve_decision", "approve", "approval_decision")
    p.flow(
        "flow_approved",
        "approval_decision",
        "reply_needed_decision",
        "Zaakceptowano",
        cond='decision == "approve"',
    )
    p.flow(
        "flow_returned",
        "approval_decision",
        "handle",
        "Zwrot do poprawy",
        default=True,
        kind="loop",
        y=(R, "top", 15),
        out="top",
        into="top",
    )
    p.flow("flow_overdue_escalate", "handling_overdue", "escalate")
    p.flow("flow_escalate_end", "escalate", "escalation_end")
    p.flow(
        "flow_reply_needed", "reply_needed_decision", "register_reply", "Tak", cond="reply_needed"
    )
    p.flow(
        "flow_no_reply",
        "reply_needed_decision",
        "finish_case",
        "Nie",
        default=True,
        kind="loop",
        y=(S, "bottom", -15),
        out="bottom",
        into="bottom",
    )
    p.flow("flow_register_dispatch", "register_reply", "dispatch_reply")
    p.flow("flow_dispatch_mark", "dispatch_reply", "mark_dispatched")
    p.flow("flow_mark_close", "mark_dispatched", "finish_case")
    p.flow("flow_close_end", "finish_case", "end")
    return p


def citizen_application():
    p = Proc(
        "citizen_application",
        "Wniosek obywatela (e-usługa)",
        "Wniosek obywatela – e-usługa",
        [(D, 1), (R, 1), (S, 3)],
        doc=(
            "Wniosek złożony przez e-usługę: weryfikacja formalna, wezwanie do uzupełnienia "
            "(7 dni, art. 64 § 2 KPA), rozpatrzenie, decyzja, powiadomienie wnioskodawcy. "
            "Dane startowe: case_reference, service_code, applicant_email. "
            "Uzupełnienie przychodzi jako komunikat uzupelnienie_wniosku (zmienna supplement)."
        ),
    )
    p.start("start", "Wniosek złożony", S, 0)
    p.service(
        "set_deadline",
        "Wyznaczenie terminu załatwienia",
        S,
        1,
        "compute_deadline",
        "deadline",
        [("kind", "str", lit("kpa_35_1m"))],
    )
    p.user("verify", "Weryfikacja formalna", S, 2, form="citizen_formal_check", due="deadline")
    p.gw("completeness", "Wniosek kompletny?", S, 3)
    p.service(
        "request_supplement",
        "Wezwanie do uzupełnienia braków",
        S,
        3,
        "notify",
        "notification",
        [
            ("recipient", "str", lit("applicant")),
            ("template", "str", lit("request_for_supplement")),
        ],
        row=1,
    )
    p.receive(
        "wait_supplement",
        "Oczekiwanie na uzupełnienie wniosku",
        S,
        2,
        message="uzupelnienie_wniosku",
        var="supplement",
        row=1,
    )
    p.boundary_timer(
        "supplement_overdue",
        "7 dni minęło",
        "wait_supplement",
        interrupting=True,
        duration=lit("P7D"),
    )
    p.service(
        "notify_left_unexamined",
        "Zawiadomienie o pozostawieniu bez rozpoznania",
        S,
        3,
        "notify",
        "notification",
        [
            ("recipient", "str", lit("applicant")),
            ("template", "str", lit("application_left_unexamined")),
        ],
        row=2,
    )
    p.service(
        "close_left_unexamined",
        "Zamknięcie sprawy",
        S,
        4,
        "close_case",
        "case_closed",
        [("reason", "str", lit("wniosek pozostawiony bez rozpoznania (art. 64 § 2 KPA)"))],
        row=2,
    )
    p.end("end_left_unexamined", "Pozostawienie bez rozpoznania", S, 5, row=2)
    p.user("examine", "Rozpatrzenie", R, 4, form="citizen_examination", due="deadline")
    p.user("decide", "Decyzja", D, 5, form="citizen_decision", due="deadline")
    p.service(
        "notify_decision",
        "Powiadomienie wnioskodawcy o decyzji",
        S,
        6,
        "notify",
        "notification",
        [("recipient", "str", lit("applicant")), ("template", "str", lit("decision_issued"))],
    )
    p.service(
        "finish_case",
        "Zamknięcie sprawy",
        S,
        7,
        "close_case",
        "case_closed",
        [("reason", "str", lit("wniosek rozpatrzony, decyzja przekazana wnioskodawcy"))],
    )
    p.end("end", "Wniosek rozpatrzony", S, 8)

    p.flow("flow_start_deadline", "start", "set_deadline")
    p.flow("flow_deadline_verify", "set_deadline", "verify")
    p.flow("flow_verify_gateway", "verify", "completeness")
    p.flow("flow_complete", "completeness", "examine", "Tak", cond="complete")
    p.flow("flow_incomplete", "completeness", "request_supplement", "Nie", default=True)
    p.flow("flow_request_wait", "request_supplement", "wait_supplement")
    p.flow("flow_supplemented", "wait_supplement", "verify", "Uzupełniono")
    p.flow("flow_supplement_overdue", "supplement_overdue", "notify_left_unexamined")
    p.flow("flow_unexamined_close", "notify_left_unexamined", "close_left_unexamined")
    p.flow("flow_unexamined_end", "close_left_unexamined", "end_left_unexamined")
    p.flow("flow_examine_decide", "examine", "decide")
    p.flow("flow_decide_notify", "decide", "notify_decision")
    p.flow("flow_notify_close", "notify_decision", "finish_case")
    p.flow("flow_close_end", "finish_case", "end")
    return p


def official_letter_school():
    p = Proc(
        "official_letter_school",
        "Pismo urzędowe szkoły do Wydziału Oświaty",
        "Szkoła – pismo do Wydziału Oświaty",
        [(R, 1), (S, 1), (D, 1)],
        doc=(
            "Szkoła przygotowuje pismo do Wydziału Oświaty (jednostka WOW), dyrektor je akceptuje; "
            "send_official_letter rejestruje przesyłkę wychodzącą, podpisuje pismo pieczęcią "
            "elektroniczną szkoły i doręcza je Wydziałowi (rejestracja u adresata, komunikat "
            "pismo_urzedowe uruchamia official_letter_city, poświadczenie doręczenia wraca do "
            "przesyłki). Proces czeka na komunikat odpowiedz_urzedowa (zmienna reply). "
            "Po terminie (art. 35 KPA, miesiąc) dyrektor ponagla adresata i czeka kolejne 14 dni "
            "albo zamyka sprawę. "
            "Dane startowe: case_reference."
        ),
    )
    p.start("start", "Potrzeba pisma do urzędu", R, 0)
    p.user("draft", "Przygotowanie pisma", R, 1, form="official_letter_draft")
    p.user("sign", "Akceptacja i podpis", D, 2, form="official_letter_sign")
    p.gw("sign_decision", "Akceptacja?", D, 3)
    p.service(
        "send_letter",
        "Wysłanie pisma do Wydziału Oświaty",
        S,
        4,
        "send_official_letter",
        "sent_letter",
        [("to_unit", "str", lit("WOW")), ("subject", "str", "subject"), ("body", "str", "body")],
    )
    p.service(
        "set_deadline",
        "Wyznaczenie terminu na odpowiedź",
        S,
        5,
        "compute_deadline",
        "deadline",
        [("kind", "str", lit("kpa_35_1m"))],
    )
    p.receive(
        "wait_reply", "Oczekiwanie na odpowiedź", S, 6, message="odpowiedz_urzedowa", var="reply"
    )
    p.boundary_timer(
        "reply_overdue", "Termin minął", "wait_reply", interrupting=True, date="deadline"
    )
    p.user("remind", "Ponaglenie", D, 7, form="official_letter_reminder")
    p.gw("reminder_decision", "Dalsze kroki?", D, 8)
    p.receive(
        "wait_reply_after_reminder",
        "Oczekiwanie na odpowiedź po ponagleniu",
        S,
        8,
        message="odpowiedz_urzedowa",
        var="reply",
    )
    p.boundary_timer(
        "reminder_overdue",
        "14 dni bez odpowiedzi",
        "wait_reply_after_reminder",
        interrupting=True,
        duration=lit("P14D"),
        dx=30,
    )
    p.service(
        "close_without_reply",
        "Zamknięcie sprawy bez odpowiedzi",
        D,
        9,
        "close_case",
        "case_closed",
        [("reason", "str", lit("zamknięto bez odpowiedzi Wydziału Oświaty"))],
    )
    p.end("end_without_reply", "Sprawa zamknięta bez odpowiedzi", D, 10)
    p.user("review_reply", "Zapoznanie z odpowiedzią", R, 8, form="official_letter_reply_review")
    p.service(
        "finish_case",
        "Zamknięcie sprawy",
        S,
        9,
        "close_case",
        "case_closed",
        [("reason", "str", lit("otrzymano odpowiedź Wydziału Oświaty"))],
    )
    p.end("end", "Odpowiedź otrzymana", S, 10)

    p.flow("flow_start_draft", "start", "draft")
    p.flow("flow_draft_sign", "draft", "sign")
    p.flow("flow_sign_decision", "sign", "sign_decision")
    p.flow("flow_signed", "sign_decision", "send_letter", "Podpisano", cond='decision == "approve"')
    p.flow(
        "flow_returned",
        "sign_decision",
        "draft",
        "Zwrot do poprawy",
        default=True,
        kind="loop",
        y=(R, "top", 15),
        out="top",
        into="top",
    )
    p.flow("flow_send_deadline", "send_letter", "set_deadline")
    p.flow("flow_deadline_wait", "set_deadline", "wait_reply")
    p.flow("flow_reply_received", "wait_reply", "review_reply", "Odpowiedź")
    p.flow("flow_overdue_remind", "reply_overdue", "remind")
    p.flow("flow_remind_decision", "remind", "reminder_decision")
    p.flow(
        "flow_give_up",
        "reminder_decision",
        "close_without_reply",
        "Zamknąć",
        cond='reminder_action == "close"',
    )
    p.flow(
        "flow_keep_waiting",
        "reminder_decision",
        "wait_reply_after_reminder",
        "Czekać dalej",
        default=True,
    )
    p.flow("flow_late_reply_received", "wait_reply_after_reminder", "review_reply", "Odpowiedź")
    p.flow(
        "flow_reminder_overdue", "reminder_overdue", "remind", kind="loopv", y=(D, "top", 15), dx=20
    )
    p.flow("flow_close_without_reply_end", "close_without_reply", "end_without_reply")
    p.flow("flow_review_close", "review_reply", "finish_case")
    p.flow("flow_close_end", "finish_case", "end")
    return p


def official_letter_city():
    p = Proc(
        "official_letter_city",
        "Pismo urzędowe szkoły – obsługa w Wydziale Oświaty",
        "Wydział Oświaty – pismo ze szkoły",
        [(S, 1), (W, 1)],
        doc=(
            "Uruchamiany komunikatem pismo_urzedowe (zmienna letter), gdy pismo szkoły – "
            "podpisane pieczęcią elektroniczną i doręczone wewnętrznie – zostało już "
            "zarejestrowane w dzienniku przesyłek wpływających Wydziału (sprawa procesu to sprawa "
            'tego pisma; letter["signature"] to wynik weryfikacji podpisu). Dekretacja, '
            "przygotowanie odpowiedzi, odesłanie jej szkole jako podpisanego pisma "
            "(send_official_letter z komunikatem odpowiedz_urzedowa, który wznawia proces szkoły)."
        ),
    )
    p.start("start", "Pismo ze szkoły", S, 0, message="pismo_urzedowe", var="letter")
    p.service(
        "set_deadline",
        "Wyznaczenie terminu odpowiedzi",
        S,
        1,
        "compute_deadline",
        "deadline",
        [("kind", "str", lit("kpa_35_1m"))],
    )
    p.user("register_assign", "Dekretacja pisma", S, 2, form="assignment", due="deadline")
    p.user(
        "prepare_reply",
        "Przygotowanie odpowiedzi",
        W,
        3,
        form="official_letter_city_reply",
        assignee="handler",
        due="deadline",
    )
    p.service(
        "send_reply",
        "Wysłanie odpowiedzi do szkoły",
        W,
        4,
        "send_official_letter",
        "sent_reply",
        [
            ("to_unit", "str", 'letter["from_unit"]'),
            ("subject", "str", "'Odpowiedź: ' + letter[\"subject\"]"),
            ("body", "str", "reply_body"),
            ("message", "str", lit("odpowiedz_urzedowa")),
            ("correlation_key", "str", 'letter["correlation_key"]'),
            ("your_reference", "str", 'letter["sender_reference"]'),
        ],
    )
    p.service(
        "finish_case",
        "Zamknięcie sprawy",
        W,
        5,
        "close_case",
        "case_closed",
        [("reason", "str", lit("odpowiedź wysłana do szkoły"))],
    )
    p.end("end", "Odpowiedź wysłana", W, 6)

    p.flow("flow_start_deadline", "start", "set_deadline")
    p.flow("flow_deadline_register", "set_deadline", "register_assign")
    p.flow("flow_register_prepare", "register_assign", "prepare_reply")
    p.flow("flow_prepare_send", "prepare_reply", "send_reply")
    p.flow("flow_send_close", "send_reply", "finish_case")
    p.flow("flow_close_end", "finish_case", "end")
    return p


def invoice_approval():
    p = Proc(
        "invoice_approval",
        "Opis i zatwierdzenie faktury",
        "Faktura – opis i zatwierdzenie do wypłaty",
        [(R, 1), (S, 1), (D, 1), (W, 1)],
        doc=(
            "Opis merytoryczny, kontrola formalno-rachunkowa, zatwierdzenie przez dyrektora; "
            "powyżej 20 000 zł druga akceptacja Wydziału Oświaty; przekazanie do księgowości. "
            "Dane startowe: case_reference, invoice_number, amount (liczba, PLN brutto), contractor."
        ),
    )
    p.start("start", "Faktura zarejestrowana", R, 0)
    p.user("describe", "Opis merytoryczny", R, 1, form="invoice_description")
    p.user("formal_check", "Kontrola formalno-rachunkowa", S, 2, form="invoice_formal_check")
    p.gw("formal_check_result", "Faktura poprawna?", S, 3)
    p.user("approve_payment", "Zatwierdzenie do wypłaty", D, 4, form="invoice_payment_approval")
    p.gw("payment_decision", "Zatwierdzono?", D, 5)
    p.rule("route_invoice", "Reguły zatwierdzania (DMN)", D, 6, "invoice_second_approval")
    p.gw("amount_threshold", "Druga akceptacja wymagana?", D, 7)
    p.user("second_approval", "Druga akceptacja", W, 8, form="invoice_second_approval")
    p.gw("second_approval_decision", "Zaakceptowano?", W, 9)
    p.service(
        "hand_over",
        "Przekazanie do księgowości",
        S,
        10,
        "hand_over_to_finance",
        "finance_handover",
        [("invoice_number", "str", "invoice_number"), ("amount", "float", "amount")],
    )
    p.service(
        "finish_case",
        "Zamknięcie sprawy",
        S,
        11,
        "close_case",
        "case_closed",
        [("reason", "str", lit("faktura przekazana do zapłaty"))],
    )
    p.end("end", "Faktura przekazana do zapłaty", S, 12)

    p.flow("flow_start_describe", "start", "describe")
    p.flow("flow_describe_check", "describe", "formal_check")
    p.flow("flow_check_result", "formal_check", "formal_check_result")
    p.flow("flow_formal_ok", "formal_check_result", "approve_payment", "Tak", cond="formal_ok")
    p.flow(
        "flow_formal_not_ok",
        "formal_check_result",
        "describe",
        "Nie – do poprawy",
        default=True,
        kind="loop",
        y=(R, "top", 24),
        out="top",
        into="top",
    )
    p.flow("flow_approve_decision", "approve_payment", "payment_decision")
    p.flow(
        "flow_payment_approved",
        "payment_decision",
        "route_invoice",
        "Zatwierdzono",
        cond='decision == "approve"',
    )
    p.flow("flow_route_threshold", "route_invoice", "amount_threshold")
    p.flow(
        "flow_payment_returned",
        "payment_decision",
        "describe",
        "Zwrot",
        default=True,
        kind="loop",
        y=(R, "top", 12),
        out="top",
        into="top",
        dx=-20,
    )
    p.flow(
        "flow_above_threshold",
        "amount_threshold",
        "second_approval",
        "Tak",
        cond="second_approval_required",
        kind="vh",
    )
    p.flow("flow_below_threshold", "amount_threshold", "hand_over", "Nie", default=True, kind="vh")
    p.flow("flow_second_decision", "second_approval", "second_approval_decision")
    p.flow(
        "flow_second_approved",
        "second_approval_decision",
        "hand_over",
        "Zaakceptowano",
        cond='second_decision == "approve"',
        kind="hv",
    )
    p.flow(
        "flow_second_returned",
        "second_approval_decision",
        "describe",
        "Zwrot",
        default=True,
        kind="loop",
        y=(W, "bottom", -15),
        out="bottom",
        into="bottom",
        dx=-20,
    )
    p.flow("flow_handover_close", "hand_over", "finish_case")
    p.flow("flow_close_end", "finish_case", "end")
    return p


def complaint():
    p = Proc(
        "complaint",
        "Skarga (KPA dział VIII)",
        "Skarga – rozpatrzenie (KPA dział VIII)",
        [(S, 1), (R, 1), (D, 2)],
        doc=(
            "Skarga: dekretacja, wyjaśnienie, odpowiedź dyrektora, wysyłka i powiadomienie skarżącego. "
            "Termin: art. 237 § 1 KPA (miesiąc). "
            "Dane startowe: case_reference, subject, complainant, unit_code, registered_at."
        ),
    )
    p.start("start", "Skarga wpłynęła", S, 0)
    p.service(
        "set_deadline",
        "Wyznaczenie terminu załatwienia",
        S,
        1,
        "compute_deadline",
        "deadline",
        [("kind", "str", lit("kpa_237"))],
    )
    p.user("assign", "Dekretacja skargi", D, 2, form="assignment", due="deadline")
    p.user(
        "explain",
        "Wyjaśnienie",
        R,
        3,
        form="complaint_explanation",
        assignee="handler",
        due="deadline",
    )
    p.boundary_timer(
        "explanation_overdue", "Termin minął", "explain", interrupting=False, date="deadline"
    )
    p.user(
        "escalate", "Przekroczony termin – interwencja", D, 4, row=1, form="overdue_intervention"
    )
    p.end("escalation_end", "Interwencja podjęta", D, 5, row=1)
    p.user("answer", "Odpowiedź na skargę", D, 4, form="complaint_answer", due="deadline")
    p.service(
        "register_answer",
        "Rejestracja pisma wychodzącego",
        S,
        5,
        "register_outgoing_item",
        "outgoing_number",
        [("addressee", "str", "complainant"), ("subject", "str", "subject")],
    )
    dispatch_steps(p, "dispatch_answer", 6)
    p.service(
        "notify_complainant",
        "Powiadomienie skarżącego",
        S,
        8,
        "notify",
        "notification",
        [("recipient", "str", lit("applicant")), ("template", "str", lit("complaint_answered"))],
    )
    p.service(
        "finish_case",
        "Zamknięcie sprawy",
        S,
        9,
        "close_case",
        "case_closed",
        [("reason", "str", lit("skarga rozpatrzona (art. 237 KPA)"))],
    )
    p.end("end", "Skarga załatwiona", S, 10, terminate=True)

    p.flow("flow_start_deadline", "start", "set_deadline")
    p.flow("flow_deadline_assign", "set_deadline", "assign")
    p.flow("flow_assign_explain", "assign", "explain")
    p.flow("flow_explain_answer", "explain", "answer")
    p.flow("flow_overdue_escalate", "explanation_overdue", "escalate")
    p.flow("flow_escalate_end", "escalate", "escalation_end")
    p.flow("flow_answer_register", "answer", "register_answer")
    p.flow("flow_register_dispatch", "register_answer", "dispatch_answer")
    p.flow("flow_dispatch_mark", "dispatch_answer", "mark_dispatched")
    p.flow("flow_mark_notify", "mark_dispatched", "notify_complainant")
    p.flow("flow_notify_close", "notify_complainant", "finish_case")
    p.flow("flow_close_end", "finish_case", "end")
    return p


def records_disposal():
    p = Proc(
        "records_disposal",
        "Brakowanie dokumentacji niearchiwalnej",
        "Archiwum zakładowe – brakowanie dokumentacji",
        [(A, 1), (D, 1)],
        doc=(
            "Archiwista zgłasza spis akt kategorii B po upływie okresu przechowywania "
            "(POST /api/v1/archive/disposals uruchamia proces z danymi disposal_id i "
            "disposal_number), dyrektor zatwierdza go albo odrzuca, archiwista zapisuje zgodę "
            "archiwum państwowego; potem system usuwa treść akt (metadane, historia i ślad "
            "usunięcia zostają). Kategorii A i BE nie brakuje się."
        ),
    )
    p.start("start", "Spis akt do brakowania", A, 0)
    p.user("approve", "Zatwierdzenie spisu", D, 1, form="disposal_approval")
    p.service(
        "record_decision",
        "Zapis decyzji",
        D,
        2,
        "decide_disposal",
        "disposal_status",
        [
            ("disposal_id", "str", "disposal_id"),
            ("decision", "str", "decision"),
        ],
    )
    p.gw("approved", "Zatwierdzony?", D, 3)
    p.end("rejected_end", "Spis odrzucony", D, 4)
    p.user("record_consent", "Zgoda archiwum państwowego", A, 3, form="disposal_consent")
    p.service(
        "dispose",
        "Zniszczenie akt",
        A,
        4,
        "record_disposal_consent",
        "disposal_status",
        [
            ("disposal_id", "str", "disposal_id"),
            ("consent_reference", "str", "consent_reference"),
            ("consent_date", "str", "consent_date"),
        ],
    )
    p.end("end", "Akta przekazane do zniszczenia", A, 5)

    p.flow("flow_start_approve", "start", "approve")
    p.flow("flow_approve_record", "approve", "record_decision")
    p.flow("flow_record_gateway", "record_decision", "approved")
    p.flow("flow_rejected", "approved", "rejected_end", "Nie", default=True)
    p.flow("flow_approved", "approved", "record_consent", "Tak", cond='decision == "approve"')
    p.flow("flow_consent_dispose", "record_consent", "dispose")
    p.flow("flow_dispose_end", "dispose", "end")
    return p


def status(p, id, name, lane, col, value, row=0, note=None):
    params = [("status", "str", lit(value))]
    if note:
        params.append(("note", "str", note))
    p.service(id, name, lane, col, "eservice_status", f"status_{id}", params, row=row)


def eservice(code):
    title, _summary, _jrwa, deadline_kind = SERVICES[code]
    p = Proc(
        f"eusluga_{code}",
        f"E-usługa: {title}",
        f"E-usługa – {title}",
        [(S, 1), (D, 1), (R, 3)],
        doc=(
            f"Wniosek złożony przez e-usługę „{title}”: dekretacja, weryfikacja formalna, "
            "wezwanie do uzupełnienia (7 dni, art. 64 § 2 KPA; wnioskodawca dosyła pliki na "
            "stronie śledzenia, komunikat uzupelnienie_wniosku), rozpatrzenie, decyzja "
            "dyrektora podpisana pieczęcią elektroniczną jednostki (komunikat decyzja_podpisana), "
            "zamknięcie sprawy. Każda zmiana statusu (eservice_status) trafia na oś czasu "
            "sprawy i jest wysyłana wnioskodawcy e-mailem. "
            "Dane startowe: case_reference, service_code, tracking_code."
        ),
    )
    p.start("start", "Wniosek złożony", S, 0)
    p.service(
        "set_deadline",
        "Wyznaczenie terminu załatwienia",
        S,
        1,
        "compute_deadline",
        "deadline",
        [("kind", "str", lit(deadline_kind))],
    )
    status(p, "status_registered", "Status: zarejestrowano", S, 2, "registered")
    p.user("assign", "Dekretacja", D, 3, form="assignment", due="deadline")
    status(p, "status_assigned", "Status: przydzielono", D, 4, "assigned")
    p.user(
        "verify",
        "Weryfikacja formalna",
        R,
        5,
        form="citizen_formal_check",
        assignee="handler",
        due="deadline",
    )
    p.gw("completeness", "Wniosek kompletny?", R, 6)
    status(
        p,
        "request_supplement",
        "Wezwanie do uzupełnienia braków",
        R,
        6,
        "supplement_requested",
        row=1,
        note="missing_items",
    )
    p.receive(
        "wait_supplement",
        "Oczekiwanie na uzupełnienie wniosku",
        R,
        5,
        message="uzupelnienie_wniosku",
        var="supplement",
        row=1,
    )
    p.boundary_timer(
        "supplement_overdue",
        "7 dni minęło",
        "wait_supplement",
        interrupting=True,
        duration=lit("P7D"),
    )
    p.service(
        "close_left_unexamined",
        "Zamknięcie sprawy bez rozpoznania",
        R,
        6,
        "close_case",
        "case_closed",
        [("reason", "str", lit("wniosek pozostawiony bez rozpoznania (art. 64 § 2 KPA)"))],
        row=2,
    )
    status(
        p,
        "status_left_unexamined",
        "Status: pozostawiono bez rozpoznania",
        R,
        7,
        "closed",
        row=2,
        note=lit("Wniosek pozostawiono bez rozpoznania: braków nie uzupełniono w terminie 7 dni."),
    )
    p.end("end_left_unexamined", "Pozostawienie bez rozpoznania", R, 8, row=2)
    status(p, "status_in_progress", "Status: w toku", R, 7, "in_progress")
    p.user(
        "examine",
        "Rozpatrzenie",
        R,
        8,
        form="citizen_examination",
        assignee="handler",
        due="deadline",
    )
    status(p, "status_awaiting_approval", "Status: do akceptacji", R, 9, "awaiting_approval")
    p.user("decide", "Decyzja", D, 10, form="citizen_decision", due="deadline")
    p.service(
        "issue_decision",
        "Wydanie decyzji z pieczęcią elektroniczną",
        D,
        11,
        "eservice_issue_decision",
        "decision_requested",
        [("decision", "str", "decision"), ("justification", "str", "justification")],
    )
    p.receive(
        "wait_decision",
        "Decyzja podpisana",
        S,
        12,
        message="decyzja_podpisana",
        var="signed_decision",
    )
    p.service(
        "finish_case",
        "Zamknięcie sprawy",
        S,
        13,
        "close_case",
        "case_closed",
        [("reason", "str", lit("wniosek rozpatrzony, decyzja udostępniona wnioskodawcy"))],
    )
    status(p, "status_closed", "Status: zakończono", S, 14, "closed")
    p.end("end", "Wniosek rozpatrzony", S, 15)

    p.flow("flow_start_deadline", "start", "set_deadline")
    p.flow("flow_deadline_registered", "set_deadline", "status_registered")
    p.flow("flow_registered_assign", "status_registered", "assign")
    p.flow("flow_assign_assigned", "assign", "status_assigned")
    p.flow("flow_assigned_verify", "status_assigned", "verify")
    p.flow("flow_verify_gateway", "verify", "completeness")
    p.flow("flow_complete", "completeness", "status_in_progress", "Tak", cond="complete")
    p.flow("flow_incomplete", "completeness", "request_supplement", "Nie", default=True)
    p.flow("flow_request_wait", "request_supplement", "wait_supplement")
    p.flow("flow_supplemented", "wait_supplement", "verify", "Uzupełniono")
    p.flow("flow_supplement_overdue", "supplement_overdue", "close_left_unexamined")
    p.flow("flow_unexamined_status", "close_left_unexamined", "status_left_unexamined")
    p.flow("flow_unexamined_end", "status_left_unexamined", "end_left_unexamined")
    p.flow("flow_in_progress_examine", "status_in_progress", "examine")
    p.flow("flow_examine_awaiting", "examine", "status_awaiting_approval")
    p.flow("flow_awaiting_decide", "status_awaiting_approval", "decide")
    p.flow("flow_decide_issue", "decide", "issue_decision")
    p.flow("flow_issue_wait", "issue_decision", "wait_decision")
    p.flow("flow_wait_close", "wait_decision", "finish_case")
    p.flow("flow_close_status", "finish_case", "status_closed")
    p.flow("flow_status_end", "status_closed", "end")
    return p


def eservices():
    return [partial(eservice, code) for code in SERVICES]


PROCESSES = [
    incoming_letter,
    citizen_application,
    official_letter_school,
    official_letter_city,
    invoice_approval,
    complaint,
    records_disposal,
    *eservices(),
]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "forms").mkdir(exist_ok=True)
    used = set()
    ok = True
    for make in PROCESSES:
        p = make()
        xml = p.to_xml()
        problems, crossings = p.check_geometry()
        for pr in problems:
            print(f"[{p.id}] PROBLEM {pr}")
            ok = False
        for c in crossings:
            print(f"[{p.id}] crossing {c}")
        (OUT / f"{p.id}.bpmn").write_text(xml, encoding="utf-8")
        for n in p.nodes.values():
            if n.kind == "user":
                used.add(n.props["form"])
    for name, s in FORMS.items():
        assert name in used, f"unused form {name}"
        (OUT / "forms" / f"{name}.schema.json").write_text(dump_json(s), encoding="utf-8")
    missing = used - set(FORMS)
    assert not missing, missing
    (OUT / "eservices").mkdir(exist_ok=True)
    for name, s in SERVICE_FORMS.items():
        (OUT / "eservices" / f"{name}.schema.json").write_text(dump_json(s), encoding="utf-8")
    (OUT / "eservices" / "catalogue.json").write_text(dump_json(catalogue()), encoding="utf-8")
    print("ok" if ok else "PROBLEMS")


if __name__ == "__main__":
    main()
