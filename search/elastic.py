"""The Elasticsearch adapter (official client, 8.x: the server is the 8.19 integ-test-zip).

Versioned indices `<alias>-<stamp>` behind the alias `<alias>` (settings and mappings in
`es_index.json`). A rebuild creates a new index and the alias `<alias>-building` on it; live
writes go to both; the rebuild adds documents with op_type=create, so a newer live copy is never
overwritten; then one `_aliases` call swaps the alias and the old index is deleted.

Writes are bulk requests without refresh: the index refreshes every second (es_index.json), so
a change is visible within a second of its outbox event. Any transport failure is
`SearchUnavailable` (503 search_unavailable); the outbox retries indexing until it succeeds.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError, helpers

from search.common import analysed_fields, make_hit, stored
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

log = logging.getLogger(__name__)
INDEX_FILE = Path(__file__).with_name("es_index.json")
FACET_FIELDS = {
    "type": "kind",
    "unit": "unit",
    "jrwa": "jrwa",
    "status": "status",
    "retention": "retention",
    "year": "year",
}
FACET_SIZE = 50
SOURCE = [
    "key", "kind", "object_id", "unit", "title", "date", "number", "case_reference", "sender",
    "jrwa", "status", "retention", "snippet",
]  # fmt: skip


def index_body() -> dict[str, Any]:
    body = json.loads(INDEX_FILE.read_text("utf-8"))
    body.pop("_comment", None)
    return dict(body)


# Answers that mean "not now" (overloaded, restarting): search answers 503, the outbox retries.
UNAVAILABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class _IndexMissing(Exception):
    """A part of an `_msearch` found no index behind the alias."""


def _unavailable(e: Exception) -> SearchUnavailable:
    return SearchUnavailable(details={"error": f"{type(e).__name__}: {str(e)[:300]}"})


class ElasticsearchIndex(SearchIndex):
    name = "elasticsearch"

    def __init__(self, url: str, alias: str = "ezd-search", timeout_s: float = 10.0) -> None:
        self.alias = alias
        self.building = f"{alias}-building"
        self.es = Elasticsearch(
            url, request_timeout=timeout_s, max_retries=1, retry_on_timeout=False
        )

    def close(self) -> None:
        self.es.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (TransportError, ApiError) as e:
            if isinstance(e, ApiError) and e.meta.status not in UNAVAILABLE_STATUSES:
                raise
            raise _unavailable(e) from e

    # --- indices and aliases ------------------------------------------------------------------

    def _new_index(self) -> str:
        name = f"{self.alias}-{time.strftime('%Y%m%d%H%M%S')}-{os.urandom(3).hex()}"
        self._call(self.es.indices.create, index=name, **index_body())
        return name

    def _indices_of(self, alias: str) -> list[str]:
        try:
            return list(self._call(self.es.indices.get_alias, name=alias).body)
        except NotFoundError:
            return []

    def ensure(self) -> None:
        if self._indices_of(self.alias):
            return
        name = self._new_index()
        try:
            self._call(
                self.es.indices.update_aliases,
                actions=[{"add": {"index": name, "alias": self.alias, "is_write_index": True}}],
            )
        except ApiError:
            self._call(self.es.indices.delete, index=name, ignore_unavailable=True)
            raise
        if len(self._indices_of(self.alias)) > 1:  # another process won the race: keep one
            self._call(
                self.es.indices.update_aliases,
                actions=[{"remove_index": {"index": name}}],
            )

    def refresh(self) -> None:
        self._call(
            self.es.indices.refresh, index=[self.alias, self.building], ignore_unavailable=True
        )

    # --- writes -------------------------------------------------------------------------------

    @staticmethod
    def _source(d: IndexDoc) -> dict[str, Any]:
        return {**stored(d), **analysed_fields(d)}

    def _bulk(self, actions: list[dict[str, Any]], *, ignore_conflicts: bool = False) -> None:
        try:
            _ok, errors_any = helpers.bulk(
                self.es, actions, raise_on_error=False, raise_on_exception=True, chunk_size=500,
                max_chunk_bytes=20 * 1024 * 1024,
            )  # fmt: skip
        except (TransportError, ApiError) as e:
            raise _unavailable(e) from e
        errors: list[dict[str, Any]] = list(errors_any)  # type: ignore[arg-type]
        bad = [
            e
            for e in errors
            if not (ignore_conflicts and next(iter(e.values())).get("status") == 409)
            and next(iter(e.values())).get("status") != 404
        ]
        if bad:
            raise RuntimeError(f"bulk indexing failed for {len(bad)} documents: {bad[:3]}")

    def _targets(self) -> list[str]:
        self.ensure()
        return [self.alias, *self._indices_of(self.building)]

    def upsert(self, docs: Sequence[IndexDoc]) -> None:
        if not docs:
            return
        sources = [(d.key, self._source(d)) for d in docs]
        self._bulk(
            [
                {"_op_type": "index", "_index": target, "_id": key, "_source": src}
                for target in self._targets()
                for key, src in sources
            ]
        )

    def delete(self, keys: Sequence[str]) -> None:
        self._bulk(
            [
                {"_op_type": "delete", "_index": target, "_id": key}
                for target in self._targets()
                for key in keys
            ]
        )

    # --- rebuild ------------------------------------------------------------------------------

    def begin_rebuild(self) -> str:
        for stale in self._indices_of(self.building):  # an aborted rebuild left it
            self._call(self.es.indices.delete, index=stale, ignore_unavailable=True)
        name = self._new_index()
        self._call(
            self.es.indices.update_aliases,
            actions=[{"add": {"index": name, "alias": self.building}}],
        )
        self._call(self.es.indices.put_settings, index=name, settings={"refresh_interval": "-1"})
        return name

    def add_to_rebuild(self, generation: str, docs: Sequence[IndexDoc]) -> None:
        self._bulk(
            [
                {
                    "_op_type": "create",
                    "_index": generation,
                    "_id": d.key,
                    "_source": self._source(d),
                }
                for d in docs
            ],
            ignore_conflicts=True,
        )

    def finish_rebuild(self, generation: str) -> None:
        self._call(
            self.es.indices.put_settings, index=generation, settings={"refresh_interval": "1s"}
        )
        self._call(self.es.indices.refresh, index=generation)
        old = [i for i in self._indices_of(self.alias) if i != generation]
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.alias}} for i in old]
        actions += [
            {"add": {"index": generation, "alias": self.alias, "is_write_index": True}},
            {"remove": {"index": generation, "alias": self.building}},
        ]
        self._call(self.es.indices.update_aliases, actions=actions)  # one atomic swap
        for i in old:
            self._call(self.es.indices.delete, index=i, ignore_unavailable=True)

    def abort_rebuild(self, generation: str) -> None:
        try:
            self.es.indices.delete(index=generation, ignore_unavailable=True)
        except (TransportError, ApiError):
            log.warning("could not delete the aborted rebuild index %s", generation)

    def fingerprints(self) -> Iterator[tuple[str, str]]:
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": 5000,
                "sort": [{"key": "asc"}],
                "_source": ["key", "fingerprint"],
                "query": {"match_all": {}},
            }
            if after:
                body["search_after"] = after
            res = self._call(self.es.search, index=self.alias, **body)
            hits = res["hits"]["hits"]
            for h in hits:
                yield h["_source"]["key"], h["_source"]["fingerprint"]
            if len(hits) < 5000:
                return
            after = hits[-1]["sort"]

    # --- queries ------------------------------------------------------------------------------

    @staticmethod
    def _clause(c: ClauseQ) -> dict[str, Any]:
        if isinstance(c, TermQ):
            fuzzy = {
                "query": c.form,
                "fuzziness": c.distance,
                "prefix_length": TYPO_PREFIX,
                "max_expansions": TYPO_EXPANSIONS,
            }
            should: list[dict[str, Any]] = [
                {"terms": {"head_lemmas": list(c.lemmas), "boost": 2.0}},
                {"terms": {"body_lemmas": list(c.lemmas)}},
                {"match": {"head_forms": {**fuzzy, "boost": 2.0}}},
                {"match": {"body_forms": fuzzy}},
            ]
        elif isinstance(c, PrefixQ):
            should = [
                {"prefix": {f: {"value": c.prefix}}}
                for f in ("head_forms", "head_lemmas", "body_forms", "body_lemmas")
            ]
        else:
            assert isinstance(c, PhraseQ)
            phrase = " ".join(c.forms)
            should = [
                {"match_phrase": {"head_forms": {"query": phrase, "boost": 2.0}}},
                {"match_phrase": {"body_forms": {"query": phrase}}},
            ]
        return {"bool": {"should": should, "minimum_should_match": 1}}

    @staticmethod
    def _filters(r: SearchRequest) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if r.unit_ids is not None:
            out.append({"terms": {"unit_id": list(r.unit_ids)}})
        f = r.filters
        for field_name, values in (
            ("unit", f.units),
            ("kind", f.kinds),
            ("status", f.status),
            ("retention", f.retention),
            ("jrwa_path", f.jrwa),
        ):
            if values:
                out.append({"terms": {field_name: list(values)}})
        if f.date_from or f.date_to:
            rng: dict[str, str] = {}
            if f.date_from:
                rng["gte"] = f.date_from.isoformat()
            if f.date_to:
                rng["lte"] = f.date_to.isoformat()
            out.append({"range": {"date": rng}})
        return out

    def query_bodies(self, r: SearchRequest) -> tuple[list[dict[str, Any]], AnalysedQuery | None]:
        """The `_msearch` body for `r` (also what the benchmark sends as the raw query).

        Two searches in one round trip, run side by side on the node: the page, scored, without
        counting (`track_total_hits: false` lets Lucene skip documents that cannot reach the
        page), and the exact total with the facets, in filter context (no scoring; the node's
        query cache keeps the filter clauses). Counting and facets in the scored search forced it
        to score every match: at 5M documents that made a query 3× slower."""
        q = analyse_query(r.query) if not r.query.is_empty else None
        boolq: dict[str, Any] = {"filter": self._filters(r)}
        if q is not None:
            boolq["must"] = [self._clause(c) for c in q.must]
            if q.must_not:
                boolq["must_not"] = [self._clause(c) for c in q.must_not]
        sort: list[Any]
        if r.sort == "relevance":
            sort = [{"_score": "desc"}, {"key": "asc"}]
        else:
            sort = [{"date": "desc" if r.sort == "date_desc" else "asc"}, {"key": "asc"}]
        page: dict[str, Any] = {
            "query": {"bool": boolq},
            "size": r.size,
            "sort": sort,
            "track_total_hits": False,
            "_source": SOURCE,
        }
        if r.search_after:
            page["search_after"] = list(r.search_after)
        counts: dict[str, Any] = {
            "query": {"constant_score": {"filter": {"bool": boolq}}},
            "size": 0,
            "track_total_hits": True,
        }
        if r.facets:
            counts["aggs"] = {
                name: {"terms": {"field": fld, "size": FACET_SIZE}}
                for name, fld in FACET_FIELDS.items()
            }
        return [{}, page, {}, counts], q

    def _msearch(self, searches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        res = self._call(self.es.msearch, index=self.alias, searches=searches)
        out: list[dict[str, Any]] = res["responses"]
        for part in out:
            if "error" in part:  # a failed part is in the body, not the HTTP status
                status = int(part.get("status", 500))
                err = part["error"]
                kind = err.get("type", "") if isinstance(err, dict) else str(err)
                if kind == "index_not_found_exception":
                    raise _IndexMissing(kind)
                if status in UNAVAILABLE_STATUSES:
                    raise SearchUnavailable(details={"error": str(err)[:300]})
                raise RuntimeError(f"Elasticsearch refused a search part ({status}): {err}")
        return out

    def search(self, request: SearchRequest) -> SearchResult:
        searches, q = self.query_bodies(request)
        try:
            page, counts = self._msearch(searches)
        except (NotFoundError, _IndexMissing):
            self.ensure()
            page, counts = self._msearch(searches)
        hits = [
            make_hit(h["_source"], h.get("_score"), self._sort_values(request, h), q)
            for h in page["hits"]["hits"]
        ]
        facets: dict[str, list[tuple[str, int]]] = {}
        for name in FACETS if request.facets else ():
            buckets = counts["aggregations"][name]["buckets"]
            facets[name] = [(str(b["key"]), int(b["doc_count"])) for b in buckets]
        return SearchResult(total=int(counts["hits"]["total"]["value"]), hits=hits, facets=facets)

    @staticmethod
    def _sort_values(r: SearchRequest, h: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(h["sort"])
