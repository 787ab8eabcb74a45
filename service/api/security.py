"""What every request passes before a route sees it: ``Guard``, an ASGI middleware.

In this order, each before the body is read:

1. **Host** (400): the ``Host`` header must name this server: its bound address,
   ``localhost``, a loopback address, a name in ``MCUPROF_ALLOWED_HOSTS``, or (bound to every
   interface) an IP literal. A DNS-rebinding page (``evil.example`` resolving to 127.0.0.1)
   sends ``Host: evil.example`` and gets nothing.
2. **Origin** (403): a state-changing request (not GET/HEAD/OPTIONS) whose ``Origin`` (else
   ``Referer``) is another origin than the server's own comes from another site's page: a
   cross-site form or ``fetch`` cannot upload, submit or cancel. API clients send neither
   header and are not affected.
3. **Auth** (401): every ``/api/v1`` request needs a valid token (``Authorization: Bearer``,
   else the dashboard's session cookie) unless auth is off, so a request without one is
   refused before its body is validated (no 400/422 for an anonymous caller). The
   principal goes in the request's state for ``service.api.deps``.

Jupyter's server makes the same checks (``allow_remote_access``, ``check_origin``, tokens).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import status
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import RETRY_AFTER
from service.auth import SESSION_COOKIE, AuthError, Principal, authenticate
from service.config import Settings
from service.db.engine import Database

logger = logging.getLogger("mcuprof.api")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
PRINCIPAL_KEY = "principal"  # where Guard leaves the caller in the request's state


def _host_port(netloc: str, scheme: str | None = None) -> tuple[str, int | None] | None:
    """(host name, port or None for the scheme's default) of ``netloc``; None if invalid."""
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    if scheme is not None and port == DEFAULT_PORTS.get(scheme):
        port = None
    return host.rstrip("."), port


def _origin(value: str) -> tuple[str, int | None] | None:
    """(host, port) of an ``Origin`` or ``Referer`` value; None for ``null`` or garbage."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return _host_port(parts.netloc, parts.scheme)


def _error(code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


class Guard:
    """Host, Origin and token checks in front of the app (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, settings: Settings, db: Database,
                 api_prefix: str) -> None:
        self.app = app
        self.settings = settings
        self.db = db
        self.api_prefix = api_prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._host_problem(headers.get("host", ""))
        if problem is None and scope["type"] == "http":
            problem = self._origin_problem(scope["method"], scope["scheme"], headers)
        if problem is None and scope["type"] == "http" and self.settings.auth_required and \
                self._is_api(scope["path"]):
            problem = await self._authenticate(scope, headers)
        if problem is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await problem(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _is_api(self, path: str) -> bool:
        return path == self.api_prefix or path.startswith(self.api_prefix + "/")

    def _host_problem(self, host: str) -> JSONResponse | None:
        parsed = _host_port(host)
        if parsed is not None and self.settings.host_allowed(parsed[0]):
            return None
        shown = host[:100] or "(none)"
        logger.warning("refused a request for host %r (not this server's name)", shown)
        return _error(status.HTTP_400_BAD_REQUEST,
                      f"this server does not answer to the host name {shown!r} (a page "
                      f"reaching it through a DNS name it does not know, e.g. DNS "
                      f"rebinding). Use http://{self._bound()}/ or http://localhost:"
                      f"{self.settings.port}/; an operator who serves it under another "
                      f"name adds that name to MCUPROF_ALLOWED_HOSTS")

    def _bound(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.settings.port}"

    def _origin_problem(self, method: str, scheme: str,
                        headers: Headers) -> JSONResponse | None:
        if method in SAFE_METHODS:
            return None
        value = headers.get("origin")
        name = "Origin"
        if value is None:
            value, name = headers.get("referer"), "Referer"
        if value is None:
            return None  # not from a browser page: API clients send neither
        origin = _origin(value)
        own = _host_port(headers.get("host", ""), scheme)
        if origin is not None and own is not None and origin == own:
            return None
        shown = value[:100]
        logger.warning("refused a %s from another origin (%s: %r)", method, name, shown)
        return _error(status.HTTP_403_FORBIDDEN,
                      f"refused: this {method} comes from a page of another site ({name}: "
                      f"{shown!r}); a page may only change data on its own origin. Use "
                      f"the dashboard or an API client (which sends no Origin)")

    async def _authenticate(self, scope: Scope, headers: Headers) -> JSONResponse | None:
        authorization = headers.get("authorization")
        if not authorization:
            cookie = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
            authorization = f"Bearer {cookie}" if cookie else None

        def lookup() -> Principal:
            with self.db.read() as session:
                return authenticate(session, authorization)

        try:
            principal = await anyio.to_thread.run_sync(lookup)
        except AuthError as e:
            return _error(status.HTTP_401_UNAUTHORIZED, str(e),
                          headers={"WWW-Authenticate": "Bearer"})
        except sa_exc.OperationalError as e:
            logger.warning("database error checking a token: %s", e)
            return _error(status.HTTP_503_SERVICE_UNAVAILABLE,
                          "the database is busy or unavailable; retry shortly (the server "
                          "log has the cause)", headers={"Retry-After": RETRY_AFTER})
        scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
        return None
