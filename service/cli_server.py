"""Server-side commands: ``mcuprof serve``, ``mcuprof token create|list|revoke`` and
``mcuprof prune``.

All read the database from ``MCUPROF_DATABASE_URL`` (SQLite ``./mcuprof.db`` by default)
and migrate it to the newest schema first.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # imported when a command runs, so `mcuprof --help` stays fast
    from service.config import Settings
    from service.db.engine import Database


def _database(settings: Settings) -> Database:
    """The database of ``settings``, migrated to the newest schema."""
    from service.db import migrate
    from service.db.engine import Database

    migrate.upgrade(settings.database_url)
    return Database.from_settings(settings)


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (MCUPROF_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="TCP port (MCUPROF_PORT, default 8000).")
@click.option("--workers", type=int, default=None,
              help="API processes (MCUPROF_WORKERS; default one per CPU, at most 4, on "
                   "PostgreSQL, one on SQLite).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the API (migrating the database first).

    API tokens are required, on loopback too (any web page could otherwise submit), so the
    database must hold a user token: `mcuprof token create --role user --save`. On loopback
    it prints a link that signs a browser in to the dashboard once.
    """
    from bench_firmware.settings import ENV_PREFIX
    from service.api import http
    from service.api.app import UNSAFE_WARNING, create_app
    from service.auth import count_user_tokens, create_login_code
    from service.config import ConfigError, is_loopback, load_settings

    settings = load_settings(host=host, port=port, workers=workers)
    db = _database(settings)
    login_code = None
    try:
        with db.transaction(write=False) as session:
            problem = settings.serve_problem(user_tokens=count_user_tokens(session))
        if problem is None and settings.auth_required and is_loopback(settings.host):
            with db.transaction() as session:
                login_code = create_login_code(session)
    finally:
        db.dispose()
    if problem:
        raise ConfigError(problem)
    host_part = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host_part}:{settings.port}"
    if settings.auth_required:
        click.echo(f"mcuprof API on {url} (tokens required; docs at /docs)", err=True)
        if login_code is not None:
            click.echo(f"dashboard (this link signs a browser in, once): "
                       f"{url}/login?code={login_code}", err=True)
    else:
        click.echo(f"mcuprof API on {url}, WITHOUT AUTH. {UNSAFE_WARNING}", err=True)
    processes = settings.worker_processes
    if processes > 1:
        # Each worker process builds its own app (and connection pool) from the
        # environment, so the command line's choices go there first.
        os.environ.update({f"{ENV_PREFIX}HOST": settings.host,
                           f"{ENV_PREFIX}PORT": str(settings.port),
                           f"{ENV_PREFIX}WORKERS": str(processes)})
        click.echo(f"{processes} API worker processes", err=True)
    http.run(create_app(settings) if processes == 1 else None, host=settings.host,
             port=settings.port, workers=processes)


@click.group("token")
def token() -> None:
    """API tokens (written straight to the database; no server needed)."""


@token.command("create")
@click.option("--role", type=click.Choice(["user", "agent"]), required=True,
              help="user: submit and read; agent: register boards, lease and report.")
@click.option("--name", default=None,
              help="Token name (an agent token is bound to the agent of this name).")
@click.option("--value", default=None, envvar="MCUPROF_NEW_TOKEN",
              help="Register this token instead of a random one (provisioning).")
@click.option("--save", is_flag=True,
              help="Keep a user token in this user's token file (~/.config/mcuprof/token), "
                   "where the CLI on this machine finds it, instead of printing it.")
def token_create(role: str, name: str | None, value: str | None, save: bool) -> None:
    """Create a token and print it (it is shown only this once)."""
    from profiler_client.settings import write_user_token
    from service.auth import create_token
    from service.config import ConfigError, load_settings

    if save and role != "user":
        raise ConfigError("--save keeps a user token for the CLI; an agent token goes in the "
                          "agent's MCUPROF_TOKEN_FILE (drop --save)")

    db = _database(load_settings())
    try:
        with db.transaction() as session:
            row, secret = create_token(session, role=role,  # type: ignore[arg-type]
                                       name=name, value=value)
            label, token_name = f"{row.role} token {row.name!r}", row.name
    finally:
        db.dispose()
    if save:
        try:
            path = write_user_token(secret)
        except OSError as e:
            raise ConfigError(f"created {label}, but cannot save it: {e}; revoke it "
                              f"(mcuprof token revoke {token_name}) and retry") from e
        click.echo(f"created {label}, saved in {path} (the CLI on this machine uses it; "
                   f"`mcuprof serve` prints a link that signs a browser in)", err=True)
        return
    click.echo(f"created {label}; store it now, it is not shown again:", err=True)
    click.echo(secret)


@token.command("list")
def token_list() -> None:
    """Name, role and agent of every token (never the tokens themselves)."""
    from service.auth import list_tokens
    from service.config import load_settings

    db = _database(load_settings())
    try:
        with db.transaction(write=False) as session:
            rows = [(t.name, t.role, t.agent_name or "-", f"{t.created_at:%Y-%m-%d %H:%M}")
                    for t in list_tokens(session)]
    finally:
        db.dispose()
    for name, role, agent, created in rows:
        click.echo(f"{name:30} {role:6} agent={agent:20} created {created} UTC")


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Delete the token called NAME; requests with it are refused from now on."""
    from service.auth import revoke_token
    from service.config import ConfigError, load_settings

    db = _database(load_settings())
    try:
        with db.transaction() as session:
            found = revoke_token(session, name)
    finally:
        db.dispose()
    if not found:
        raise ConfigError(f"there is no token named {name!r}; see `mcuprof token list`")
    click.echo(f"revoked token {name!r}", err=True)



@click.command("prune")
@click.option("--days", type=float, default=None,
              help="Retention in days for this pass (MCUPROF_RETENTION_DAYS; required when "
                   "that is unset).")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
def prune(days: float | None, dry_run: bool) -> None:
    """Apply retention once (no server needed) and show the storage used.

    Clears the serial logs of finished jobs' attempts and of measurements older than the
    retention (their numbers stay), and deletes the models older than it that have no queued
    or leased job, no measurement and no job activity within it, with their finished jobs.
    """
    from service.config import ConfigError, load_settings
    from service.retention import prune as prune_pass
    from service.retention import storage_usage

    settings = load_settings(retention_days=days)
    if settings.retention_days <= 0:
        raise ConfigError("retention is off (MCUPROF_RETENTION_DAYS is 0 or unset): pass "
                          "--days N to delete what is older than N days")
    db = _database(settings)
    try:
        with db.transaction(write=not dry_run) as session:
            result = prune_pass(session, days=settings.retention_days, dry_run=dry_run)
            usage = storage_usage(session)
    finally:
        db.dispose()
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"retention of {settings.retention_days:g} day(s) {verb} {result.summary()}",
               err=True)
    if result.model_ids:
        click.echo(f"models: {', '.join(map(str, result.model_ids))}", err=True)
    quota = (f"{settings.storage_quota_bytes:,} bytes" if settings.storage_quota_bytes
             else "no quota")
    click.echo(f"stored models: {usage.models}, {usage.bytes:,} bytes "
               f"(MCUPROF_STORAGE_QUOTA_BYTES: {quota})", err=True)
