"""Polish text analysis shared by every index: words, diacritic folding and lemmas (morfeusz2,
SGJP dictionary). Elasticsearch's minimal distribution has no Polish analyzer and no
asciifolding, so all of it happens here, and the indices only split on whitespace: both adapters
see exactly the same tokens.

- form: the word lower-cased and folded (ą→a, ł→l, ż→z, …): "Szkole" → "szkole"
- lemmas: every lemma morfeusz2 gives for the form, folded: "skargi" → {skarga},
  "rodziców" → {rodzic, rodzice}. A query word typed without diacritics that morfeusz does not
  know ("rodzicow") is tried with its diacritics restored ("rodziców") first.
"""

from __future__ import annotations

import itertools
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import morfeusz2

from workflow.search.port import ParsedQuery, Phrase, Prefix, Term
from workflow.search.query import words_of

_FOLD = str.maketrans("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ", "acelnoszzACELNOSZZ")
_RESTORE = {"a": "ą", "c": "ć", "e": "ę", "l": "ł", "n": "ń", "o": "ó", "s": "ś", "z": "źż"}
MAX_RESTORED_CHANGES = 3
MAX_RESTORED_CANDIDATES = 200
_local = threading.local()


def _morfeusz() -> morfeusz2.Morfeusz:
    m = getattr(_local, "m", None)
    if m is None:  # one per thread: the analyser keeps state between calls
        m = _local.m = morfeusz2.Morfeusz(expand_tags=False, generate=False)
    return m


@lru_cache(maxsize=500_000)
def fold(word: str) -> str:
    """Lower-case, Polish letters to ASCII, any other diacritic dropped."""
    w = word.lower().translate(_FOLD)
    if w.isascii():
        return w
    return "".join(c for c in unicodedata.normalize("NFKD", w) if not unicodedata.combining(c))


@lru_cache(maxsize=500_000)
def _analyse(word: str) -> tuple[tuple[str, ...], bool]:
    """(folded lemmas, known) of a lower-cased word."""
    if word.isdigit():
        return (word,), True
    lemmas: dict[str, None] = {}
    known = False
    for _s, _e, (_orth, lemma, tag, _n, _q) in _morfeusz().analyse(word):
        if tag == "ign" or tag.startswith("brev"):
            # Abbreviations expand to phrases ("sp" → "szkoła podstawowa", "spółka"): their
            # words would match letters that never say them.
            continue
        known = True
        base = lemma.split(":", 1)[0] if len(lemma) > 1 else lemma
        for part in base.split():
            lemmas.setdefault(fold(part), None)
    if not lemmas:
        lemmas[fold(word)] = None
    return tuple(lemmas), known


def lemmas(word: str) -> tuple[str, ...]:
    return _analyse(word.lower())[0]


@lru_cache(maxsize=50_000)
def query_lemmas(word: str) -> tuple[str, ...]:
    """Lemmas of a query word; an unknown word without diacritics is also tried with them
    restored (at most three letters changed), keeping the variants the dictionary knows."""
    w = word.lower()
    found, known = _analyse(w)
    if known or not w.isascii():
        return found
    out = dict.fromkeys(found)
    for variant in _restorations(w):
        lem, ok = _analyse(variant)
        if ok:
            out.update(dict.fromkeys(lem))
    return tuple(out)


def _restorations(w: str) -> list[str]:
    spots = [i for i, c in enumerate(w) if c in _RESTORE]
    out: list[str] = []
    for k in range(1, min(MAX_RESTORED_CHANGES, len(spots)) + 1):
        for chosen in itertools.combinations(spots, k):
            for repl in itertools.product(*(_RESTORE[w[i]] for i in chosen)):
                chars = list(w)
                for i, r in zip(chosen, repl, strict=True):
                    chars[i] = r
                out.append("".join(chars))
                if len(out) >= MAX_RESTORED_CANDIDATES:
                    return out
    return out


@dataclass(frozen=True)
class Analysed:
    forms: list[str]  # folded forms in order (positions matter: phrases)
    lemmas: list[str]  # folded lemmas, each once


def analyse(text: str) -> Analysed:
    words = words_of(text)
    forms = [fold(w) for w in words]
    seen: dict[str, None] = {}
    for w in words:
        for lemma in lemmas(w):
            seen.setdefault(lemma, None)
    return Analysed(forms, list(seen))


def typo_distance(form: str) -> int:
    """Edits tolerated in a word: none below 4 letters, 1 up to 7, 2 from 8 (the same on every
    index: Elasticsearch gets it as an explicit fuzziness)."""
    n = len(form)
    return 0 if n < 4 else 1 if n < 8 else 2


# The first letter must match (Elasticsearch prefix_length=1) and at most this many forms are
# tried per word (Elasticsearch max_expansions).
TYPO_PREFIX = 1
TYPO_EXPANSIONS = 50


@dataclass(frozen=True)
class TermQ:
    form: str
    lemmas: tuple[str, ...]
    distance: int


@dataclass(frozen=True)
class PhraseQ:
    forms: tuple[str, ...]


@dataclass(frozen=True)
class PrefixQ:
    prefix: str


ClauseQ = TermQ | PhraseQ | PrefixQ


@dataclass(frozen=True)
class AnalysedQuery:
    must: tuple[ClauseQ, ...]
    must_not: tuple[ClauseQ, ...]


def _clause(c: Term | Phrase | Prefix) -> ClauseQ:
    if isinstance(c, Term):
        f = fold(c.word)
        return TermQ(f, query_lemmas(c.word), typo_distance(f))
    if isinstance(c, Prefix):
        return PrefixQ(fold(c.prefix))
    return PhraseQ(tuple(fold(w) for w in c.words))


def analyse_query(q: ParsedQuery) -> AnalysedQuery:
    return AnalysedQuery(tuple(map(_clause, q.must)), tuple(map(_clause, q.must_not)))
