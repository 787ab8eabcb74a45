"""Fixtures of the service tests: a migrated database on SQLite (a file under tmp_path) and
on PostgreSQL (a database created in the local cluster for this test session, dropped at
the end; tables emptied before each test), and API clients on the app in-process.

Tests that take ``db_url`` (or anything built on it) run once per backend. PostgreSQL is
the cluster at ``MCUPROF_TEST_PG_URL`` (default the local ``test`` database, trust auth);
when it is down the fixture starts it with ``pg_ctlcluster``, and skips those tests when
that is impossible.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from service.db import migrate
from service.db.engine import Database, make_engine
from service.db.models import Base

with warnings.catch_warnings():
    # Starlette suggests httpx2 over httpx at import; the pinned stack has httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from service.api.app import create_app  # noqa: E402
from tests.service.helpers import SAMPLE_MODEL, settings_for  # noqa: E402

PG_ADMIN_URL = os.environ.get("MCUPROF_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_START_TIMEOUT = 30.0  # seconds to wait for a cluster we started
BACKENDS = ("sqlite", "postgresql")


def _pg_reachable() -> bool:
    engine = create_engine(PG_ADMIN_URL, pool_pre_ping=False)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def _start_pg() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        return
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main",
                    "start"], check=False, capture_output=True, timeout=PG_START_TIMEOUT)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The URL of a PostgreSQL database where this session may create databases."""
    if not _pg_reachable():
        _start_pg()
        deadline = time.monotonic() + PG_START_TIMEOUT
        while not _pg_reachable():
            if time.monotonic() > deadline:
                pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL} and could not be "
                            f"started with pg_ctlcluster")
            time.sleep(0.5)
    return PG_ADMIN_URL


def create_pg_database(admin_url: str) -> str:
    """A new, empty database ``mcuprof_test_<random>``; returns its URL."""
    name = f"mcuprof_test_{secrets.token_hex(4)}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database for the whole session."""
    url = create_pg_database(pg_admin_url)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_pg_database(pg_admin_url, url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for every test (migrating each time is slower)."""
    path = tmp_path_factory.mktemp("template") / "mcuprof.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def _empty_pg(url: str) -> None:
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.begin() as conn:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "mcuprof.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    _empty_pg(url)
    return url


@pytest.fixture
def pg_db_url(pg_url: str) -> str:
    """The session's PostgreSQL database, emptied (for PostgreSQL-only tests)."""
    _empty_pg(pg_url)
    return pg_url


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(make_engine(db_url, pool_size=10, max_overflow=10))
    yield db
    db.dispose()


MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(db_url: str, database: Database) -> Iterator[MakeClient]:
    """``make_client(**settings)``: a TestClient on a new app over the test database."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(settings_for(db_url, **overrides), database=database))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    """An API client, auth off (loopback development)."""
    return make_client()


@pytest.fixture(scope="session")
def kws_bytes() -> bytes:
    return SAMPLE_MODEL.read_bytes()
