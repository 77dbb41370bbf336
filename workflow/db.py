"""Database plumbing: the declarative base, the engine factory and column types shared by models.

SQLite (embedded) and PostgreSQL (production) are both first-class. On SQLite every transaction
starts with BEGIN IMMEDIATE so concurrent writers queue on the database lock instead of failing
half-way with "database is locked"; on PostgreSQL row locks do the same job.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, Engine, MetaData, Table, create_engine, event, insert, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapper, Session
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both backends (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, future=True
    )


def insert_new_objects(session: Session) -> None:
    """Insert the session's pending new objects with one INSERT (executemany) per table, in
    foreign-key order, then detach them. Their attributes stay readable.

    This skips the ORM unit of work's per-object bookkeeping (about a millisecond per row),
    which matters inside a transaction that holds a register's counter lock: every millisecond
    there is a millisecond every other registration of that register waits.
    """
    pending = list(session.new)
    by_table: dict[Table, list[Any]] = defaultdict(list)
    for obj in pending:
        by_table[inspect(obj).mapper.local_table].append(obj)
    with session.no_autoflush:  # or the ORM would insert them first
        for table in Base.metadata.sorted_tables:
            objs = by_table.get(table)
            if not objs:
                continue
            mapper = inspect(objs[0]).mapper
            rows = [_column_values(mapper, obj) for obj in objs]
            # The Core table, not the mapped class: the ORM's bulk path costs ~1 ms a statement.
            session.execute(insert(table), rows)
    for obj in pending:
        session.expunge(obj)


def _column_values(mapper: Mapper[Any], obj: Any) -> dict[str, Any]:
    values = {}
    for attr in mapper.column_attrs:
        value = getattr(obj, attr.key)
        column = attr.columns[0]
        if value is None and column.default is not None:
            default = column.default
            value = default.arg(None) if default.is_callable else default.arg
            setattr(obj, attr.key, value)
        values[attr.key] = value
    return values


def dialect_insert(session: Session) -> Any:
    """The INSERT construct with ON CONFLICT support for the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert
