"""Engines and sessions: one ``Database`` per process, one transaction per unit of work.

SQLite: WAL (readers never wait for the writer), a busy timeout, foreign keys on, and
transactions that say up front whether they write. pysqlite's own transaction handling is
switched off and ``BEGIN`` is emitted by us: ``BEGIN IMMEDIATE`` for a write session, so the
one writer lock is taken at the start and a transaction never fails half-way upgrading a read
lock (the single-writer path the job queue relies on instead of ``FOR UPDATE``);
plain ``BEGIN`` for reads.

PostgreSQL: psycopg 3 with a connection pool; the queue locks rows itself
(``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from profiler_client.errors import QueueError
from service.config import Settings

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a writer waits for SQLite's lock before giving up
WRITE_OPTION = "mcuprof_write"  # execution option: this transaction writes


class DatabaseError(QueueError):
    """The database could not be reached or refused the operation."""


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it safe
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    mode = "IMMEDIATE" if connection.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, *, pool_size: int = 20, max_overflow: int = 20) -> Engine:
    """An engine for ``url`` with mcuprof's connection settings."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT})
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        return create_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                             pool_recycle=3600)
    except (exc.ArgumentError, exc.NoSuchModuleError, ValueError) as e:
        raise DatabaseError(f"cannot use database URL {url!r}: {e}. Set MCUPROF_DATABASE_URL "
                            f"to sqlite:///path.db or postgresql://user@host/db") from e


class Database:
    """An engine with two session factories: ``read()`` and ``write()``.

    A write session takes SQLite's writer lock at its first statement; on PostgreSQL both are
    the same.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(engine.execution_options(**{WRITE_OPTION: True}),
                                   expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(make_engine(settings.database_url, pool_size=settings.db_pool_size,
                               max_overflow=settings.db_max_overflow))

    def read(self) -> Session:
        """A session for reading (rolled back when closed unless committed)."""
        return self._read()

    def write(self) -> Session:
        """A session for a unit of work that writes; commit it, or close it to roll back."""
        return self._write()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """``with db.transaction() as s:`` one transaction, committed when the block ends."""
        with self.write() if write else self.read() as session:
            yield session
            session.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def dialect_name(session: Session) -> str:
    """``sqlite`` or ``postgresql``: the dialect behind ``session``."""
    return session.get_bind().dialect.name
