"""The agent: a worker process that owns the boards on one host and pulls work over HTTP.

One :class:`Agent` per host (``mcuprof agent --server URL --token T --board DEVICE ...``):

- it registers its boards under full device names ``<backend>:<board>:<agent>-<n>`` (a
  physical board keeps its probe id: ``pyocd:nucleo-f446re:066DFF...``); their class
  ``<backend>:<board>`` is what jobs target;
- one :class:`BoardWorker` thread per board loops: lease a job → fetch the model (cached by
  SHA-256) → compile the plan for the board → ``load_plan`` → warm-up + timed runs → report
  the measurement, or the failure (retryable for board and serial errors, final for model
  errors);
- a heartbeat thread extends the leases in flight and abandons work the server says is lost
  (expired, cancelled);
- every board passes a health check before its first lease and periodically after: a known
  model (``bench_firmware/samples/kws_tiny.tflite``) whose output must equal the host build's
  and whose cycle count must stay within :data:`HEALTH_CYCLE_TOLERANCE` of the first check. A
  board that fails is reported bad and gets no work until it passes again;
- :meth:`Agent.stop` (SIGTERM, SIGINT) stops leasing, gives jobs in flight
  :data:`SHUTDOWN_GRACE_S` to finish, releases the others as a retryable failure
  ("agent shutting down"), and closes the backends. A second stop skips the grace.

Lifecycle: ``Agent(...)`` → ``run()`` (blocks; call ``stop()`` from a signal handler or
another thread) → returns after the clean shutdown.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import bench_firmware
from bench_firmware.backends.base import BoardBackend, RunResult
from bench_firmware.backends.registry import open_backend, parse_device
from bench_firmware.boards import Board, get_board
from bench_firmware.compiler import Plan, compile_model
from bench_firmware.errors import BoardError, McuprofError, ModelError, ProtocolError
from bench_firmware.runner import CYCLE_SOURCES, build_result, decode_output, make_input
from profiler_client.client import (
    ApiError,
    Client,
    LeaseLostError,
    NotFoundError,
    ServerUnavailableError,
)
from profiler_client.errors import QueueError
from profiler_client.schemas import LeaseOut, MeasurementIn

logger = logging.getLogger("mcuprof.agent")

POLL_INTERVAL_S = 2.0  # seconds an idle board waits before asking for work again
HEARTBEAT_S = 10.0  # seconds between heartbeats (at most a third of the lease time, see below)
HEARTBEAT_TICK_S = 0.1  # seconds between looks at the heartbeat clock
HEARTBEATS_PER_LEASE = 3  # heartbeats within one lease time, so one lost beat costs nothing
REGISTER_RETRY_S = 5.0  # seconds between registration attempts while the server is down
HEALTH_INTERVAL_S = 1800.0  # seconds between two health checks of a healthy board
HEALTH_RETRY_S = 300.0  # seconds between health checks of a board that failed one
HEALTH_CYCLE_TOLERANCE = 0.01  # relative drift of the health model's cycles vs the first check
HEALTH_RUNS = 3  # timed inferences of the health model
HEALTH_WARMUP = 1  # untimed inferences before them
SAMPLES_DIR = Path(bench_firmware.__file__).resolve().parent / "samples"
HEALTH_MODEL = SAMPLES_DIR / "kws_tiny.tflite"  # a small model every board can run
MAX_BOARD_ERRORS = 3  # board errors in a row that take a board out of service
REPORT_PATIENCE_S = 120.0  # seconds an agent keeps trying to upload a finished result
SHUTDOWN_GRACE_S = 30.0  # seconds jobs in flight get to finish once the agent is stopped
INPUT_SEED = 0  # the seeded random input every measurement runs on (as `mcuprof run`)
SHUTDOWN_ERROR = "agent shutting down"

BackendFactory = Callable[[str], BoardBackend]


def default_cache_dir() -> Path:
    """``$MCUPROF_CACHE_DIR/models``, else ``~/.cache/mcuprof/models``."""
    root = os.environ.get("MCUPROF_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "mcuprof") / "models"


def board_names(agent: str, devices: Sequence[str]) -> list[str]:
    """Full device names for the ``--board`` arguments: ``virtual:nucleo-f446re`` given twice
    becomes ``virtual:nucleo-f446re:<agent>-0`` and ``...:<agent>-1``; a name that already
    has its id (a probe's unique id) is kept."""
    counts: dict[str, int] = {}
    names: list[str] = []
    for device in devices:
        backend, board, ident = parse_device(device)
        if backend == "host":
            raise McuprofError("the host build has no board to register; give an agent "
                               "virtual:<board>, renode:<board> or pyocd:<board>:<probe id>")
        if backend == "pyocd" and ident is None:
            raise McuprofError(f"{device}: a physical board is named by its probe: "
                               f"pyocd:{board}:<probe unique id> (`pyocd list` shows it)")
        if ident is None:
            cls = f"{backend}:{board}"
            n = counts.get(cls, 0)
            counts[cls] = n + 1
            device = f"{cls}:{agent}-{n}"
        if device in names:
            raise McuprofError(f"board {device} is given twice")
        names.append(device)
    return names


class ModelCache:
    """``.tflite`` files by SHA-256 in a folder; written atomically, checked when read."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, sha256: str) -> bytes | None:
        path = self.folder / f"{sha256}.tflite"
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            logger.warning("cached model %s is corrupt; fetching it again", path)
            path.unlink(missing_ok=True)
            return None
        return data

    def put(self, sha256: str, data: bytes) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{sha256}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self.folder / f"{sha256}.tflite")
        except OSError as e:  # a cache that cannot be written costs a download, nothing more
            logger.warning("cannot cache model %s in %s: %s", sha256[:16], self.folder, e)


@dataclass
class _Lease:
    """A lease in flight: the heartbeat extends it; whoever claims it first reports it."""

    lease_id: int
    job_id: int
    device: str
    lost: threading.Event = field(default_factory=threading.Event)
    _claimed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self) -> bool:
        """True for the one caller that may report this lease's outcome."""
        with self._lock:
            if self._claimed or self.lost.is_set():
                return False
            self._claimed = True
            return True


@dataclass
class HealthReference:
    """What a healthy board must answer for the health model: the host build's output
    (None when the host build is unavailable: then the first check's output is the reference)."""

    output: bytes | None


class Agent:
    """The boards of one host, working for one server. See the module docstring."""

    def __init__(self, client: Client, devices: Sequence[str], *, name: str | None = None,
                 cache_dir: Path | None = None, poll_interval_s: float = POLL_INTERVAL_S,
                 heartbeat_s: float = HEARTBEAT_S, health_interval_s: float = HEALTH_INTERVAL_S,
                 health_retry_s: float = HEALTH_RETRY_S, health_checks: bool = True,
                 shutdown_grace_s: float = SHUTDOWN_GRACE_S,
                 backend_factory: BackendFactory = open_backend,
                 version: str | None = None) -> None:
        self.client = client
        self.name = name or socket.gethostname().split(".")[0]
        self.devices = board_names(self.name, devices)
        if not self.devices:
            raise McuprofError("an agent needs at least one --board")
        self.cache = ModelCache(cache_dir or default_cache_dir())
        self.poll_interval_s = poll_interval_s
        self.heartbeat_s = heartbeat_s
        self.health_interval_s = health_interval_s
        self.health_retry_s = health_retry_s
        self.health_checks = health_checks
        self.shutdown_grace_s = shutdown_grace_s
        self.backend_factory = backend_factory
        self.version = version
        self.agent_id: int | None = None
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        self._beating = threading.Event()  # cleared once the shutdown has released everything
        self._leases: dict[int, _Lease] = {}
        self._leases_lock = threading.Lock()
        self._lease_seconds: float | None = None
        self._reference: HealthReference | None = None
        self._reference_lock = threading.Lock()
        self.workers = [BoardWorker(self, device) for device in self.devices]
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, daemon=True,
                                           name=f"agent-{self.name}-heartbeat")

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def hurrying(self) -> bool:
        """Whether a second stop asked to skip the grace period."""
        return self._hurry.is_set()

    def sleep(self, seconds: float) -> bool:
        """Waits ``seconds`` unless the agent is stopped first; True when stopped."""
        return self._stopping.wait(seconds)

    def stop(self) -> None:
        """Asks the agent to shut down (thread- and signal-safe); a second call also skips
        the grace period for jobs in flight."""
        if self._stopping.is_set():
            self._hurry.set()
        self._stopping.set()

    def run(self) -> None:
        """Registers, works until :meth:`stop`, then shuts down cleanly."""
        if not self.register():
            return
        self._beating.set()
        self._heartbeat.start()
        for worker in self.workers:
            worker.start()
        logger.info("agent %s working with %d board(s): %s", self.name, len(self.workers),
                    ", ".join(self.devices))
        while not self._stopping.wait(0.5):
            if not any(w.is_alive() for w in self.workers):
                logger.error("every board worker has stopped; the agent stops too")
                self._stopping.set()
        self._shutdown()

    def register(self) -> bool:
        """Registers the agent and its boards, retrying while the server is unreachable;
        False when stopped first."""
        while not self._stopping.is_set():
            try:
                out = self.client.register_agent(self.name, self.devices, version=self.version)
            except ServerUnavailableError as e:
                logger.warning("cannot register with %s yet, retrying in %.0f s: %s",
                               self.client.url, REGISTER_RETRY_S, e)
                self._stopping.wait(REGISTER_RETRY_S)
                continue
            self.agent_id = out.id
            logger.info("registered as agent %s (id %d) at %s", self.name, out.id,
                        self.client.url)
            return True
        return False

    def _shutdown(self) -> None:
        logger.info("agent %s stopping: no new leases; %d job(s) in flight", self.name,
                    len(self._leases))
        deadline = time.monotonic() + self.shutdown_grace_s
        for worker in self.workers:
            while worker.is_alive() and time.monotonic() < deadline and not self._hurry.is_set():
                worker.join(0.2)
        with self._leases_lock:
            held = list(self._leases.values())
        for lease in held:
            if lease.claim():
                logger.getChild(lease.device).warning(
                    "releasing lease %d: %s", lease.lease_id, SHUTDOWN_ERROR,
                    extra={"job_id": lease.job_id})
                with contextlib.suppress(McuprofError):
                    self.client.report_failure(lease.lease_id, SHUTDOWN_ERROR, retryable=True)
        self._beating.clear()
        if self._heartbeat.is_alive():
            self._heartbeat.join()
        for worker in self.workers:
            if worker.is_alive():
                # Still inside a board call: its backend is not thread-safe, so the worker
                # closes it itself when the call returns (or the process exit does).
                worker.log.warning("still busy after the shutdown grace; leaving it")
        logger.info("agent %s stopped", self.name)

    # -- leases --------------------------------------------------------------------------

    def track(self, lease: LeaseOut, device: str) -> _Lease:
        held = _Lease(lease.lease_id, lease.job.id, device)
        with self._leases_lock:
            self._leases[lease.lease_id] = held
            self._lease_seconds = lease.lease_seconds
        return held

    def untrack(self, held: _Lease) -> None:
        with self._leases_lock:
            self._leases.pop(held.lease_id, None)

    def heartbeat_interval(self) -> float:
        """The heartbeat period: :data:`HEARTBEAT_S`, shortened to a third of the server's
        lease time when that is shorter."""
        if self._lease_seconds:
            return min(self.heartbeat_s, self._lease_seconds / HEARTBEATS_PER_LEASE)
        return self.heartbeat_s

    def beat(self) -> None:
        """One heartbeat: extends the leases in flight, marks the lost ones."""
        assert self.agent_id is not None
        with self._leases_lock:
            held = dict(self._leases)
        try:
            out = self.client.heartbeat(self.agent_id, list(held))
        except NotFoundError:
            logger.warning("the server no longer knows agent %s; registering again", self.name)
            try:
                self.register()
            except McuprofError as e:
                logger.error("registering again failed: %s", e)
            return
        except McuprofError as e:
            logger.warning("heartbeat failed: %s", e)
            return
        with self._leases_lock:
            self._lease_seconds = out.lease_seconds
        for lease_id in out.lost:
            lease = held.get(lease_id)
            if lease is not None and not lease.lost.is_set():
                lease.lost.set()
                logger.getChild(lease.device).warning(
                    "the server says lease %d is lost (expired or cancelled): abandoning job %d",
                    lease_id, lease.job_id, extra={"job_id": lease.job_id})

    def _heartbeat_loop(self) -> None:
        # The first beat goes at once (it tells the lease time); the period is re-read while
        # waiting, so a shorter lease time shortens the wait in progress. Beats go on through
        # the shutdown grace, so jobs that are finishing keep their leases.
        last: float | None = None
        while self._beating.is_set():
            now = time.monotonic()
            if last is None or now - last >= self.heartbeat_interval():
                last = now
                self.beat()
            else:
                time.sleep(HEARTBEAT_TICK_S)

    # -- models --------------------------------------------------------------------------

    def model_bytes(self, lease: LeaseOut) -> bytes:
        """The leased job's model: from the cache, else downloaded and checked."""
        data = self.cache.get(lease.model_sha256)
        if data is not None:
            return data
        data = self.client.model_file(lease.model_url)
        digest = hashlib.sha256(data).hexdigest()
        if digest != lease.model_sha256:
            raise QueueError(f"the model downloaded from {lease.model_url} has SHA-256 "
                             f"{digest[:16]}..., not {lease.model_sha256[:16]}... as leased; "
                             f"the transfer was corrupted")
        self.cache.put(digest, data)
        return data

    def health_reference(self) -> HealthReference:
        """The host build's output for the health model (computed once per agent)."""
        with self._reference_lock:
            if self._reference is None:
                self._reference = HealthReference(_host_output(HEALTH_MODEL.read_bytes()))
            return self._reference


