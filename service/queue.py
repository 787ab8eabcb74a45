"""The job queue: jobs, leases, heartbeats, expiry, results and board health.

Every function works inside the caller's transaction (``session``) and never commits: one
request is one transaction, so a refused request leaves nothing half-written. Callers that
write must use a write session (``Database.write()``): on SQLite it starts with
``BEGIN IMMEDIATE``, the single-writer lock that makes the lease path correct there; on
PostgreSQL rows are locked with ``SELECT ... FOR UPDATE [SKIP LOCKED]``.

Lease life cycle (a lease is an ``Attempt`` row; its id is the lease id)::

    queued ──lease()──► leased ──report_result()──► done
      ▲                   │ report_failure(retryable), expiry, abandonment
      └───────────────────┤   (attempts < max_attempts)
                          ├── otherwise ──► failed (every attempt's error kept)
                          └── cancel() ──► cancelled

Expiry needs no process of its own: ``lease()`` and ``heartbeat()`` sweep expired leases
first, and the API app also sweeps on a timer (``expire_leases``). Locks are taken in one
order (device, then job) and sweeps skip locked rows, so concurrent agents and API replicas
do not deadlock.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, literal_column, select, update
from sqlalchemy.orm import Session, joinedload

from bench_firmware.backends.registry import (
    DeviceClass,
    DeviceClassError,
    parse_device,
    unknown_device_message,
)
from bench_firmware.backends.registry import (
    known_devices_hint as known_devices_hint,  # re-exported for the routes
)
from bench_firmware.backends.registry import parse_device_class as _parse_device_class
from bench_firmware.boards import get_board
from bench_firmware.compiler import compile_model
from bench_firmware.errors import DoesNotFitError, McuprofError
from profiler_client.errors import QueueError
from profiler_client.schemas import MAX_ERROR_CHARS, MeasurementIn
from service.db.models import (
    NAME_LENGTH,
    Agent,
    Attempt,
    Device,
    Job,
    Measurement,
    Model,
    Token,
    utcnow,
)

# Literal (not bound) states, so that the planner can match the partial indexes
# ix_jobs_queue / ix_jobs_lease_expiry also in prepared, generic plans.
QUEUED: ColumnElement[str] = literal_column("'queued'")
LEASED: ColumnElement[str] = literal_column("'leased'")

logger = logging.getLogger("mcuprof.queue")

EXPIRE_BATCH = 100  # expired leases handled per sweep; the rest wait for the next one
LAST_SEEN_RESOLUTION = timedelta(seconds=5)  # a lease refreshes device.last_seen this often
SIMULATED_BACKENDS = frozenset({"virtual", "renode", "host"})  # no silicon: nothing to measure
MEASURED_CYCLE_SOURCE = "dwt-cyccnt"  # DWT CYCCNT on a physical board (bench_firmware.runner)
ENERGY_MONITOR_BACKENDS = frozenset({"pyocd"})  # backends an energy monitor can be attached to


class NotFoundError(QueueError):
    """The job, lease, agent or device does not exist."""


class ConflictError(QueueError):
    """The request contradicts the queue's state (e.g. a lease that is no longer held)."""


class NotOwnerError(QueueError):
    """An agent acted on a board or lease of another agent."""


class InvalidRequestError(QueueError):
    """The request names something that cannot exist (an unknown device class, ...)."""


@dataclass
class Lease:
    """A granted lease: the attempt row (``attempt.id`` is the lease id), its job and the
    SHA-256 of the job's model."""

    attempt: Attempt
    job: Job
    model_sha256: str


@dataclass(frozen=True)
class NoWork:
    """No lease granted, and why (shown to the agent)."""

    reason: str


def check_name(kind: str, value: str) -> str:
    """``value`` when it is a usable name: 1 to NAME_LENGTH printable characters."""
    if not value or len(value) > NAME_LENGTH or not value.isprintable():
        raise InvalidRequestError(f"{kind} {value[:40]!r} must be 1 to {NAME_LENGTH} "
                                  f"printable characters")
    return value


def parse_device_class(name: str) -> DeviceClass:
    """``virtual:nucleo-f446re`` → DeviceClass (``bench_firmware.backends.registry``), as a
    request may name one: :class:`InvalidRequestError` otherwise."""
    try:
        return _parse_device_class(check_name("device class", name))
    except DeviceClassError as e:
        raise InvalidRequestError(str(e)) from e


