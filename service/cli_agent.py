"""``mcuprof agent``: the worker that runs this host's boards for a server.
Declared in ``pyproject.toml`` (``mcuprof.commands``)."""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click

from bench_firmware.backends.base import BoardBackend
from bench_firmware.backends.registry import open_backend, parse_device
from bench_firmware.errors import McuprofError
from bench_firmware.settings import env_name
from profiler_client.client import Client, NotFoundError, ServerUnavailableError
from service.agent import REGISTER_RETRY_S, Agent, BackendFactory
from service.agent_settings import AgentSettings, agent_settings


def _help(field: str, text: str | None = None) -> str:
    """An option's help from its setting (declared once, in ``AgentSettings``): the setting's
    description (or ``text``), its variable, and its default."""
    info = AgentSettings.model_fields[field]
    described = text or (info.description or "")
    default = ""
    if info.default is not None and "[default" not in described:
        value = f"{info.default:g}" if isinstance(info.default, float) else info.default
        default = f" [default: {value}]"
    variable = env_name(AgentSettings, field)
    return f"{described[0].upper()}{described[1:]}{default} (env: {variable})."


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


def token_agent_name(client: Client, name: str | None) -> str | None:
    """``name`` (--name); else the agent the client's token is bound to, asked from the
    server (an agent token is its agent's identity) and waiting while the server is
    unreachable; else None: the host name, to which an unbound token is then bound."""
    if name:
        return name
    while True:
        try:
            return client.whoami().agent
        except ServerUnavailableError as e:
            logging.getLogger("mcuprof.agent").warning(
                "cannot ask %s which agent this token is yet, retrying in %.0f s: %s",
                client.url, REGISTER_RETRY_S, e)
            time.sleep(REGISTER_RETRY_S)
        except NotFoundError:  # a server from before /whoami
            return None


@click.command()
@click.option("--server", default=None, help=_help("server"))
@click.option("--token", default=None,
              help="Agent token (`mcuprof token create --role agent`). Visible to every user "
                   "of this host in `ps`: prefer --token-file, MCUPROF_TOKEN_FILE or "
                   "MCUPROF_TOKEN.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=_help("token_file", "file whose first line is the agent token (keep it "
                                       "mode 600); replaces --token and MCUPROF_TOKEN"))
@click.option("--board", "boards", multiple=True, required=True, metavar="DEVICE",
              help="A board of this host: virtual:nucleo-f446re, renode:<board>, or "
                   "pyocd:<board>:<probe unique id>. Repeat for more (the same virtual "
                   "device twice is two boards).")
@click.option("--name", default=None, help=_help("agent_name"))
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where downloaded models are cached [default: $MCUPROF_CACHE_DIR/models, "
                   "else ~/.cache/mcuprof/models].")
@click.option("--poll", "poll_s", type=float, default=None, help=_help("agent_poll_s"))
@click.option("--health-interval", "health_interval_s", type=float, default=None,
              help=_help("agent_health_interval_s"))
@click.option("--no-health-check", is_flag=True,
              help="Skip the health checks (boards take work at once; for development).")
@click.option("--grace", "grace_s", type=float, default=None, help=_help("agent_grace_s"))
@click.option("--serial-port", "serial_ports", multiple=True, metavar="DEVICE=PORT",
              help="A pyocd board's serial port, when it is not its probe's own VCP.")
@click.option("--energy-monitor", "energy_ports", multiple=True, metavar="DEVICE=PORT",
              help="An X-NUCLEO-LPM01A on PORT measures DEVICE's energy.")
@click.option("--firmware-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where pyocd boards' firmware images are built [default: the build dir].")
@click.option("-v", "--verbose", count=True, help="Debug logging.")
def agent(server: str | None, token: str | None, token_file: Path | None,
          boards: tuple[str, ...], name: str | None, cache_dir: Path | None,
          poll_s: float | None, health_interval_s: float | None, no_health_check: bool,
          grace_s: float | None, serial_ports: tuple[str, ...], energy_ports: tuple[str, ...],
          firmware_dir: Path | None, verbose: int) -> None:
    """Run this host's boards for a server: lease jobs, profile, report.

    Stops cleanly on SIGTERM or Ctrl-C (a second one skips the grace period)."""
    # Options override the environment; everything else comes from AgentSettings, checked
    # here, before a board is opened.
    settings = agent_settings(server=server, token=token, token_file=token_file,
                              agent_name=name, agent_poll_s=poll_s,
                              agent_health_interval_s=health_interval_s, agent_grace_s=grace_s)
    configure_agent_logging(verbose)
    monitors = _mapping(energy_ports, "--energy-monitor")
    factory = backend_factory(_mapping(serial_ports, "--serial-port"), monitors, firmware_dir)
    from importlib.metadata import PackageNotFoundError, version

    try:
        mcuprof_version: str | None = version("mcuprof")
    except PackageNotFoundError:
        mcuprof_version = None
    with Client(settings.server_url, settings.token) as client:
        host_agent = Agent(client, list(boards),
                           name=token_agent_name(client, settings.agent_name),
                           cache_dir=cache_dir or settings.models_dir,
                           poll_interval_s=settings.agent_poll_s,
                           health_interval_s=settings.agent_health_interval_s,
                           health_checks=not no_health_check,
                           shutdown_grace_s=settings.agent_grace_s,
                           backend_factory=factory, version=mcuprof_version,
                           energy_monitors=set(monitors))

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
