"""The one composition root: settings → database engine, blob store, outbox worker.

Everything that picks an adapter for a port happens here, so the core never imports one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import workflow.models  # noqa: F401  (every mapper: relationships name other modules' models)
from storage.local import LocalBlobStore
from storage.s3 import S3BlobStore
from workflow.db import make_engine
from workflow.documents.service import collect_stray_blobs
from workflow.outbox.worker import Periodic, Worker
from workflow.ports import BlobStore
from workflow.settings import Settings
from workflow.uow import UnitOfWork


@dataclass
class Container:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    blob_store: BlobStore
    worker: Worker

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def dispose(self) -> None:
        self.engine.dispose()


def make_blob_store(settings: Settings) -> BlobStore:
    if settings.uses_s3:
        assert settings.s3_endpoint is not None
        return S3BlobStore(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            prefix=settings.s3_prefix,
        )
    return LocalBlobStore(settings.blob_dir)


def bootstrap(settings: Settings | None = None) -> Container:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url, pool_size=settings.database_pool_size)
    session_factory = sessionmaker(engine, expire_on_commit=False)
    store = make_blob_store(settings)
    grace = timedelta(seconds=settings.blob_gc_grace_seconds)

    def collect(uow: UnitOfWork, _payload: dict[str, Any]) -> None:
        collect_stray_blobs(uow, store, grace)

    worker = Worker(
        session_factory=session_factory,
        handlers={"blobs.collect": collect},
        periodic=[Periodic("blobs.collect", timedelta(seconds=settings.blob_gc_interval_seconds))],
        max_attempts=settings.outbox_max_attempts,
        poll_seconds=settings.worker_poll_seconds,
    )
    return Container(settings, engine, session_factory, store, worker)
