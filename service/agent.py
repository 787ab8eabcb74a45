"""The agent: a worker process that owns the boards on one host and pulls work over HTTP.

One :class:`Agent` per host (``mcuprof agent --server URL --token T --board DEVICE ...``):

- it registers its boards under full device names ``<backend>:<board>:<agent>-<n>`` (a
  physical board keeps its probe id: ``pyocd:nucleo-f446re:066DFF...``); their class
  ``<backend>:<board>`` is what jobs target;
- one :class:`~service.board_worker.BoardWorker` thread per board (``service/board_worker.py``)
  loops: lease a job → fetch the model (cached by SHA-256) → compile the plan for the board →
  ``load_plan`` → warm-up + timed runs → report the measurement, or the failure (retryable
  for board and serial errors, final for model errors and for runs that exceed the board's
  budget, which fail the job and leave the board in service);
- a heartbeat thread extends the leases in flight and abandons work the server says is lost
  (expired, cancelled);
- every board passes a health check before its first lease and periodically after: a known
  model (``bench_firmware/samples/kws_tiny.tflite``) whose output must equal the host build's
  and whose cycle count must stay within :data:`HEALTH_CYCLE_TOLERANCE` of the first check. A
  board that fails is reported bad and gets no work until it passes again;
- a lease refused because the board is no longer this agent's (detached: 403 or 409, or
  unknown: 404) makes the agent register again (:meth:`Agent.reregister`);
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
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from bench_firmware.backends.base import BoardBackend
from bench_firmware.backends.registry import open_backend, parse_device
from bench_firmware.errors import McuprofError
from profiler_client.client import Client, NotFoundError, ServerUnavailableError
from profiler_client.errors import QueueError
from profiler_client.schemas import LeaseOut
from service.agent_settings import (
    HEALTH_INTERVAL_S,
    POLL_INTERVAL_S,
    SHUTDOWN_GRACE_S,
    agent_settings,
)
from service.board_worker import (
    HEALTH_CYCLE_TOLERANCE,
    HEALTH_MODEL,
    HEALTH_RUNS,
    HEALTH_WARMUP,
    INPUT_SEED,
    MAX_BOARD_ERRORS,
    REPORT_PATIENCE_S,
    SAMPLES_DIR,
    BoardWorker,
    HealthReference,
    HeldLease,
    host_output,
)

__all__ = [
    "HEALTH_CYCLE_TOLERANCE", "HEALTH_INTERVAL_S", "HEALTH_MODEL", "HEALTH_RETRY_S",
    "HEALTH_RUNS", "HEALTH_WARMUP", "HEARTBEAT_S", "INPUT_SEED", "MAX_BOARD_ERRORS",
    "POLL_INTERVAL_S", "REPORT_PATIENCE_S", "SAMPLES_DIR", "SHUTDOWN_ERROR", "SHUTDOWN_GRACE_S",
    "Agent", "BackendFactory", "BoardWorker", "HealthReference", "ModelCache", "board_names",
    "default_cache_dir",
]

logger = logging.getLogger("mcuprof.agent")

HEARTBEAT_S = 10.0  # seconds between heartbeats (at most a third of the lease time, see below)
HEARTBEAT_TICK_S = 0.1  # seconds between looks at the heartbeat clock
HEARTBEATS_PER_LEASE = 3  # heartbeats within one lease time, so one lost beat costs nothing
REGISTER_RETRY_S = 5.0  # seconds between registration attempts while the server is down
REREGISTER_MIN_S = 5.0  # seconds between re-registrations asked for by refused leases
HEALTH_RETRY_S = 300.0  # seconds between health checks of a board that failed one
SHUTDOWN_ERROR = "agent shutting down"

BackendFactory = Callable[[str], BoardBackend]


def default_cache_dir() -> Path:
    """Where downloaded models are cached: ``$MCUPROF_CACHE_DIR/models``, else
    ``~/.cache/mcuprof/models`` (:class:`~service.agent_settings.AgentSettings`)."""
    return agent_settings().models_dir


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


class Agent:
    """The boards of one host, working for one server. See the module docstring."""

    def __init__(self, client: Client, devices: Sequence[str], *, name: str | None = None,
                 cache_dir: Path | None = None, poll_interval_s: float = POLL_INTERVAL_S,
                 heartbeat_s: float = HEARTBEAT_S, health_interval_s: float = HEALTH_INTERVAL_S,
                 health_retry_s: float = HEALTH_RETRY_S, health_checks: bool = True,
                 shutdown_grace_s: float = SHUTDOWN_GRACE_S,
                 backend_factory: BackendFactory = open_backend,
                 version: str | None = None, energy_monitors: Collection[str] = ()) -> None:
        self.client = client
        self.name = name or socket.gethostname().split(".")[0]
        self.devices = board_names(self.name, devices)
        if not self.devices:
            raise McuprofError("an agent needs at least one --board")
        # Registered with the boards: only these may report energy_source "measured".
        self.energy_monitors = frozenset(d for d in self.devices if d in energy_monitors)
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
        self._leases: dict[int, HeldLease] = {}
        self._leases_lock = threading.Lock()
        self._lease_seconds: float | None = None
        self._reference: HealthReference | None = None
        self._reference_lock = threading.Lock()
        self._reregister_lock = threading.Lock()
        self._last_reregister: float | None = None  # time.monotonic() of the last one
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
                out = self.client.register_agent(self.name, self.devices, version=self.version,
                                                 energy_monitors=self.energy_monitors)
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

    def reregister(self, reason: str) -> bool:
        """Registers the agent and its boards again once, e.g. after the server detached a
        board (a lease refused with 403/409) or forgot it (404). Called by every board's
        worker, so at most one attempt per :data:`REREGISTER_MIN_S`; True when it succeeded."""
        with self._reregister_lock:
            now = time.monotonic()
            if (self._last_reregister is not None
                    and now - self._last_reregister < REREGISTER_MIN_S):
                return False
            self._last_reregister = now
            logger.warning("registering agent %s again: %s", self.name, reason)
            try:
                out = self.client.register_agent(self.name, self.devices, version=self.version,
                                                 energy_monitors=self.energy_monitors)
            except McuprofError as e:
                logger.error("registering agent %s again failed (next try in %.0f s at the "
                             "earliest): %s", self.name, REREGISTER_MIN_S, e)
                return False
            self.agent_id = out.id
            logger.info("registered again as agent %s (id %d)", self.name, out.id)
            return True

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

    def track(self, lease: LeaseOut, device: str) -> HeldLease:
        held = HeldLease(lease.lease_id, lease.job.id, device)
        with self._leases_lock:
            self._leases[lease.lease_id] = held
            self._lease_seconds = lease.lease_seconds
        return held

    def untrack(self, held: HeldLease) -> None:
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
            # A lease whose outcome is being reported was in this beat's list but may be
            # done by the time the server read it: not lost, and nothing to abandon.
            if lease is not None and lease.mark_lost():
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
                self._reference = HealthReference(host_output(HEALTH_MODEL.read_bytes()))
            return self._reference
