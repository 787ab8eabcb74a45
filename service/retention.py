"""Storage accounting and retention: what stored models take, and what may be deleted.

Retention (``MCUPROF_RETENTION_DAYS`` = N > 0; run by the server's background task every
``MCUPROF_RETENTION_INTERVAL_SECONDS`` and by ``mcuprof prune``) deletes exactly this, and
nothing else:

1. the serial logs of attempts that ended more than N days ago, on jobs that are finished
   (done, failed or cancelled): ``attempts.serial_log`` becomes null;
2. the serial logs of measurements made more than N days ago: ``measurements.serial_log``
   becomes empty. Every number of the measurement (cycles, latency, energy, layers, output,
   provenance) stays;
3. models uploaded more than N days ago that nothing needs: no queued or leased job, no
   measurement (fits are made from measurements, and a measurement names its model), and no
   job created or changed in the last N days. With such a model go its tags and its finished
   (failed or cancelled) jobs with their attempt history.

A model with a queued or leased job, or with any measurement, is never deleted, by retention
or by ``DELETE /api/v1/models/{id}`` (:func:`delete_model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Result,
    Text,
    and_,
    delete,
    exists,
    func,
    not_,
    null,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.orm import InstrumentedAttribute, Session

from bench_firmware.errors import McuprofError
from service.db.engine import dialect_name
from service.db.models import Attempt, Job, Measurement, Model, ModelTag, utcnow
from service.queue import ConflictError, NotFoundError

ACTIVE_STATES = ("queued", "leased")  # a job in one of these still needs its model
FINISHED_STATES = ("done", "failed", "cancelled")
DAY_S = 86_400.0  # seconds
# Key of the PostgreSQL advisory lock that serializes the quota check of concurrent uploads
# (any constant unique to this use; PostgreSQL manual, "Advisory Lock Functions").
QUOTA_LOCK_KEY = 0x6D637570  # "mcup"


class StorageQuotaError(McuprofError):
    """Storing a model would take the stored models over ``MCUPROF_STORAGE_QUOTA_BYTES``."""

    def __init__(self, *, quota_bytes: int, used_bytes: int, models: int,
                 size_bytes: int) -> None:
        self.quota_bytes = quota_bytes
        self.used_bytes = used_bytes
        self.models = models
        self.size_bytes = size_bytes
        super().__init__(
            f"storing this model ({size_bytes:,} bytes) would take the stored models over the "
            f"server's quota: {used_bytes:,} of {quota_bytes:,} bytes are used by {models} "
            f"model(s) (MCUPROF_STORAGE_QUOTA_BYTES). Delete models you no longer need "
            f"(DELETE /api/v1/models/<id>; a model with queued or leased jobs or measurements "
            f"is kept), or ask the operator to raise MCUPROF_STORAGE_QUOTA_BYTES or to run "
            f"`mcuprof prune`")


@dataclass(frozen=True)
class StorageUsage:
    models: int
    bytes: int


def storage_usage(session: Session) -> StorageUsage:
    """How many models are stored and the bytes of their files."""
    count, total = session.execute(
        select(func.count(Model.id), func.coalesce(func.sum(Model.size_bytes), 0))).one()
    return StorageUsage(models=int(count), bytes=int(total))


def check_quota(session: Session, size_bytes: int, quota_bytes: int) -> None:
    """Raises :class:`StorageQuotaError` when ``size_bytes`` more would exceed ``quota_bytes``
    (0: no quota). Call it in the transaction that stores the model: on PostgreSQL it takes a
    transaction-scoped advisory lock, so two uploads cannot both pass on the same free space
    (on SQLite the write transaction already holds the database's one writer lock)."""
    if quota_bytes <= 0:
        return
    if dialect_name(session) == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(QUOTA_LOCK_KEY)))
    usage = storage_usage(session)
    if usage.bytes + size_bytes > quota_bytes:
        raise StorageQuotaError(quota_bytes=quota_bytes, used_bytes=usage.bytes,
                                models=usage.models, size_bytes=size_bytes)


def _needed(model_id: InstrumentedAttribute[int],
            since: datetime | None) -> ColumnElement[bool]:
    """SQL: the model ``model_id`` has a queued or leased job, a measurement, or (with
    ``since``) a job created or changed at or after ``since``."""
    job_needs: ColumnElement[bool] = Job.state.in_(ACTIVE_STATES)
    if since is not None:
        job_needs = or_(job_needs, Job.updated_at >= since, Job.created_at >= since)
    return or_(exists().where(and_(Job.model_id == model_id, job_needs)),
               exists().where(Measurement.model_id == model_id))


def _delete_models(session: Session, ids: list[int]) -> None:
    """Deletes the models ``ids`` with their tags and their (finished) jobs' history."""
    if not ids:
        return
    jobs = select(Job.id).where(Job.model_id.in_(ids)).scalar_subquery()
    session.execute(delete(Attempt).where(Attempt.job_id.in_(jobs)))
    session.execute(delete(Job).where(Job.model_id.in_(ids)))
    session.execute(delete(ModelTag).where(ModelTag.model_id.in_(ids)))
    session.execute(delete(Model).where(Model.id.in_(ids)))


