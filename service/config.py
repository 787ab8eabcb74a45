"""The service's configuration: one typed ``Settings``, read from ``MCUPROF_*`` variables.

Every option of the server is declared here once, with its type, default and meaning (the
agent's are in ``service/agent_settings.py``, the client's in ``profiler_client/settings.py``,
the local tools' in ``bench_firmware/settings.py``). ``Settings()`` reads
the environment (``MCUPROF_DATABASE_URL``, ``MCUPROF_PORT``, ...) and validates it at start;
``mcuprof serve`` refuses insecure combinations (see ``Settings.check_serve``).

Auth (``MCUPROF_AUTH``):

``auto`` (default)
    tokens are required when the server binds a non-loopback address, not on loopback
    (``127.0.0.1``, ``::1``, ``localhost``: single-user development).
``on``
    tokens are always required.
``off``
    never; refused by ``mcuprof serve`` on a non-loopback address.

When tokens are required, ``mcuprof serve`` also refuses to start until the database holds
at least one user token (``mcuprof token create --role user``): otherwise nobody could use it.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# ConfigError is every role's (defined in the lowest package); importable from here as before.
from bench_firmware.settings import ENV_PREFIX, ConfigError, load

MIB = 1024 * 1024  # bytes
DEFAULT_MAX_UPLOAD_BYTES = 16 * MIB
DEFAULT_LEASE_SECONDS = 60.0  # seconds a lease lives without a heartbeat
DEFAULT_EXPIRE_INTERVAL_SECONDS = 15.0  # seconds between the app's background expiry sweeps
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

AuthMode = Literal["auto", "on", "off"]

__all__ = ["AuthMode", "ConfigError", "Settings", "is_loopback", "load_settings",
           "normalize_database_url"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to bind) only accepts local connections."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public interface


def normalize_database_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg 3 (the driver mcuprof installs)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: str = Field(
        default="sqlite:///./mcuprof.db",
        description="SQLAlchemy URL; SQLite in the working directory unless set "
                    "(postgresql://user@host/db for many hosts)",
    )
    host: str = Field(default="127.0.0.1", description="address `mcuprof serve` binds")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port `mcuprof serve` binds")
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, gt=0,
                                  description="largest .tflite upload accepted, in bytes")
    lease_seconds: float = Field(default=DEFAULT_LEASE_SECONDS, gt=0,
                                 description="seconds a job lease lives without a heartbeat")
    max_attempts: int = Field(default=3, ge=1, le=100,
                              description="attempts before a job is failed for good")
    auth: AuthMode = Field(default="auto", description="whether API tokens are required: "
                           "auto (on a non-loopback address), on, off")
    expire_interval_seconds: float = Field(
        default=DEFAULT_EXPIRE_INTERVAL_SECONDS, ge=0,
        description="seconds between the app's background sweeps for expired leases "
                    "(0: only on lease and heartbeat requests)",
    )
    db_pool_size: int = Field(default=20, ge=1,
                              description="PostgreSQL connections kept open per API process")
    db_max_overflow: int = Field(default=20, ge=0,
                                 description="extra PostgreSQL connections under load")

    @field_validator("database_url")
    @classmethod
    def _driver(cls, url: str) -> str:
        return normalize_database_url(url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def auth_required(self) -> bool:
        """Whether requests must carry a valid ``Authorization: Bearer`` token."""
        if self.auth == "auto":
            return not is_loopback(self.host)
        return self.auth == "on"

    def serve_problem(self, *, user_tokens: int) -> str | None:
        """Why ``mcuprof serve`` must not start with these settings, or None when it may.

        ``user_tokens`` is the number of user tokens in the database.
        """
        if not is_loopback(self.host) and not self.auth_required:
            return (f"refusing to serve on {self.host} (not a loopback address) with "
                    f"MCUPROF_AUTH=off: anyone who can reach it could submit and report. "
                    f"Unset MCUPROF_AUTH (or set it to auto/on) and create tokens with "
                    f"`mcuprof token create`, or bind 127.0.0.1")
        if self.auth_required and user_tokens == 0:
            return (f"refusing to serve on {self.host}: tokens are required there but the "
                    f"database holds no user token. Create one with `mcuprof token create "
                    f"--role user` (and one per agent host with --role agent), or bind "
                    f"127.0.0.1")
        return None


def load_settings(**overrides: object) -> Settings:
    """``Settings`` from the environment with ``overrides`` (None values ignored); invalid
    values raise ``ConfigError`` naming the variable."""
    return load(Settings, overrides)
