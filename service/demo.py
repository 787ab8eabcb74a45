"""``mcuprof demo``: the whole service on one machine.

SQLite in the working directory (or ``MCUPROF_DATABASE_URL``), the API on a loopback port
(uvicorn in a thread), one in-process agent per virtual board (the four boards of the
catalogue), the sample int8 models from ``bench_firmware/samples`` submitted to every board,
their progress and results; then the *fit set* (:func:`submit_fit_set`): ten small KWS models
sampled from one search space (``service/demo_fits``, made by
``benchmarks/make_demo_fitset.py``), tagged ``backbone=kws``, profiled on every board, so that
the first run ends with a latency-vs-ops line per board (MicroNets' op-count model: what
mcuprof is for) on the dashboard, and says where to look first. Then it serves until Ctrl-C,
so ``mcuprof submit`` from a second terminal gets measurements back from the same virtual
boards.

Tokens are required as on any server (a web page must not be able to submit to it), and the
demo makes them itself (:func:`issue_tokens`): a user token for its own client, which
``mcuprof demo`` also keeps in the per-user token file (``~/.config/mcuprof/token``) where
the CLI finds it; an agent token per agent; and a one-time login code, in the dashboard URL
it prints, that the browser exchanges for a session cookie. Nobody types a token.

The same code runs the server and boards of ``mcuprof campaign --local``, started as a child
process: a given database, a free port, chosen boards, no samples (neither the samples nor
the fit set), one process per agent, and a *ready file* with the server's URL and user
token (the per-user token file is left alone: that server and token are the campaign's).
Such a child stops on SIGTERM (the agents get their grace period), on SIGINT (they do not),
and when its standard input closes (``stop_with_stdin``: the parent is gone, however it
ended).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from bench_firmware.boards import BOARDS
from bench_firmware.errors import McuprofError
from profiler_client.client import Client
from profiler_client.schemas import FitOut, JobOut
from profiler_client.settings import DEFAULT_SERVER, write_user_token
from service.agent import SAMPLES_DIR, SHUTDOWN_GRACE_S, Agent

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger("mcuprof.demo")

DEMO_PORT = 8000
DEMO_HOST = "127.0.0.1"
DEMO_RUNS = 5  # timed inferences per demo job
DEMO_POLL_S = 0.5  # seconds between progress polls
SERVER_START_TIMEOUT_S = 30.0  # seconds uvicorn gets to bind and start
AGENT_POLL_S = 0.5  # seconds an idle demo board waits between lease requests
AGENT_JOIN_S = 10.0  # seconds a stopped agent (without grace) gets to end
AGENT_STOP_S = SHUTDOWN_GRACE_S + AGENT_JOIN_S  # ... and with its grace period
# Between the two signals of a hurried stop: one signal delivered twice before the handler
# runs is delivered once, and the second is the one that skips the grace.
SIGNAL_GAP_S = 0.05
DEMO_USER = "demo-user"  # the name of the demo's user token (replaced on every start)
SAMPLE_TAGS = {"kws_tiny": {"backbone": "kws", "source": "sample"},
               "mobilenet_tiny": {"backbone": "mobilenet", "source": "sample"}}
# The fit set: pre-converted models of one search space, shipped with the package (their
# manifest says how they were made), profiled so that the first run ends with fits.
FIT_SET_DIR = Path(__file__).resolve().parent / "demo_fits"
FIT_SET_MANIFEST = "manifest.json"
FIT_SET_NAME = "demo-fitset"  # their campaign= and source= tags on the demo's server
# Per fit-set job, a campaign's defaults (``mcuprof campaign --runs 3 --warmup 1``): the
# twins' cycle counts barely vary from run to run, so more runs only cost time.
FIT_SET_RUNS = 3  # timed inferences
FIT_SET_WARMUP = 1  # warm-up inferences
FIT_PROGRESS_S = 5.0  # seconds between the fit set's progress lines
ACTIVE_STATES = ("queued", "leased", "done")  # a job of these is not submitted again

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


@dataclass(frozen=True)
class DemoTokens:
    """What :func:`issue_tokens` made: the user token, an agent token per agent name, and a
    one-time login code for the browser."""

    user: str = field(repr=False)
    agents: dict[str, str] = field(repr=False)
    login_code: str = field(repr=False)


def issue_tokens(database_url: str, agent_names: list[str]) -> DemoTokens:
    """A fresh user token (``demo-user``), an agent token bound to each of ``agent_names``,
    and a login code, in the (migrated) database; the previous run's are revoked."""
    from service.auth import bound_token, create_login_code, create_token, revoke_token
    from service.db.engine import Database, make_engine

    db = Database(make_engine(database_url, pool_size=1, max_overflow=0))
    try:
        with db.transaction() as session:
            agents = {}
            for name in [DEMO_USER, *agent_names]:
                revoke_token(session, name)
                holder = bound_token(session, name)
                if holder is not None:
                    session.delete(holder)
                    session.flush()
            _, user = create_token(session, role="user", name=DEMO_USER)
            for name in agent_names:
                _, agents[name] = create_token(session, role="agent", name=name)
            code = create_login_code(session)
    finally:
        db.dispose()
    return DemoTokens(user=user, agents=agents, login_code=code)


