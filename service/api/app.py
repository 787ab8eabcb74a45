"""The FastAPI application: ``create_app(settings)``.

Everything the app knows is in the database (``app.state.db``); any number of replicas can
serve the same database. A background task sweeps expired leases every
``settings.expire_interval_seconds`` (lease and heartbeat requests sweep too, so the sweep is
a backstop for when no agent is polling). With ``settings.retention_days`` set, another runs
retention (``service.retention.prune``) every ``settings.retention_interval_seconds``; replicas
may all run it, a pass is one transaction and a second one finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI, HTTPException, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import errors
from service.api.routes import (
    agents,
    calibrations,
    dashboard,
    devices,
    fits,
    jobs,
    measurements,
    models,
    searches,
)
from service.api.security import Guard
from service.config import ConfigError, Settings
from service.db.engine import Database
from service.queue import expire_leases
from service.retention import prune

API_PREFIX = "/api/v1"
MULTIPART_SLACK = 64 * 1024  # bytes of multipart framing and form fields above the file limit

logger = logging.getLogger("mcuprof.api")
UNSAFE_WARNING = ("MCUPROF_AUTH=off: UNSAFE. No token is asked for, so any program on this "
                  "machine and any web page open in its browser can upload, submit and "
                  "cancel. Unset MCUPROF_AUTH unless this is a throwaway benchmark")

class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a 413 that says the limit.

    Checked against Content-Length before anything is read, and counted while a body without
    one streams in.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, upload_limit: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = (f"the request body is larger than this server accepts ({upload_limit} "
                        f"bytes per model file, MCUPROF_MAX_UPLOAD_BYTES); shrink the model or "
                        f"ask the operator to raise the limit")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                response = JSONResponse({"detail": self.message},
                                        status_code=status.HTTP_413_CONTENT_TOO_LARGE)
                await response(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPExceptions from body parsing as they are.
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=self.message)
            return message

        await self.app(scope, limited, send)


async def _every(interval: float, what: str, once: Callable[[], None]) -> None:
    """Run ``once`` in a worker thread every ``interval`` seconds; a failure (a database
    hiccup) is logged and does not end the task."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(once)
        except Exception:
            logger.exception("%s failed; retrying in %.0f s", what, interval)


def _sweep(db: Database) -> Callable[[], None]:
    """One pass returning stale leases to the queue."""

    def once() -> None:
        with db.transaction() as session:
            expired = expire_leases(session)
        if expired:
            logger.info("returned %d expired lease(s) to the queue: jobs %s", len(expired),
                        expired)

    return once


def _retain(db: Database, days: float) -> Callable[[], None]:
    """One retention pass for ``days``."""

    def once() -> None:
        with db.transaction() as session:
            result = prune(session, days=days)
        if not result.nothing:
            logger.info("retention (MCUPROF_RETENTION_DAYS=%g) deleted %s", days,
                        result.summary())

    return once


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """The API for ``settings`` (read from the environment when None).

    The schema must already be migrated (``mcuprof serve`` does it). ``database`` shares an
    existing engine (tests); otherwise the app makes one and disposes of it at shutdown.
    ``ConfigError`` when the settings are unsafe (auth off on a non-loopback address).
    """
    settings = settings or Settings()
    problem = settings.serve_problem(user_tokens=1)  # tokens are checked by `mcuprof serve`
    if problem:
        raise ConfigError(problem)
    if not settings.auth_required:
        logger.warning(UNSAFE_WARNING)
    db = database or Database.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if settings.expire_interval_seconds > 0:
            tasks.append(asyncio.create_task(_every(
                settings.expire_interval_seconds, "lease expiry sweep", _sweep(db))))
        if settings.retention_days > 0 and settings.retention_interval_seconds > 0:
            tasks.append(asyncio.create_task(_every(
                settings.retention_interval_seconds, "retention pass",
                _retain(db, settings.retention_days))))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if database is None:
                db.dispose()

    app = FastAPI(
        title="mcuprof",
        summary="Hardware-in-the-loop latency profiling of int8 networks on Cortex-M boards",
        version="1",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry looks up its providers on every request (about 5 %
        # of a request's CPU here); mcuprof exports none, so it is off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.db = db
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes + MULTIPART_SLACK,
                       upload_limit=settings.max_upload_bytes)
    # Added last, so it runs first: Host, Origin and token before any body is read.
    app.add_middleware(Guard, settings=settings, db=db, api_prefix=API_PREFIX)
    for module in (models, jobs, devices, agents, measurements, fits, calibrations, searches):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(dashboard.router)  # /, /device/..., /model/..., /jobs, /searches, ...
    return app
