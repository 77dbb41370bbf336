"""The embedded index: SQLite FTS5 in its own file under the data folder (never in the main
database, so indexing never takes the main database's write lock).

A generation is one file `search-<stamp>.sqlite3`; the file `current` names the live one (the
"alias"), and `building` names a rebuild in progress, which live writes also reach. Readers
reopen when `current` changes, so a rebuild swaps in without a pause.

Matching is the same as on Elasticsearch: lemma and form columns hold the tokens that
`search.polish` made; typo tolerance looks up the column's vocabulary (fts5vocab) for forms
with the same first letter within the edit distance (optimal string alignment, as Lucene).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rapidfuzz.distance import OSA

from search.common import FIELD_GAP, analysed_fields, make_hit, stored
from search.polish import (
    TYPO_EXPANSIONS,
    TYPO_PREFIX,
    AnalysedQuery,
    ClauseQ,
    PhraseQ,
    PrefixQ,
    TermQ,
    analyse_query,
)
from workflow.search.port import (
    FACETS,
    IndexDoc,
    SearchIndex,
    SearchRequest,
    SearchResult,
    SearchUnavailable,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    rowid INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    jrwa TEXT,
    status TEXT,
    retention TEXT,
    date TEXT NOT NULL,
    year INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    src TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_docs_unit_date ON docs (unit_id, date);
CREATE INDEX IF NOT EXISTS ix_docs_date ON docs (date, key);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    head_forms, head_lemmas, body_forms, body_lemmas,
    tokenize = "unicode61 remove_diacritics 0"
);
CREATE VIRTUAL TABLE IF NOT EXISTS vocab USING fts5vocab(fts, 'col');
"""
FACET_COLUMNS = {
    "type": "kind",
    "unit": "unit",
    "jrwa": "jrwa",
    "status": "status",
    "retention": "retention",
    "year": "year",
}
FACET_SIZE = 50
WEIGHTS = "2.0, 2.0, 1.0, 1.0"  # bm25 column weights: head fields count double


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


