"""The query language, the same on every index:

    skargi rodziców          every word must match (its lemmas, its form, or a typo of it)
    "zwolnienie lekarskie"   a phrase: consecutive words in one field
    szkoł*                   a prefix (at least two letters before the star)
    -odwołanie               must not match (a word, phrase or prefix)
    RPW/12/2026              punctuation inside a word makes a phrase of its parts

Letters are compared without diacritics, case-insensitively. Anything else is a clear error
with a stable code, never a query the index has to guess at.
"""

from __future__ import annotations

import re
import unicodedata

from workflow.errors import DomainError
from workflow.search.port import Clause, ParsedQuery, Phrase, Prefix, Term

MAX_QUERY_CHARS = 500
MAX_CLAUSES = 24
MAX_PHRASE_WORDS = 12
MIN_PREFIX_CHARS = 2
WORD = re.compile(r"[^\W_]+")


class QueryInvalid(DomainError):
    code = "query_syntax"
    status = 400
    message_pl = "Zapytanie ma błędną składnię."
    message_en = "The query has a syntax error."


def _error(code: str, pl: str, en: str, **details: object) -> QueryInvalid:
    return QueryInvalid(pl, en, code=code, details=dict(details))


def words_of(text: str) -> list[str]:
    """The words of `text` as every index tokenises them (letters and digits, NFC)."""
    return WORD.findall(unicodedata.normalize("NFC", text))


def parse_query(q: str) -> ParsedQuery:
    q = unicodedata.normalize("NFC", q or "").strip()
    if len(q) > MAX_QUERY_CHARS:
        raise _error(
            "query_too_long",
            f"Zapytanie jest za długie (limit {MAX_QUERY_CHARS} znaków).",
            f"The query is too long (limit {MAX_QUERY_CHARS} characters).",
            limit=MAX_QUERY_CHARS,
        )
    if not q:
        return ParsedQuery()
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in q):
        raise _error(
            "query_syntax",
            "Zapytanie zawiera znaki sterujące.",
            "The query contains control characters.",
        )
    if q.count('"') % 2:
        raise _error(
            "query_syntax",
            "Niezamknięty cudzysłów w zapytaniu.",
            "An unclosed quotation mark in the query.",
            position=q.rfind('"'),
        )
    must: list[Clause] = []
    must_not: list[Clause] = []
    saw_wildcard = False
    for m in re.finditer(r'(-?)"([^"]*)"|(-?)([^\s"]+)', q):
        negated = bool(m.group(1) or m.group(3))
        if m.group(2) is not None and m.group(4) is None:
            words = words_of(m.group(2))
            if "*" in m.group(2):
                saw_wildcard = True
            if not words:
                continue
            # Quoted, even one word is exact: its form only, no lemmas, no typos.
            clause: Clause = Phrase(tuple(words))
        else:
            raw = m.group(4)
            star = raw.endswith("*")
            body = raw.rstrip("*") if star else raw
            if "*" in body:
                raise _error(
                    "query_wildcard_position",
                    "Gwiazdka może stać tylko na końcu słowa.",
                    "A star may only end a word.",
                    word=raw,
                )
            words = words_of(body)
            if not words:
                if star:
                    saw_wildcard = True
                continue
            if star:
                saw_wildcard = True
                if len(words) > 1:
                    raise _error(
                        "query_wildcard_position",
                        "Gwiazdka może kończyć tylko pojedyncze słowo.",
                        "A star may only end a single word.",
                        word=raw,
                    )
                if len(words[0]) < MIN_PREFIX_CHARS:
                    raise _error(
                        "query_prefix_too_short",
                        f"Przed gwiazdką muszą stać co najmniej {MIN_PREFIX_CHARS} znaki.",
                        f"A prefix needs at least {MIN_PREFIX_CHARS} characters before the star.",
                        word=raw,
                    )
                clause = Prefix(words[0])
            else:
                clause = Phrase(tuple(words)) if len(words) > 1 else Term(words[0])
        if isinstance(clause, Phrase) and len(clause.words) > MAX_PHRASE_WORDS:
            raise _error(
                "query_too_long",
                f"Fraza ma za dużo słów (limit {MAX_PHRASE_WORDS}).",
                f"A phrase has too many words (limit {MAX_PHRASE_WORDS}).",
                limit=MAX_PHRASE_WORDS,
            )
        (must_not if negated else must).append(clause)
    if len(must) + len(must_not) > MAX_CLAUSES:
        raise _error(
            "query_too_long",
            f"Zapytanie ma za dużo słów (limit {MAX_CLAUSES}).",
            f"The query has too many words (limit {MAX_CLAUSES}).",
            limit=MAX_CLAUSES,
        )
    if not must and not must_not:
        if saw_wildcard:
            raise _error(
                "query_wildcard_only",
                "Zapytanie składa się tylko z gwiazdek; podaj słowo lub filtr.",
                "The query is only wildcards; give a word or use a filter.",
            )
        raise _error(
            "query_syntax",
            "Zapytanie nie zawiera żadnego słowa.",
            "The query contains no searchable word.",
        )
    if not must:
        raise _error(
            "query_only_negative",
            "Zapytanie musi zawierać słowo, które ma się znaleźć, nie tylko wykluczenia.",
            "The query needs a word to find, not only exclusions.",
        )
    return ParsedQuery(tuple(dict.fromkeys(must)), tuple(dict.fromkeys(must_not)))
