"""The one composition root: settings → database engine, blob store, outbox worker.

Everything that picks an adapter for a port happens here, so the core never imports one.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import workflow.models  # noqa: F401  (every mapper: relationships name other modules' models)
from api.search_wiring import wire_search
from storage.local import LocalBlobStore
from storage.s3 import S3BlobStore
from workflow.db import make_engine
from workflow.documents.service import collect_stray_blobs
from workflow.engine.runtime import Engine as ProcessEngine
from workflow.engine.runtime import engine_now
from workflow.engine.sandbox import ScriptSandbox
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
    engine_runtime: ProcessEngine
    library_deployed: bool = False
    search_index: Any = None  # workflow.search.port.SearchIndex, set by wire_search

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def dispose(self) -> None:
        self.engine.dispose()

    def deploy_library(self) -> None:
        deploy_process_library(self)
        self.library_deployed = True

    def fire_due_timers(self) -> int:
        """The worker's tick: deploy the library if start-up could not, then fire timers."""
        from workflow.processes.service import fire_due_timers

        if not self.library_deployed:
            self.deploy_library()

        with self.uow() as uow:
            fired = fire_due_timers(uow, self.engine_runtime, engine_now())
            uow.commit()
        return fired


def key_encryption_key(settings: Settings) -> bytes:
    """The key that encrypts units' private signing keys at rest: EZD_KEY_ENCRYPTION_KEY, or in
    the embedded mode a random key kept in the data folder (readable by its owner only)."""
    import base64
    import os

    from workflow.errors import DomainError

    if settings.key_encryption_key is not None:
        raw = base64.b64decode(settings.key_encryption_key.get_secret_value(), validate=True)
        if len(raw) != 32:
            raise ValueError("EZD_KEY_ENCRYPTION_KEY must be the base64 of 32 bytes")
        return raw
    if not settings.is_sqlite:
        raise DomainError(
            "Brak klucza szyfrującego klucze podpisu (EZD_KEY_ENCRYPTION_KEY).",
            "No key-encryption key is configured (EZD_KEY_ENCRYPTION_KEY).",
            code="key_encryption_key_missing",
            status=503,
        )
    path = settings.data_dir / "key-encryption.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    data = path.read_bytes()
    if len(data) != 32:
        raise ValueError(f"{path} must hold 32 bytes")
    return data


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


_sandboxes: dict[tuple[float, int, int], ScriptSandbox] = {}
_sandbox_lock = threading.Lock()


def shared_sandbox(time_limit_s: float, memory_mb: int, processes: int) -> ScriptSandbox:
    """One pool of script processes per OS process (containers come and go in tests; the
    pool's children are closed at exit)."""
    key = (time_limit_s, memory_mb, processes)
    with _sandbox_lock:
        if key not in _sandboxes:
            _sandboxes[key] = ScriptSandbox(
                time_limit_s=time_limit_s, memory_limit_mb=memory_mb, processes=processes
            )
        return _sandboxes[key]


def bootstrap(settings: Settings | None = None) -> Container:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url, pool_size=settings.database_pool_size)
    session_factory = sessionmaker(engine, expire_on_commit=False)
    store = make_blob_store(settings)
    grace = timedelta(seconds=settings.blob_gc_grace_seconds)

    def collect(uow: UnitOfWork, _payload: dict[str, Any]) -> None:
        collect_stray_blobs(uow, store, grace)

    runtime = ProcessEngine(
        shared_sandbox(
            settings.script_time_limit_seconds, settings.script_memory_mb, settings.script_processes
        )
    )
    handlers = {
        "blobs.collect": collect,
        **process_handlers(runtime, settings),
        **delivery_handlers(runtime, settings, store),
        **archive_handlers(store),
        **eservice_handlers(settings, store),
    }
    worker = Worker(
        session_factory=session_factory,
        handlers=handlers,
        periodic=[Periodic("blobs.collect", timedelta(seconds=settings.blob_gc_interval_seconds))],
        max_attempts=settings.outbox_max_attempts,
        poll_seconds=settings.worker_poll_seconds,
    )
    container = Container(settings, engine, session_factory, store, worker, runtime)
    worker.ticks.append(container.fire_due_timers)
    wire_search(container)
    return container