def _host_output(model: bytes) -> bytes | None:
    """The health model's output on the host build of the firmware, or None (logged) when
    the host build cannot run here."""
    from bench_firmware.backends.host import HostBoard
    from bench_firmware.boards import HOST

    plan = compile_model(model, HOST, name="health")
    x = make_input(plan, None, seed=INPUT_SEED)
    try:
        with HostBoard() as host:
            host.load_plan(plan.data)
            return host.run(x.tobytes(), runs=1, warmup=0).output
    except McuprofError as e:
        logger.warning("cannot run the health model on the host build (%s); each board's "
                       "first health check becomes its output reference", e)
        return None


class BoardWorker(threading.Thread):
    """One board: health checks and the lease → run → report loop. Owns its backend."""

    def __init__(self, agent: Agent, device: str) -> None:
        super().__init__(name=f"board-{device}", daemon=True)
        self.agent = agent
        self.device = device
        self.backend_name, _, _ = parse_device(device)
        self.board: Board = get_board(device)
        self.log = logger.getChild(device)
        self.healthy: bool | None = None  # None: not checked yet
        self.next_health_check = 0.0  # time.monotonic() of the next check
        self.health_cycles: int | None = None  # the first check's cycles: the stable figure
        self.health_output: bytes | None = None
        self.jobs_done = 0
        self.board_errors = 0  # board errors in a row; MAX_BOARD_ERRORS take it out of service
        self._backend: BoardBackend | None = None
        self._image: tuple[str | None, int | None] | None = None

    # -- the backend ---------------------------------------------------------------------

    def backend(self) -> BoardBackend:
        """The open backend, opened on first use (and again after a failure closed it)."""
        if self._backend is None:
            backend = self.agent.backend_factory(self.device)
            backend.open()
            self._backend = backend
        return self._backend

    def close_backend(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            try:
                backend.close()
            except McuprofError as e:
                self.log.warning("closing the board failed: %s", e)

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        agent = self.agent
        try:
            while not agent.stopping:
                # A board that failed gets checked again even with health checks off: that
                # check is its way back to work.
                checking = agent.health_checks or self.healthy is False
                if checking and time.monotonic() >= self.next_health_check:
                    self.check_health()
                if self.healthy is False or (agent.health_checks and not self.healthy):
                    agent.sleep(max(0.0, self.next_health_check - time.monotonic()))
                    continue
                if not self._ensure_open():
                    continue
                lease = self._lease()
                if lease is None:
                    agent.sleep(agent.poll_interval_s)
                    continue
                self.run_job(lease)
        except Exception:  # a bug here must not take the other boards down silently
            self.log.exception("board worker crashed; this board takes no more work")
        finally:
            self.close_backend()

    def _ensure_open(self) -> bool:
        """Opens the board before asking for work, so a board that cannot boot never takes
        (and burns the attempts of) a job."""
        try:
            self.backend()
        except McuprofError as e:
            self.close_backend()
            self.mark_bad(f"the board does not open: {e}")
            return False
        return True

    def mark_bad(self, detail: str) -> None:
        """Takes the board out of service until a health check passes (reported)."""
        self.healthy = False
        self.next_health_check = time.monotonic() + self.agent.health_retry_s
        self.log.error("out of service until a health check passes (next in %.0f s): %s",
                       self.agent.health_retry_s, detail)
        try:
            self.agent.client.report_health(self.device, False, detail)
        except McuprofError as e:
            self.log.warning("cannot report health: %s", e)

    def _lease(self) -> LeaseOut | None:
        try:
            return self.agent.client.lease(self.device)
        except ServerUnavailableError as e:
            self.log.warning("cannot lease: %s", e)
        except ApiError as e:
            self.log.warning("the server refused a lease: %s", e)
        return None

    # -- one job -------------------------------------------------------------------------

    def run_job(self, lease: LeaseOut) -> None:
        """Runs one leased job and reports its outcome (unless the lease was lost)."""
        job = lease.job
        extra = {"job_id": job.id}
        held = self.agent.track(lease, self.device)
        self.log.info("leased job %d (model %d, %d runs + %d warm-up, %s kernels)", job.id,
                      job.model_id, job.runs, job.warmup, job.kernels, extra=extra)
        started = time.monotonic()
        transcript: list[str] = []
        try:
            model = self.agent.model_bytes(lease)
            plan = compile_model(model, self.board, name=f"model-{job.model_id}")
            if held.lost.is_set():
                return
            run = self._run_plan(plan, runs=job.runs, warmup=job.warmup, kernels=job.kernels)
            transcript = run.transcript
            measurement = self._measurement(plan, run, job.kernels)
            if not held.claim():
                self.log.warning("job %d finished after its lease was lost or released; "
                                 "result dropped", job.id, extra=extra)
                return
            self.board_errors = 0
            if self._report_result(held, measurement):
                self.jobs_done += 1
                self.log.info("job %d done in %.1f s: %s", job.id, time.monotonic() - started,
                              f"{measurement.latency_ms:.3f} ms" if measurement.latency_ms
                              is not None else "outputs only", extra=extra)
        except ModelError as e:
            self._report_failure(held, f"model error: {e}", retryable=False, log=transcript)
        except (BoardError, ProtocolError) as e:
            self.close_backend()
            self._report_failure(held, f"board error on {self.device}: {e}", retryable=True,
                                 log=transcript or self._transcript_of(e))
            self.board_errors += 1
            if self.board_errors >= MAX_BOARD_ERRORS:
                self.mark_bad(f"{self.board_errors} jobs in a row failed on the board; "
                              f"the last: {e}")
        except McuprofError as e:
            self._report_failure(held, str(e), retryable=True, log=transcript)
        except Exception as e:  # an agent bug: fail this attempt, keep the board serving
            self.log.exception("unexpected error in job %d", job.id, extra=extra)
            self.close_backend()
            self._report_failure(held, f"agent error on {self.device}: {type(e).__name__}: {e}",
                                 retryable=True, log=transcript)
        finally:
            self.agent.untrack(held)

    def _run_plan(self, plan: Plan, *, runs: int, warmup: int, kernels: str) -> RunResult:
        backend = self.backend()
        backend.load_plan(plan.data)
        x: np.ndarray = make_input(plan, None, seed=INPUT_SEED)
        return backend.run(x.tobytes(), runs=runs, warmup=warmup, kernels=kernels)

    @staticmethod
    def _transcript_of(error: Exception) -> list[str]:
        return list(getattr(error, "transcript", []) or [])

    def _measurement(self, plan: Plan, run: RunResult, kernels: str) -> MeasurementIn:
        result = build_result(plan, decode_output(plan, run.output), run.cycles_per_run or None,
                              run.layer_cycles or None, energy_mj=run.energy_mj,
                              cycle_source=CYCLE_SOURCES.get(self.backend_name))
        firmware_id, firmware_bytes = self._firmware()
        return MeasurementIn(
            device=self.device,
            output=result["output"],
            output_shape=result["output_shape"],
            cycles=result["cycles"],
            cycles_per_run=result["cycles_per_run"],
            cycle_source=result["cycle_source"],
            latency_ms=result["latency_ms"],
            energy_mj=result["energy_mj"],
            energy_source=result["energy_source"],
            arena_bytes=result["arena_bytes"],
            plan_bytes=result["plan_bytes"],
            flash_bytes=firmware_bytes + plan.plan_bytes if firmware_bytes else None,
            ops=result["ops"],
            macs=result["macs"],
            layers=result["layers"],
            kernels=kernels,  # type: ignore[arg-type]
            firmware_id=firmware_id,
            plan_id=hashlib.sha256(plan.data).hexdigest()[:16],
            serial_log=run.transcript,
        )

    def _firmware(self) -> tuple[str | None, int | None]:
        """The firmware's id and flash bytes: what the backend says it runs, else the board's
        image as ``build_firmware`` makes it (what virtual and Renode boards boot)."""
        backend = self._backend
        firmware_id = getattr(backend, "firmware_id", None)
        if firmware_id:
            return str(firmware_id), getattr(backend, "firmware_bytes", None)
        if self._image is None:
            from bench_firmware.build import build_firmware

            try:
                image = build_firmware(self.board)
                self._image = (image.firmware_id, image.flash_bytes)
            except McuprofError as e:
                self.log.warning("cannot tell the firmware id: %s", e)
                self._image = (None, None)
        return self._image

    def _report_result(self, held: _Lease, measurement: MeasurementIn) -> bool:
        """Uploads a result; keeps trying for :data:`REPORT_PATIENCE_S` while the server is
        unreachable (a result is idempotent, so a repeat is harmless). True when stored."""
        extra = {"job_id": held.job_id}
        deadline = time.monotonic() + REPORT_PATIENCE_S
        while True:
            try:
                self.agent.client.report_result(held.lease_id, measurement)
                return True
            except LeaseLostError as e:
                self.log.warning("result of job %d refused: %s", held.job_id, e, extra=extra)
                return False
            except ServerUnavailableError as e:
                if time.monotonic() >= deadline or self.agent.hurrying:
                    self.log.error("giving up on reporting job %d (its lease will expire and "
                                   "the job run again): %s", held.job_id, e, extra=extra)
                    return False
                self.log.warning("cannot report job %d yet: %s", held.job_id, e, extra=extra)
                time.sleep(self.agent.poll_interval_s)
            except ApiError as e:
                self.log.error("the server refused the result of job %d: %s", held.job_id, e,
                               extra=extra)
                with contextlib.suppress(McuprofError):
                    self.agent.client.report_failure(
                        held.lease_id, f"the server refused the measurement: {e}",
                        retryable=True, serial_log=measurement.serial_log)
                return False

    def _report_failure(self, held: _Lease, error: str, *, retryable: bool,
                        log: Sequence[str] = ()) -> None:
        extra = {"job_id": held.job_id}
        if not held.claim():
            self.log.info("job %d failed after its lease was lost: %s", held.job_id, error,
                          extra=extra)
            return
        self.log.warning("job %d failed (%s): %s", held.job_id,
                         "will be retried" if retryable else "final", error, extra=extra)
        try:
            self.agent.client.report_failure(held.lease_id, error, retryable=retryable,
                                             serial_log=list(log))
        except McuprofError as e:
            self.log.error("cannot report the failure of job %d: %s", held.job_id, e, extra=extra)

    # -- health --------------------------------------------------------------------------

    def check_health(self) -> bool:
        """Runs the health model; reports the verdict to the server. See the module docstring."""
        agent = self.agent
        reference = agent.health_reference()
        problems: list[str] = []
        cycles: int | None = None
        try:
            plan = compile_model(HEALTH_MODEL.read_bytes(), self.board, name="health")
            run = self._run_plan(plan, runs=HEALTH_RUNS, warmup=HEALTH_WARMUP, kernels="dsp")
        except McuprofError as e:
            self.close_backend()
            problems.append(f"the health model did not run: {e}")
        else:
            expected = reference.output if reference.output is not None else self.health_output
            if expected is None:
                self.health_output = run.output
            elif run.output != expected:
                problems.append(_output_difference(run.output, expected,
                                                   from_host=reference.output is not None))
            if run.cycles_per_run:
                cycles = int(statistics.median(run.cycles_per_run))
                if self.health_cycles is None:
                    self.health_cycles = cycles
                else:
                    drift = abs(cycles - self.health_cycles) / self.health_cycles
                    if drift > HEALTH_CYCLE_TOLERANCE:
                        problems.append(
                            f"the health model took {cycles:,} cycles, {drift:.1%} off the "
                            f"first check's {self.health_cycles:,} (allowed "
                            f"{HEALTH_CYCLE_TOLERANCE:.0%}): clock, flash wait states or "
                            f"caches changed")
        ok = not problems
        detail = ("; ".join(problems) if problems else
                  f"health model ok ({cycles:,} cycles)" if cycles is not None else
                  "health model ok (outputs only)")
        was = self.healthy
        self.healthy = ok
        if ok:
            self.board_errors = 0
        self.next_health_check = time.monotonic() + (
            agent.health_interval_s if ok else agent.health_retry_s)
        if ok and was is not True:
            self.log.info("health check passed: %s", detail)
        elif not ok:
            self.log.error("health check FAILED, no work for this board until it passes: %s",
                           detail)
        try:
            agent.client.report_health(self.device, ok, detail)
        except McuprofError as e:
            self.log.warning("cannot report health: %s", e)
        return ok


def _output_difference(got: bytes, expected: bytes, *, from_host: bool) -> str:
    """Says where the health model's output differs from the reference."""
    source = "the host build's" if from_host else "this board's first check's"
    if len(got) != len(expected):
        return f"the health model's output has {len(got)} bytes, {source} {len(expected)}"
    index = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
    count = sum(a != b for a, b in zip(got, expected, strict=True))
    return (f"the health model's output differs from {source} in {count} of {len(got)} bytes "
            f"(first at byte {index}: {got[index]} instead of {expected[index]})")
