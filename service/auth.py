"""API tokens: creation, lookup and what each role may do.

A token is ``mcp_`` + 43 URL-safe characters (32 random bytes); the database keeps only its
SHA-256 (a token has 256 bits of entropy, so a fast hash is enough and keeps the per-request
check at one indexed lookup). It is shown once, when ``mcuprof token create`` makes it.

Roles:

``user``
    uploads models, submits and cancels jobs, reads everything.
``agent``
    registers its agent, leases, heartbeats, reports results and health for its own boards
    and the leases it holds, and reads (it downloads the models it runs). An agent token *is*
    the agent's identity: it is bound to one agent name, the token's name when created with
    ``--name``, otherwise the name of its first registration, and never to another. No two
    tokens are bound to one agent name, so a token cannot register as (and then report for,
    or detach the boards of) another agent.

A browser signs in once: with a user token pasted into ``/login``, or with a one-time login
code (``/login?code=...``, the URL ``mcuprof demo`` prints), which the server exchanges for a
new user token named ``browser-...`` (a session, revocable like any token). Either is kept
in an HttpOnly, SameSite=Strict cookie.

When auth is off (``MCUPROF_AUTH=off``, loopback only and unsafe) every request is allowed
and the ``Authorization`` header is ignored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bench_firmware.errors import McuprofError
from service.db.models import NAME_LENGTH, Agent, LoginCode, Token, utcnow

TOKEN_PREFIX = "mcp_"
LOGIN_PREFIX = "mcl_"  # one-time login codes
TOKEN_BYTES = 32  # random bytes in a token (and in a login code)
LOGIN_CODE_TTL = timedelta(hours=24)  # how long a printed login URL stays valid
SESSION_COOKIE = "mcuprof_token"  # the dashboard's HttpOnly, SameSite=Strict cookie
MIN_TOKEN_CHARS = 24  # shortest token accepted from `token create --value`

Role = Literal["user", "agent"]


class AuthError(McuprofError):
    """The request carries no valid token."""


class ForbiddenError(McuprofError):
    """The token is valid but its role or binding does not allow this."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's role and names, or ``anonymous`` when auth is off."""

    role: Literal["user", "agent", "anonymous"]
    name: str
    token_id: int | None = None
    agent_name: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.role == "anonymous"


ANONYMOUS = Principal(role="anonymous", name="anonymous")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def create_token(session: Session, *, role: Role, name: str | None = None,
                 value: str | None = None) -> tuple[Token, str]:
    """Store a new token; returns the row and the token itself (shown once).

    ``value`` registers a token chosen elsewhere (provisioning, docker compose) instead of a
    random one.
    """
    if role not in ("user", "agent"):
        raise ForbiddenError(f"unknown role {role!r}; use user or agent")
    if value is not None and len(value) < MIN_TOKEN_CHARS:
        raise AuthError(f"a token must have at least {MIN_TOKEN_CHARS} characters; omit the "
                        f"value to get a random one")
    token = value or new_token()
    bound_agent = name if role == "agent" else None  # unnamed agent tokens bind on first use
    name = name or f"{role}-{secrets.token_hex(3)}"
    if len(name) > NAME_LENGTH:
        raise AuthError(f"token name is {len(name)} characters; at most {NAME_LENGTH}")
    if session.scalars(select(Token).where(Token.name == name)).first() is not None:
        raise AuthError(f"a token named {name!r} exists; revoke it first "
                        f"(mcuprof token revoke {name}) or choose another name")
    if session.scalars(select(Token).where(Token.token_sha256 == hash_token(token))).first():
        raise AuthError("that token value is already registered; choose another")
    if bound_agent is not None:
        holder = bound_token(session, bound_agent)
        if holder is not None:
            raise AuthError(f"agent {bound_agent!r} already has a token ({holder.name!r}); "
                            f"revoke it first (mcuprof token revoke {holder.name}) or "
                            f"choose another name")
    row = Token(token_sha256=hash_token(token), role=role, name=name, agent_name=bound_agent)
    session.add(row)
    session.flush()
    return row, token


def count_user_tokens(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Token)
                              .where(Token.role == "user")) or 0)


def authenticate(session: Session, authorization: str | None) -> Principal:
    """The principal behind an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        raise AuthError("this server requires an API token: send 'Authorization: Bearer "
                        "<token>' (set MCUPROF_TOKEN or pass --token); an admin creates one "
                        "with `mcuprof token create --role user`")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header must be 'Bearer <token>'")
    row = session.scalars(select(Token)
                          .where(Token.token_sha256 == hash_token(token.strip()))).first()
    if row is None:
        raise AuthError("unknown or revoked API token; check MCUPROF_TOKEN or ask for a new "
                        "one (`mcuprof token create`)")
    return Principal(role="agent" if row.role == "agent" else "user", name=row.name,
                     token_id=row.id, agent_name=row.agent_name)


def require_role(principal: Principal, role: Role, action: str) -> None:
    """Refuse ``action`` unless ``principal`` has ``role`` (anonymous may do anything)."""
    if principal.anonymous or principal.role == role:
        return
    raise ForbiddenError(f"{action} needs a {role} token; token {principal.name!r} is a "
                         f"{principal.role} token")


def agent_scope(principal: Principal) -> str | None:
    """The agent an agent token acts for (None: anonymous, no ownership checks)."""
    if principal.anonymous:
        return None
    if principal.agent_name is None:
        raise ForbiddenError(f"agent token {principal.name!r} is not bound to an agent yet; "
                             f"register with POST /api/v1/agents first")
    return principal.agent_name


def bound_token(session: Session, agent_name: str) -> Token | None:
    """The agent token bound to ``agent_name``, if any."""
    return session.scalars(select(Token).where(Token.role == "agent",
                                               Token.agent_name == agent_name)
                           .order_by(Token.id)).first()


def bind_agent(session: Session, principal: Principal, agent_name: str, *,
               lease_seconds: float, now: datetime | None = None) -> None:
    """Let ``principal`` act as agent ``agent_name``, binding an unbound agent token to it.

    A bound token acts only as its own agent. An unbound one binds to ``agent_name`` unless
    another token is bound to that name, or an agent of that name (registered when tokens
    were not required) was seen in the last ``lease_seconds``. Refusals raise
    ``ForbiddenError``; the binding is final.
    """
    if principal.anonymous:
        return
    if principal.agent_name is not None:
        if principal.agent_name != agent_name:
            raise ForbiddenError(
                f"agent token {principal.name!r} belongs to agent {principal.agent_name!r}, "
                f"not {agent_name!r}: a token is its agent's identity. Start the agent "
                f"without --name (it takes its name from its token), or with --name "
                f"{principal.agent_name}")
        return
    now = now or utcnow()
    # Lock the agent row (when there is one) so that two tokens cannot both bind to it; a
    # new name is guarded by the unique agents.name that the registration inserts.
    agent = session.scalars(select(Agent).where(Agent.name == agent_name)
                            .with_for_update()).first()
    holder = bound_token(session, agent_name)
    if holder is not None and holder.id != principal.token_id:
        raise ForbiddenError(
            f"agent name {agent_name!r} belongs to another agent token; a token may not "
            f"register as another agent. Register under this token's own name (mcuprof "
            f"agent --name NAME), or create a token for this agent with "
            f"`mcuprof token create --role agent --name NAME`")
    if agent is not None and agent.last_seen is not None and now - agent.last_seen < \
            timedelta(seconds=lease_seconds):
        age = (now - agent.last_seen).total_seconds()
        raise ForbiddenError(
            f"agent {agent_name!r} is running (seen {age:.0f} s ago) and token "
            f"{principal.name!r} is not its token; register under another name (--name)")
    row = session.get(Token, principal.token_id)
    if row is None:
        raise AuthError(f"token {principal.name!r} was revoked; ask for a new one")
    row.agent_name = agent_name
    session.flush()


def revoke_token(session: Session, name: str) -> bool:
    """Delete the token called ``name``; False when there is none."""
    row = session.scalars(select(Token).where(Token.name == name)).first()
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def create_login_code(session: Session, *, ttl: timedelta = LOGIN_CODE_TTL,
                      now: datetime | None = None) -> str:
    """Store a new one-time login code valid for ``ttl``; returns it (shown once)."""
    now = now or utcnow()
    code = LOGIN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    session.add(LoginCode(code_sha256=hash_token(code), created_at=now, expires_at=now + ttl))
    session.flush()
    return code


def exchange_login_code(session: Session, code: str, *,
                        now: datetime | None = None) -> tuple[Token, str]:
    """Spend ``code`` (once): a new browser session, a user token named ``browser-...``;
    returns the row and the token. ``AuthError`` when the code is unknown, used or expired."""
    now = now or utcnow()
    row = session.scalars(select(LoginCode)
                          .where(LoginCode.code_sha256 == hash_token(code.strip()))
                          .with_for_update()).first()
    session.execute(delete(LoginCode).where(LoginCode.expires_at < now))
    if row is None or row.expires_at < now:
        raise AuthError("this login link was already used or has expired; sign in with a "
                        "user token, or restart `mcuprof demo` for a new link")
    session.delete(row)
    return create_token(session, role="user", name=f"browser-{secrets.token_hex(4)}")


def list_tokens(session: Session) -> list[Token]:
    return list(session.scalars(select(Token).order_by(Token.id)))