def parse_device_name(name: str) -> DeviceClass:
    """The class of a full device name ``<backend>:<board>[:<id>]``."""
    try:
        backend, board, _ident = parse_device(check_name("device", name))
    except McuprofError as e:
        raise InvalidRequestError(unknown_device_message("device", name, e)) from e
    cls = "host" if backend == "host" else f"{backend}:{board}"
    return DeviceClass(cls, backend, board)


def _fit_error(model: Model, board_name: str) -> str | None:
    """Why ``model`` does not fit ``board_name`` (with the numbers), or None when it does.

    The analysis stored at upload has the board-independent arena and plan sizes, so the
    common case needs no compile; a model that does not fit is compiled for the board to get
    the compiler's own message.
    """
    if board_name == "host":
        return None
    board = get_board(board_name)
    analysis = model.analysis
    if (int(analysis["arena_bytes"]) <= board.arena_capacity
            and int(analysis["plan_bytes"]) <= board.model_region_bytes):
        return None
    try:
        compile_model(model.data, board, name=model.name)
    except DoesNotFitError as e:
        return f"does not fit {board.name} ({e.what}: {e.needed} > {e.available} bytes): {e}"
    return (f"does not fit {board.name}: arena {analysis['arena_bytes']} of "
            f"{board.arena_capacity} bytes, plan {analysis['plan_bytes']} of "
            f"{board.model_region_bytes} bytes")


def enqueue(session: Session, model: Model, devices: Sequence[str], *, runs: int, warmup: int,
            kernels: str, priority: int, max_attempts: int,
            physical_run_s: float = math.inf,
            latency_ms: Mapping[str, float] | None = None,
            now: datetime | None = None) -> list[Job]:
    """One job per device class. A model that does not fit a class's board gets a job that
    is failed at once with the arena/flash numbers (no board time is spent on it). A job
    estimated to take longer than its board's budget is refused
    (:func:`service.job_cost.check_cost`; ``latency_ms``: predicted latency per device
    class, where a fit has one), and then no job is made."""
    from service.job_cost import check_cost  # it builds on this module's errors

    now = now or utcnow()
    classes = [parse_device_class(d) for d in dict.fromkeys(devices)]  # all valid, or none
    misfits = {cls.name: _fit_error(model, cls.board) for cls in classes}
    for cls in classes:
        if misfits[cls.name] is None:
            check_cost(model, cls, runs=runs, warmup=warmup, kernels=kernels,
                       latency_ms=(latency_ms or {}).get(cls.name),
                       physical_run_s=physical_run_s)
    jobs = []
    for cls in classes:
        misfit = misfits[cls.name]
        job = Job(model_id=model.id, device_class=cls.name, runs=runs, warmup=warmup,
                  kernels=kernels, priority=priority, max_attempts=max_attempts,
                  state="failed" if misfit else "queued", attempts=0, error=misfit,
                  created_at=now, updated_at=now)
        session.add(job)
        jobs.append(job)
    session.flush()
    return jobs


def register_agent(session: Session, name: str, devices: Sequence[str], *,
                   version: str | None, lease_seconds: float,
                   energy_monitors: Collection[str] = (), tokens_own_agents: bool = False,
                   now: datetime | None = None) -> Agent:
    """Register (or re-register) agent ``name`` with exactly these boards.

    Boards it no longer lists are detached. ``energy_monitors`` names the listed boards that
    an energy monitor measures (pyocd boards only). A board held by another agent that was
    seen in the last ``lease_seconds`` is refused; a silent agent's boards move to this one,
    except with ``tokens_own_agents`` (auth on) while an agent token is still bound to that
    agent: then only revoking its token frees them.
    """
    now = now or utcnow()
    check_name("agent name", name)
    classes = {d: parse_device_name(d) for d in dict.fromkeys(devices)}
    for device_name in energy_monitors:
        if device_name not in classes:
            raise InvalidRequestError(f"energy monitor on {device_name}, which is not among "
                                      f"this agent's boards; list the board too")
        if classes[device_name].backend not in ENERGY_MONITOR_BACKENDS:
            raise InvalidRequestError(
                f"{device_name} is a {classes[device_name].backend} board, which an energy "
                f"monitor cannot measure (its energy is modeled: power × time); only "
                f"physical boards (pyocd:...) take an energy monitor")
    agent = session.scalars(select(Agent).where(Agent.name == name).with_for_update()).first()
    if agent is None:
        agent = Agent(name=name, created_at=now)
        session.add(agent)
    agent.version = version
    agent.last_seen = now
    session.flush()
    for listed in session.scalars(select(Device).where(Device.agent_id == agent.id)
                                  .with_for_update()):
        if listed.name not in classes:
            listed.agent_id = None
    for device_name, cls in classes.items():
        device = session.scalars(select(Device).where(Device.name == device_name)
                                 .options(joinedload(Device.agent))
                                 .with_for_update(of=Device)).first()
        if device is None:
            device = Device(name=device_name, created_at=now, health="unknown")
            session.add(device)
        elif device.agent is not None and device.agent.id != agent.id:
            _check_board_move(session, device_name, device.agent, now=now,
                              lease_seconds=lease_seconds, tokens_own_agents=tokens_own_agents)
        device.device_class, device.backend, device.board = cls.name, cls.backend, cls.board
        device.agent_id = agent.id
        device.last_seen = now
        device.energy_monitor = device_name in energy_monitors
    session.flush()
    return agent


def _check_board_move(session: Session, device_name: str, other: Agent, *, now: datetime,
                      lease_seconds: float, tokens_own_agents: bool) -> None:
    """Refuse to move ``device_name`` away from agent ``other`` while that is not allowed."""
    if other.last_seen is not None and now - other.last_seen < timedelta(seconds=lease_seconds):
        age = (now - other.last_seen).total_seconds()
        raise ConflictError(
            f"device {device_name} is registered by agent {other.name!r}, seen "
            f"{age:.0f} s ago; stop that agent, or give this board another id "
            f"(<backend>:<board>:<id>)")
    if tokens_own_agents and session.scalars(
            select(Token.id).where(Token.role == "agent", Token.agent_name == other.name)
    ).first() is not None:
        raise NotOwnerError(
            f"device {device_name} belongs to agent {other.name!r}, which still has an agent "
            f"token; an agent never takes another agent's boards. Re-register "
            f"{other.name!r} without this board, or revoke its token (mcuprof token revoke) "
            f"to free its boards")


def _attempt_errors(session: Session, job: Job) -> str:
    attempts = session.scalars(select(Attempt).where(Attempt.job_id == job.id)
                               .order_by(Attempt.attempt)).all()
    parts = [f"#{a.attempt} on {a.device or '?'} ({a.outcome}): {a.error or 'no message'}"
             for a in attempts]
    return f"failed after {len(attempts)} attempt(s): " + "; ".join(parts)


def _end_lease(session: Session, job: Job, attempt: Attempt | None, *, outcome: str,
               error: str | None, retry: bool, now: datetime,
               serial_log: Sequence[str] | None = None) -> None:
    """Close the job's current lease; requeue it, or fail it once attempts are used up."""
    if attempt is not None:
        attempt.outcome = outcome
        attempt.error = error[:MAX_ERROR_CHARS] if error else error
        attempt.ended_at = now
        if serial_log:
            attempt.serial_log = list(serial_log)
    job.lease_id = job.lease_agent_id = job.lease_device_id = None
    job.lease_expires_at = None
    job.updated_at = now
    if outcome == "cancelled":
        job.state = "cancelled"
        job.error = error
    elif retry and job.attempts < job.max_attempts:
        job.state = "queued"
        job.error = None
    else:
        job.state = "failed"
        session.flush()
        job.error = _attempt_errors(session, job)
    logger.info("job %d attempt %d %s: %s; job is %s", job.id, job.attempts, outcome, error,
                job.state, extra={"job_id": job.id})


def expire_leases(session: Session, *, now: datetime | None = None,
                  limit: int = EXPIRE_BATCH) -> list[int]:
    """Return jobs whose lease expired to the queue (or fail them at max attempts).

    Safe to run from every request and every replica at once: rows another transaction
    is handling are skipped. Returns the ids of the jobs it touched.
    """
    now = now or utcnow()
    jobs = session.scalars(
        select(Job).where(Job.state == LEASED, Job.lease_expires_at < now)
        .order_by(Job.lease_expires_at).limit(limit).with_for_update(skip_locked=True)
    ).all()
    for job in jobs:
        attempt = session.get(Attempt, job.lease_id) if job.lease_id is not None else None
        expired_at = job.lease_expires_at
        who = f"agent {attempt.agent!r} on {attempt.device}" if attempt else "its agent"
        _end_lease(session, job, attempt, outcome="expired", retry=True, now=now,
                   error=f"lease expired at {expired_at:%Y-%m-%d %H:%M:%S} UTC: {who} "
                         f"stopped sending heartbeats")
    if jobs:
        session.flush()
    return [job.id for job in jobs]


def _locked_device(session: Session, device_name: str,
                   agent_name: str | None) -> tuple[Device, int | None]:
    """The device row, locked, and the id of a job it holds a lease on (if any)."""
    held = (select(Job.id).where(Job.state == LEASED, Job.lease_device_id == Device.id)
            .limit(1).scalar_subquery())
    row = session.execute(select(Device, held).where(Device.name == device_name)
                          .options(joinedload(Device.agent))
                          .with_for_update(of=Device)).first()
    if row is None:
        raise NotFoundError(f"device {device_name} is not registered; register it with "
                            f"POST /api/v1/agents (mcuprof agent does) before leasing")
    device, held_job = row
    if agent_name is not None and (device.agent is None or device.agent.name != agent_name):
        owner = device.agent.name if device.agent else "no agent"
        raise NotOwnerError(f"device {device_name} belongs to {owner}, not to agent "
                            f"{agent_name!r}; an agent token may only use its own boards")
    return device, held_job


def lease(session: Session, device_name: str, *, agent_name: str | None, lease_seconds: float,
          now: datetime | None = None) -> Lease | NoWork:
    """Lease the oldest highest-priority queued job of the device's class to that board.

    ``agent_name`` (None when auth is off) must own the device. A device marked bad gets no
    work. A lease the board still holds is abandoned (the agent says the board is idle, so
    that work is not running): the job goes back to the queue, counted as an attempt.
    """
    clock = (lambda: now) if now is not None else utcnow
    expire_leases(session, now=clock())
    device, held_job = _locked_device(session, device_name, agent_name)
    if device.agent is None:
        raise ConflictError(f"device {device_name} is not attached to an agent any more; "
                            f"re-register it with POST /api/v1/agents")
    seen = clock()
    if device.last_seen is None or seen - device.last_seen > LAST_SEEN_RESOLUTION:
        device.last_seen = seen
    if device.health == "bad":
        detail = device.health_detail or "no detail"
        return NoWork(f"device {device_name} is marked bad ({detail}); it gets work again "
                      f"after a health report with ok=true")
    if held_job is not None:
        for held in session.scalars(select(Job).where(Job.state == LEASED,
                                                      Job.lease_device_id == device.id)
                                    .with_for_update()):
            attempt = session.get(Attempt, held.lease_id) if held.lease_id else None
            _end_lease(session, held, attempt, outcome="abandoned", retry=True, now=clock(),
                       error=f"abandoned: {device_name} asked for new work while holding "
                             f"lease {held.lease_id}")
    picked = session.execute(
        select(Job, Model.sha256).join(Model, Model.id == Job.model_id)
        .where(Job.device_class == device.device_class, Job.state == QUEUED)
        .order_by(Job.priority.desc(), Job.id).limit(1)
        .with_for_update(of=Job, skip_locked=True)
    ).first()
    if picked is None:
        return NoWork(f"no queued job for {device.device_class}")
    job, model_sha256 = picked
    # Read after the job was picked: later than the end of its previous attempt, whose
    # commit made it visible.
    started = clock()
    attempt = Attempt(job_id=job.id, attempt=job.attempts + 1, agent=device.agent.name,
                      device=device.name, started_at=started, outcome="running")
    session.add(attempt)
    session.flush()
    job.state = "leased"
    job.attempts += 1
    job.lease_id = attempt.id
    job.lease_agent_id = device.agent.id
    job.lease_device_id = device.id
    job.lease_expires_at = started + timedelta(seconds=lease_seconds)
    job.updated_at = started
    session.flush()
    logger.debug("lease %d: job %d attempt %d on %s", attempt.id, job.id, job.attempts,
                 device.name, extra={"job_id": job.id})
    return Lease(attempt, job, model_sha256)


def heartbeat(session: Session, agent_id: int, lease_ids: Sequence[int], *,
              agent_name: str | None, lease_seconds: float,
              now: datetime | None = None) -> tuple[list[int], list[int]]:
    """Extend the agent's listed leases; returns (extended, lost) lease ids.

    A lease is lost when it expired, was cancelled, reassigned, or is not this agent's.
    """
    now = now or utcnow()
    expire_leases(session, now=now)
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFoundError(f"agent {agent_id} is not registered; register with "
                            f"POST /api/v1/agents")
    if agent_name is not None and agent.name != agent_name:
        raise NotOwnerError(f"agent {agent_id} is {agent.name!r}; this token belongs to "
                            f"agent {agent_name!r}")
    agent.last_seen = now
    wanted = sorted(set(lease_ids))
    extended: list[int] = []
    if wanted:
        # Only unexpired leases: an expired one is lost, and skipping it means this never
        # waits on a row that an expiry sweep has locked.
        extended = sorted(lease_id for lease_id in session.scalars(
            update(Job)
            .where(Job.lease_id.in_(wanted), Job.state == LEASED, Job.lease_agent_id == agent.id,
                   Job.lease_expires_at >= now)
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
            .returning(Job.lease_id)
            .execution_options(synchronize_session=False)
        ) if lease_id is not None)
    session.flush()
    held = set(extended)
    return extended, [i for i in wanted if i not in held]


def _lease_job(session: Session, lease_id: int) -> tuple[Attempt, Job]:
    row = session.execute(select(Job, Attempt).join(Attempt, Attempt.job_id == Job.id)
                          .where(Attempt.id == lease_id).with_for_update(of=Job)).first()
    if row is None:
        raise NotFoundError(f"there is no lease {lease_id}; lease ids come from "
                            f"POST /api/v1/leases")
    job, attempt = row
    return attempt, job


def _not_held(job: Job, lease_id: int) -> str:
    """Why ``lease_id`` no longer holds ``job``."""
    if job.state == "cancelled":
        why = "the job was cancelled"
    elif job.state == "failed":
        why = f"the job failed ({job.error})"
    elif job.state == "done":
        why = "the job is already done"
    elif job.state == "leased":
        why = f"the job is now held by lease {job.lease_id} (attempt {job.attempts})"
    else:
        why = "its lease expired and the job went back to the queue"
    return f"lease {lease_id} no longer holds job {job.id}: {why}. Drop this work"


def _check_holder(attempt: Attempt, lease_id: int, agent_name: str | None) -> None:
    """Refuse a report on a lease that ``agent_name`` (None: auth off) was never granted,
    before anything about the lease's job is looked at or told."""
    if agent_name is not None and attempt.agent != agent_name:
        raise NotOwnerError(f"lease {lease_id} is held by agent {attempt.agent!r}, not "
                            f"{agent_name!r}; an agent token reports only the leases it holds")


def _check_sources(session: Session, measurement: MeasurementIn, cls: DeviceClass) -> None:
    """Refuse provenance the board cannot have: measured energy without a value, from a
    simulated board or from a board registered without an energy monitor; DWT cycles from
    a simulated board."""
    device = measurement.device
    if measurement.cycle_source == MEASURED_CYCLE_SOURCE and cls.backend in SIMULATED_BACKENDS:
        raise InvalidRequestError(
            f"cycle_source {MEASURED_CYCLE_SOURCE!r} from {device}, a {cls.backend} board: "
            f"its cycles come from a model, not from a DWT counter on silicon; report the "
            f"backend's own cycle_source (e.g. 'cycle-model')")
    if measurement.energy_source != "measured":
        return
    if measurement.energy_mj is None:
        raise InvalidRequestError(
            "energy_source is 'measured' but energy_mj is missing; send the energy "
            "monitor's reading in energy_mj, or energy_source 'modeled' (power × time) or "
            "null when there is none")
    if cls.backend in SIMULATED_BACKENDS:
        raise InvalidRequestError(
            f"energy_source 'measured' from {device}, a {cls.backend} board: nothing "
            f"simulated can measure energy; send energy_source 'modeled' (power × time)")
    registered = session.scalars(select(Device.energy_monitor)
                                 .where(Device.name == device)).first()
    if not registered:
        raise InvalidRequestError(
            f"energy_source 'measured' from {device}, which its agent registered without an "
            f"energy monitor; start the agent with --energy-monitor {device}=PORT (an "
            f"X-NUCLEO-LPM01A), or send energy_source 'modeled' (power × time)")


def report_digest(measurement: MeasurementIn) -> str:
    """SHA-256 of a report as received: two reports are the same iff their digests are."""
    return hashlib.sha256(measurement.model_dump_json().encode()).hexdigest()


