"""Fixtures of the fits, predictions and dashboard tests: the service tests' databases (SQLite
and PostgreSQL, ``tests/service/conftest.py``) and API clients, plus synthetic measurements
(``tests/dashboard/seed.py``) and a real server over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.db import migrate
from service.db.engine import Database, make_engine
from tests.dashboard import seed
from tests.service import conftest as service_fixtures
from tests.service_agent.conftest import ThreadServer, settings_for

# The service tests' fixtures, for this folder too: the databases (SQLite, PostgreSQL) and
# the in-process API clients.
pg_admin_url = service_fixtures.pg_admin_url
pg_url = service_fixtures.pg_url
pg_db_url = service_fixtures.pg_db_url
sqlite_template = service_fixtures.sqlite_template
db_url = service_fixtures.db_url
database = service_fixtures.database
make_client = service_fixtures.make_client
client = service_fixtures.client
kws_bytes = service_fixtures.kws_bytes

DEVICES = ("virtual:nucleo-f446re", "virtual:nucleo-f746zg")
PER_BACKBONE = 12  # sampled models of each of kws, ad, vww


@pytest.fixture(scope="session")
def sample() -> list[seed.SyntheticModel]:
    """36 sampled models of three backbones and 2 without a backbone tag."""
    return seed.sample_models(PER_BACKBONE, untagged=2)


@pytest.fixture
def seeded(database: Database, sample: list[seed.SyntheticModel]) -> seed.Seeded:
    """Every sample model measured once on each of ``DEVICES``."""
    return seed.seed(database, sample, DEVICES)


def seeded_server(tmp_path: Path, sample: list[seed.SyntheticModel],
                  **settings: object) -> ThreadServer:
    """A real server (uvicorn on a free loopback port, not yet started) over a seeded SQLite
    database; ``settings`` override the test settings (e.g. ``auth``)."""
    url = f"sqlite:///{tmp_path / 'mcuprof.db'}"
    migrate.upgrade(url)
    db = Database(make_engine(url))
    try:
        seed.seed(db, sample, DEVICES)
    finally:
        db.dispose()
    return ThreadServer(settings_for(url, expire_interval_seconds=0, **settings))


@pytest.fixture
def served(tmp_path: Path, sample: list[seed.SyntheticModel]) -> Iterator[ThreadServer]:
    """A real server over a seeded SQLite database."""
    with seeded_server(tmp_path, sample) as server:
        yield server