def _lock_models(session: Session, ids: list[int]) -> None:
    """Row locks on the models ``ids`` (PostgreSQL; SQLite's write transaction holds the
    writer lock already): a job submitted for one of them meanwhile either committed before
    (and the re-check that follows sees it) or waits for this transaction."""
    if ids:
        session.execute(select(Model.id).where(Model.id.in_(ids)).order_by(Model.id)
                        .with_for_update())
        session.expire_all()


def delete_model(session: Session, model_id: int) -> None:
    """Deletes one model, its tags and its finished jobs; :class:`NotFoundError` when there is
    no such model, :class:`ConflictError` when a queued or leased job or a measurement still
    needs it."""
    if session.get(Model, model_id) is None:
        raise NotFoundError(f"there is no model {model_id}; list models with GET /api/v1/models")
    _lock_models(session, [model_id])
    active = session.scalar(select(func.count(Job.id)).where(
        Job.model_id == model_id, Job.state.in_(ACTIVE_STATES)))
    measured = session.scalar(select(func.count(Measurement.id)).where(
        Measurement.model_id == model_id))
    if active:
        raise ConflictError(f"model {model_id} has {active} queued or leased job(s); cancel "
                            f"them (POST /api/v1/jobs/<id>/cancel) or wait until they end, "
                            f"then delete it")
    if measured:
        raise ConflictError(f"model {model_id} has {measured} measurement(s), which the "
                            f"latency fits are made from, so it is kept")
    _delete_models(session, [model_id])


def _count(result: Result[Any]) -> int:
    """Rows an UPDATE changed."""
    return int(cast(CursorResult[Any], result).rowcount)


@dataclass(frozen=True)
class PruneResult:
    """What one retention pass deleted (or, with ``dry_run``, would delete)."""

    attempt_logs: int  # attempts whose serial log was cleared
    measurement_logs: int  # measurements whose serial log was cleared
    model_ids: tuple[int, ...]  # models deleted
    model_bytes: int  # bytes of their files

    @property
    def nothing(self) -> bool:
        return not (self.attempt_logs or self.measurement_logs or self.model_ids)

    def summary(self) -> str:
        return (f"{len(self.model_ids)} model(s) ({self.model_bytes:,} bytes), serial logs of "
                f"{self.attempt_logs} attempt(s) and {self.measurement_logs} measurement(s)")


def prune(session: Session, *, days: float, now: datetime | None = None,
          dry_run: bool = False) -> PruneResult:
    """One retention pass for ``days`` (see the module docstring); ``days`` <= 0 deletes
    nothing. The caller commits."""
    if days <= 0:
        return PruneResult(0, 0, (), 0)
    cutoff = (now or utcnow()) - timedelta(seconds=days * DAY_S)

    finished = select(Job.id).where(Job.state.in_(FINISHED_STATES)).scalar_subquery()
    # SQL NULL, not JSON null (which the JSON type writes for None): null() and IS NOT NULL,
    # and a JSON null left by older code counts as no log.
    old_attempts = and_(Attempt.serial_log.is_not(None),
                        sa_cast(Attempt.serial_log, Text) != "null",
                        Attempt.ended_at.is_not(None),
                        Attempt.ended_at < cutoff, Attempt.job_id.in_(finished))
    # json_array_length: SQLite's JSON1 and PostgreSQL's json functions alike (the column is
    # JSON, not JSONB, on both, and PostgreSQL's json type has no equality operator).
    old_measurements = and_(Measurement.created_at < cutoff,
                            func.coalesce(func.json_array_length(Measurement.serial_log), 0) > 0)
    candidates = select(Model.id).where(Model.created_at < cutoff,
                                        not_(_needed(Model.id, cutoff)))
    ids = list(session.scalars(candidates.order_by(Model.id)))
    if ids and not dry_run:
        _lock_models(session, ids)
        ids = list(session.scalars(candidates.where(Model.id.in_(ids)).order_by(Model.id)))
    size = session.scalar(select(func.coalesce(func.sum(Model.size_bytes), 0))
                          .where(Model.id.in_(ids))) if ids else 0
    if ids:
        # The logs of the models' own jobs go with them: counted once, as a model.
        old_attempts = and_(old_attempts, Attempt.job_id.not_in(
            select(Job.id).where(Job.model_id.in_(ids)).scalar_subquery()))
    if dry_run:
        attempt_logs = session.scalar(select(func.count()).where(old_attempts)
                                      .select_from(Attempt)) or 0
        measurement_logs = session.scalar(select(func.count()).where(old_measurements)
                                          .select_from(Measurement)) or 0
    else:
        _delete_models(session, ids)
        attempt_logs = _count(session.execute(
            update(Attempt).where(old_attempts).values(serial_log=null())
            .execution_options(synchronize_session=False)))
        measurement_logs = _count(session.execute(
            update(Measurement).where(old_measurements).values(serial_log=[])
            .execution_options(synchronize_session=False)))
    return PruneResult(attempt_logs=int(attempt_logs), measurement_logs=int(measurement_logs),
                       model_ids=tuple(ids), model_bytes=int(size or 0))
