"""Alembic environment: the URL comes from ``service.config.Settings`` (``MCUPROF_DATABASE_URL``)
unless the caller passes one (``service.db.migrate`` does, as ``config.attributes["url"]``).

Every upgrade runs in one transaction (SQLite and PostgreSQL both have transactional DDL), so
a failed migration leaves the schema as it was. On PostgreSQL an advisory lock serializes API
replicas that start at the same time; on SQLite the write transaction does.
"""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import text

from service.config import Settings, normalize_database_url
from service.db.engine import WRITE_OPTION, make_engine
from service.db.migrate import include_object
from service.db.models import Base

MIGRATION_LOCK_ID = 0x6D637570  # "mcup": pg_advisory_xact_lock key for migrations

config = context.config
if config.cmd_opts is not None:  # the alembic command line: show what runs
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _url() -> str:
    url = config.attributes.get("url") or Settings().database_url
    return normalize_database_url(str(url))


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL instead of running it."""
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True,
                      compare_type=True, render_as_batch=_url().startswith("sqlite"),
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url(), pool_size=1, max_overflow=0)
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                   {"k": MIGRATION_LOCK_ID})
            context.configure(connection=connection, target_metadata=Base.metadata,
                              compare_type=True, include_object=include_object,
                              render_as_batch=connection.dialect.name == "sqlite")
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
