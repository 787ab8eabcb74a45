"""Client commands of the ``mcuprof`` CLI that talk to a server (submit, jobs, results, ...).

``profiler_client.cli`` mounts ``COMMANDS``."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
