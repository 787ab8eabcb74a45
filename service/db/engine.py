"""Engines and sessions: one ``Database`` per process, one transaction per unit of work.

SQLite: WAL (readers never wait for the writer), a busy timeout, foreign keys on, and
transactions that say up front whether they write. pysqlite's own transaction handling is
switched off and ``BEGIN`` is emitted by us: ``BEGIN IMMEDIATE`` for a write session, so the
one writer lock is taken at the start and a transaction never fails half-way upgrading a read
lock (the single-writer path the job queue relies on instead of ``FOR UPDATE``);
plain ``BEGIN`` for reads.

PostgreSQL: psycopg 3 with a connection pool; the queue locks rows itself
(``FOR UPDATE SKIP LOCKED``).

Errors: ``is_transient`` tells a condition worth retrying (a lock, a lost connection) from
one that is not, and ``is_damaged`` a damaged SQLite file. A SQLite file is checked
(``PRAGMA quick_check``) when a server opens it, and a damaged one is refused with the way
out; one found damaged later refuses writes until the server is restarted on a sound file.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.orm import Session, sessionmaker

from profiler_client.errors import QueueError
from service.config import Settings

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a writer waits for SQLite's lock before giving up
WRITE_OPTION = "mcuprof_write"  # execution option: this transaction writes
QUICK_CHECK_PROBLEMS = 5  # problems of PRAGMA quick_check quoted in the message

# SQLite primary result codes (https://www.sqlite.org/rescode.html): the low byte of an
# extended code.
SQLITE_TRANSIENT = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
SQLITE_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# PostgreSQL SQLSTATEs worth a retry (PostgreSQL manual, Appendix A): class 08 (connection
# exception) and these.
PG_TRANSIENT_STATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "53300",  # too_many_connections
    "55P03",  # lock_not_available
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
})
# psycopg reports a connection that failed or broke without a SQLSTATE; its messages say so.
PG_CONNECTION_MESSAGES = ("connection failed", "connection is lost", "connection is closed",
                          "server closed the connection", "consuming input failed",
                          "connection timeout expired", "the connection is lost")

logger = logging.getLogger("mcuprof.db")


class DatabaseError(QueueError):
    """The database could not be reached or refused the operation."""


class DatabaseDamagedError(DatabaseError):
    """The SQLite file is damaged: nothing more is written to it."""


def _sqlite_code(e: BaseException) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_transient(e: BaseException) -> bool:
    """Whether ``e`` (a SQLAlchemy error or a driver's) is a condition that passes: SQLite
    busy or locked, a PostgreSQL lock, deadlock or serialization conflict, a connection that
    failed or was lost, a full connection pool. Everything else is not worth a retry."""
    if isinstance(e, exc.TimeoutError | exc.DisconnectionError):
        return True
    if isinstance(e, exc.DBAPIError):
        if e.connection_invalidated:
            return True
        e = e.orig if e.orig is not None else e
    code = _sqlite_code(e)
    if code is not None:
        return code in SQLITE_TRANSIENT
    if isinstance(e, sqlite3.OperationalError):  # no code: match SQLite's words
        return "locked" in str(e) or "busy" in str(e)
    state = getattr(e, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith("08") or state in PG_TRANSIENT_STATES
    return type(e).__name__ == "OperationalError" and \
        str(e).strip().lower().startswith(PG_CONNECTION_MESSAGES)


def is_damaged(e: BaseException) -> bool:
    """Whether ``e`` says the SQLite file is damaged (corrupt, or not a database)."""
    if isinstance(e, exc.DBAPIError) and e.orig is not None:
        e = e.orig
    if not isinstance(e, sqlite3.DatabaseError):
        return False
    code = _sqlite_code(e)
    if code is not None:
        return code in SQLITE_DAMAGED
    return "malformed" in str(e) or "not a database" in str(e)


def damaged_message(engine: Engine, problem: str) -> str:
    """What is wrong with a damaged SQLite file, and how to recover."""
    path = engine.url.database or "the SQLite database"
    return (f"the SQLite database {path} is damaged ({problem}). Stop every mcuprof process "
            f"that uses it, then restore it from a backup, or move it aside (mv {path} "
            f"{path}.damaged, with its -wal and -shm files) so that the next start creates "
            f"an empty one; `sqlite3 {path}.damaged .recover` may salvage its rows")


def check_integrity(engine: Engine) -> None:
    """Refuse a damaged SQLite file (``PRAGMA quick_check``) with ``DatabaseDamagedError``
    saying how to recover; nothing to check on PostgreSQL or in memory."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return
    try:
        with engine.connect() as connection:
            rows = [str(r[0]) for r in connection.execute(text("PRAGMA quick_check"))]
    except exc.DBAPIError as e:
        if not is_damaged(e):
            raise DatabaseError(f"cannot check the SQLite database {engine.url.database}: "
                                f"{e.orig}") from e
        raise DatabaseDamagedError(damaged_message(engine, str(e.orig))) from e
    if rows != ["ok"]:
        problems = "; ".join(rows[:QUICK_CHECK_PROBLEMS])
        raise DatabaseDamagedError(damaged_message(engine, f"PRAGMA quick_check: {problems}"))


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
        self.damage: str | None = None  # why writes are refused (see mark_damaged)
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(engine.execution_options(**{WRITE_OPTION: True}),
                                   expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database of ``settings``, refused when it is a damaged SQLite file."""
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                             max_overflow=settings.db_max_overflow)
        try:
            check_integrity(engine)
        except DatabaseError:
            engine.dispose()
            raise
        return cls(engine)

    def mark_damaged(self, e: BaseException) -> str:
        """Record that the SQLite file turned out damaged: from now on ``write()`` refuses,
        so nothing more goes into it. Returns the message that says how to recover."""
        if self.damage is None:
            self.damage = damaged_message(self.engine, str(getattr(e, "orig", e)))
            logger.critical("%s; refusing writes until restarted", self.damage)
        return self.damage

    def read(self) -> Session:
        """A session for reading (rolled back when closed unless committed)."""
        return self._read()

    def write(self) -> Session:
        """A session for a unit of work that writes; commit it, or close it to roll back.
        ``DatabaseDamagedError`` once the file was found damaged."""
        if self.damage is not None:
            raise DatabaseDamagedError(self.damage)
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
