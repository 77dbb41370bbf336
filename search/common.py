"""What both adapters store for a document and give back for a hit, and the highlights (made
here from the stored text, so they are the same on both and never show folded text)."""

from __future__ import annotations

import html
import re
from datetime import date
from functools import lru_cache
from typing import Any

from rapidfuzz.distance import OSA

from search.polish import (
    AnalysedQuery,
    ClauseQ,
    PhraseQ,
    PrefixQ,
    TermQ,
    analyse,
    fold,
    lemmas,
)
from workflow.search.port import IndexDoc, SearchHit
from workflow.search.query import WORD

SNIPPET_CHARS = 10_000  # of the content kept for highlights
FRAGMENT_CHARS = 160
MAX_FRAGMENTS = 3
# Both adapters keep fields apart with this token (Elasticsearch also by its position gap), so
# a phrase never runs from one field into the next.
FIELD_GAP = " x0fieldgap0x "


def analysed_fields(doc: IndexDoc) -> dict[str, Any]:
    head = [analyse(v) for v in doc.head_fields()]
    body = analyse(doc.content) if doc.content else None
    head_lemmas: dict[str, None] = {}
    for a in head:
        head_lemmas.update(dict.fromkeys(a.lemmas))
    return {
        "head_forms": [" ".join(a.forms) for a in head],
        "head_lemmas": " ".join(head_lemmas),
        "body_forms": " ".join(body.forms) if body else "",
        "body_lemmas": " ".join(body.lemmas) if body else "",
    }


def stored(doc: IndexDoc) -> dict[str, Any]:
    """The fields a hit is shown from (and highlighted in)."""
    return {
        "key": doc.key,
        "kind": doc.kind,
        "object_id": doc.object_id,
        "unit_id": doc.unit_id,
        "unit": doc.unit,
        "title": doc.title,
        "date": doc.date.isoformat(),
        "year": doc.year,
        "number": doc.number,
        "case_reference": doc.case_reference,
        "sender": doc.sender,
        "jrwa": doc.jrwa,
        "jrwa_path": doc.jrwa_path,
        "status": doc.status,
        "retention": doc.retention,
        "fingerprint": doc.fingerprint,
        "snippet": doc.content[:SNIPPET_CHARS],
    }


def make_hit(
    src: dict[str, Any], score: float | None, sort: tuple[Any, ...], q: AnalysedQuery | None
) -> SearchHit:
    return SearchHit(
        key=src["key"],
        kind=src["kind"],
        object_id=src["object_id"],
        unit=src["unit"],
        title=src["title"],
        date=date.fromisoformat(src["date"]),
        number=src.get("number"),
        case_reference=src.get("case_reference"),
        sender=src.get("sender"),
        jrwa=src.get("jrwa"),
        status=src.get("status"),
        retention=src.get("retention"),
        score=score,
        sort=sort,
        highlights=highlights(src, q) if q else {},
    )


# --- highlights -----------------------------------------------------------------------------


def _token_matches(form: str, word: str, c: ClauseQ) -> bool:
    if isinstance(c, TermQ):
        if form == c.form:
            return True
        if c.distance and form[:1] == c.form[:1] and OSA.distance(form, c.form) <= c.distance:
            return True
        return any(x in c.lemmas for x in lemmas(word))
    if isinstance(c, PrefixQ):
        return form.startswith(c.prefix) or any(x.startswith(c.prefix) for x in lemmas(word))
    return False


class _WordMatcher:
    """Whether a word of the text matches a word or prefix clause of a query: each distinct
    word is decided once per query (folding, lemmas, edit distance are what highlighting
    spends its time on, and a page of hits repeats the same words). Shared by the threads
    that serve the same query: the sets only grow."""

    def __init__(self, q: AnalysedQuery) -> None:
        self.clauses = [c for c in q.must if not isinstance(c, PhraseQ)]
        self.decided: set[str] = set()
        self.matching: set[str] = set()
        # The matching words as one pattern (rebuilt when a word joins): the regex engine finds
        # them in a text faster than a Python loop over all of its words.
        self._pattern: tuple[int, re.Pattern[str]] | None = None  # (words in it, pattern)

    def __call__(self, word: str) -> bool:
        if word not in self.decided:
            form = fold(word)
            if any(_token_matches(form, word, c) for c in self.clauses):
                self.matching.add(word)
            self.decided.add(word)
        return word in self.matching

    def _matching_pattern(self) -> re.Pattern[str]:
        built = self._pattern
        if built is None or built[0] != len(self.matching):  # the set only grows
            words = list(self.matching)
            alternatives = "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
            # Whole words only, as WORD splits them: no word character on either side.
            built = (len(words), re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])"))
            self._pattern = built  # one assignment: threads see the old or the new pair
        return built[1]

    def spans(self, text: str) -> list[tuple[int, int]]:
        words = set(WORD.findall(text))
        for word in words - self.decided:
            self(word)
        if self.matching.isdisjoint(words):  # most fields of most hits: one set operation
            return []
        return [m.span() for m in self._matching_pattern().finditer(text)]


@lru_cache(maxsize=64)
def _word_matcher(q: AnalysedQuery) -> _WordMatcher:
    return _WordMatcher(q)


def _marks(text: str, q: AnalysedQuery, matches: _WordMatcher) -> list[tuple[int, int]]:
    phrases = [c for c in q.must if isinstance(c, PhraseQ)]
    if not phrases:  # the usual query
        return matches.spans(text)
    tokens = list(WORD.finditer(text))
    marked: set[int] = set()
    forms = [fold(t.group()) for t in tokens]
    for c in phrases:
        n = len(c.forms)
        for i in range(len(forms) - n + 1):
            if tuple(forms[i : i + n]) == c.forms:
                marked.update(range(i, i + n))
    if len(phrases) < len(q.must):
        marked.update(i for i, t in enumerate(tokens) if matches(t.group()))
    return [tokens[i].span() for i in sorted(marked)]


def _render(text: str, spans: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for s, e in spans:
        out.append(html.escape(text[pos:s]))
        out.append(f"<em>{html.escape(text[s:e])}</em>")
        pos = e
    out.append(html.escape(text[pos:]))
    return "".join(out)


def highlights(src: dict[str, Any], q: AnalysedQuery) -> dict[str, list[str]]:
    """HTML-escaped text with matches in <em>: short fields whole, content as fragments."""
    if not q.must:
        return {}
    out: dict[str, list[str]] = {}
    matches = _word_matcher(q)
    for name in ("title", "number", "case_reference", "sender"):
        value = src.get(name)
        if value:
            spans = _marks(value, q, matches)
            if spans:
                out[name] = [_render(value, spans)]
    text = src.get("snippet") or ""
    if text:
        spans = _marks(text, q, matches)
        frags: list[str] = []
        end_of_last = -1
        for s, _e in spans:
            if s < end_of_last:
                continue
            start = max(0, s - FRAGMENT_CHARS // 2)
            end = min(len(text), start + FRAGMENT_CHARS)
            inside = [(a - start, b - start) for a, b in spans if a >= start and b <= end]
            frag = _render(text[start:end], inside)
            frags.append(("…" if start else "") + frag + ("…" if end < len(text) else ""))
            end_of_last = end
            if len(frags) >= MAX_FRAGMENTS:
                break
        if frags:
            out["content"] = frags
    return out
