"""The service's configuration: one typed ``Settings``, read from ``MCUPROF_*`` variables.

Every option of the server is declared here once, with its type, default and meaning (the
agent's are in ``service/agent_settings.py``, the client's in ``profiler_client/settings.py``,
the local tools' in ``bench_firmware/settings.py``). ``Settings()`` reads
the environment (``MCUPROF_DATABASE_URL``, ``MCUPROF_PORT``, ...) and validates it at start;
``mcuprof serve`` refuses insecure combinations (see ``Settings.check_serve``).

Auth (``MCUPROF_AUTH``), as Jupyter does it: tokens by default, loopback included, because
any web page the user visits can send requests to a server on 127.0.0.1.

``on`` (default)
    every API request needs a valid token (``Authorization: Bearer``, or the dashboard's
    HttpOnly, SameSite=Strict cookie); the dashboard's pages ask for one (``/login``).
    ``mcuprof serve`` refuses to start until the database holds at least one user token
    (``mcuprof token create --role user --save``): otherwise nobody could use it.
    ``mcuprof demo`` creates its tokens itself.
``off``
    no token is asked for: any local program *and any web page* can submit and cancel.
    Refused off loopback; logged as unsafe on loopback. For throwaway benchmarks only.

Whatever the auth, requests must name this server in their ``Host`` header (the bound
address, ``localhost``, a loopback address, or ``MCUPROF_ALLOWED_HOSTS``): a DNS-rebinding
page cannot read the API. State-changing requests from a page of another origin (their
``Origin`` or ``Referer``) are refused: a cross-site form cannot write
(``service/api/security.py``).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# ConfigError is every role's (defined in the lowest package); importable from here as before.
from bench_firmware.settings import ENV_PREFIX, ConfigError, load

MIB = 1024 * 1024  # bytes
GIB = 1024 * MIB  # bytes
DEFAULT_MAX_UPLOAD_BYTES = 16 * MIB
DEFAULT_STORAGE_QUOTA_BYTES = 5 * GIB  # stored model files, all together
DEFAULT_RETENTION_INTERVAL_SECONDS = 3600.0  # seconds between background retention passes
DEFAULT_LEASE_SECONDS = 60.0  # seconds a lease lives without a heartbeat
DEFAULT_EXPIRE_INTERVAL_SECONDS = 15.0  # seconds between the app's background expiry sweeps
MAX_AUTO_WORKERS = 4  # API processes `mcuprof serve` starts by itself, at most
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

AuthMode = Literal["on", "off"]
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})  # bind every interface

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
    physical_run_seconds: float = Field(
        default=60.0, gt=0, le=86_400,
        description="seconds of board time one job's warm-up and timed runs may take on a "
                    "physical (pyocd) or Renode board; a job estimated longer is refused at "
                    "submit (virtual boards use their own budget)")
    auth: AuthMode = Field(default="on", description="whether API tokens are required: on, "
                           "or off (loopback only, unsafe: any web page can then submit)")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated host names (as clients write them in URLs) the server "
                    "answers besides its bound address, localhost and loopback addresses; "
                    "`*`: any (behind a proxy that checks Host) [default: none]",
    )
    expire_interval_seconds: float = Field(
        default=DEFAULT_EXPIRE_INTERVAL_SECONDS, ge=0,
        description="seconds between the app's background sweeps for expired leases "
                    "(0: only on lease and heartbeat requests)",
    )
    storage_quota_bytes: int = Field(
        default=DEFAULT_STORAGE_QUOTA_BYTES, ge=0,
        description="total bytes of stored model files (as uploaded) the server keeps; an "
                    "upload of new bytes that would go over it is refused with 507 and "
                    "nothing is stored (0: no limit) [default: `5368709120` (5 GiB)]")
    retention_days: float = Field(
        default=0.0, ge=0, le=36_500,
        description="days after which retention clears the serial logs of finished jobs' "
                    "attempts and of measurements (their numbers stay) and deletes models "
                    "with no queued or leased job, no measurement and no job activity in "
                    "that time, with their finished jobs; run by the server every "
                    "MCUPROF_RETENTION_INTERVAL_SECONDS and by `mcuprof prune` (0: keep "
                    "everything)")
    retention_interval_seconds: float = Field(
        default=DEFAULT_RETENTION_INTERVAL_SECONDS, ge=0,
        description="seconds between the server's background retention passes, when "
                    "MCUPROF_RETENTION_DAYS is set (0: only `mcuprof prune`)")
    workers: int = Field(
        default=0, ge=0, le=64,
        description="API worker processes `mcuprof serve` runs (0: one per CPU, at most 4, "
                    "on PostgreSQL; one on SQLite, whose writes take turns anyway)")
    db_pool_size: int = Field(default=20, ge=1,
                              description="PostgreSQL connections kept open per API process")
    db_max_overflow: int = Field(default=20, ge=0,
                                 description="extra PostgreSQL connections under load")

    @field_validator("database_url")
    @classmethod
    def _driver(cls, url: str) -> str:
        return normalize_database_url(url)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        # A plain comma-separated list in the environment, not JSON.
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        if isinstance(value, (list, tuple)):
            return [str(h).strip().lower() for h in value if str(h).strip()]
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def worker_processes(self) -> int:
        """How many API processes `mcuprof serve` runs (``workers``, or its automatic value)."""
        if self.workers:
            return self.workers
        return 1 if self.is_sqlite else max(1, min(os.cpu_count() or 1, MAX_AUTO_WORKERS))

    @property
    def auth_required(self) -> bool:
        """Whether requests must carry a valid token (``Authorization: Bearer`` or cookie)."""
        return self.auth != "off"

    def host_allowed(self, host: str) -> bool:
        """Whether a request's ``Host`` (``host``, without its port) names this server."""
        host = host.strip().lower().rstrip(".")
        if "*" in self.allowed_hosts or host in self.allowed_hosts:
            return True
        if host == self.host.strip().lower().strip("[]") or is_loopback(host):
            return True
        if self.host.strip() in WILDCARD_HOSTS:
            # Bound to every interface: any address of this machine, written as an IP
            # literal (a DNS-rebinding page has a name, never an IP literal).
            try:
                ipaddress.ip_address(host.strip("[]"))
                return True
            except ValueError:
                return False
        return False

    def serve_problem(self, *, user_tokens: int) -> str | None:
        """Why ``mcuprof serve`` must not start with these settings, or None when it may.

        ``user_tokens`` is the number of user tokens in the database.
        """
        loopback = is_loopback(self.host)
        if not loopback and not self.auth_required:
            return (f"refusing to serve on {self.host} (not a loopback address) with "
                    f"MCUPROF_AUTH=off: anyone who can reach it could submit and cancel. "
                    f"Unset MCUPROF_AUTH (tokens are required by default) and create a "
                    f"token with `mcuprof token create --role user`")
        if self.auth_required and user_tokens == 0:
            create = ("`mcuprof token create --role user --save` (--save keeps it in "
                      "~/.config/mcuprof/token, where the CLI on this machine finds it; the "
                      "dashboard asks for it once)" if loopback else
                      "`mcuprof token create --role user`, and one per agent host with "
                      "--role agent")
            return (f"refusing to serve on {self.host}: API tokens are required and the "
                    f"database holds no user token, so nobody could use the server. Create "
                    f"one with {create}, or run `mcuprof demo`, which makes its own")
        return None


def load_settings(**overrides: object) -> Settings:
    """``Settings`` from the environment with ``overrides`` (None values ignored); invalid
    values raise ``ConfigError`` naming the variable."""
    return load(Settings, overrides)
