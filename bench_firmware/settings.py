"""The settings of the local tools (``mcuprof run/analyze/compile/firmware``), and the one way
every role's settings are read.

mcuprof has one settings class per role, each a pydantic-settings class that declares every
``MCUPROF_*`` variable it reads once, with its type, default and meaning:

=====================================================  ==============================
class                                                  role
=====================================================  ==============================
:class:`LocalSettings` (here)                          local tools, board back ends
``profiler_client.settings.ClientSettings``            the REST client and its CLI
``service.agent_settings.AgentSettings``               ``mcuprof agent``
``service.config.Settings``                            ``mcuprof serve``, the API
=====================================================  ==============================

They live in the lowest package that reads them (a lower package never imports a higher
one), and all are read with :func:`load`, which turns a pydantic ``ValidationError`` into a
:class:`ConfigError` naming the variable. The README's "Settings" table lists them all
(``tests/unit/test_settings.py`` checks it is complete).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench_firmware.errors import McuprofError

ENV_PREFIX = "MCUPROF_"

S = TypeVar("S", bound=BaseSettings)


class ConfigError(McuprofError):
    """The configuration (an ``MCUPROF_*`` variable or an option) is invalid or unsafe."""


def env_name(settings: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of ``settings`` (``MCUPROF_...``)."""
    info = settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias.upper()
    prefix = settings.model_config.get("env_prefix", "") or ""
    return f"{prefix}{field}".upper()


def load(settings: type[S], overrides: Mapping[str, object] | None = None, *,
         unset: Iterable[str] = ()) -> S:
    """``settings`` read from the environment, with ``overrides`` (field=value; None values
    are ignored, so unset command-line options fall through to the environment). The fields
    in ``unset`` are None whatever the environment says.

    Raises :class:`ConfigError` naming each invalid variable and what was wrong with it.
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    forced = {k: None for k in unset if k not in given}
    try:
        # The keywords are the fields; mypy checks them against BaseSettings' own options.
        return settings(**given, **forced)  # type: ignore[arg-type]
    except ValidationError as e:
        problems = "; ".join(_problem(settings, err["loc"], err["msg"], given)
                             for err in e.errors())
        raise ConfigError(f"invalid configuration: {problems} (README.md's Settings table "
                          f"lists every variable)") from e


def _problem(settings: type[BaseSettings], loc: tuple[int | str, ...], msg: str,
             given: dict[str, object]) -> str:
    # pydantic prefixes the text of a validator's ValueError; the user needs only the text.
    msg = msg.removeprefix("Value error, ")
    field = str(loc[0]) if loc else ""
    if field in settings.model_fields:
        name = env_name(settings, field)
        return f"{name} (or its option): {msg}" if field in given else f"{name}: {msg}"
    return msg  # a check across fields: its message names them


def blank_is_none(value: object) -> object:
    """An empty or blank variable means unset (``MCUPROF_X=`` in a compose file or a shell)."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


class LocalSettings(BaseSettings):
    """What the local tools and the board back ends read from their environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    build_dir: Path | None = Field(
        default=None,
        description="where firmware and host builds go [default: <repo>/build in a checkout, "
                    "else ~/.cache/mcuprof/build]",
    )
    renode: str | None = Field(
        default=None,
        description="the renode executable, or the folder of the portable package "
                    "[default: `renode` on PATH]",
    )

    twin_model: Literal["auto", "c", "python"] = Field(
        default="auto",
        description="the virtual boards' cycle-model hot paths: c (compiled with the host cc "
                    "on first use), python (the reference) or auto (c when it builds); both "
                    "count the same cycles",
    )

    _blank = field_validator("build_dir", "renode", mode="before")(blank_is_none)

    @field_validator("build_dir")
    @classmethod
    def _expand(cls, path: Path | None) -> Path | None:
        return path.expanduser() if path is not None else None


def local_settings(**overrides: object) -> LocalSettings:
    """:class:`LocalSettings` from the environment now (read again on every call, so a
    changed environment is seen); :class:`ConfigError` when a value is invalid."""
    return load(LocalSettings, overrides)
