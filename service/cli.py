"""Server-side commands of the ``mcuprof`` CLI (serve, token, agent, demo).

Each module that adds commands appends them to ``COMMANDS``; ``profiler_client.cli`` mounts
them."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []

import search.cli  # noqa: E402, F401  (registers `mcuprof sample`)
import search.cli_campaign  # noqa: E402, F401  (registers `mcuprof campaign`)
import service.cli_agent  # noqa: E402, F401
import service.cli_server  # noqa: E402, F401  (registers commands)
