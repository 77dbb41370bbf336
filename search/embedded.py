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
from collections import Counter
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
-- What queries read, kept narrow (docs holds the stored source): the sort keys and the
-- document's combination of filter and facet values, of which there are few.
CREATE TABLE IF NOT EXISTS combos (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    jrwa TEXT,
    status TEXT,
    retention TEXT,
    year INTEGER NOT NULL,
    UNIQUE (kind, unit_id, unit, jrwa, status, retention, year)
);
CREATE TABLE IF NOT EXISTS meta (
    rowid INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    date TEXT NOT NULL,
    combo INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_meta_key ON meta (key);
CREATE INDEX IF NOT EXISTS ix_meta_date ON meta (date, key);
CREATE INDEX IF NOT EXISTS ix_meta_combo ON meta (combo, date);
-- The form vocabulary for typo tolerance (fts5vocab reads whole doclists to count):
-- n = how many (document, forms column) pairs hold the term.
CREATE TABLE IF NOT EXISTS terms (term TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
"""
SCHEMA_VERSION = 2  # 2: meta, combos and terms (filled from docs and fts when missing)
COMBO_COLUMNS = ("kind", "unit_id", "unit", "jrwa", "status", "retention", "year")
FACET_COLUMNS = {
    "type": "kind",
    "unit": "unit",
    "jrwa": "jrwa",
    "status": "status",
    "retention": "retention",
    "year": "year",
}
FACET_SIZE = 50
FACET_INDEX = {facet: COMBO_COLUMNS.index(col) for facet, col in FACET_COLUMNS.items()}
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
        conn.execute("PRAGMA mmap_size=1073741824")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA temp_store=MEMORY")
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            self._upgrade(conn)
        return conn

    @staticmethod
    def _upgrade(conn: sqlite3.Connection) -> None:
        """Create the tables; in a file from before version 2, fill meta, combos and terms."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                cols = ", ".join(COMBO_COLUMNS)
                conn.execute(
                    f"INSERT OR IGNORE INTO combos ({cols}) SELECT DISTINCT {cols} FROM docs"
                )
                same = " AND ".join(f"c.{c} IS d.{c}" for c in COMBO_COLUMNS)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (rowid, key, date, combo) SELECT d.rowid, d.key, "
                    f"d.date, (SELECT c.id FROM combos c WHERE {same}) FROM docs d"
                )
                conn.execute(
                    "INSERT OR IGNORE INTO terms (term, n) SELECT term, sum(doc) FROM vocab "
                    "WHERE col IN ('head_forms', 'body_forms') GROUP BY term HAVING sum(doc) > 0"
                )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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

    def _combo(self, conn: sqlite3.Connection, name: str, values: tuple[Any, ...]) -> int:
        """The id of a combination of filter values in file `name` (ids never change)."""
        caches: dict[str, dict[Any, int]] = self._local.__dict__.setdefault("combo_ids", {})
        cache = caches.setdefault(name, {})
        key = values
        found = cache.get(key)
        if found is None:
            same = " AND ".join(f"{c} IS ?" for c in COMBO_COLUMNS)
            row = conn.execute(f"SELECT id FROM combos WHERE {same}", values).fetchone()
            if row is None:
                cols = ", ".join(COMBO_COLUMNS)
                marks = ",".join("?" * len(COMBO_COLUMNS))
                row = (
                    conn.execute(f"INSERT INTO combos ({cols}) VALUES ({marks})", values).lastrowid,
                )
            found = cache[key] = int(row[0])
        return found

    @staticmethod
    def _forget(conn: sqlite3.Connection, rowid: int, terms: Counter[str]) -> None:
        """Remove a document's row from fts, counting its forms out of the vocabulary."""
        old = conn.execute("SELECT head_forms, body_forms FROM fts WHERE rowid = ?", (rowid,))
        for column in old.fetchone() or ():
            terms.subtract(set((column or "").split()))
        conn.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))

    @staticmethod
    def _count_terms(conn: sqlite3.Connection, terms: Counter[str]) -> None:
        changed = [(t, n) for t, n in terms.items() if n]
        conn.executemany(
            "INSERT INTO terms (term, n) VALUES (?, ?) ON CONFLICT (term) DO UPDATE "
            "SET n = n + excluded.n",
            changed,
        )
        conn.executemany(
            "DELETE FROM terms WHERE term = ? AND n <= 0", [(t,) for t, n in changed if n < 0]
        )

    def _write(self, name: str, docs: Sequence[IndexDoc], replace: bool) -> None:
        conn = self._conn(name)
        conn.execute("BEGIN IMMEDIATE")
        try:
            terms: Counter[str] = Counter()
            for d in docs:
                row = conn.execute("SELECT rowid FROM docs WHERE key = ?", (d.key,)).fetchone()
                if row is not None and not replace:
                    continue
                src = stored(d)
                values = (
                    d.key, d.kind, d.unit_id, d.unit, d.jrwa, d.status, d.retention,
                    d.date.isoformat(), d.year, d.fingerprint, json.dumps(src, ensure_ascii=False),
                )  # fmt: skip
                combo = self._combo(
                    conn, name, (d.kind, d.unit_id, d.unit, d.jrwa, d.status, d.retention, d.year)
                )
                if row is None:
                    rowid = conn.execute(
                        "INSERT INTO docs (key, kind, unit_id, unit, jrwa, status, retention, "
                        "date, year, fingerprint, src) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        values,
                    ).lastrowid
                else:
                    rowid = row[0]
                    self._forget(conn, rowid, terms)
                    conn.execute(
                        "UPDATE docs SET key=?, kind=?, unit_id=?, unit=?, jrwa=?, status=?, "
                        "retention=?, date=?, year=?, fingerprint=?, src=? WHERE rowid=?",
                        (*values, rowid),
                    )
                conn.execute(
                    "INSERT OR REPLACE INTO meta (rowid, key, date, combo) VALUES (?,?,?,?)",
                    (rowid, d.key, d.date.isoformat(), combo),
                )
                f = analysed_fields(d)
                head_forms = FIELD_GAP.join(f["head_forms"])
                terms.update(set(head_forms.split()))
                terms.update(set(f["body_forms"].split()))
                conn.execute(
                    "INSERT INTO fts (rowid, head_forms, head_lemmas, body_forms, body_lemmas) "
                    "VALUES (?,?,?,?,?)",
                    (rowid, head_forms, f["head_lemmas"], f["body_forms"], f["body_lemmas"]),
                )
            self._count_terms(conn, terms)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._local.__dict__.get("combo_ids", {}).pop(name, None)  # ids rolled back
            raise

    def _targets(self) -> list[str]:
        names = [self._pointer("current"), self._pointer("building")]
        return [n for n in dict.fromkeys(names) if n]

    def upsert(self, docs: Sequence[IndexDoc]) -> None:
        if not docs:
            return
        self.ensure()
        for name in self._targets():
            self._write(name, docs, replace=True)

    def delete(self, keys: Sequence[str]) -> None:
        self.ensure()
        for name in self._targets():
            conn = self._conn(name)
            conn.execute("BEGIN IMMEDIATE")
            try:
                terms: Counter[str] = Counter()
                for key in keys:
                    row = conn.execute("SELECT rowid FROM docs WHERE key = ?", (key,)).fetchone()
                    if row:
                        self._forget(conn, row[0], terms)
                        conn.execute("DELETE FROM meta WHERE rowid = ?", (row[0],))
                        conn.execute("DELETE FROM docs WHERE rowid = ?", (row[0],))
                self._count_terms(conn, terms)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # --- rebuild ------------------------------------------------------------------------------

    def begin_rebuild(self) -> str:
        self.ensure()
        with self._write_lock:
            name = self._new_generation()
            self._set_pointer("building", name)
        return name

    def add_to_rebuild(self, generation: str, docs: Sequence[IndexDoc]) -> None:
        # A document a live write already put there is newer than this one: keep it.
        self._write(generation, docs, replace=False)

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
            "SELECT term FROM terms WHERE term >= ? AND term < ? AND length(term) BETWEEN ? AND ?",
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
            name = self._pointer("current")
            conn = self._conn(name)
            return self._search(conn, name or self._pointer("current") or "", request)
        except sqlite3.OperationalError as e:
            raise SearchUnavailable(details={"error": str(e)}) from e

    def _combo_values(
        self, conn: sqlite3.Connection, name: str, ids: Sequence[int]
    ) -> dict[int, tuple[Any, ...]]:
        """Filter and facet values by combination id (cached: ids never change in a file)."""
        caches: dict[str, dict[int, tuple[Any, ...]]] = self._local.__dict__.setdefault(
            "combos", {}
        )
        cache = caches.setdefault(name, {})
        if any(i not in cache for i in ids):
            cols = ", ".join(COMBO_COLUMNS)
            for row in conn.execute(f"SELECT id, {cols} FROM combos"):
                cache[row[0]] = tuple(row[1:])
        return cache

    def _search(self, conn: sqlite3.Connection, name: str, r: SearchRequest) -> SearchResult:
        q: AnalysedQuery | None = analyse_query(r.query) if not r.query.is_empty else None
        if r.unit_ids is not None and not r.unit_ids:
            return SearchResult(
                total=0, hits=[], facets={f: [] for f in FACETS} if r.facets else {}
            )
        conds, params = self._filters(r)
        if q is not None:
            match = " AND ".join(self._match(conn, c) for c in q.must)
            if q.must_not:
                match = f"({match}) NOT ({' OR '.join(self._match(conn, c) for c in q.must_not)})"
            # CROSS JOIN: from the full-text matches to their rows, never the other way round.
            source = "FROM fts CROSS JOIN meta m ON m.rowid = fts.rowid WHERE fts MATCH ?"
            params = [match, *params]
        else:
            source = "FROM meta m WHERE 1=1"
        where = " ".join([source, *(f"AND {c}" for c in conds)])
        # Totals and facets from one aggregate over the (few) combinations of facet values.
        counts = conn.execute(
            f"SELECT m.combo, count(*) {where} GROUP BY m.combo", params
        ).fetchall()
        total = sum(n for _c, n in counts)
        facets: dict[str, list[tuple[str, int]]] = {}
        if r.facets:
            values = self._combo_values(conn, name, [c for c, _n in counts])
            for facet in FACETS:
                i = FACET_INDEX[facet]
                per: Counter[Any] = Counter()
                for combo, n in counts:
                    v = values[combo][i]
                    if v is not None:
                        per[v] += n
                top = sorted(per.items(), key=lambda vn: (-vn[1], str(vn[0])))[:FACET_SIZE]
                facets[facet] = [(str(v), n) for v, n in top]
        # The page: only its rows are scored when sorting by date, and only they are read whole.
        by_score = r.sort == "relevance" and q is not None
        if q is None:
            score_sql = "0.0"
        elif by_score:
            score_sql = f"-bm25(fts, {WEIGHTS})"
        else:
            score_sql = "NULL"
        rid = "fts.rowid" if q is not None else "m.rowid"
        order, after, after_params = self._order(r)
        page = conn.execute(
            f"SELECT rid, score, key, date FROM (SELECT {rid} AS rid, {score_sql} AS score, "
            f"m.key AS key, m.date AS date {where}) {after} ORDER BY {order} LIMIT ?",
            [*params, *after_params, r.size],
        ).fetchall()
        rids = [row[0] for row in page]
        marks = ",".join("?" * len(rids))
        scores: dict[int, float] = {}
        if q is not None and not by_score and rids:
            # `+rowid`: filtered here, not by FTS5, which would rerun the query once per rowid.
            scores = dict(
                conn.execute(
                    f"SELECT rowid, -bm25(fts, {WEIGHTS}) FROM fts WHERE fts MATCH ? "
                    f"AND rowid BETWEEN ? AND ? AND +rowid IN ({marks})",
                    [params[0], min(rids), max(rids), *rids],
                ).fetchall()
            )
        srcs = dict(conn.execute(f"SELECT rowid, src FROM docs WHERE rowid IN ({marks})", rids))
        hits = []
        for rowid, score, key, day in page:
            if score is None:
                score = scores[rowid]
            sort_value = score if r.sort == "relevance" else day
            hits.append(make_hit(json.loads(srcs[rowid]), score, (sort_value, key), q))
        return SearchResult(total=total, hits=hits, facets=facets)

    @staticmethod
    def _filters(r: SearchRequest) -> tuple[list[str], list[Any]]:
        """Conditions on `meta m`: the combination's values (a small table) and the date."""
        combo: list[str] = []
        params: list[Any] = []

        def any_of(column: str, values: Sequence[Any]) -> None:
            combo.append(f"c.{column} IN ({','.join('?' * len(values))})")
            params.extend(values)

        if r.unit_ids is not None:
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
            combo.append("(" + " OR ".join("substr(c.jrwa, 1, ?) = ?" for _ in f.jrwa) + ")")
            for j in f.jrwa:
                params.extend([len(j), j])
        conds = (
            [f"m.combo IN (SELECT c.id FROM combos c WHERE {' AND '.join(combo)})"] if combo else []
        )
        if f.date_from:
            conds.append("m.date >= ?")
            params.append(f.date_from.isoformat())
        if f.date_to:
            conds.append("m.date <= ?")
            params.append(f.date_to.isoformat())
        return conds, params

    @staticmethod
    def _order(r: SearchRequest) -> tuple[str, str, list[Any]]:
        a = r.search_after
        if r.sort == "relevance":
            order = "score DESC, key ASC"
            cond = "WHERE (score < ? OR (score = ? AND key > ?))"
        elif r.sort == "date_desc":
            order = "date DESC, key ASC"
            cond = "WHERE (date < ? OR (date = ? AND key > ?))"
        else:
            order = "date ASC, key ASC"
            cond = "WHERE (date > ? OR (date = ? AND key > ?))"
        return order, cond if a else "", [a[0], a[0], a[1]] if a else []
