"""The ``mcuprof`` command line: one entry point for local and server commands."""

from __future__ import annotations

import logging

import click

from bench_firmware.cli import COMMANDS, report_error
from bench_firmware.errors import McuprofError


class _Group(click.Group):
    """Turns every McuprofError into one clear line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except McuprofError as e:
            report_error(e)
            return None


@click.group(cls=_Group)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for serial traffic).")
@click.version_option(package_name="mcuprof")
def main(verbose: int) -> None:
    """mcuprof: latency, memory and energy of int8 networks on Cortex-M boards."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _mount() -> None:
    from profiler_client.commands import COMMANDS as CLIENT_COMMANDS
    from service.cli import COMMANDS as SERVICE_COMMANDS

    for command in (*COMMANDS, *SERVICE_COMMANDS, *CLIENT_COMMANDS):
        main.add_command(command)


_mount()
