"""The search port: index documents, the parsed query, the access filter, results, and the
`SearchIndex` / `TextExtractor` protocols that the adapters in `search/` implement.

The core decides who may see what and passes it as `SearchRequest.unit_ids`; an adapter must
apply it to hits *and* facet counts. Both adapters give the same hits for the same request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, Protocol

from workflow.errors import DomainError

KINDS = ("incoming", "outgoing", "case", "document")
FACETS = ("type", "unit", "jrwa", "status", "retention", "year")
SortOrder = Literal["relevance", "date_desc", "date_asc"]


@dataclass(frozen=True)
class IndexDoc:
    """One searchable object as the core describes it. `key` is `kind:uuid`."""

    key: str
    kind: str
    object_id: str
    unit_id: str
    unit: str
    title: str
    date: date
    number: str | None = None  # RPW number, outgoing number, case reference, document identifier
    case_reference: str | None = None
    sender: str | None = None  # sender, recipients, or a document's creator
    jrwa: str | None = None
    jrwa_title: str | None = None
    status: str | None = None
    retention: str | None = None
    content: str = ""  # notes and extracted text
    fingerprint: str = ""  # of everything above: `ezd search verify` compares it

    @property
    def year(self) -> int:
        return self.date.year

    @property
    def jrwa_path(self) -> list[str]:
        """The class and its ancestors by prefix ("4317" → 4, 43, 431, 4317): a filter on a
        class also finds its subclasses."""
        return [self.jrwa[:i] for i in range(1, len(self.jrwa) + 1)] if self.jrwa else []

    def head_fields(self) -> list[str]:
        """Short fields searched together with the content (each separately: no phrase spans
        two fields). The JRWA class title is not among them: every letter of a class would
        match its words; the class is a filter and a facet instead."""
        values = (self.title, self.number, self.case_reference, self.sender)
        return [v for v in values if v]


# --- the parsed query: a conjunction of clauses, each possibly negated ----------------------


@dataclass(frozen=True)
class Term:
    """A word: matches its lemmas, its folded form, or a form within the typo distance."""

    word: str


@dataclass(frozen=True)
class Phrase:
    """Consecutive words in one field (folded forms, no lemmas, no typos)."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class Prefix:
    """`word*`: a folded form or lemma starting with the folded prefix."""

    prefix: str


Clause = Term | Phrase | Prefix


@dataclass(frozen=True)
class ParsedQuery:
    must: tuple[Clause, ...] = ()
    must_not: tuple[Clause, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.must and not self.must_not


@dataclass(frozen=True)
class SearchFilters:
    units: tuple[str, ...] = ()  # unit codes
    jrwa: tuple[str, ...] = ()  # class symbols (prefix: 43 includes 431)
    status: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    retention: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None


@dataclass(frozen=True)
class SearchRequest:
    query: ParsedQuery
    filters: SearchFilters
    # None: every unit (the city's auditor). Otherwise only these unit ids, also in facets.
    unit_ids: tuple[str, ...] | None
    sort: SortOrder = "relevance"
    size: int = 20
    # The sort values of the last hit of the previous page (from the cursor).
    search_after: tuple[Any, ...] | None = None
    facets: bool = True


@dataclass(frozen=True)
class SearchHit:
    key: str
    kind: str
    object_id: str
    unit: str
    title: str
    date: date
    number: str | None
    case_reference: str | None
    sender: str | None
    jrwa: str | None
    status: str | None
    retention: str | None
    score: float | None
    sort: tuple[Any, ...]
    highlights: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: list[SearchHit]
    facets: dict[str, list[tuple[str, int]]]


class SearchUnavailable(DomainError):
    code = "search_unavailable"
    status = 503
    message_pl = "Wyszukiwarka jest chwilowo niedostępna. Rejestracja działa; spróbuj za chwilę."
    message_en = "Search is temporarily unavailable. Registration works; try again shortly."


class SearchIndex(Protocol):
    """An index of `IndexDoc`s. Writes are idempotent (a key is replaced as a whole)."""

    name: str

    def ensure(self) -> None:
        """Create the index if missing (idempotent); raise SearchUnavailable if unreachable."""

    def upsert(self, docs: Sequence[IndexDoc]) -> None:
        """Index or replace `docs` (also in a rebuild running meanwhile); visible within a
        second."""

    def delete(self, keys: Sequence[str]) -> None:
        """Remove `keys` (missing ones are fine)."""

    def search(self, request: SearchRequest) -> SearchResult: ...

    def fingerprints(self) -> Iterator[tuple[str, str]]:
        """Every indexed key with its fingerprint."""

    def begin_rebuild(self) -> str:
        """Start a new index generation beside the live one; live writes go to both from now."""

    def add_to_rebuild(self, generation: str, docs: Sequence[IndexDoc]) -> None:
        """Add `docs` to the new generation unless a live write already put a newer copy there."""

    def finish_rebuild(self, generation: str) -> None:
        """Make the new generation live atomically and drop the old one."""

    def abort_rebuild(self, generation: str) -> None: ...

    def refresh(self) -> None:
        """Make every write so far visible now (tests, the CLI)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Extraction:
    """What text extraction made of one file. status: ok (text found), empty (no text),
    skipped (refused: encrypted, too large, a zip bomb, no OCR installed), failed (corrupt)."""

    status: Literal["ok", "empty", "skipped", "failed"]
    method: str
    text: str = ""
    reason: str | None = None


class TextExtractor(Protocol):
    def extract(self, path: Path, media_type: str, file_name: str) -> Extraction:
        """Never raises for bad content: a refusal is an Extraction with its reason."""


def chunked(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch
