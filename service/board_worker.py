"""One board of an agent: its health checks and its lease → run → report loop.

A :class:`BoardWorker` thread per board (see ``service/agent.py`` for the agent around them):
lease a job → fetch the model (cached by SHA-256) → compile the plan for the board →
``load_plan`` → warm-up + timed runs → report the measurement, or the failure (retryable for
board and serial errors, final for model errors).

Every board passes a health check before its first lease and periodically after: a known
model (``bench_firmware/samples/kws_tiny.tflite``) whose output must equal the host build's
and whose cycle count must stay within :data:`HEALTH_CYCLE_TOLERANCE` of the first check. A
board that fails is reported bad and gets no work until it passes again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import bench_firmware
from bench_firmware.backends.base import BoardBackend, RunResult
from bench_firmware.backends.registry import parse_device
from bench_firmware.backends.virtual.backend import RunBudgetError
from bench_firmware.boards import Board, get_board
from bench_firmware.compiler import Plan, compile_model
from bench_firmware.errors import BoardError, McuprofError, ModelError, ProtocolError
from bench_firmware.runner import CYCLE_SOURCES, build_result, decode_output, make_input
from profiler_client.client import (
    ApiError,
    AuthError,
    LeaseLostError,
    NotFoundError,
    ServerUnavailableError,
)
from profiler_client.schemas import LeaseOut, MeasurementIn, log_tail

if TYPE_CHECKING:  # the agent owns its workers; they only call back into it
    from service.agent import Agent

logger = logging.getLogger("mcuprof.agent")  # the agent's: one logger tree, one log config

HEALTH_CYCLE_TOLERANCE = 0.01  # relative drift of the health model's cycles vs the first check
HEALTH_RUNS = 3  # timed inferences of the health model
HEALTH_WARMUP = 1  # untimed inferences before them
SAMPLES_DIR = Path(bench_firmware.__file__).resolve().parent / "samples"
HEALTH_MODEL = SAMPLES_DIR / "kws_tiny.tflite"  # a small model every board can run
MAX_BOARD_ERRORS = 3  # board errors in a row that take a board out of service
REPORT_PATIENCE_S = 120.0  # seconds an agent keeps trying to upload a finished result
HTTP_FORBIDDEN = 403  # a lease on a board that belongs to no agent (auth on)
HTTP_CONFLICT = 409  # a lease on a board not attached to an agent (auth off)
INPUT_SEED = 0  # the seeded random input every measurement runs on (as `mcuprof run`)


@dataclass
class HeldLease:
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

    def mark_lost(self) -> bool:
        """Marks the lease lost; True unless its outcome was already claimed (then the
        server's "lost" only means the report got there first) or it was marked before."""
        with self._lock:
            if self._claimed or self.lost.is_set():
                return False
            self.lost.set()
            return True


@dataclass
class HealthReference:
    """What a healthy board must answer for the health model: the host build's output
    (None when the host build is unavailable: then the first check's output is the reference)."""

    output: bytes | None


def host_output(model: bytes) -> bytes | None:
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
        # The lease granted with the last result (one request per job), run next.
        self.next_lease: LeaseOut | None = None

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
                lease, self.next_lease = self.next_lease or self._lease(), None
                if lease is None:
                    agent.sleep(agent.poll_interval_s)
                    continue
                self.run_job(lease)
        except Exception:  # a bug here must not take the other boards down silently
            self.log.exception("board worker crashed; this board takes no more work")
        finally:
            self._give_back_next()
            self.close_backend()

    def _give_back_next(self) -> None:
        """Returns a lease granted with the last result but never started to the queue."""
        lease, self.next_lease = self.next_lease, None
        if lease is None:
            return
        with contextlib.suppress(McuprofError):
            self.agent.client.report_failure(
                lease.lease_id, f"{self.device}: the agent stopped before running it",
                retryable=True)

    def _may_lease_next(self) -> bool:
        """Whether the next job may be leased with this result: not while stopping, and not
        when a health check is due first."""
        agent = self.agent
        checking = agent.health_checks or self.healthy is False
        due = checking and time.monotonic() >= self.next_health_check
        return not agent.stopping and not due and self.healthy is not False

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
            if _unregistered(e):
                # The board was detached (re-registered elsewhere without it, or the server
                # forgot it): every lease would be refused until the agent registers again.
                self.agent.reregister(f"the server refused a lease for {self.device}: {e}")
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
        except RunBudgetError as e:
            # Too much work for one run: the job's fault, so it fails for good and the board,
            # which the budget stopped cleanly, stays in service (reopened for the next job).
            self.close_backend()
            self._report_failure(held, f"job error on {self.device}: {e}", retryable=False,
                                 log=transcript or self._transcript_of(e))
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
            serial_log=log_tail(run.transcript),
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

    def _report_result(self, held: HeldLease, measurement: MeasurementIn) -> bool:
        """Uploads a result; keeps trying for :data:`REPORT_PATIENCE_S` while the server is
        unreachable (a result is idempotent, so a repeat is harmless). True when stored."""
        extra = {"job_id": held.job_id}
        deadline = time.monotonic() + REPORT_PATIENCE_S
        with_lease = self._may_lease_next()
        while True:
            try:
                if with_lease:
                    try:
                        self.next_lease = self.agent.client.report_and_lease(
                            held.lease_id, measurement, self.device)
                        return True
                    except ServerUnavailableError:
                        raise
                    except ApiError as e:
                        # Refused: the report or the lease that came with it, and neither
                        # was kept. Report alone, which says which it was.
                        self.log.info("report with the next lease refused (%s); reporting "
                                      "alone", e, extra=extra)
                        with_lease = False
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

    def _report_failure(self, held: HeldLease, error: str, *, retryable: bool,
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
            try:
                self.backend()
            except McuprofError as e:  # worded as when a job finds it so (_ensure_open)
                raise BoardError(f"the board does not open: {e}") from e
            run = self._run_plan(plan, runs=HEALTH_RUNS, warmup=HEALTH_WARMUP, kernels="dsp")
        except McuprofError as e:
            self.close_backend()
            problems.append(f"the health model did not run: {e}")
        else:
            expected = reference.output if reference.output is not None else self.health_output
            if expected is None:
                self.health_output = run.output
            elif run.output != expected:
                problems.append(output_difference(run.output, expected,
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


def _unregistered(error: ApiError) -> bool:
    """Whether a refused lease says the board is not (or no longer) this agent's: 403 (it
    belongs to no agent, with auth on), 409 (not attached, auth off) or 404 (unknown)."""
    if isinstance(error, NotFoundError):
        return True
    if isinstance(error, AuthError):
        return error.status_code == HTTP_FORBIDDEN
    return error.status_code == HTTP_CONFLICT and "not attached" in str(error)


def output_difference(got: bytes, expected: bytes, *, from_host: bool) -> str:
    """Says where the health model's output differs from the reference."""
    source = "the host build's" if from_host else "this board's first check's"
    if len(got) != len(expected):
        return f"the health model's output has {len(got)} bytes, {source} {len(expected)}"
    index = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
    count = sum(a != b for a, b in zip(got, expected, strict=True))
    return (f"the health model's output differs from {source} in {count} of {len(got)} bytes "
            f"(first at byte {index}: {got[index]} instead of {expected[index]})")
