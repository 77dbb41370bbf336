"""Search in the composition root: the index adapter the settings pick, the text extractor, and
the `search.index` outbox handler. `api.bootstrap` calls `wire_search` once per container."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.elastic import ElasticsearchIndex
from search.embedded import EmbeddedIndex
from search.extract import Extractor
from workflow.search.events import TOPIC
from workflow.search.port import SearchIndex
from workflow.search.service import Indexer
from workflow.settings import Settings
from workflow.uow import UnitOfWork

if TYPE_CHECKING:
    from api.bootstrap import Container


def make_search_index(settings: Settings) -> SearchIndex:
    if settings.search_url:
        return ElasticsearchIndex(
            settings.search_url, settings.search_index, settings.search_timeout_seconds
        )
    return EmbeddedIndex(settings.search_dir)


def make_extractor(settings: Settings) -> Extractor:
    return Extractor(
        max_chars=settings.extract_max_chars,
        ocr_enabled=settings.ocr_enabled,
        ocr_languages=settings.ocr_languages,
    )


def make_indexer(c: Container, index: SearchIndex) -> Indexer:
    return Indexer(
        index=index,
        extractor=make_extractor(c.settings),
        blob_store=c.blob_store,
        read_uow=lambda: UnitOfWork(c.session_factory),
        max_file_bytes=c.settings.max_upload_bytes,
    )


def wire_search(c: Container) -> None:
    index = make_search_index(c.settings)
    c.search_index = index
    handler: Any = make_indexer(c, index)
    c.worker.handlers[TOPIC] = handler


def search_index(c: Container) -> SearchIndex:
    index: SearchIndex = c.search_index
    return index
