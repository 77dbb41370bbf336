"""Full-text search: what is indexed (built from the database), who may see what (the filter the
core passes to the index), the query language, indexing through the outbox, reindex and verify.

The index itself sits behind the `SearchIndex` port (`workflow.search.port`); its adapters live
in the top-level `search/` package (Elasticsearch, and an embedded SQLite FTS5 index)."""