class EmbeddedIndex(SearchIndex):
    name = "embedded"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._local = threading.local()
        self._write_lock = threading.Lock()

    # --- files and connections ---------------------------------------------------------------

    def _pointer(self, which: str) -> str | None:
        try:
            return (self.folder / which).read_text().strip() or None
        except FileNotFoundError:
            return None

    def _set_pointer(self, which: str, value: str | None) -> None:
        path = self.folder / which
        if value is None:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(value)
        os.replace(tmp, path)  # atomic: readers see the old or the new name

    def _open(self, file_name: str) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.folder / file_name, timeout=30, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        return conn

    def _conn(self, file_name: str | None = None) -> sqlite3.Connection:
        """This thread's connection to `file_name` (default: the live generation)."""
        name = file_name or self._pointer("current")
        if name is None:
            self.ensure()
            name = self._pointer("current")
            assert name is not None
        conns: dict[str, sqlite3.Connection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(name)
        if conn is None:
            for old in list(conns):  # a swapped-out generation: let it go
                if old != name and old != self._pointer("building"):
                    conns.pop(old).close()
            conn = conns[name] = self._open(name)
        return conn

    def ensure(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._write_lock:
            if self._pointer("current") is None:
                name = self._new_generation()
                self._set_pointer("current", name)

    def _new_generation(self) -> str:
        name = f"search-{time.strftime('%Y%m%d%H%M%S')}-{os.urandom(3).hex()}.sqlite3"
        self._open(name).close()
        return name

    def close(self) -> None:
        for conn in self._local.__dict__.get("conns", {}).values():
            conn.close()
        self._local = threading.local()

    def refresh(self) -> None:
        pass  # committed writes are visible at once

    # --- writes -------------------------------------------------------------------------------

    def _write(self, conn: sqlite3.Connection, docs: Sequence[IndexDoc], replace: bool) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for d in docs:
                row = conn.execute("SELECT rowid FROM docs WHERE key = ?", (d.key,)).fetchone()
                if row is not None and not replace:
                    continue
                src = stored(d)
                values = (
                    d.key, d.kind, d.unit_id, d.unit, d.jrwa, d.status, d.retention,
                    d.date.isoformat(), d.year, d.fingerprint, json.dumps(src, ensure_ascii=False),
                )  # fmt: skip
                if row is None:
                    rowid = conn.execute(
                        "INSERT INTO docs (key, kind, unit_id, unit, jrwa, status, retention, "
                        "date, year, fingerprint, src) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        values,
                    ).lastrowid
                else:
                    rowid = row[0]
                    conn.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))
                    conn.execute(
                        "UPDATE docs SET key=?, kind=?, unit_id=?, unit=?, jrwa=?, status=?, "
                        "retention=?, date=?, year=?, fingerprint=?, src=? WHERE rowid=?",
                        (*values, rowid),
                    )
                f = analysed_fields(d)
                conn.execute(
                    "INSERT INTO fts (rowid, head_forms, head_lemmas, body_forms, body_lemmas) "
                    "VALUES (?,?,?,?,?)",
                    (
                        rowid,
                        FIELD_GAP.join(f["head_forms"]),
                        f["head_lemmas"],
                        f["body_forms"],
                        f["body_lemmas"],
                    ),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _targets(self) -> list[str]:
        names = [self._pointer("current"), self._pointer("building")]
        return [n for n in dict.fromkeys(names) if n]

    def upsert(self, docs: Sequence[IndexDoc]) -> None:
        if not docs:
            return
        self.ensure()
        for name in self._targets():
            self._write(self._conn(name), docs, replace=True)

    def delete(self, keys: Sequence[str]) -> None:
        self.ensure()
        for name in self._targets():
            conn = self._conn(name)
            conn.execute("BEGIN IMMEDIATE")
            for key in keys:
                row = conn.execute("SELECT rowid FROM docs WHERE key = ?", (key,)).fetchone()
                if row:
                    conn.execute("DELETE FROM fts WHERE rowid = ?", (row[0],))
                    conn.execute("DELETE FROM docs WHERE rowid = ?", (row[0],))
            conn.execute("COMMIT")

    # --- rebuild ------------------------------------------------------------------------------

    def begin_rebuild(self) -> str:
        self.ensure()
        with self._write_lock:
            name = self._new_generation()
            self._set_pointer("building", name)
        return name

    def add_to_rebuild(self, generation: str, docs: Sequence[IndexDoc]) -> None:
        # A document a live write already put there is newer than this one: keep it.
        self._write(self._conn(generation), docs, replace=False)

    def finish_rebuild(self, generation: str) -> None:
        with self._write_lock:
            old = self._pointer("current")
            self._conn(generation).execute("INSERT INTO fts(fts) VALUES ('optimize')")
            self._set_pointer("current", generation)
            self._set_pointer("building", None)
        if old and old != generation:
            self._drop_file(old)

    def abort_rebuild(self, generation: str) -> None:
        with self._write_lock:
            if self._pointer("building") == generation:
                self._set_pointer("building", None)
        self._drop_file(generation)

    def _drop_file(self, name: str) -> None:
        conns = self._local.__dict__.get("conns", {})
        if name in conns:
            conns.pop(name).close()
        for suffix in ("", "-wal", "-shm"):
            (self.folder / (name + suffix)).unlink(missing_ok=True)

    def fingerprints(self) -> Iterator[tuple[str, str]]:
        yield from self._conn().execute("SELECT key, fingerprint FROM docs ORDER BY key")

    # --- queries ------------------------------------------------------------------------------

    def _typo_forms(self, conn: sqlite3.Connection, c: TermQ) -> list[str]:
        if c.distance == 0:
            return [c.form]
        first = c.form[:TYPO_PREFIX]
        rows = conn.execute(
            "SELECT DISTINCT term FROM vocab WHERE term >= ? AND term < ? "
            "AND col IN ('head_forms', 'body_forms') AND length(term) BETWEEN ? AND ?",
            (first, first + "\U0010ffff", len(c.form) - c.distance, len(c.form) + c.distance),
        ).fetchall()
        scored = []
        for (term,) in rows:
            d = OSA.distance(term, c.form, score_cutoff=c.distance)
            if d <= c.distance:
                scored.append((d, term))
        scored.sort()
        found = [t for _d, t in scored[:TYPO_EXPANSIONS]]
        return found if c.form in found else [c.form, *found]

    def _match(self, conn: sqlite3.Connection, c: ClauseQ) -> str:
        if isinstance(c, TermQ):
            forms = " OR ".join(map(_quote, self._typo_forms(conn, c)))
            lemmas = " OR ".join(map(_quote, c.lemmas))
            return (
                f"({{head_forms body_forms}} : ({forms}) "
                f"OR {{head_lemmas body_lemmas}} : ({lemmas}))"
            )
        if isinstance(c, PrefixQ):
            return f"({_quote(c.prefix)} *)"
        assert isinstance(c, PhraseQ)
        return f"({{head_forms body_forms}} : {' + '.join(map(_quote, c.forms))})"

    def search(self, request: SearchRequest) -> SearchResult:
        try:
            conn = self._conn()
            return self._search(conn, request)
        except sqlite3.OperationalError as e:
            raise SearchUnavailable(details={"error": str(e)}) from e

    def _search(self, conn: sqlite3.Connection, r: SearchRequest) -> SearchResult:
        q: AnalysedQuery | None = analyse_query(r.query) if not r.query.is_empty else None
        where, params = self._filters(r)
        if q is not None:
            match = " AND ".join(self._match(conn, c) for c in q.must)
            if q.must_not:
                match = f"({match}) NOT ({' OR '.join(self._match(conn, c) for c in q.must_not)})"
            source = (
                f"SELECT fts.rowid AS rid, -bm25(fts, {WEIGHTS}) AS score "
                "FROM fts WHERE fts MATCH ?"
            )
            params = [match, *params]
        else:
            source = "SELECT rowid AS rid, 0.0 AS score FROM docs"
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS hits (rid INTEGER PRIMARY KEY, score REAL, "
            "key TEXT, date TEXT)"
        )
        conn.execute("DELETE FROM temp.hits")
        conn.execute(
            f"INSERT INTO temp.hits SELECT m.rid, m.score, d.key, d.date FROM ({source}) m "
            f"JOIN docs d ON d.rowid = m.rid WHERE {where}",
            params,
        )
        total = conn.execute("SELECT count(*) FROM temp.hits").fetchone()[0]
        facets: dict[str, list[tuple[str, int]]] = {}
        if r.facets:
            for facet in FACETS:
                col = FACET_COLUMNS[facet]
                rows = conn.execute(
                    f"SELECT d.{col}, count(*) AS n FROM temp.hits h JOIN docs d "
                    f"ON d.rowid = h.rid WHERE d.{col} IS NOT NULL GROUP BY d.{col} "
                    f"ORDER BY n DESC, CAST(d.{col} AS TEXT) LIMIT {FACET_SIZE}"
                ).fetchall()
                facets[facet] = [(str(v), n) for v, n in rows]
        order, after, after_params = self._order(r)
        rows = conn.execute(
            f"SELECT h.score, h.key, h.date, d.src FROM temp.hits h JOIN docs d "
            f"ON d.rowid = h.rid {after} ORDER BY {order} LIMIT ?",
            [*after_params, r.size],
        ).fetchall()
        hits = []
        for score, key, day, src in rows:
            sort_value = score if r.sort == "relevance" else day
            hits.append(make_hit(json.loads(src), score, (sort_value, key), q))
        return SearchResult(total=total, hits=hits, facets=facets)

    @staticmethod
    def _filters(r: SearchRequest) -> tuple[str, list[Any]]:
        clauses: list[str] = ["1=1"]
        params: list[Any] = []

        def any_of(column: str, values: Sequence[Any]) -> None:
            clauses.append(f"d.{column} IN ({','.join('?' * len(values))})")
            params.extend(values)

        if r.unit_ids is not None:
            if not r.unit_ids:
                return "0=1", []
            any_of("unit_id", r.unit_ids)
        f = r.filters
        if f.units:
            any_of("unit", f.units)
        if f.kinds:
            any_of("kind", f.kinds)
        if f.status:
            any_of("status", f.status)
        if f.retention:
            any_of("retention", f.retention)
        if f.jrwa:
            clauses.append("(" + " OR ".join("substr(d.jrwa, 1, ?) = ?" for _ in f.jrwa) + ")")
            for j in f.jrwa:
                params.extend([len(j), j])
        if f.date_from:
            clauses.append("d.date >= ?")
            params.append(f.date_from.isoformat())
        if f.date_to:
            clauses.append("d.date <= ?")
            params.append(f.date_to.isoformat())
        return " AND ".join(clauses), params

    @staticmethod
    def _order(r: SearchRequest) -> tuple[str, str, list[Any]]:
        a = r.search_after
        if r.sort == "relevance":
            order = "h.score DESC, h.key ASC"
            cond = "WHERE (h.score < ? OR (h.score = ? AND h.key > ?))"
            return order, cond if a else "", [a[0], a[0], a[1]] if a else []
        if r.sort == "date_desc":
            order = "h.date DESC, h.key ASC"
            cond = "WHERE (h.date < ? OR (h.date = ? AND h.key > ?))"
        else:
            order = "h.date ASC, h.key ASC"
            cond = "WHERE (h.date > ? OR (h.date = ? AND h.key > ?))"
        return order, cond if a else "", [a[0], a[0], a[1]] if a else []
