"""``mcuprof agent``: the worker that runs this host's boards for a server.
Declared in ``pyproject.toml`` (``mcuprof.commands``)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from bench_firmware.backends.base import BoardBackend
from bench_firmware.backends.registry import open_backend, parse_device
from bench_firmware.errors import McuprofError
from profiler_client.client import Client
from service.agent import (
    HEALTH_INTERVAL_S,
    POLL_INTERVAL_S,
    SHUTDOWN_GRACE_S,
    Agent,
    BackendFactory,
)

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [job %(job_id)s] %(message)s"


class _JobIdDefault(logging.Filter):
    """Gives records without a job (registration, heartbeats) ``job_id`` "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = "-"
        return True


def configure_agent_logging(verbose: int) -> None:
    """Agent logs on stderr, one line each with the board and the job."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_JobIdDefault())
    agent_logger = logging.getLogger("mcuprof.agent")
    agent_logger.addHandler(handler)
    agent_logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    agent_logger.propagate = False


def _mapping(items: tuple[str, ...], option: str) -> dict[str, str]:
    """``DEVICE=PORT`` options → {device: port}."""
    out: dict[str, str] = {}
    for item in items:
        device, sep, port = item.rpartition("=")
        if not sep or not device or not port:
            raise click.BadParameter(f"{item!r} is not DEVICE=PORT", param_hint=option)
        if parse_device(device)[0] != "pyocd":
            raise click.BadParameter(f"{device}: only pyocd boards take {option}",
                                     param_hint=option)
        out[device] = port
    return out


def backend_factory(serial_ports: dict[str, str], energy_ports: dict[str, str],
                    firmware_dir: Path | None) -> BackendFactory:
    """Opens pyOCD boards with their options; every other backend by its name."""

    def make(device: str) -> BoardBackend:
        if parse_device(device)[0] == "pyocd":
            from bench_firmware.backends.pyocd_backend import PyocdBoard

            return PyocdBoard(device, serial_port=serial_ports.get(device),
                              energy_port=energy_ports.get(device), firmware_dir=firmware_dir)
        return open_backend(device)

    return make


@click.command()
@click.option("--server", envvar="MCUPROF_SERVER", default=None, show_envvar=True,
              help="Server URL [default: http://127.0.0.1:8000].")
@click.option("--token", envvar="MCUPROF_TOKEN", default=None, show_envvar=True,
              help="Agent token (`mcuprof token create --role agent`).")
@click.option("--board", "boards", multiple=True, required=True, metavar="DEVICE",
              help="A board of this host: virtual:nucleo-f446re, renode:<board>, or "
                   "pyocd:<board>:<probe unique id>. Repeat for more (the same virtual "
                   "device twice is two boards).")
@click.option("--name", default=None, help="Agent name [default: the host name].")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where downloaded models are cached [default: ~/.cache/mcuprof/models].")
@click.option("--poll", "poll_s", type=float, default=POLL_INTERVAL_S, show_default=True,
              help="Seconds an idle board waits before asking for work again.")
@click.option("--health-interval", "health_interval_s", type=float,
              default=HEALTH_INTERVAL_S, show_default=True,
              help="Seconds between health checks of a board.")
@click.option("--no-health-check", is_flag=True,
              help="Skip the health checks (boards take work at once; for development).")
@click.option("--grace", "grace_s", type=float, default=SHUTDOWN_GRACE_S, show_default=True,
              help="On SIGTERM/SIGINT, seconds jobs in flight get to finish.")
@click.option("--serial-port", "serial_ports", multiple=True, metavar="DEVICE=PORT",
              help="A pyocd board's serial port, when it is not its probe's own VCP.")
@click.option("--energy-monitor", "energy_ports", multiple=True, metavar="DEVICE=PORT",
              help="An X-NUCLEO-LPM01A on PORT measures DEVICE's energy.")
@click.option("--firmware-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where pyocd boards' firmware images are built [default: the build dir].")
@click.option("-v", "--verbose", count=True, help="Debug logging.")
def agent(server: str | None, token: str | None, boards: tuple[str, ...], name: str | None,
          cache_dir: Path | None, poll_s: float, health_interval_s: float, no_health_check: bool,
          grace_s: float, serial_ports: tuple[str, ...], energy_ports: tuple[str, ...],
          firmware_dir: Path | None, verbose: int) -> None:
    """Run this host's boards for a server: lease jobs, profile, report.

    Stops cleanly on SIGTERM or Ctrl-C (a second one skips the grace period)."""
    configure_agent_logging(verbose)
    factory = backend_factory(_mapping(serial_ports, "--serial-port"),
                              _mapping(energy_ports, "--energy-monitor"), firmware_dir)
    from importlib.metadata import PackageNotFoundError, version

    try:
        mcuprof_version: str | None = version("mcuprof")
    except PackageNotFoundError:
        mcuprof_version = None
    with Client(server, token) as client:
        host_agent = Agent(client, list(boards), name=name, cache_dir=cache_dir,
                           poll_interval_s=poll_s, health_interval_s=health_interval_s,
                           health_checks=not no_health_check, shutdown_grace_s=grace_s,
                           backend_factory=factory, version=mcuprof_version)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            host_agent.stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            host_agent.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if not host_agent.agent_id:
        raise McuprofError("the agent stopped before it could register")


import service.cli_demo  # noqa: E402, F401  (registers `mcuprof demo`)
