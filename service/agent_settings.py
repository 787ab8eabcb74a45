"""The settings of ``mcuprof agent``: the client's (server, token) and the agent's own.

A module of its own, not a second class in ``service/config.py``: the agent is another
process, often on another host, than the server; it must start without the server's
variables (``MCUPROF_DATABASE_URL`` ...) and must never validate or need them, and the server
never reads these. Both are in ``service/`` because the agent is (DESIGN.md's layout).

The agent is a client of the server, so :class:`AgentSettings` extends
:class:`~profiler_client.settings.ClientSettings`: ``MCUPROF_SERVER``, ``MCUPROF_TOKEN`` and
``MCUPROF_TOKEN_FILE`` are declared once, there. An agent token belongs in
``MCUPROF_TOKEN_FILE`` (or ``--token-file``) or ``MCUPROF_TOKEN``, not on the command line,
where every user of the host sees it in ``ps``.

Command-line options override the environment: :func:`agent_settings` takes them as keyword
arguments (None: not given).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from bench_firmware.settings import ConfigError, blank_is_none, load
from profiler_client.settings import ClientSettings, token_overrides

__all__ = ["DEFAULT_CACHE_ROOT", "AgentSettings", "ConfigError", "agent_settings"]

DEFAULT_CACHE_ROOT = Path("~/.cache/mcuprof")  # XDG's default cache folder, per user

POLL_INTERVAL_S = 2.0  # seconds an idle board waits before asking for work again
HEALTH_INTERVAL_S = 1800.0  # seconds between two health checks of a healthy board
SHUTDOWN_GRACE_S = 30.0  # seconds jobs in flight get to finish once the agent is stopped


class AgentSettings(ClientSettings):
    """What ``mcuprof agent`` reads from its environment (and its options)."""

    # The per-user token file holds a user token; an agent's must be given explicitly.
    reads_user_token_file: ClassVar[bool] = False

    cache_dir: Path | None = Field(
        default=None,
        description="cache root of the agent; downloaded models go in its models/ folder "
                    f"[default: {DEFAULT_CACHE_ROOT}]",
    )
    agent_name: str | None = Field(
        default=None,
        description="the agent's name, which its agent token is bound to "
                    "[default: the name the token is bound to, else the host name]",
    )
    agent_poll_s: float = Field(
        default=POLL_INTERVAL_S, gt=0,
        description="seconds an idle board waits before asking for work again",
    )
    agent_health_interval_s: float = Field(
        default=HEALTH_INTERVAL_S, gt=0,
        description="seconds between two health checks of a healthy board",
    )
    agent_grace_s: float = Field(
        default=SHUTDOWN_GRACE_S, ge=0,
        description="seconds jobs in flight get to finish on SIGTERM/SIGINT",
    )

    _blank_agent = field_validator("cache_dir", "agent_name", mode="before")(blank_is_none)

    @property
    def models_dir(self) -> Path:
        """Where downloaded models are cached: ``<cache_dir>/models``."""
        return (self.cache_dir or DEFAULT_CACHE_ROOT).expanduser() / "models"


def agent_settings(**overrides: object) -> AgentSettings:
    """:class:`AgentSettings` from the environment now, with ``overrides`` (field=value,
    e.g. the command-line options; None values are ignored). :class:`ConfigError` naming the
    variable when a value is invalid."""
    return load(AgentSettings, overrides, unset=token_overrides(overrides))
