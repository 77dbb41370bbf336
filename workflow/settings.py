"""The one settings class. Every value comes from an `EZD_` environment variable or its default;
nothing else in ezd reads the environment.

Embedded mode (the default) keeps everything under `data_dir`: a SQLite file, a local blob folder.
Production sets `EZD_DATABASE_URL` (PostgreSQL, psycopg 3) and `EZD_S3_ENDPOINT` with its keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def hide_password(url: str) -> str:
    """`scheme://user:***@host/db` for `scheme://user:password@host/db`."""
    return re.sub(r"(://[^:/@]*:)[^/]*@", r"\1***@", url)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EZD_", extra="ignore")

    data_dir: Path = Field(Path(".data"), description="Folder for embedded-mode state")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default is SQLite in data_dir (postgresql+psycopg://…)"
    )
    database_pool_size: int = 10
    max_concurrent_transactions: int = Field(
        8,
        description="Transactions one API process runs at once (PostgreSQL; SQLite runs one). "
        "Fewer threads competing for the GIL keep lock-holding transactions short.",
    )

    s3_endpoint: str | None = Field(None, description="host:port of the S3 server; unset = local")
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_bucket: str = "ezd"
    s3_secure: bool = True
    s3_region: str | None = None
    s3_prefix: str = Field("", description="Key prefix inside the bucket (shared buckets)")

    max_upload_bytes: int = Field(50 * 1024 * 1024, description="Largest accepted file")
    max_files_per_item: int = 50
    session_ttl_minutes: int = Field(8 * 60, description="Web session's absolute lifetime")
    session_idle_minutes: int = Field(
        30, ge=1, description="A web session unused this long ends (server side)"
    )
    token_ttl_minutes: int = Field(60, description="API bearer token's absolute lifetime")
    token_idle_minutes: int = Field(30, ge=1, description="A bearer token unused this long ends")
    login_secure_cookie: bool = False
    blob_gc_grace_seconds: int = Field(
        3600, description="Age after which an unreferenced blob is collected"
    )
    blob_gc_interval_seconds: int = 900
    outbox_max_attempts: int = 12
    worker_poll_seconds: float = 1.0
    bpmn_dir: Path = Field(
        Path(__file__).resolve().parent.parent / "bpmn",
        description="Process library deployed at start (new versions when files change)",
    )
    bpmn_max_bytes: int = Field(5_000_000, description="Largest accepted BPMN upload")
    bpmn_max_flow_nodes: int = Field(
        400, description="Most flow elements in one definition (the engine recurses along flows)"
    )
    archive_after_years: int = Field(
        2,
        ge=0,
        le=50,
        description="Closed cases go to the unit archive this many years after 1 January of "
        "the year after closing (instrukcja kancelaryjna: two)",
    )
    archive_state_transfer_years: int = Field(
        25,
        ge=1,
        le=100,
        description="Category A records are retained (WORM) this many years, until the "
        "state archive takes them over",
    )
    internal_letter_jrwa: str = Field(
        "43178", description="JRWA class of a case opened for a letter from another unit"
    )
    key_encryption_key: SecretStr | None = Field(
        None,
        description="Base64 of 32 bytes that encrypt the units' private signing keys at rest; "
        "the embedded mode makes one in the data folder",
    )
    tsa_url: str | None = Field(None, description="RFC 3161 time-stamping authority (XAdES-T)")
    script_time_limit_seconds: float = Field(1.0, description="Wall-time limit of one script")
    script_memory_mb: int = Field(256, description="Address-space limit of a script process")
    script_processes: int = Field(2, description="Sandbox processes per ezd process")
    embedded_worker: bool = Field(True, description="Run the outbox worker inside `ezd serve`")
    search_url: str | None = Field(
        None, description="Elasticsearch URL (8.x); unset = the embedded index in data_dir"
    )
    search_index: str = Field(
        "ezd-search", description="Elasticsearch alias (versioned indices behind it)"
    )
    search_timeout_seconds: float = Field(10.0, description="Timeout of one Elasticsearch call")
    ocr_enabled: bool = Field(True, description="OCR scans with tesseract when it is installed")
    ocr_languages: str = Field("pol", description="Tesseract languages (installed traineddata)")
    extract_max_chars: int = Field(1_000_000, description="Text kept per document version")
    smtp_host: str | None = Field(
        None, description="SMTP server for e-mail to citizens; unset = notifications recorded only"
    )
    smtp_port: int = 25
    smtp_from: str = Field("ezd@localhost", description="Sender address of e-mail to citizens")
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = Field(False, description="STARTTLS before logging in")
    smtp_ssl: bool = Field(False, description="SMTP over TLS (port 465)")
    smtp_timeout_seconds: float = 10.0
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Address citizens reach ezd at (links in e-mails)"
    )
    eservice_max_upload_bytes: int = Field(
        10 * 1024 * 1024, description="Largest file a citizen may attach"
    )
    eservice_max_files: int = Field(10, description="Attachments in one e-service submission")
    eservice_rate_per_minute: int = Field(
        30, description="Public e-service requests per client and minute (per API process)"
    )
    eservice_pin_attempts_per_code: int = Field(5, description="Failed PINs before a code locks")
    eservice_pin_attempts_per_client: int = Field(
        20, description="Failed tracking logins before a client is locked out"
    )
    eservice_lockout_minutes: int = 15

    host: str = "127.0.0.1"
    port: int = 8000
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """repr() and str() (and so any log line or traceback that shows the settings) hide the
        database URL's password; the secrets proper are SecretStr."""
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str):
                value = hide_password(value)
            yield name, value

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ezd.sqlite3').resolve()}"

    @property
    def uses_s3(self) -> bool:
        return bool(self.s3_endpoint)

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def search_dir(self) -> Path:
        return self.data_dir / "search"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