def report_result(session: Session, lease_id: int, measurement: MeasurementIn, *,
                  agent_name: str | None, now: datetime | None = None) -> Job:
    """Store the measurement of a held lease and mark the job done; idempotent.

    A repeated identical report for a done job returns it unchanged; any other report for a
    lease that no longer holds its job raises ``ConflictError``. A lease past its expiry
    time whose job has not been taken back yet still holds it (nothing was lost).
    """
    attempt, job = _lease_job(session, lease_id)
    _check_holder(attempt, lease_id, agent_name)
    now = now or utcnow()  # taken under the job's lock
    digest = report_digest(measurement)
    if job.state == "done":
        existing = session.scalars(select(Measurement)
                                   .where(Measurement.job_id == job.id)).first()
        if existing is not None and existing.report_sha256 == digest:
            return job
        raise ConflictError(
            f"job {job.id} is already done with a different measurement (lease "
            f"{existing.lease_id if existing else '?'}); this report for lease {lease_id} was "
            f"not stored")
    if job.state != "leased" or job.lease_id != lease_id:
        raise ConflictError(_not_held(job, lease_id))
    if measurement.device != attempt.device:
        raise InvalidRequestError(
            f"lease {lease_id} was granted to {attempt.device} but the measurement says it "
            f"ran on {measurement.device}; report the board that leased the job")
    cls = parse_device_name(measurement.device)
    _check_sources(session, measurement, cls)
    session.add(Measurement(
        job_id=job.id, lease_id=lease_id, model_id=job.model_id, device=measurement.device,
        device_class=job.device_class, board=cls.board, cycles=measurement.cycles,
        cycles_per_run=measurement.cycles_per_run, cycle_source=measurement.cycle_source,
        latency_ms=measurement.latency_ms, energy_mj=measurement.energy_mj,
        energy_source=measurement.energy_source, arena_bytes=measurement.arena_bytes,
        plan_bytes=measurement.plan_bytes, flash_bytes=measurement.flash_bytes,
        ops=measurement.ops, macs=measurement.macs,
        layers=[layer.model_dump() for layer in measurement.layers],
        output=measurement.output, output_shape=measurement.output_shape,
        kernels=measurement.kernels, firmware_id=measurement.firmware_id,
        plan_id=measurement.plan_id, serial_log=measurement.serial_log,
        report_sha256=digest, created_at=now,
    ))
    attempt.outcome, attempt.ended_at = "done", now
    job.state = "done"
    job.error = None
    job.lease_id = job.lease_agent_id = job.lease_device_id = None
    job.lease_expires_at = None
    job.updated_at = now
    session.flush()
    return job


def report_failure(session: Session, lease_id: int, error: str, *, retryable: bool,
                   serial_log: Sequence[str] = (), agent_name: str | None,
                   now: datetime | None = None) -> Job:
    """Record a failed attempt: requeue (retryable, attempts left) or fail the job.

    A repeated report of the same failure for the same lease returns the job unchanged.
    """
    attempt, job = _lease_job(session, lease_id)
    _check_holder(attempt, lease_id, agent_name)
    now = now or utcnow()  # taken under the job's lock
    if job.state != "leased" or job.lease_id != lease_id:
        if attempt.outcome == "failed" and attempt.error == error[:MAX_ERROR_CHARS]:
            return job
        raise ConflictError(_not_held(job, lease_id))
    _end_lease(session, job, attempt, outcome="failed", error=error, retry=retryable, now=now,
               serial_log=serial_log)
    session.flush()
    return job


def cancel(session: Session, job_id: int, *, now: datetime | None = None) -> Job:
    """Cancel a queued or leased job (its agent sees the lease lost at its next heartbeat).

    Cancelling a cancelled job is a no-op; a finished job cannot be cancelled.
    """
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
    if job is None:
        raise NotFoundError(f"there is no job {job_id}")
    now = now or utcnow()  # taken under the job's lock
    if job.state in ("done", "failed"):
        raise ConflictError(f"job {job_id} is already {job.state}; there is nothing to cancel")
    if job.state == "queued":
        job.state, job.error, job.updated_at = "cancelled", "cancelled before it ran", now
    elif job.state == "leased":
        attempt = session.get(Attempt, job.lease_id) if job.lease_id is not None else None
        _end_lease(session, job, attempt, outcome="cancelled", retry=False, now=now,
                   error="cancelled while it ran")
    session.flush()
    return job


def set_health(session: Session, device_name: str, *, ok: bool, detail: str | None,
               agent_name: str | None, now: datetime | None = None) -> Device:
    """Record a health check: a bad board gets no leases until a check says ok again."""
    device, _held = _locked_device(session, device_name, agent_name)
    now = now or utcnow()
    device.health = "ok" if ok else "bad"
    device.health_detail = detail
    device.last_seen = now
    session.flush()
    return device