@dataclass
class Demo:
    """The running demo: server thread, agents, the client. :meth:`stop` ends all of it.

    ``token`` is the user token of ``client``; ``login_url`` signs a browser in (once)."""

    url: str
    database_url: str
    client: Client
    token: str = field(default="", repr=False)
    login_url: str = field(default="", repr=False)
    agents: list[Agent] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    server: uvicorn.Server | None = None
    processes: list[BaseProcess] = field(default_factory=list)  # agents in processes
    devices: list[str] = field(default_factory=list)  # the device classes of its boards

    def stop(self, *, graceful: bool = False) -> None:
        """Stops the agents, then the server. ``graceful``: jobs in flight get the agents'
        grace period to finish (else they are released at once: demo jobs are not worth
        waiting for)."""
        for agent in self.agents:
            agent.stop()
        for proc in self.processes:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: run_agent_process stops its agent
        if not graceful:
            for agent in self.agents:
                agent.stop()  # the second stop skips the grace
            time.sleep(SIGNAL_GAP_S if self.processes else 0)
            for proc in self.processes:
                if proc.is_alive():
                    proc.terminate()
        deadline = time.monotonic() + (AGENT_STOP_S if graceful else AGENT_JOIN_S)
        for thread in self.threads:
            if thread.name.startswith("demo-agent"):
                thread.join(max(0.1, deadline - time.monotonic()))
        for proc in self.processes:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                logger.warning("agent process %s did not stop; killing it", proc.name)
                proc.kill()
                proc.join()
        if self.server is not None:
            self.server.should_exit = True
        for thread in self.threads:
            if thread.name == "demo-server":
                thread.join(10)
        for agent in self.agents:
            agent.client.close()
        self.client.close()


    def hurry(self) -> None:
        """Asks the agents being stopped to skip their grace period (signal-safe)."""
        for agent in self.agents:
            agent.stop()
            agent.stop()
        for proc in self.processes:
            if proc.exitcode is None:
                proc.terminate()

    def ended_agents(self) -> list[str]:
        """The agent processes that have ended (name and exit status)."""
        return [f"{p.name} (exit status {p.exitcode})" for p in self.processes
                if p.exitcode is not None]


