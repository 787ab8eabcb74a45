"""``mcuprof demo``: server, virtual agents, sample jobs and the fit set (a latency-vs-ops
line per board) on this machine (``make run``). Declared in ``pyproject.toml``
(``mcuprof.commands``).

``mcuprof campaign --local`` runs it as a child process with the options after ``--verbose``:
its database, ``--port 0``, its boards, no samples (and so no fit set), agents in processes,
a ready file, and ``--stop-with-stdin``.

The demo makes its own tokens: without ``--ready-file`` it keeps the user token in the
per-user token file (``~/.config/mcuprof/token``) for the CLI, and prints a dashboard link
that signs the browser in once."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from bench_firmware.boards import BOARDS
from service.demo import DEMO_HOST, DEMO_PORT, run_demo


@click.command()
@click.option("--port", default=DEMO_PORT, show_default=True, help="API port on 127.0.0.1.")
@click.option("-v", "--verbose", count=True, help="Log the agents' work.")
@click.option("--database", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite database file [default: $MCUPROF_DATABASE_URL, else mcuprof.db in "
                   "this folder].")
@click.option("--board", "boards", multiple=True, type=click.Choice(sorted(BOARDS)),
              help="A board to run a virtual agent for (repeatable) [default: every board].")
@click.option("--no-agents", is_flag=True, help="Start no agent (the server only).")
@click.option("--no-samples", is_flag=True,
              help="Upload and profile no model: neither the sample models nor the fit set.")
@click.option("--no-fits", is_flag=True,
              help="Skip the fit set (10 sampled KWS models profiled on every board for a "
                   "latency-vs-ops line per board); profile the sample models only.")
@click.option("--agent-processes", is_flag=True,
              help="Run each agent in a process of its own instead of a thread (boards then "
                   "run in parallel on several cores).")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Once serving, write the URL, user token and database here as JSON (for a "
                   "program that starts the demo; with --port 0: a free port). The per-user "
                   "token file is then left alone.")
@click.option("--stop-with-stdin", is_flag=True,
              help="Stop, as on SIGTERM, when standard input closes (for a parent process).")
def demo(port: int, verbose: int, database: Path | None, boards: tuple[str, ...],
         no_agents: bool, no_samples: bool, no_fits: bool, agent_processes: bool,
         ready_file: Path | None, stop_with_stdin: bool) -> None:
    """Everything on one machine: the server (SQLite in this folder), one virtual agent per
    board, the sample models profiled on each, then the fit set (small KWS models sampled
    from one search space) for a latency-vs-ops line per board; then serves until Ctrl-C.

    Tokens are made for you: the CLI on this machine finds the user token in
    ~/.config/mcuprof/token, and the dashboard link printed signs the browser in."""
    if no_agents and boards:
        raise click.UsageError("--no-agents starts no agent; leave out --board")
    if verbose:
        from service.cli_agent import configure_agent_logging

        configure_agent_logging(verbose - 1)
    else:
        logging.getLogger("mcuprof.agent").setLevel(logging.WARNING)
    run_demo(host=DEMO_HOST, port=port, echo=click.echo,
             database_url=f"sqlite:///{database.resolve()}" if database is not None else None,
             boards=[] if no_agents else list(boards) or None, samples=not no_samples,
             fit_set=not no_fits,
             agent_processes=agent_processes,
             agent_log_verbose=verbose - 1 if verbose else None, ready_file=ready_file,
             stop_with_stdin=stop_with_stdin, save_token=ready_file is None)
