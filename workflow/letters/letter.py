"""Letters as XML in the structure of the ePUAP form "Pismo ogólne do podmiotu publicznego".

Schools and the city office exchange official letters as XML documents that any Polish
administration system can read: the CRD form (wzór) "Pismo ogólne do podmiotu publicznego",
`wnio:Dokument` with three parts, then an optional enveloped XAdES `ds:Signature` (another module
signs; this one writes the document that gets signed and reads it back, ignoring the signature).

What the structure is based on (public material, read through the project's search tool; the
form's own schema, `schemat.xsd`, was not available, so ezd ships an XSD for the subset it
writes, `letter.xsd` with `crd_*.xsd`, and says below what is its own):

* The form's reference stylesheet (`styl.xsl`) for wzór `http://crd.gov.pl/wzor/2017/10/24/4566/`,
  titled "Pismo ogólne do podmiotu publicznego", and the one of its predecessor
  `http://crd.gov.pl/wzor/2013/12/12/1410/` (public copies found in GitHub code by the search
  tool, which did not name their repositories). Both read the same paths, so ezd takes the newer
  wzór's namespace. They give the namespaces and the paths this module uses:
  `wnio:DaneDokumentu/str:Naglowek/str:NazwaDokumentu`,
  `wnio:DaneDokumentu/str:Naglowek/meta:Identyfikator/meta:Wartosc`,
  `wnio:DaneDokumentu/meta:Data[@typDaty='stworzony']/meta:Czas`,
  `wnio:DaneDokumentu/str:Nadawcy|str:Adresaci/meta:Podmiot/inst:Instytucja` with
  `inst:NazwaInstytucji`, `inst:IdInstytucji/inst:KRS|inst:REGON|inst:InnyIdentyfikator`
  (`inst:TypIdentyfikatora`, `inst:WartoscIdentyfikatora`), `adr:Adres`, `adr:Kontakt/adr:Email`;
  `wnio:TrescDokumentu/wnio:MiejscowoscDokumentu`, `wnio:Tytul`,
  `wnio:RodzajWnioskuRozszerzony/@rodzaj`, `wnio:Informacje/wnio:Informacja` (the body, one per
  paragraph) and `str:Zalaczniki/str:Zalacznik` with `@nazwaPliku`, `@kodowanie` (`base64`:
  the file inside, `URI`: a reference) and children `str:OpisZalacznika`, `str:DaneZalacznika`;
  for a `URI` attachment the 2013 stylesheet shows `str:OpisZalacznika` as "wartość skrótu w
  chwili załączania" (the digest at the time of attaching). A signature is looked for at
  `wnio:Dokument/ds:Signature` (with `SigningTime` inside `ds:Object`).
* wzychla/OldMusicBox.ePUAP.Client (`Model/Dokumenty/Dokument.cs`, `Constants/Namespaces.cs`,
  and its demo `CreateExamplePismoOgolne`), a .NET ePUAP client that builds this form (with the
  2013 wzór's wnio namespace): the five shared CRD namespace URIs below, the order
  OpisDokumentu, DaneDokumentu, TrescDokumentu; `meta:Data typDaty="stworzony"` in both
  OpisDokumentu and DaneDokumentu; DaneDokumentu as Naglowek, Data, Adresaci, Nadawcy;
  TrescDokumentu with `format="text/xml" kodowanie="XML"` holding MiejscowoscDokumentu, Tytul,
  RodzajWnioskuRozszerzony, Informacje, Zalaczniki; the media type of an attachment in
  `str:Zalacznik/@format` (not `@typ`).
* Public code that fills other CRD forms: OpisDokumentu as `meta:Data`, `meta:Identyfikator
  typIdentyfikatora=…`, `meta:RodzajDokumentu/meta:Kategoria`, `meta:Jezyk kodJezyka="pol"`;
  the child order of `adr:Adres` (KodPocztowy, Poczta, Miejscowosc, Ulica, Budynek, Lokal, Kraj,
  …, Uwagi) and of `oso:Osoba` (IdOsoby, names, Adres, Kontakt).
* The namespace URIs: wnio `http://crd.gov.pl/wzor/2017/10/24/4566/`, str
  `http://crd.gov.pl/xml/schematy/struktura/2009/11/16/`, meta
  `http://crd.gov.pl/xml/schematy/meta/2009/11/16/`, adr
  `http://crd.gov.pl/xml/schematy/adres/2009/11/09/` (note: 09, not 16), inst
  `http://crd.gov.pl/xml/schematy/instytucja/2009/11/16/`, oso
  `http://crd.gov.pl/xml/schematy/osoba/2009/11/16/` (not used: ezd's parties are institutions).

ezd's own choices, where the public material says nothing or is incomplete:

* `meta:Identyfikator` values: `typIdentyfikatora="idDokumentu"` (the letter's UUID) in
  OpisDokumentu; `"znakSprawy"` (our case reference, required) and `"znakSprawyAdresata"` (the
  addressee's reference, optional) in `str:Naglowek`. `str:NazwaDokumentu` is always
  "Pismo ogólne do podmiotu publicznego", `meta:Kategoria` "tekst",
  `wnio:RodzajWnioskuRozszerzony rodzaj="inne pismo"`.
* A party's unit code is `inst:InnyIdentyfikator` with `inst:TypIdentyfikatora="kodJednostki"`;
  the child order of `inst:Instytucja` (IdInstytucji, NazwaInstytucji, Adres, Kontakt) and of
  `inst:IdInstytucji` (KRS, REGON, InnyIdentyfikator) is inferred, not copied.
* Address lines: two lines "Ulica Budynek[/Lokal]" and "NN-NNN Miejscowość" are written as
  `adr:Ulica`, `adr:Budynek`, `adr:Lokal`, `adr:KodPocztowy`, `adr:Miejscowosc`; any other shape
  is kept verbatim in `adr:Uwagi`, one line per line, so the round trip is always exact.
* The SHA-256 of every attachment is in `str:OpisZalacznika` as `sha256:<hex>` (the 2013
  stylesheet's "digest at the time of attaching"), also for embedded files, where it is checked
  on reading. Base64 is written unwrapped. No `xml-stylesheet` processing instruction is written
  (it would point viewers at crd.gov.pl) and none is read (the hardened parser drops them).
* The content models in the XSD (required parts, one sender and one addressee, limits).

Reading is strict: only this wzór's namespace, only the subset above (validated with the XSD,
whose first errors are reported with line numbers), then semantic checks (UUID, dates, digests,
base64), each failure a `LetterInvalid` with a Polish and an English message.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from workflow.errors import ValidationFailed
from workflow.xmlsafe import parse_untrusted_xml

WNIO_NS = "http://crd.gov.pl/wzor/2017/10/24/4566/"
META_NS = "http://crd.gov.pl/xml/schematy/meta/2009/11/16/"
STR_NS = "http://crd.gov.pl/xml/schematy/struktura/2009/11/16/"
ADR_NS = "http://crd.gov.pl/xml/schematy/adres/2009/11/09/"
INST_NS = "http://crd.gov.pl/xml/schematy/instytucja/2009/11/16/"
OSO_NS = "http://crd.gov.pl/xml/schematy/osoba/2009/11/16/"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"

NSMAP: dict[str, str] = {
    "wnio": WNIO_NS,
    "meta": META_NS,
    "str": STR_NS,
    "adr": ADR_NS,
    "inst": INST_NS,
}
_PREFIXES = {**{uri: prefix for prefix, uri in NSMAP.items()}, DS_NS: "ds"}

DOCUMENT_NAME = "Pismo ogólne do podmiotu publicznego"
ID_DOCUMENT = "idDokumentu"
ID_OUR_REFERENCE = "znakSprawy"
ID_YOUR_REFERENCE = "znakSprawyAdresata"
ID_UNIT_CODE = "kodJednostki"
DATE_CREATED = "stworzony"
SHA256_PREFIX = "sha256:"

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_ELEMENTS = 20_000

SCHEMA_PATH = Path(__file__).with_name("letter.xsd")

# ISO 639-1 (the dataclass) <-> ISO 639-2 (meta:Jezyk/@kodJezyka). Written with the T codes;
# the B codes of the same languages are accepted on reading.
_LANG_TO_XML = {
    "pl": "pol",
    "en": "eng",
    "de": "deu",
    "uk": "ukr",
    "fr": "fra",
    "cs": "ces",
    "sk": "slk",
    "lt": "lit",
    "ru": "rus",
}
_LANG_FROM_XML = {
    **{v: k for k, v in _LANG_TO_XML.items()},
    "ger": "de",
    "fre": "fr",
    "cze": "cs",
    "slo": "sk",
}

_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_LINE_BREAK = re.compile("[\r\n]")
_STREET = re.compile(
    r"(?P<ulica>\S(?:[^\r\n]*\S)?) (?P<budynek>\d+[A-Za-z]?)(?:/(?P<lokal>[0-9A-Za-z]+))?"
)
_POSTAL_CITY = re.compile(r"(?P<kod>\d{2}-\d{3}) (?P<miasto>\S(?:[^\r\n]*\S)?)")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+\-]+/[A-Za-z0-9!#$&^_.+\-]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_XSD_WHITESPACE = b" \t\r\n"


class LetterInvalid(ValidationFailed):
    code = "letter_invalid"
    message_pl = "Pismo jest niepoprawne."
    message_en = "The letter is invalid."


def _invalid(pl: str, en: str, *, code: str = "letter_invalid", **details: Any) -> LetterInvalid:
    return LetterInvalid(pl, en, code=code, details=details)


def _check_text(value: object, where: str, *, single_line: bool = True, max_len: int = 500) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(
            f"Brak wymaganego pola: {where}.",
            f"Missing required field: {where}.",
            code="letter_field_missing",
            field=where,
        )
    if len(value) > max_len:
        raise _invalid(
            f"Pole {where} jest za długie (limit {max_len} znaków).",
            f"Field {where} is too long (limit {max_len} characters).",
            field=where,
        )
    if _BAD_CHARS.search(value) or (single_line and _LINE_BREAK.search(value)):
        raise _invalid(
            f"Pole {where} zawiera niedozwolone znaki.",
            f"Field {where} contains characters that are not allowed.",
            field=where,
        )
    return value


def _check_optional(value: object, where: str, *, max_len: int = 500) -> str | None:
    return None if value is None else _check_text(value, where, max_len=max_len)


def _check_pattern(value: str | None, pattern: re.Pattern[str], where: str) -> None:
    if value is not None and not pattern.fullmatch(value):
        raise _invalid(
            f"Pole {where} ma niepoprawny format.",
            f"Field {where} has an invalid format.",
            field=where,
        )


@dataclass(frozen=True, kw_only=True)
class Party:
    """A sender or addressee: an institution (a school, the city office, another body)."""

    name: str
    unit_code: str | None = None
    address_lines: tuple[str, ...] = ()
    email: str | None = None
    regon: str | None = None
    krs: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.name, "nazwa", max_len=300)
        _check_optional(self.unit_code, "kod jednostki", max_len=50)
        lines = tuple(self.address_lines)
        object.__setattr__(self, "address_lines", lines)
        if len(lines) > 10:
            raise _invalid(
                "Adres ma za dużo wierszy (limit 10).",
                "The address has too many lines (limit 10).",
                field="adres",
            )
        for line in lines:
            _check_text(line, "adres", max_len=200)
        _check_optional(self.email, "e-mail", max_len=254)
        _check_pattern(self.email, _EMAIL, "e-mail")
        _check_pattern(self.regon, re.compile(r"\d{9}|\d{14}"), "REGON")
        _check_pattern(self.krs, re.compile(r"\d{10}"), "KRS")


@dataclass(frozen=True, kw_only=True)
class Attachment:
    """A file embedded in the letter (`content`) or referenced by it (`reference`: a document
    id or a URL). `sha256` (lowercase hex) is computed for embedded content and must match it
    when given; a reference may carry the digest of the file it points to."""

    file_name: str
    media_type: str
    content: bytes | None = field(default=None, repr=False)
    reference: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.file_name, "nazwa pliku załącznika", max_len=255)
        if "/" in self.file_name or "\\" in self.file_name:
            raise _invalid(
                "Nazwa pliku załącznika nie może zawierać ścieżki.",
                "An attachment's file name must not contain a path.",
                field="nazwa pliku załącznika",
            )
        _check_text(self.media_type, "typ załącznika", max_len=255)
        _check_pattern(self.media_type, _MEDIA_TYPE, "typ załącznika")
        if (self.content is None) == (self.reference is None):
            raise _invalid(
                f"Załącznik {self.file_name} musi mieć albo treść, albo odwołanie.",
                f"Attachment {self.file_name} needs either content or a reference.",
                field="załącznik",
            )
        if self.sha256 is not None:
            object.__setattr__(self, "sha256", self.sha256.lower())
            _check_pattern(self.sha256, _SHA256_HEX, "SHA-256 załącznika")
        if self.reference is not None:
            _check_text(self.reference, "odwołanie do załącznika", max_len=2048)
            if re.search(r"\s", self.reference):
                raise _invalid(
                    "Odwołanie do załącznika nie może zawierać spacji.",
                    "An attachment's reference must not contain whitespace.",
                    field="odwołanie do załącznika",
                )
        if self.content is not None:
            if not isinstance(self.content, bytes):
                raise _invalid(
                    "Treść załącznika musi być bajtami.",
                    "An attachment's content must be bytes.",
                    field="załącznik",
                )
            digest = hashlib.sha256(self.content).hexdigest()
            if self.sha256 is not None and self.sha256 != digest:
                raise _invalid(
                    f"Skrót SHA-256 załącznika {self.file_name} nie zgadza się z jego treścią.",
                    f"The SHA-256 of attachment {self.file_name} does not match its content.",
                    code="letter_attachment_digest_mismatch",
                    file_name=self.file_name,
                )
            object.__setattr__(self, "sha256", digest)

    @property
    def size(self) -> int | None:
        return None if self.content is None else len(self.content)


@dataclass(frozen=True, kw_only=True)
class Letter:
    sender: Party
    addressee: Party
    letter_date: date
    place: str
    our_reference: str
    subject: str
    body: tuple[str, ...]
    your_reference: str | None = None
    attachments: tuple[Attachment, ...] = ()
    document_id: uuid.UUID = field(default_factory=uuid.uuid4)
    language: str = "pl"

    def __post_init__(self) -> None:
        if not isinstance(self.sender, Party) or not isinstance(self.addressee, Party):
            raise _invalid(
                "Pismo musi mieć nadawcę i adresata.",
                "A letter needs a sender and an addressee.",
                field="strony",
            )
        if not isinstance(self.letter_date, date) or isinstance(self.letter_date, datetime):
            raise _invalid(
                "Data pisma musi być datą (bez godziny).",
                "The letter date must be a date (without a time).",
                field="data",
            )
        _check_text(self.place, "miejscowość", max_len=200)
        _check_text(self.our_reference, "znak sprawy", max_len=80)
        _check_optional(self.your_reference, "znak sprawy adresata", max_len=80)
        _check_text(self.subject, "tytuł (dotyczy)", max_len=500)
        body = tuple(self.body)
        object.__setattr__(self, "body", body)
        if not body:
            raise _invalid(
                "Pismo musi mieć treść.",
                "A letter needs a body.",
                code="letter_field_missing",
                field="treść",
            )
        if len(body) > 1000:
            raise _invalid(
                "Pismo ma za dużo akapitów (limit 1000).",
                "The letter has too many paragraphs (limit 1000).",
                field="treść",
            )
        for paragraph in body:
            _check_text(paragraph, "treść", single_line=False, max_len=100_000)
        attachments = tuple(self.attachments)
        object.__setattr__(self, "attachments", attachments)
        if len(attachments) > 1000 or not all(isinstance(a, Attachment) for a in attachments):
            raise _invalid(
                "Niepoprawna lista załączników.", "Invalid list of attachments.", field="załączniki"
            )
        if not isinstance(self.document_id, uuid.UUID):
            raise _invalid(
                "Identyfikator pisma musi być UUID.",
                "The letter id must be a UUID.",
                field="identyfikator",
            )
        if self.language not in _LANG_TO_XML:
            raise _invalid(
                f"Nieobsługiwany język pisma: {self.language}.",
                f"Unsupported letter language: {self.language}.",
                field="język",
            )


# ---------------------------------------------------------------------------------------------
# Building


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _sub(
    parent: etree._Element, ns: str, name: str, text: str | None = None, **attrib: str
) -> etree._Element:
    el = etree.SubElement(parent, _q(ns, name), attrib)
    if text is not None:
        el.text = text
    return el


def _identifier(parent: etree._Element, kind: str, value: str) -> None:
    ident = _sub(parent, META_NS, "Identyfikator", typIdentyfikatora=kind)
    _sub(ident, META_NS, "Wartosc", value)


def _date(parent: etree._Element, day: date) -> None:
    data = _sub(parent, META_NS, "Data", typDaty=DATE_CREATED)
    _sub(data, META_NS, "Czas", day.isoformat())


def _structured_address(lines: tuple[str, ...]) -> dict[str, str] | None:
    """Split two lines "Ulica 12/3", "00-950 Miasto" into adr fields, if they split exactly."""
    if len(lines) != 2:
        return None
    street, city = _STREET.fullmatch(lines[0]), _POSTAL_CITY.fullmatch(lines[1])
    if street is None or city is None:
        return None
    fields = {
        "KodPocztowy": city["kod"],
        "Miejscowosc": city["miasto"],
        "Ulica": street["ulica"],
        "Budynek": street["budynek"],
    }
    if street["lokal"]:
        fields["Lokal"] = street["lokal"]
    return fields


def _address_lines(fields: dict[str, str]) -> tuple[str, ...]:
    lines: list[str] = []
    if "Ulica" in fields or "Budynek" in fields:
        line = " ".join(v for v in (fields.get("Ulica"), fields.get("Budynek")) if v)
        lines.append(line + (f"/{fields['Lokal']}" if "Lokal" in fields else ""))
    elif "Lokal" in fields:
        lines.append(fields["Lokal"])
    if "KodPocztowy" in fields or "Miejscowosc" in fields:
        lines.append(
            " ".join(v for v in (fields.get("KodPocztowy"), fields.get("Miejscowosc")) if v)
        )
    if "Uwagi" in fields:
        lines.extend(fields["Uwagi"].split("\n"))
    return tuple(lines)


def _party(parent: etree._Element, ns_name: str, party: Party) -> None:
    group = _sub(parent, STR_NS, ns_name)
    inst = _sub(_sub(group, META_NS, "Podmiot"), INST_NS, "Instytucja")
    if party.krs or party.regon or party.unit_code:
        ids = _sub(inst, INST_NS, "IdInstytucji")
        if party.krs:
            _sub(ids, INST_NS, "KRS", party.krs)
        if party.regon:
            _sub(ids, INST_NS, "REGON", party.regon)
        if party.unit_code:
            other = _sub(ids, INST_NS, "InnyIdentyfikator")
            _sub(other, INST_NS, "TypIdentyfikatora", ID_UNIT_CODE)
            _sub(other, INST_NS, "WartoscIdentyfikatora", party.unit_code)
    _sub(inst, INST_NS, "NazwaInstytucji", party.name)
    if party.address_lines:
        adres = _sub(inst, ADR_NS, "Adres")
        fields = _structured_address(party.address_lines)
        if fields is None or _address_lines(fields) != party.address_lines:
            fields = {"Uwagi": "\n".join(party.address_lines)}
        for name in ("KodPocztowy", "Miejscowosc", "Ulica", "Budynek", "Lokal", "Uwagi"):
            if name in fields:
                _sub(adres, ADR_NS, name, fields[name])
    if party.email:
        _sub(_sub(inst, ADR_NS, "Kontakt"), ADR_NS, "Email", party.email)


def build_letter_tree(letter: Letter) -> etree._Element:
    """The letter as an lxml element (`wnio:Dokument`), e.g. for a signer to sign in place."""
    root = etree.Element(_q(WNIO_NS, "Dokument"), nsmap=NSMAP)

    opis = _sub(root, WNIO_NS, "OpisDokumentu")
    _date(opis, letter.letter_date)
    _identifier(opis, ID_DOCUMENT, str(letter.document_id))
    _sub(_sub(opis, META_NS, "RodzajDokumentu"), META_NS, "Kategoria", "tekst")
    _sub(opis, META_NS, "Jezyk", kodJezyka=_LANG_TO_XML[letter.language])

    dane = _sub(root, WNIO_NS, "DaneDokumentu")
    naglowek = _sub(dane, STR_NS, "Naglowek")
    _sub(naglowek, STR_NS, "NazwaDokumentu", DOCUMENT_NAME)
    _identifier(naglowek, ID_OUR_REFERENCE, letter.our_reference)
    if letter.your_reference is not None:
        _identifier(naglowek, ID_YOUR_REFERENCE, letter.your_reference)
    _date(dane, letter.letter_date)
    _party(dane, "Adresaci", letter.addressee)
    _party(dane, "Nadawcy", letter.sender)

    tresc = _sub(root, WNIO_NS, "TrescDokumentu", format="text/xml", kodowanie="XML")
    _sub(tresc, WNIO_NS, "MiejscowoscDokumentu", letter.place)
    _sub(tresc, WNIO_NS, "Tytul", letter.subject)
    _sub(tresc, WNIO_NS, "RodzajWnioskuRozszerzony", rodzaj="inne pismo")
    informacje = _sub(tresc, WNIO_NS, "Informacje")
    for paragraph in letter.body:
        _sub(informacje, WNIO_NS, "Informacja", paragraph)
    if letter.attachments:
        zalaczniki = _sub(tresc, STR_NS, "Zalaczniki")
        for att in letter.attachments:
            embedded = att.content is not None
            zal = _sub(
                zalaczniki,
                STR_NS,
                "Zalacznik",
                format=att.media_type,
                kodowanie="base64" if embedded else "URI",
                nazwaPliku=att.file_name,
            )
            if att.sha256 is not None:
                _sub(zal, STR_NS, "OpisZalacznika", SHA256_PREFIX + att.sha256)
            if att.content is not None:
                data = base64.b64encode(att.content).decode("ascii")
            else:
                assert att.reference is not None
                data = att.reference
            _sub(zal, STR_NS, "DaneZalacznika", data)
    return root


def build_letter_xml(letter: Letter) -> bytes:
    """UTF-8 XML with a declaration, indented; the same letter always gives the same bytes."""
    body: bytes = etree.tostring(
        build_letter_tree(letter), xml_declaration=False, encoding="UTF-8", pretty_print=True
    )
    return XML_DECLARATION + body


# ---------------------------------------------------------------------------------------------
# Reading


@functools.cache
def letter_schema() -> etree.XMLSchema:
    """The XSD of the subset ezd writes (loaded once; the files ship with the package)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), parser=parser))