def start_server(host: str, port: int, *, database_url: str | None = None,
                 ) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Migrates the database (``database_url``, else the settings' one) and serves the API in
    a thread; returns (server, thread, database URL) once it accepts connections."""
    import uvicorn  # noqa: F811  (the run-time import of the name typed above)

    from service.api.app import create_app
    from service.config import Settings
    from service.db.migrate import upgrade

    settings = (Settings(host=host, port=port) if database_url is None
                else Settings(host=host, port=port, database_url=database_url))
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


def run_agent_process(url: str, token: str, device: str, name: str, poll_s: float,
                      log_verbose: int | None) -> None:
    """One demo agent in a process of its own (``start_demo(agent_processes=True)``).

    Stops on SIGTERM or SIGINT (a second one skips the grace period), as ``mcuprof agent``
    does, and at once when the demo process that started it ends, however it ended.
    ``log_verbose``: the agent's log on stderr at that verbosity (None: warnings only)."""
    if log_verbose is not None:
        from service.cli_agent import configure_agent_logging

        configure_agent_logging(log_verbose)
    else:
        logging.getLogger("mcuprof.agent").setLevel(logging.WARNING)
    with Client(url, token=token) as client:
        agent = Agent(client, [device], name=name, poll_interval_s=poll_s)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            agent.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        parent = multiprocessing.parent_process()
        if parent is not None:
            threading.Thread(target=_stop_with_parent, args=(parent, agent),
                             name="parent-watch", daemon=True).start()
        agent.run()


def _stop_with_parent(parent: BaseProcess, agent: Agent) -> None:
    parent.join()  # returns when the parent process has ended
    agent.stop()
    agent.stop()  # nobody is left to collect the jobs in flight: no grace


def start_demo(*, host: str = DEMO_HOST, port: int = DEMO_PORT,
               boards: list[str] | None = None, echo: Echo = print,
               database_url: str | None = None, agent_processes: bool = False,
               agent_log_verbose: int | None = None, save_token: bool = False) -> Demo:
    """Server + one virtual agent per board (``boards``: catalogue names, default all; an
    empty list: none), started. ``port`` 0: a free one. ``database_url``: default the
    settings' (``MCUPROF_DATABASE_URL``). ``agent_processes``: each agent in a process of
    its own (:func:`run_agent_process`, logging at ``agent_log_verbose``), not a thread:
    the virtual boards' cycle model calls into Python on every basic block, so boards in
    threads of one process share one core through the GIL. ``save_token``: keep the user
    token in the per-user token file, for the CLI on this machine."""
    if port == 0:
        port = free_port(host)
    elif not port_is_free(host, port):
        raise McuprofError(f"port {port} on {host} is taken (another `mcuprof serve` or demo?); "
                           f"stop it or pick another: `mcuprof demo --port {free_port(host)}`")
    server, server_thread, database_url = start_server(host, port, database_url=database_url)
    url = f"http://{host}:{port}"
    names = {board: f"demo-{board.removeprefix('nucleo-')}"
             for board in (sorted(BOARDS) if boards is None else boards)}
    try:
        tokens = issue_tokens(database_url, list(names.values()))
    except Exception:
        server.should_exit = True
        server_thread.join(10)
        raise
    client = Client(url, token=tokens.user)
    demo = Demo(url=url, database_url=database_url, client=client, token=tokens.user,
                login_url=f"{url}/login?code={tokens.login_code}", server=server,
                threads=[server_thread],
                devices=[f"virtual:{board}" for board in names])
    echo(f"server: {url} (database {database_url}; API tokens required)")
    echo(f"dashboard (this link signs your browser in, once): {demo.login_url}")
    if save_token:
        try:
            path = write_user_token(tokens.user)
        except OSError as e:
            echo(f"could not save the demo's user token for the CLI ({e}); give it with "
                 f"MCUPROF_TOKEN: {tokens.user}")
        else:
            echo(f"user token saved in {path}: the mcuprof CLI on this machine uses it")
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads forked
    for board, name in names.items():
        device = f"virtual:{board}"
        if agent_processes:
            proc = ctx.Process(target=run_agent_process, name=name, args=(
                url, tokens.agents[name], device, name, AGENT_POLL_S, agent_log_verbose))
            proc.start()
            demo.processes.append(proc)
        else:
            agent = Agent(Client(url, token=tokens.agents[name]), [device], name=name,
                          poll_interval_s=AGENT_POLL_S)
            thread = threading.Thread(target=agent.run, name=f"demo-agent-{board}",
                                      daemon=True)
            thread.start()
            demo.agents.append(agent)
            demo.threads.append(thread)
        echo(f"agent {name}: board {device}")
    return demo


def write_ready_file(path: Path, demo: Demo) -> None:
    """``path``: the running demo's URL, token and database as one JSON object, written
    whole (a reader polling for the file never sees half of it)."""
    info = {"url": demo.url, "token": demo.token, "database_url": demo.database_url,
            "pid": os.getpid()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # Readable by this user only: it holds a token.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(info) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise McuprofError(f"cannot write the ready file {path}: {e.strerror}") from e


def submit_samples(demo: Demo, *, echo: Echo = print) -> list[JobOut]:
    """Uploads every sample model and submits it to every demo board's class."""
    devices = sorted(demo.devices)
    jobs: list[JobOut] = []
    if not devices:
        echo("no boards: the sample models are not profiled")
        return jobs
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


@dataclass(frozen=True)
class FitSetModel:
    """One model of the fit set, as its manifest describes it."""

    path: Path
    sha256: str
    ops: int
    tags: dict[str, str]


def load_fit_set(directory: Path = FIT_SET_DIR) -> list[FitSetModel]:
    """The fit set's models, in manifest order; raises McuprofError when the manifest or a
    model file is missing (a broken install: reinstall mcuprof)."""
    manifest = directory / FIT_SET_MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        models = [FitSetModel(path=directory / m["file"], sha256=str(m["sha256"]),
                              ops=int(m["ops"]), tags={str(k): str(v)
                                                       for k, v in m["tags"].items()})
                  for m in data["models"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise McuprofError(f"cannot read the demo's fit set {manifest} ({e}); reinstall "
                           f"mcuprof, or run `mcuprof demo --no-fits`") from e
    missing = [m.path.name for m in models if not m.path.is_file()]
    if missing:
        raise McuprofError(f"the demo's fit set lacks {', '.join(missing)} in {directory}; "
                           f"reinstall mcuprof, or run `mcuprof demo --no-fits`")
    return models


def submit_fit_set(demo: Demo, *, echo: Echo = print, limit: int | None = None,
                   directory: Path = FIT_SET_DIR) -> list[JobOut]:
    """Uploads the fit set's models (the first ``limit``), tagged with their backbone,
    ``campaign=`` and ``source=demo-fitset``, and submits each to every demo board's class
    that has no queued, running or finished job for it yet (a second demo on the same
    database profiles nothing again). Returns the jobs to follow, reused ones included."""
    devices = sorted(demo.devices)
    models = load_fit_set(directory)[:limit]
    if not devices or not models:
        return []
    ops = sorted(m.ops for m in models)
    backbones = ", ".join(sorted({m.tags.get("backbone", "?") for m in models}))
    echo(f"fit set: {len(models)} models sampled from one search space (backbone "
         f"{backbones}, {ops[0] / 1e6:.2f}-{ops[-1] / 1e6:.2f} M ops), each on "
         f"{len(devices)} board(s), for a latency-vs-ops line per board")
    jobs: list[JobOut] = []
    reused = 0
    for m in models:
        tags = {**m.tags, "campaign": FIT_SET_NAME, "source": FIT_SET_NAME}
        model = demo.client.upload_model(m.path, name=m.path.stem, tags=tags)
        if model.sha256 != m.sha256:
            raise McuprofError(f"the demo's fit set file {m.path} is not the model its "
                               f"manifest names (SHA-256 {model.sha256[:12]}..., manifest "
                               f"{m.sha256[:12]}...); reinstall mcuprof")
        have = {j.device: j for j in demo.client.jobs(model_id=model.id)
                if j.state in ACTIVE_STATES and j.kernels == "dsp"
                and j.runs == FIT_SET_RUNS}
        todo = [d for d in devices if d not in have]
        jobs.extend(have[d] for d in devices if d in have)
        reused += len(devices) - len(todo)
        if todo:
            jobs.extend(demo.client.submit(model.id, todo, runs=FIT_SET_RUNS,
                                           warmup=FIT_SET_WARMUP))
    echo(f"fit set: {len(jobs)} jobs"
         + (f" ({reused} from an earlier run on this database)" if reused else ""))
    return jobs


def follow_fit_set(demo: Demo, jobs: list[JobOut], *, echo: Echo = print,
                   timeout_s: float | None = None) -> list[JobOut]:
    """Waits for the fit set's jobs, printing a progress line at most every
    ``FIT_PROGRESS_S`` seconds (one line per job would be a page of them) and failures."""
    start = time.monotonic()
    last = [start, -1]  # time and finished count of the last line printed
    failed: set[int] = set()

    def on_progress(current: list[JobOut]) -> None:
        for job in current:
            if job.state in ("failed", "cancelled") and job.id not in failed:
                failed.add(job.id)
                echo(f"  job {job.id} {job.device} {job.state}: {job.error}")
        finished = sum(1 for j in current if j.state in ("done", "failed", "cancelled"))
        now = time.monotonic()
        if finished != last[1] and (now - last[0] >= FIT_PROGRESS_S
                                    or finished == len(current)):
            echo(f"  fit set: {finished} of {len(current)} jobs finished "
                 f"({now - start:.0f} s)")
            last[:] = [now, finished]

    finished = demo.client.wait(jobs, poll_s=DEMO_POLL_S, timeout_s=timeout_s,
                                on_progress=on_progress)
    done = sum(1 for j in finished if j.state == "done")
    echo(f"fit set: {done} of {len(finished)} jobs done in {time.monotonic() - start:.0f} s")
    return finished


def show_fits(demo: Demo, *, backbone: str = "kws", echo: Echo = print) -> list[FitOut]:
    """Fetches the demo boards' op-count lines for ``backbone`` (the read refits what the
    new measurements made stale, so the dashboard shows them at once) and prints one line
    per board."""
    fits = [f for f in demo.client.fits(backbone=backbone, kind="ops_line", kernels="dsp")
            if f.device_class in demo.devices]
    for f in sorted(fits, key=lambda f: f.device_class):
        a = (f.a_ms_per_op or 0.0) * 1e6
        echo(f"  {f.device_class:<22} latency_ms = {a:.3f} * Mops + {f.b_ms or 0.0:.3f}   "
             f"r2 {f.r2:.3f}, cross-validated MAPE {f.metrics.mape:.1%}, "
             f"n {f.n} ({f.n_models} models)")
    missing = sorted(set(demo.devices) - {f.device_class for f in fits})
    if missing:
        echo(f"  no {backbone} line yet for {', '.join(missing)} (too few measurements)")
    return fits


def _what_to_look_at(demo: Demo, fits: list[FitOut], *, save_token: bool,
                     echo: Echo) -> None:
    """The closing note: where to look first, and what to try next."""
    server = "" if demo.url == DEFAULT_SERVER else f"MCUPROF_SERVER={demo.url} "
    token = "" if save_token else "MCUPROF_TOKEN=<the ready file's token> "
    cli = f"{server}{token}mcuprof"
    echo("")
    echo("what to look at first:")
    echo(f"  1. the dashboard (this link signs your browser in, once): {demo.login_url}")
    if fits:
        first = sorted(fits, key=lambda f: f.device_class)[0]
        echo(f"  2. a board's page: latency vs ops with the fitted line, residuals, the fits: "
             f"{demo.url}/device/{first.device_class}")
        echo(f"     (one page per board: {', '.join(sorted(f.device_class for f in fits))})")
        echo(f"  3. the same fits in a terminal: {cli} fits --backbone kws")
        echo(f"     and a prediction from one: {cli} predict --ops 3000000 --backbone kws "
             f"--device {first.device_class}")
    echo(f"API: {demo.url}/api/v1   (docs {demo.url}/docs)")
    echo("try, from a second terminal:")
    echo(f"  {cli} submit "
         f"bench_firmware/samples/kws_tiny.tflite --device virtual:nucleo-f446re --wait")
    echo("Ctrl-C stops the demo.")


class _Terminate(Exception):
    """SIGTERM (or the end of standard input) while the demo runs: stop gracefully."""


@contextmanager
def _signals(handler: Callable[[int, FrameType | None], None],
             signals: tuple[int, ...]) -> Iterator[None]:
    """``handler`` for ``signals`` within the block, in the main thread only (elsewhere,
    e.g. a test calling run_demo from a thread, signals are left alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _raise_terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminate


def _sigterm_at_eof() -> None:
    """Reads standard input to its end (the parent closed it, or died), then asks this
    process to stop as SIGTERM does."""
    # os.read on the descriptor: a daemon thread blocked in sys.stdin's buffered reader
    # holds its lock, and the interpreter aborts at exit when it cannot take it.
    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    with contextlib.suppress(OSError):
        while fd >= 0 and os.read(fd, 4096):
            pass
    os.kill(os.getpid(), signal.SIGTERM)


def run_demo(*, host: str = DEMO_HOST, port: int = DEMO_PORT, echo: Echo = print,
             forever: bool = True, database_url: str | None = None,
             boards: list[str] | None = None, samples: bool = True,
             fit_set: bool = True, agent_processes: bool = False,
             agent_log_verbose: int | None = None,
             ready_file: Path | None = None, stop_with_stdin: bool = False,
             save_token: bool = False) -> None:
    """``mcuprof demo``: start, submit, follow, then serve until Ctrl-C, or SIGTERM (which
    gives jobs in flight the agents' grace period; a signal while stopping skips it).

    ``samples=False`` uploads no model at all (neither the samples nor the fit set: a
    server and boards for someone else's jobs); ``fit_set=False`` skips the fit set only
    (:func:`submit_fit_set`); ``ready_file`` is written
    (:func:`write_ready_file`) once the server and agents run; ``stop_with_stdin``: stop as
    on SIGTERM when standard input closes. The other options are :func:`start_demo`'s."""
    demo: Demo | None = None
    stop = threading.Event()
    graceful = False
    started = time.monotonic()
    try:
        with _signals(_raise_terminate, (signal.SIGTERM,)):
            demo = start_demo(host=host, port=port, echo=echo, database_url=database_url,
                              boards=boards, agent_processes=agent_processes,
                              agent_log_verbose=agent_log_verbose, save_token=save_token)
            if stop_with_stdin:
                threading.Thread(target=_sigterm_at_eof, name="stdin-watch",
                                 daemon=True).start()
            fits: list[FitOut] = []
            if samples:
                jobs = submit_samples(demo, echo=echo)
                # Queued behind the samples, so the boards never wait between the two.
                fit_jobs = submit_fit_set(demo, echo=echo) if fit_set else []
                follow(demo, jobs, echo=echo)
                if fit_jobs:
                    follow_fit_set(demo, fit_jobs, echo=echo)
                    echo(f"latency-vs-ops lines (backbone kws), {time.monotonic() - started:.0f}"
                         f" s after the demo started:")
                    fits = show_fits(demo, echo=echo)
            if ready_file is not None:
                write_ready_file(ready_file, demo)
            _what_to_look_at(demo, fits, save_token=save_token, echo=echo)
            while forever and not stop.wait(1.0):
                if not any(t.is_alive() for t in demo.threads if t.name == "demo-server"):
                    raise McuprofError("the demo server stopped")
                ended = demo.ended_agents()
                if ended:
                    raise McuprofError(f"the demo agent(s) {', '.join(ended)} stopped")
    except KeyboardInterrupt:
        echo("stopping the demo...")
    except _Terminate:
        echo("stopping the demo (jobs in flight get the agents' grace period)...")
        graceful = True
    finally:
        if demo is not None:
            running = demo

            def hurry(signum: int, frame: FrameType | None) -> None:
                running.hurry()

            with _signals(hurry, (signal.SIGTERM, signal.SIGINT)):
                demo.stop(graceful=graceful)