def process_handlers(runtime: ProcessEngine, settings: Settings) -> dict[str, Any]:
    from workflow.processes.service import deliver_message, record_notification

    def message(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        deliver_message(uow, runtime, payload, internal_jrwa=settings.internal_letter_jrwa)

    return {
        "process.message": message,
        "notify": record_notification,
        "finance.handover": record_notification,
    }


def delivery_handlers(
    runtime: ProcessEngine, settings: Settings, store: BlobStore
) -> dict[str, Any]:
    """Internal e-delivery's outbox steps (workflow/correspondence/delivery.py), given each
    unit's seal (decrypted with the key-encryption key), the TSA and the trust store."""
    from workflow.correspondence import delivery
    from workflow.signing.service import trust_store, unit_identity

    signing = delivery.Signing(
        identity=lambda uow, unit: unit_identity(uow, unit, lambda: key_encryption_key(settings)),
        tsa_url=settings.tsa_url,
        trust=trust_store,
        max_bytes=settings.max_upload_bytes,
    )

    def current() -> delivery.Signing:
        # the TSA is read per event, so a changed setting (tests use their own TSA) applies
        return dataclasses.replace(signing, tsa_url=settings.tsa_url)

    def dispatch(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        delivery.dispatch_official_letter(uow, store, current(), payload)

    def deliver(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        delivery.deliver_official_letter(
            uow, store, runtime, current(), payload, internal_jrwa=settings.internal_letter_jrwa
        )

    def receipt(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        delivery.return_delivery_receipt(uow, store, current(), payload)

    return {"letter.dispatch": dispatch, "letter.deliver": deliver, "letter.receipt": receipt}


def eservice_sealer(settings: Settings) -> Any:
    """The units' seals for e-service receipts and decisions (workflow/eservices/)."""
    from workflow.eservices.service import Sealer
    from workflow.signing.service import unit_identity

    return Sealer(
        identity=lambda uow, unit: unit_identity(uow, unit, lambda: key_encryption_key(settings)),
        tsa_url=settings.tsa_url,
    )


def eservice_handlers(settings: Settings, store: BlobStore) -> dict[str, Any]:
    """E-services' outbox steps: the signed decision, and e-mail to applicants over SMTP (the
    adapter in api/mail.py; without EZD_SMTP_HOST the e-mail is only recorded)."""
    from workflow.eservices.catalogue import load_catalogue
    from workflow.eservices.notifications import Mail, send_status_email
    from workflow.eservices.service import issue_decision

    def decision(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        sealer = dataclasses.replace(eservice_sealer(settings), tsa_url=settings.tsa_url)
        issue_decision(uow, store, sealer, load_catalogue(settings.bpmn_dir), payload)

    class RecordOnly:
        def send(self, mail: Mail) -> None:
            return None

    def email(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        from api.mail import SmtpMailer

        mailer = SmtpMailer(settings) if settings.smtp_host else RecordOnly()
        tracking = settings.public_url.rstrip("/") + "/e-uslugi/sledzenie"
        send_status_email(uow, mailer, payload, tracking)

    return {"eservice.decision": decision, "eservice.email": email}


def archive_handlers(store: BlobStore) -> dict[str, Any]:
    """The archive's outbox steps: WORM locks after a transfer, content deletion after a
    disposal's consent (workflow/archive/service.py)."""
    from datetime import datetime

    from workflow.archive import service

    def lock(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        service.lock_archived_content(
            uow, store, uuid.UUID(payload["entry_id"]), datetime.fromisoformat(payload["until"])
        )

    def dispose(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        service.execute_disposal(uow, store, uuid.UUID(payload["disposal_id"]))

    return {"archive.lock": lock, "archive.dispose": dispose}


def deploy_process_library(container: Container) -> None:
    """Deploy `bpmn/` (a new version of each changed file). Several processes starting at once
    may race for the same version number: the loser retries and finds it deployed."""
    from sqlalchemy.exc import IntegrityError

    from workflow.processes.service import deploy_library

    for attempt in range(3):
        try:
            with container.uow() as uow:
                deploy_library(uow, container.engine_runtime, container.settings.bpmn_dir)
                uow.commit()
            return
        except IntegrityError:
            if attempt == 2:
                raise
