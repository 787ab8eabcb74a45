"""Database errors are mapped to what they are: 503 (retry) only for conditions that pass,
a damaged SQLite file is refused at start and, found later, is a 500 that says how to
recover and takes no more writes; any other database error is a 500 that says retrying will
not help."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import bindparam, create_engine, exc, text

from service.api import errors
from service.api.app import create_app
from service.db import migrate
from service.db.engine import (
    Database,
    DatabaseDamagedError,
    check_integrity,
    is_damaged,
    is_transient,
    make_engine,
)
from tests.service.helpers import register, settings_for

BOARD = "virtual:nucleo-f446re:a"
PG_MAX_PARAMETERS = 65_535  # bind parameters in one PostgreSQL statement (protocol limit)
PAGE = 4096  # bytes: SQLite's default page size


def _checkpoint(path: Path) -> None:
    """Move the WAL into the main file, so damaging the file damages the data."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def _damage(path: Path) -> None:
    _checkpoint(path)
    with path.open("r+b") as f:
        f.seek(2 * PAGE)
        f.write(os.urandom(3 * PAGE))


def _migrated(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "mcuprof.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    return path, url


def _raised(app_error: Exception) -> TestClient:
    """A client on an app whose one route raises ``app_error`` (the real handlers)."""
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise app_error

    return TestClient(app, raise_server_exceptions=False)


def _sqlite_locked(tmp_path: Path) -> exc.OperationalError:
    """A real 'database is locked': a second writer that does not wait."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    holder = create_engine(url)
    waiter = create_engine(url, connect_args={"timeout": 0})
    try:
        with holder.connect() as a:
            a.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x)")
            a.commit()
            a.exec_driver_sql("BEGIN IMMEDIATE")
            a.exec_driver_sql("INSERT INTO t VALUES (1)")
            with waiter.connect() as b, pytest.raises(exc.OperationalError) as raised:
                b.exec_driver_sql("INSERT INTO t VALUES (2)")
                b.commit()
        return raised.value
    finally:
        holder.dispose()
        waiter.dispose()


def test_a_damaged_sqlite_file_is_refused_at_start(tmp_path: Path) -> None:
    path, url = _migrated(tmp_path)
    _damage(path)
    for start in (lambda: Database.from_settings(settings_for(url)),
                  lambda: create_app(settings_for(url)),
                  lambda: migrate.upgrade(url)):
        with pytest.raises(DatabaseDamagedError) as raised:
            start()
        message = str(raised.value)
        assert str(path) in message and "damaged" in message
        assert "backup" in message and "move it aside" in message


def test_a_file_that_is_no_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the pages you are looking for\n" * 200)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with pytest.raises(DatabaseDamagedError, match="not a database"):
            check_integrity(engine)
    finally:
        engine.dispose()


def test_damage_found_while_serving_is_a_500_and_stops_writes(tmp_path: Path) -> None:
    path, url = _migrated(tmp_path)
    db = Database(make_engine(url))
    try:
        with TestClient(create_app(settings_for(url), database=db),
                        raise_server_exceptions=False) as client:
            assert register(client, "rack", [BOARD]).status_code == 200
            _damage(path)
            db.engine.dispose()  # new connections read the damaged pages
            r = client.get("/api/v1/devices")
            assert r.status_code == 500 and "retry-after" not in r.headers, r.text
            assert "damaged" in r.json()["detail"] and "backup" in r.json()["detail"]
            size = path.stat().st_size
            r = register(client, "rack-2", ["virtual:nucleo-f446re:b"])
            assert r.status_code == 500 and "damaged" in r.json()["detail"], r.text
            assert path.stat().st_size == size
    finally:
        db.dispose()


def test_only_passing_conditions_are_transient(tmp_path: Path) -> None:
    locked = _sqlite_locked(tmp_path)
    assert is_transient(locked) and not is_damaged(locked)
    r = _raised(locked).get("/boom")
    assert r.status_code == 503 and r.headers["retry-after"]

    malformed = exc.DatabaseError("SELECT 1", {}, sqlite3.DatabaseError(
        "database disk image is malformed"))
    assert is_damaged(malformed) and not is_transient(malformed)
    schema = exc.OperationalError("SELECT x FROM nowhere", {},
                                  sqlite3.OperationalError("no such table: nowhere"))
    assert not is_transient(schema)
    r = _raised(schema).get("/boom")
    assert r.status_code == 500 and "retrying will not help" in r.json()["detail"]


def test_too_many_parameters_on_postgresql_is_not_retryable(pg_db_url: str) -> None:
    """A statement over PostgreSQL's parameter limit fails the same way every time."""
    engine = make_engine(pg_db_url, pool_size=1, max_overflow=0)
    statement = text("SELECT 1 WHERE 1 IN :ids").bindparams(bindparam("ids", expanding=True))
    try:
        with engine.connect() as connection, pytest.raises(exc.DBAPIError) as raised:
            connection.execute(statement, {"ids": list(range(PG_MAX_PARAMETERS + 1))})
    finally:
        engine.dispose()
    assert not is_transient(raised.value)
    r = _raised(raised.value).get("/boom")
    assert r.status_code == 500 and "retry-after" not in r.headers


def test_a_postgresql_server_that_is_down_is_transient() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(exc.OperationalError) as raised, engine.connect():
            pass
    finally:
        engine.dispose()
    assert is_transient(raised.value)
