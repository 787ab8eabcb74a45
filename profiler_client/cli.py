"""The ``mcuprof`` command line: one root group, its commands declared in one place.

Every command is listed in ``pyproject.toml`` under ``[project.entry-points."mcuprof.commands"]``
(name = "module:click_command"); this group loads only the one a user runs, so ``mcuprof run``
never imports the server and no command imports TensorFlow until it needs it. Adding a command
is adding a module and one line there: nothing registers itself on import, and this module
imports no package above ``profiler_client`` (the layers are checked by import-linter).
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import EntryPoint, entry_points

import click

from bench_firmware.errors import McuprofError

COMMAND_GROUP = "mcuprof.commands"


@cache
def _declared() -> dict[str, EntryPoint]:
    commands = {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}
    if not commands:
        raise click.ClickException(
            "no mcuprof commands are installed: reinstall the package (pip install -e .) so "
            "that its entry points are registered")
    return commands


def report_error(e: McuprofError) -> None:
    """Print an mcuprof error as one line and exit with status 2."""
    click.echo(f"error: {e}", err=True)
    raise SystemExit(2)


class _Group(click.Group):
    """Loads commands from their entry points and turns every McuprofError into one clear
    line on stderr and exit status 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_declared())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        ep = _declared().get(cmd_name)
        if ep is None:
            return None
        command = ep.load()
        if not isinstance(command, click.Command):
            raise TypeError(f"entry point {ep.value} is not a click command")
        return command

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
