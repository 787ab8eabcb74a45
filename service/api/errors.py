"""Errors as JSON ``{"detail": "<what was wrong and what to do>"}``, never a 500 for bad input.

Domain errors (``McuprofError`` subclasses from the queue, the compiler and auth) map to one
status each; routes raise ``http_error(e)``, and the app's handlers catch whatever a route did
not, so no domain or database error reaches a client as a traceback. A database error is
mapped to what it is (``service.db.engine.is_transient`` / ``is_damaged``): 503 with
Retry-After only for a condition that passes (busy, locked, connection lost).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc

from bench_firmware.errors import McuprofError, ModelError
from profiler_client.schemas import TAG_PATTERN
from service.auth import AuthError, ForbiddenError
from service.db.engine import Database, DatabaseDamagedError, is_damaged, is_transient
from service.queue import ConflictError, InvalidRequestError, NotFoundError, NotOwnerError

logger = logging.getLogger("mcuprof.api")

STATUS: tuple[tuple[type[McuprofError], int], ...] = (
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (ConflictError, status.HTTP_409_CONFLICT),
    (NotOwnerError, status.HTTP_403_FORBIDDEN),
    (ForbiddenError, status.HTTP_403_FORBIDDEN),
    (AuthError, status.HTTP_401_UNAUTHORIZED),
    (InvalidRequestError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (ModelError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (DatabaseDamagedError, status.HTTP_500_INTERNAL_SERVER_ERROR),
)
RETRY_AFTER = "1"  # seconds a client waits before retrying after a 503


class ErrorOut(BaseModel):
    """Every error response: ``detail`` says what was wrong and what to do. Validation
    errors (422) add pydantic's list as ``errors``."""

    detail: str
    errors: list[dict[str, Any]] | None = None


_DESCRIPTIONS = {
    401: "no valid API token (Authorization: Bearer <token>)",
    403: "the token's role or agent may not do this",
    404: "no such resource",
    409: "conflicts with the queue's state (e.g. a lease no longer held)",
    422: "invalid request",
    500: "a fault of the server or its database (the message says which); not worth a retry",
    503: "database busy or unreachable for now; retry after Retry-After seconds",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (common ones always)."""
    return {code: {"model": ErrorOut, "description": _DESCRIPTIONS[code]}
            for code in sorted({401, 403, 422, 503, *codes})}


def status_of(e: McuprofError) -> int:
    for cls, code in STATUS:
        if isinstance(e, cls):
            return code
    return status.HTTP_422_UNPROCESSABLE_CONTENT


def http_error(e: McuprofError) -> HTTPException:
    """The HTTP error for a domain error (raise it from a route: ``raise http_error(e) from e``)."""
    code = status_of(e)
    headers = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED else None
    return HTTPException(code, detail=str(e), headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def _message(err: dict[str, Any]) -> str:
    """pydantic's message, in our words where its own is a regular expression."""
    if err.get("type") == "string_pattern_mismatch" and \
            (err.get("ctx") or {}).get("pattern") == TAG_PATTERN:
        return "a tag is key=value with a key that is not blank (e.g. backbone=kws)"
    return str(err.get("msg", ""))


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One sentence for pydantic's error list."""
    parts = []
    for err in errors[:10]:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            return (f"the request body is not valid JSON ({ctx.get('error', 'parse error')} "
                    f"at position {err['loc'][-1]}); send a JSON object with "
                    f"Content-Type: application/json")
        parts.append(f"{_location(tuple(err['loc']))}: {_message(err)}")
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return "invalid request: " + "; ".join(parts) + more + ". See /docs for the schema"


async def _validation(_request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, RequestValidationError)
    errors = list(e.errors())
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                        content={"detail": validation_message(errors),
                                 "errors": _jsonable(errors)})


def _jsonable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")),
             "type": str(err.get("type", ""))} for err in errors]


async def _domain(_request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, McuprofError)
    error = http_error(e)
    return JSONResponse(status_code=error.status_code, content={"detail": error.detail},
                        headers=error.headers)


async def _database(request: Request, e: Exception) -> JSONResponse:
    """A database error as what it is: bad values 422, a concurrent change 409, a condition
    that passes (busy, locked, connection lost) 503 with Retry-After, a damaged SQLite file
    500 saying how to recover (and no more writes), anything else 500."""
    if isinstance(e, sa_exc.DataError):
        return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={
            "detail": f"a value in the request cannot be stored ({_first_line(e.orig)}); "
                      f"check numbers are in range and text has no NUL characters"})
    if isinstance(e, sa_exc.IntegrityError):
        logger.info("conflict on %s %s: %s", request.method, request.url.path, e.orig)
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={
            "detail": "a concurrent request changed the same record; retry the request"})
    if is_transient(e):
        logger.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                       e)
        return JSONResponse(status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                            headers={"Retry-After": RETRY_AFTER}, content={
                                "detail": "the database is busy or unreachable; retry "
                                          "shortly (the server log has the cause)"})
    db = getattr(request.app.state, "db", None)
    if is_damaged(e) and isinstance(db, Database):
        return JSONResponse(status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
                            content={"detail": db.mark_damaged(e)})
    logger.error("database error on %s %s", request.method, request.url.path, exc_info=e)
    return JSONResponse(status_code=status.HTTP_500_INTERNAL_SERVER_ERROR, content={
        "detail": f"the database refused the operation ({type(e).__name__}: "
                  f"{_first_line(getattr(e, 'orig', None) or e)}); retrying will not help. "
                  f"This is a bug in mcuprof or a fault of the database; the server log has "
                  f"the cause"})


def _first_line(e: object) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


async def _unexpected(request: Request, e: Exception) -> JSONResponse:
    logger.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=status.HTTP_500_INTERNAL_SERVER_ERROR, content={
        "detail": f"internal error ({type(e).__name__}); this is a bug in mcuprof, the "
                  f"server log has the traceback"})


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(McuprofError, _domain)
    app.add_exception_handler(sa_exc.DBAPIError, _database)  # every driver error
    app.add_exception_handler(sa_exc.TimeoutError, _database)  # the pool: no connection free
    app.add_exception_handler(Exception, _unexpected)
