"""``mcuprof demo``: the whole service on one machine.

SQLite in the working directory (or ``MCUPROF_DATABASE_URL``), the API on a loopback port
(uvicorn in a thread), one in-process agent per virtual board (the four boards of the
catalogue), the sample int8 models from ``bench_firmware/samples`` submitted to every board,
their progress and results; then it serves until Ctrl-C, so ``mcuprof submit`` from a second
terminal gets measurements back from the same virtual boards.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench_firmware.boards import BOARDS
from bench_firmware.errors import McuprofError
from profiler_client.client import Client
from profiler_client.schemas import JobOut
from service.agent import SAMPLES_DIR, Agent

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger("mcuprof.demo")

DEMO_PORT = 8000
DEMO_HOST = "127.0.0.1"
DEMO_RUNS = 5  # timed inferences per demo job
DEMO_POLL_S = 0.5  # seconds between progress polls
SERVER_START_TIMEOUT_S = 30.0  # seconds uvicorn gets to bind and start
AGENT_POLL_S = 0.5  # seconds an idle demo board waits between lease requests
SAMPLE_TAGS = {"kws_tiny": {"backbone": "kws", "source": "sample"},
               "mobilenet_tiny": {"backbone": "mobilenet", "source": "sample"}}

Echo = Callable[[str], None]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = DEMO_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Demo:
    """The running demo: server thread, agents, the client. :meth:`stop` ends all of it."""

    url: str
    database_url: str
    client: Client
    agents: list[Agent] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    server: uvicorn.Server | None = None

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        for agent in self.agents:
            agent.stop()  # the second stop skips the grace: demo jobs are not worth waiting for
        for thread in self.threads:
            if thread.name.startswith("demo-agent"):
                thread.join(10)
        if self.server is not None:
            self.server.should_exit = True
        for thread in self.threads:
            if thread.name == "demo-server":
                thread.join(10)
        self.client.close()


def start_server(host: str, port: int) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Migrates the database and serves the API in a thread; returns (server, thread,
    database URL) once it accepts connections."""
    import uvicorn  # noqa: F811  (the run-time import of the name typed above)

    from service.api.app import create_app
    from service.config import Settings
    from service.db.migrate import upgrade

    settings = Settings(host=host, port=port)
    upgrade(settings.database_url)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="demo-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise McuprofError(f"the demo server did not start on {host}:{port}; is the "
                               f"port taken? Try `mcuprof demo --port {free_port()}`")
        if time.monotonic() > deadline:
            raise McuprofError(f"the demo server did not start within "
                               f"{SERVER_START_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    return server, thread, settings.database_url


def start_demo(*, host: str = DEMO_HOST, port: int = DEMO_PORT,
               boards: list[str] | None = None, echo: Echo = print) -> Demo:
    """Server + one virtual agent per board, started."""
    if not port_is_free(host, port):
        raise McuprofError(f"port {port} on {host} is taken (another `mcuprof serve` or demo?); "
                           f"stop it or pick another: `mcuprof demo --port {free_port(host)}`")
    server, server_thread, database_url = start_server(host, port)
    url = f"http://{host}:{port}"
    client = Client(url, token="")
    demo = Demo(url=url, database_url=database_url, client=client, server=server,
                threads=[server_thread])
    echo(f"server: {url} (database {database_url})")
    for board in boards or sorted(BOARDS):
        agent = Agent(client, [f"virtual:{board}"], name=f"demo-{board.removeprefix('nucleo-')}",
                      poll_interval_s=AGENT_POLL_S)
        thread = threading.Thread(target=agent.run, name=f"demo-agent-{board}", daemon=True)
        thread.start()
        demo.agents.append(agent)
        demo.threads.append(thread)
        echo(f"agent {agent.name}: board {agent.devices[0]}")
    return demo


def submit_samples(demo: Demo, *, echo: Echo = print) -> list[JobOut]:
    """Uploads every sample model and submits it to every demo board's class."""
    devices = sorted({":".join(a.devices[0].split(":")[:2]) for a in demo.agents})
    jobs: list[JobOut] = []
    for path in sorted(Path(SAMPLES_DIR).glob("*.tflite")):
        model = demo.client.upload_model(path, tags=SAMPLE_TAGS.get(path.stem))
        submitted = demo.client.submit(model.id, devices, runs=DEMO_RUNS)
        jobs.extend(submitted)
        echo(f"model {model.id} {path.name}: {model.analysis.ops:,} ops, arena "
             f"{model.analysis.arena_bytes:,} B -> jobs "
             f"{', '.join(str(j.id) for j in submitted)}")
    return jobs


def follow(demo: Demo, jobs: list[JobOut], *, echo: Echo = print,
           timeout_s: float | None = None) -> list[JobOut]:
    """Prints each job as it changes state, until all are finished."""
    shown: dict[int, str] = {}

    def on_progress(current: list[JobOut]) -> None:
        for job in current:
            if shown.get(job.id) == job.state:
                continue
            shown[job.id] = job.state
            line = f"  job {job.id:>3} {job.device:<24} {job.state}"
            if job.state == "done" and job.measurement is not None:
                m = job.measurement
                line += (f": {m.latency_ms:.3f} ms, {m.cycles:,} cycles"
                         if m.latency_ms is not None and m.cycles is not None else "")
                line += f" on {m.device}"
            elif job.error:
                line += f": {job.error}"
            echo(line)

    finished = demo.client.wait(jobs, poll_s=DEMO_POLL_S, timeout_s=timeout_s,
                                on_progress=on_progress)
    done = sum(1 for j in finished if j.state == "done")
    echo(f"{done} of {len(finished)} jobs done")
    return finished


def run_demo(*, host: str = DEMO_HOST, port: int = DEMO_PORT, echo: Echo = print,
             forever: bool = True) -> None:
    """``mcuprof demo``: start, submit, follow, then serve until Ctrl-C."""
    demo = start_demo(host=host, port=port, echo=echo)
    stop = threading.Event()
    try:
        jobs = submit_samples(demo, echo=echo)
        follow(demo, jobs, echo=echo)
        echo("")
        echo(f"dashboard and API:  {demo.url}/   (API docs {demo.url}/docs)")
        echo("try, from a second terminal:")
        echo(f"  MCUPROF_SERVER={demo.url} mcuprof submit "
             f"bench_firmware/samples/kws_tiny.tflite --device virtual:nucleo-f446re --wait")
        echo("Ctrl-C stops the demo.")
        while forever and not stop.wait(1.0):
            if not any(t.is_alive() for t in demo.threads if t.name == "demo-server"):
                raise McuprofError("the demo server stopped")
    except KeyboardInterrupt:
        echo("stopping the demo...")
    finally:
        demo.stop()
