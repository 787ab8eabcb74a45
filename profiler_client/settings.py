"""The settings of the REST client and the client side of the CLI (``mcuprof submit``,
``jobs``, ``results``, ``fits``, ``predict``, ``campaign``): which server, which token.

::

    from profiler_client.settings import client_settings

    settings = client_settings()          # MCUPROF_SERVER, MCUPROF_TOKEN, read now
    settings.server                       # None when MCUPROF_SERVER is unset (or blank)
    settings.server_url                   # ... else DEFAULT_SERVER
    settings.token                        # MCUPROF_TOKEN, else MCUPROF_TOKEN_FILE's content,
                                          # else the per-user token file's (a server on
                                          # this machine only), else None

The per-user token file (:func:`user_token_file`: ``$XDG_CONFIG_HOME/mcuprof/token``, by
default ``~/.config/mcuprof/token``) is what ``mcuprof demo`` and ``mcuprof token create
--save`` write, so that the CLI on the same machine needs no token typed (as Jupyter's
runtime files do). It is read only when neither variable is set, and only for a server on
this machine (loopback): a token of the local server is never sent elsewhere.

An invalid value raises :class:`~bench_firmware.settings.ConfigError` (a ``McuprofError``)
naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench_firmware.settings import ENV_PREFIX, ConfigError, blank_is_none, load

__all__ = ["DEFAULT_SERVER", "ClientSettings", "ConfigError", "check_url", "client_settings",
           "is_local_url", "read_token_file", "token_overrides", "user_token_file",
           "write_user_token"]

DEFAULT_SERVER = "http://127.0.0.1:8000"  # what `mcuprof serve` binds by default
USER_TOKEN_FILE = "mcuprof/token"  # under the XDG config folder
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def user_token_file() -> Path:
    """The per-user token file: ``$XDG_CONFIG_HOME/mcuprof/token`` (XDG Base Directory
    specification; ``~/.config`` when the variable is unset or blank)."""
    config = os.environ.get("XDG_CONFIG_HOME", "").strip()
    return (Path(config) if config else Path.home() / ".config") / USER_TOKEN_FILE


def write_user_token(token: str) -> Path:
    """Keep ``token`` in :func:`user_token_file`, readable by this user only; returns the
    path. ``OSError`` when it cannot be written."""
    path = user_token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return path


def is_local_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (a loopback address or ``localhost``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """``url`` without trailing slashes; ``ValueError`` unless it is http(s)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"server URL {url!r} must start with http:// or https:// "
                         f"(e.g. {DEFAULT_SERVER})")
    return url


def read_token_file(path: Path) -> str:
    """The token in ``path`` (its first line, stripped); ``ValueError`` saying why not."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read the token file {path}: {e.strerror or e}") from e
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"the token file {path} is empty; put the token on its first line")
    return lines[0].strip()


class ClientSettings(BaseSettings):
    """What the client reads from its environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # None, not DEFAULT_SERVER, when unset: a caller can tell "the user chose this server"
    # from "nobody did" (the campaign offers --local only in the second case).
    server: str | None = Field(
        default=None,
        description=f"URL of the mcuprof server the client and CLI talk to "
                    f"[default: {DEFAULT_SERVER}]",
    )
    # repr=False: settings objects end up in logs and tracebacks; the token must not.
    token: str | None = Field(
        default=None, repr=False,
        description="API token sent as `Authorization: Bearer` (`mcuprof token create`) "
                    "[default: the per-user token file's, for a server on this machine]",
    )

    # A file keeps the token out of the environment, which other processes of the same
    # user can read (/proc/PID/environ), and out of the command line, which everyone can (ps).
    token_file: Path | None = Field(
        default=None,
        description="file whose first line is the API token; used instead of MCUPROF_TOKEN "
                    "(set one of them, not both) [default: $XDG_CONFIG_HOME/mcuprof/token "
                    "(~/.config/mcuprof/token), which `mcuprof demo` and `mcuprof token "
                    "create --save` write, when it exists and the server is on this machine]",
    )

    # The agent's settings extend these; an agent needs an agent token, never the user's.
    reads_user_token_file: ClassVar[bool] = True

    _blank = field_validator("server", "token", "token_file", mode="before")(blank_is_none)

    @field_validator("server")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return check_url(url) if url is not None else None

    @field_validator("token")
    @classmethod
    def _strip(cls, token: str | None) -> str | None:
        return token.strip() if token is not None else None

    @model_validator(mode="after")
    def _token_from_file(self) -> Self:
        if self.token_file is not None:
            if self.token is not None:
                raise ValueError("both MCUPROF_TOKEN and MCUPROF_TOKEN_FILE (or --token and "
                                 "--token-file) are set; keep one")
            self.token = read_token_file(self.token_file)
        elif self.token is None and self.reads_user_token_file and \
                is_local_url(self.server_url):
            path = user_token_file()
            if path.is_file():
                self.token = read_token_file(path)
        return self

    @property
    def server_url(self) -> str:
        """The server to talk to: ``server``, else :data:`DEFAULT_SERVER`."""
        return self.server or DEFAULT_SERVER


def client_settings(**overrides: object) -> ClientSettings:
    """:class:`ClientSettings` from the environment now, with ``overrides`` (e.g. the
    ``--server`` and ``--token`` options; None values are ignored). Read again on every call,
    so a changed environment is seen. :class:`ConfigError` when a value is invalid."""
    return load(ClientSettings, overrides, unset=token_overrides(overrides))


def token_overrides(overrides: Mapping[str, object]) -> tuple[str, ...]:
    """The token fields an explicit ``--token`` or ``--token-file`` takes from the
    environment: either option replaces both variables, so a user token left in the shell
    (MCUPROF_TOKEN) never clashes with, or stands in for, an agent's ``--token-file``."""
    if overrides.get("token") is not None or overrides.get("token_file") is not None:
        return ("token", "token_file")
    return ()
