"""Fixtures of the agent and client tests: the real API served over loopback HTTP (uvicorn in
a thread, or ``mcuprof serve`` in a subprocess) on SQLite or on a PostgreSQL database made
for this session.

PostgreSQL is the cluster at ``MCUPROF_TEST_PG_URL`` (default: the local ``test`` database,
trust auth); when it is down the fixture starts it with ``pg_ctlcluster``, and skips the
tests that need it when that is impossible.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import create_engine, text

from profiler_client.client import Client
from service.config import Settings
from service.db import migrate

PG_ADMIN_URL = os.environ.get("MCUPROF_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_START_TIMEOUT_S = 30.0
SERVER_START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(database_url: str, **overrides: Any) -> Settings:
    """Everything explicit, so a developer's MCUPROF_* variables do not leak in."""
    values: dict[str, Any] = dict(database_url=database_url, host="127.0.0.1", port=8000,
                                  auth="off", lease_seconds=30.0, max_attempts=3,
                                  expire_interval_seconds=0.5, db_pool_size=10,
                                  db_max_overflow=10)
    values.update(overrides)
    return Settings(**values)


class ThreadServer:
    """The app for ``settings`` served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        from service.api.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = settings
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'mcuprof.db'}"
    migrate.upgrade(url)
    return url


LiveServer = Callable[..., ThreadServer]


@pytest.fixture
def live_server(sqlite_url: str) -> Iterator[LiveServer]:
    """``live_server(**settings)``: the API over HTTP on a fresh SQLite database."""
    servers: list[ThreadServer] = []

    def start(**overrides: Any) -> ThreadServer:
        server = ThreadServer(settings_for(overrides.pop("database_url", sqlite_url),
                                            **overrides)).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


MakeClient = Callable[..., Client]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """``make_client(url, **kwargs)``: a :class:`Client`, closed after the test."""
    clients: list[Client] = []

    def make(url: str, **kwargs: Any) -> Client:
        clients.append(Client(url, **kwargs))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def _pg_reachable() -> bool:
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    if not _pg_reachable():
        versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") \
            else []
        if versions and shutil.which("pg_ctlcluster"):
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main",
                            "start"], check=False, capture_output=True)
        deadline = time.monotonic() + PG_START_TIMEOUT_S
        while not _pg_reachable():
            if time.monotonic() > deadline:
                pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
            time.sleep(0.5)
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database for one test (dropped afterwards)."""
    name = f"mcuprof_agent_test_{secrets.token_hex(4)}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = pg_admin_url.rsplit("/", 1)[0] + "/" + name
        migrate.upgrade(url)
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
