"""Alembic: upgrade head, downgrade base, upgrade again, on SQLite and PostgreSQL; the
migrated schema matches the models; the lease query uses its partial index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from service.db import migrate
from service.db.engine import make_engine
from service.db.models import Base, Job
from service.queue import QUEUED
from tests.service.conftest import create_pg_database, drop_pg_database

TABLES = {t.name for t in Base.metadata.sorted_tables}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    admin: str = request.getfixturevalue("pg_admin_url")
    url = create_pg_database(admin)
    try:
        yield url
    finally:
        drop_pg_database(admin, url)


def tables(url: str) -> set[str]:
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def schema_diff(url: str) -> list[object]:
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "include_object": migrate.include_object})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    assert migrate.current_revision(empty_url) is None
    migrate.upgrade(empty_url)
    assert migrate.current_revision(empty_url) == migrate.head_revision()
    assert tables(empty_url) == TABLES
    assert schema_diff(empty_url) == []
    migrate.downgrade(empty_url, "base")
    assert migrate.current_revision(empty_url) is None
    assert tables(empty_url) == set()
    migrate.upgrade(empty_url)
    assert tables(empty_url) == TABLES
    migrate.upgrade(empty_url)  # at head already: nothing to do


def test_queue_index_is_partial_and_ordered(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    engine = make_engine(empty_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                ddl = conn.scalar(text("SELECT sql FROM sqlite_master "
                                       "WHERE name = 'ix_jobs_queue'"))
            else:
                ddl = conn.scalar(text("SELECT indexdef FROM pg_indexes "
                                       "WHERE indexname = 'ix_jobs_queue'"))
    finally:
        engine.dispose()
    assert ddl is not None
    assert "priority DESC" in ddl and "queued" in ddl and "device_class" in ddl


def test_lease_query_uses_the_queue_index(pg_url: str) -> None:
    query = (select(Job.id).where(Job.device_class == "virtual:nucleo-f446re",
                                  Job.state == QUEUED)
             .order_by(Job.priority.desc(), Job.id).limit(1).with_for_update(skip_locked=True))
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))
    finally:
        engine.dispose()
    assert "ix_jobs_queue" in plan and "Sort" not in plan, plan


def test_migrating_an_unreachable_database_is_a_clear_error() -> None:
    from service.db.engine import DatabaseError

    with pytest.raises(DatabaseError, match="MCUPROF_DATABASE_URL"):
        migrate.upgrade("postgresql+psycopg://nobody@127.0.0.1:1/none")
