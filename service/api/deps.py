"""Dependencies shared by the routes: the request's database session (one transaction per
request), the settings, and who is calling.

``SessionDep`` is a write session (SQLite ``BEGIN IMMEDIATE``) for every method but
GET/HEAD/OPTIONS; the route commits it, and anything not committed is rolled back when the
route ends, before the response is sent.

The others are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread,
a hop per dependency per request that these (no I/O, or I/O handed to a thread only when
needed) do not need.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.api.security import PRINCIPAL_KEY
from service.auth import (
    ANONYMOUS,
    SESSION_COOKIE,
    AuthError,
    ForbiddenError,
    Principal,
    agent_scope,
    authenticate,
    require_role,
)
from service.config import Settings
from service.db.engine import Database

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_db(request: Request) -> Iterator[Session]:
    db: Database = request.app.state.db
    with db.read() if request.method in READ_METHODS else db.write() as session:
        yield session


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def unauthorized(e: AuthError) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(e),
                         headers={"WWW-Authenticate": "Bearer"})


def forbidden(e: ForbiddenError) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=str(e))


async def get_principal(request: Request, settings: SettingsDep) -> Principal:
    """The caller (found by ``service.api.security.Guard`` before the body was read);
    anonymous when auth is off."""
    if not settings.auth_required:
        return ANONYMOUS
    found = getattr(request.state, PRINCIPAL_KEY, None)
    if isinstance(found, Principal):
        return found
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    db: Database = request.app.state.db

    def lookup() -> Principal:
        with db.read() as session:
            return authenticate(session, header or (f"Bearer {cookie}" if cookie else None))

    try:
        return await run_in_threadpool(lookup)
    except AuthError as e:
        raise unauthorized(e) from e


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _role(role: str, action: str) -> object:
    async def check(principal: PrincipalDep) -> Principal:
        try:
            require_role(principal, role, action)  # type: ignore[arg-type]
        except ForbiddenError as e:
            raise forbidden(e) from e
        return principal

    return check


async def get_agent_scope(principal: PrincipalDep) -> str | None:
    """The agent name an agent token acts for; None when auth is off."""
    try:
        require_role(principal, "agent", "this agent operation")
        return agent_scope(principal)
    except ForbiddenError as e:
        raise forbidden(e) from e


Reader = Annotated[Principal, Depends(get_principal)]  # any valid token
User = Annotated[Principal, Depends(_role("user", "submitting and cancelling"))]
SearchWriter = Annotated[Principal, Depends(_role("user", "recording a search run"))]
AgentPrincipal = Annotated[Principal, Depends(_role("agent", "registering an agent"))]
AgentScope = Annotated[str | None, Depends(get_agent_scope)]
