"""Alembic, driven from Python: ``mcuprof serve`` and ``mcuprof token create`` call
``upgrade(url)`` before they touch the database. The migrations live in ``migrations/``
at the top of the repository (``migrations/alembic.ini``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc

from service.db.engine import DatabaseError, check_integrity, make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Expression indexes Alembic cannot reflect (it would report them as changed on every
# autogenerate); tests/service/test_migrations.py checks their definition instead.
UNCOMPARED_INDEXES = frozenset({"ix_jobs_queue"})


def include_object(obj: object, name: str | None, type_: str, reflected: bool,
                   compare_to: object) -> bool:
    """Autogenerate's filter: everything but the expression indexes."""
    return not (type_ == "index" and name in UNCOMPARED_INDEXES)


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the database at ``url``."""
    ini = MIGRATIONS_DIR / "alembic.ini"
    if not ini.is_file():
        raise DatabaseError(f"the migrations are missing ({ini} not found); run mcuprof from "
                            f"its source tree or reinstall it")
    config = Config(str(ini))
    config.attributes["url"] = url
    return config


def _wrap(what: str, url: str, e: Exception) -> DatabaseError:
    return DatabaseError(f"could not {what} the database at {_safe(url)}: {e}. Check "
                         f"MCUPROF_DATABASE_URL and that the database server is running")


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparseable URL>"


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision``."""
    if url.startswith("sqlite"):  # a damaged file is refused, not migrated
        engine = make_engine(url, pool_size=1, max_overflow=0)
        try:
            check_integrity(engine)
        finally:
            engine.dispose()
    try:
        command.upgrade(alembic_config(url), revision)
    except (exc.SQLAlchemyError, OSError) as e:
        raise _wrap("migrate", url, e) from e


def downgrade(url: str, revision: str = "base") -> None:
    """Take the schema at ``url`` down to ``revision`` (``base``: no tables)."""
    try:
        command.downgrade(alembic_config(url), revision)
    except (exc.SQLAlchemyError, OSError) as e:
        raise _wrap("downgrade", url, e) from e


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: not migrated)."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except exc.SQLAlchemyError as e:
        raise _wrap("read", url, e) from e
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision in ``migrations/versions``."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
