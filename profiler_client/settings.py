"""The settings of the REST client and the client side of the CLI (``mcuprof submit``,
``jobs``, ``results``, ``fits``, ``predict``, ``campaign``): which server, which token.

::

    from profiler_client.settings import client_settings

    settings = client_settings()          # MCUPROF_SERVER, MCUPROF_TOKEN, read now
    settings.server                       # None when MCUPROF_SERVER is unset (or blank)
    settings.server_url                   # ... else DEFAULT_SERVER
    settings.token                        # MCUPROF_TOKEN, else MCUPROF_TOKEN_FILE's content,
                                          # else None

An invalid value raises :class:`~bench_firmware.settings.ConfigError` (a ``McuprofError``)
naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench_firmware.settings import ENV_PREFIX, ConfigError, blank_is_none, load

__all__ = ["DEFAULT_SERVER", "ClientSettings", "ConfigError", "check_url", "client_settings",
           "read_token_file", "token_overrides"]

DEFAULT_SERVER = "http://127.0.0.1:8000"  # what `mcuprof serve` binds by default


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
                    "[default: none, enough for a loopback server without auth]",
    )

    # A file keeps the token out of the environment, which other processes of the same
    # user can read (/proc/PID/environ), and out of the command line, which everyone can (ps).
    token_file: Path | None = Field(
        default=None,
        description="file whose first line is the API token; used instead of MCUPROF_TOKEN "
                    "(set one of them, not both)",
    )

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