def _prefixed(message: str) -> str:
    return re.sub(
        r"\{([^}]*)\}", lambda m: f"{_PREFIXES[m[1]]}:" if m[1] in _PREFIXES else m[0], message
    )


def validate_letter_tree(root: etree._Element) -> None:
    """Raise `LetterInvalid` (code `letter_schema_invalid`) unless `root` fits `letter.xsd`."""
    if root.tag != _q(WNIO_NS, "Dokument"):
        raise _invalid(
            f"To nie jest pismo ogólne ezd (oczekiwano wnio:Dokument w przestrzeni {WNIO_NS}).",
            f"This is not an ezd letter (expected wnio:Dokument in namespace {WNIO_NS}).",
            code="letter_schema_invalid",
            errors=[f"root element {_prefixed(str(root.tag))}"],
        )
    schema = letter_schema()
    if schema.validate(root):
        return
    errors = [f"line {e.line}: {_prefixed(e.message)}" for e in list(schema.error_log)[:10]]
    raise _invalid(
        "Pismo nie jest zgodne ze schematem: " + "; ".join(errors[:3]),
        "The letter does not match the schema: " + "; ".join(errors[:3]),
        code="letter_schema_invalid",
        errors=errors,
    )


def load_letter_tree(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> etree._Element:
    """Parse untrusted bytes with the hardened parser and validate them against the XSD."""
    root = parse_untrusted_xml(
        data, max_bytes=max_bytes, max_elements=max_elements, huge_tree=True, what="XML"
    )
    validate_letter_tree(root)
    return root


def _text(el: etree._Element | None) -> str:
    """The text of a simple-content element (the schema allows no child elements; a comment
    could still split the text, so its tail is kept)."""
    if el is None:
        return ""
    if len(el) == 0:
        return el.text or ""
    return (el.text or "") + "".join(child.tail or "" for child in el)


def _one(parent: etree._Element, path: str) -> etree._Element:
    el = parent.find(path, namespaces=NSMAP)
    assert el is not None, path  # guaranteed by the schema
    return el


def _identifiers(parent: etree._Element, where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for ident in parent.findall("meta:Identyfikator", namespaces=NSMAP):
        kind = ident.get("typIdentyfikatora", "")
        if kind in found:
            raise _invalid(
                f"Identyfikator {kind} występuje w {where} więcej niż raz.",
                f"Identifier {kind} appears more than once in {where}.",
                field=kind,
            )
        found[kind] = _text(_one(ident, "meta:Wartosc"))
    return found


def _read_date(parent: etree._Element) -> date:
    data = _one(parent, "meta:Data")
    if data.get("typDaty") != DATE_CREATED:
        raise _invalid(
            'Data pisma musi mieć typDaty="stworzony".',
            'The letter date must have typDaty="stworzony".',
            field="data",
        )
    value = _text(_one(data, "meta:Czas")).strip()
    try:
        return date.fromisoformat(value)
    except ValueError as e:  # xsd:date allows a time zone, which a letter date must not have
        raise _invalid(
            f"Data pisma {value} nie jest datą RRRR-MM-DD.",
            f"The letter date {value} is not a YYYY-MM-DD date.",
            field="data",
        ) from e


def _read_party(el: etree._Element, where: str) -> Party:
    inst = _one(el, "meta:Podmiot/inst:Instytucja")
    unit_code: str | None = None
    other = inst.find("inst:IdInstytucji/inst:InnyIdentyfikator", namespaces=NSMAP)
    if other is not None:
        kind = _text(_one(other, "inst:TypIdentyfikatora"))
        if kind != ID_UNIT_CODE:
            raise _invalid(
                f"Nieznany identyfikator {where}: {kind}.",
                f"Unknown identifier of the {where}: {kind}.",
                field=where,
            )
        unit_code = _text(_one(other, "inst:WartoscIdentyfikatora"))
    krs = inst.find("inst:IdInstytucji/inst:KRS", namespaces=NSMAP)
    regon = inst.find("inst:IdInstytucji/inst:REGON", namespaces=NSMAP)
    adres = inst.find("adr:Adres", namespaces=NSMAP)
    lines: tuple[str, ...] = ()
    if adres is not None:
        lines = _address_lines(
            {
                etree.QName(child).localname: _text(child)
                for child in adres
                if isinstance(child.tag, str)
            }
        )
    email = inst.find("adr:Kontakt/adr:Email", namespaces=NSMAP)
    return Party(
        name=_text(_one(inst, "inst:NazwaInstytucji")),
        unit_code=unit_code,
        address_lines=lines,
        email=None if email is None else _text(email),
        regon=None if regon is None else _text(regon),
        krs=None if krs is None else _text(krs),
    )


def _read_attachment(zal: etree._Element, index: int) -> Attachment:
    name = zal.get("nazwaPliku", "")
    opis = zal.find("str:OpisZalacznika", namespaces=NSMAP)
    digest: str | None = None
    if opis is not None and _text(opis).startswith(SHA256_PREFIX):
        digest = _text(opis)[len(SHA256_PREFIX) :]
    raw = _text(_one(zal, "str:DaneZalacznika"))
    media_type = zal.get("format", "")
    if zal.get("kodowanie") == "URI":
        return Attachment(file_name=name, media_type=media_type, reference=raw, sha256=digest)
    try:
        content = base64.b64decode(
            raw.encode("ascii").translate(None, _XSD_WHITESPACE), validate=True
        )
    except (binascii.Error, UnicodeEncodeError) as e:
        raise _invalid(
            f"Załącznik nr {index} ({name}) nie jest poprawnym base64.",
            f"Attachment no. {index} ({name}) is not valid base64.",
            code="letter_attachment_invalid",
            file_name=name,
        ) from e
    return Attachment(file_name=name, media_type=media_type, content=content, sha256=digest)


def parse_letter_xml(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> Letter:
    """Read a letter written by `build_letter_xml` (or by another system in the same subset).

    Refuses a DOCTYPE, entities, XInclude and oversized input (`workflow.xmlsafe`), anything
    that does not fit `letter.xsd`, and inconsistent content, with `LetterInvalid` / `XmlRefused`.
    A trailing `ds:Signature` is ignored here: verifying it is the signing module's job.
    """
    return read_letter(load_letter_tree(data, max_bytes=max_bytes, max_elements=max_elements))


def read_letter(root: etree._Element) -> Letter:
    """The `Letter` in an already parsed and validated tree (see `load_letter_tree`)."""
    opis = _one(root, "wnio:OpisDokumentu")
    dane = _one(root, "wnio:DaneDokumentu")
    tresc = _one(root, "wnio:TrescDokumentu")

    opis_ids = _identifiers(opis, "OpisDokumentu")
    try:
        document_id = uuid.UUID(opis_ids.get(ID_DOCUMENT, ""))
    except ValueError as e:
        raise _invalid(
            "Identyfikator pisma (idDokumentu) nie jest poprawnym UUID.",
            "The letter id (idDokumentu) is not a valid UUID.",
            field=ID_DOCUMENT,
        ) from e
    kod = _one(opis, "meta:Jezyk").get("kodJezyka", "")
    if kod not in _LANG_FROM_XML:
        raise _invalid(
            f"Nieobsługiwany język pisma: {kod}.",
            f"Unsupported letter language: {kod}.",
            field="język",
        )

    naglowek = _one(dane, "str:Naglowek")
    refs = _identifiers(naglowek, "str:Naglowek")
    if ID_OUR_REFERENCE not in refs:
        raise _invalid(
            'Brak znaku sprawy (meta:Identyfikator typIdentyfikatora="znakSprawy").',
            'Missing case reference (meta:Identyfikator typIdentyfikatora="znakSprawy").',
            code="letter_field_missing",
            field=ID_OUR_REFERENCE,
        )
    letter_date = _read_date(dane)
    if _read_date(opis) != letter_date:
        raise _invalid(
            "Daty w OpisDokumentu i DaneDokumentu się różnią.",
            "The dates in OpisDokumentu and DaneDokumentu differ.",
            field="data",
        )

    attachments = tuple(
        _read_attachment(zal, i)
        for i, zal in enumerate(
            tresc.findall("str:Zalaczniki/str:Zalacznik", namespaces=NSMAP), start=1
        )
    )
    return Letter(
        sender=_read_party(_one(dane, "str:Nadawcy"), "nadawcy"),
        addressee=_read_party(_one(dane, "str:Adresaci"), "adresata"),
        letter_date=letter_date,
        place=_text(_one(tresc, "wnio:MiejscowoscDokumentu")),
        our_reference=refs[ID_OUR_REFERENCE],
        your_reference=refs.get(ID_YOUR_REFERENCE),
        subject=_text(_one(tresc, "wnio:Tytul")),
        body=tuple(
            _text(p) for p in tresc.findall("wnio:Informacje/wnio:Informacja", namespaces=NSMAP)
        ),
        attachments=attachments,
        document_id=document_id,
        language=_LANG_FROM_XML[kod],
    )
