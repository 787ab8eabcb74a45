"""``mcuprof demo``: server, virtual agents and sample jobs on this machine (``make run``).
Declared in ``pyproject.toml`` (``mcuprof.commands``)."""

from __future__ import annotations

import logging

import click

from service.demo import DEMO_HOST, DEMO_PORT, run_demo


@click.command()
@click.option("--port", default=DEMO_PORT, show_default=True, help="API port on 127.0.0.1.")
@click.option("-v", "--verbose", count=True, help="Log the agents' work.")
def demo(port: int, verbose: int) -> None:
    """Everything on one machine: the server (SQLite in this folder), one virtual agent per
    board, the sample models profiled on each; then serves until Ctrl-C."""
    if verbose:
        from service.cli_agent import configure_agent_logging

        configure_agent_logging(verbose - 1)
    else:
        logging.getLogger("mcuprof.agent").setLevel(logging.WARNING)
    run_demo(host=DEMO_HOST, port=port, echo=click.echo)

