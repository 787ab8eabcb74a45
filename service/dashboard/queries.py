"""What the dashboard's pages show, read with as few and as narrow queries as possible.

Everything per measurement is fetched as tuples of the needed columns (never ORM objects, never
the ``layers`` JSON of many rows), counts are ``GROUP BY`` in SQL, and the jobs page uses
keyset pagination (``id < before``), so a page costs the same with ten or ten thousand
measurements of other devices and models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import case, exists, func, select, union
from sqlalchemy.orm import Session

from bench_firmware.backends.virtual.error_band import ErrorBand
from service.dashboard.labels import LatencyKind, energy_label, error_band, kind_of
from service.db.models import (
    JOB_STATES,
    Agent,
    Device,
    Fit,
    FitPartition,
    Job,
    Measurement,
    Model,
    ModelTag,
)
from service.fits_store import backbone_join
from service.queue import LEASED

RECENT_JOBS = 15  # rows of the overview's recent jobs
RECENT_MODELS = 12  # rows of the overview's recent models
JOBS_PAGE = 50  # rows of one jobs page


@dataclass(frozen=True)
class DeviceRow:
    name: str
    device_class: str
    board: str
    backend: str
    agent: str | None
    health: str
    health_detail: str | None
    last_seen: datetime | None
    busy: bool


@dataclass(frozen=True)
class JobRow:
    id: int
    model_id: int
    model_name: str
    device_class: str
    state: str
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    error: str | None
    latency_ms: float | None
    device: str | None
    cycle_source: str | None

    @property
    def latency_kind(self) -> LatencyKind:
        return kind_of(self.cycle_source, self.device or self.device_class)

    @property
    def error_band(self) -> ErrorBand | None:
        return error_band(self.cycle_source, self.device or self.device_class)


@dataclass(frozen=True)
class ClassRow:
    """One device class: its boards, jobs by state, measurements and current fits."""

    name: str
    boards: int = 0
    healthy: int = 0
    jobs: dict[str, int] = field(default_factory=dict)
    measurements: int = 0
    fits: int = 0


def device_rows(session: Session, *, device_class: str | None = None) -> list[DeviceRow]:
    """Every registered board (of one class) with its agent, health and whether it is busy."""
    busy = exists().where(Job.state == LEASED, Job.lease_device_id == Device.id)
    query = (select(Device.name, Device.device_class, Device.board, Device.backend, Agent.name,
                    Device.health, Device.health_detail, Device.last_seen, Agent.last_seen,
                    busy)
             .outerjoin(Agent, Agent.id == Device.agent_id).order_by(Device.name))
    if device_class is not None:
        query = query.where(Device.device_class == device_class)
    out = []
    for name, cls, board, backend, agent, health, detail, seen, agent_seen, is_busy \
            in session.execute(query):
        times = [t for t in (seen, agent_seen) if t is not None]
        out.append(DeviceRow(name, cls, board, backend, agent, health, detail,
                             max(times) if times else None, bool(is_busy)))
    return out


def job_counts(session: Session, *, device_class: str | None = None) -> dict[str, int]:
    """Jobs by state (every state, zeros included)."""
    query = select(Job.state, func.count()).group_by(Job.state)
    if device_class is not None:
        query = query.where(Job.device_class == device_class)
    counts = dict.fromkeys(JOB_STATES, 0)
    counts.update({state: int(n) for state, n in session.execute(query)})
    return counts


def class_rows(session: Session) -> list[ClassRow]:
    """Every device class the service knows of (boards, jobs or measurements), with counts."""
    names = union(select(Device.device_class), select(Job.device_class),
                  select(Measurement.device_class)).subquery()
    classes = sorted(session.scalars(select(names.c[0])))
    boards: dict[str, tuple[int, int]] = {
        cls: (int(n), int(ok or 0)) for cls, n, ok in session.execute(
            select(Device.device_class, func.count(),
                   func.sum(case((Device.health == "ok", 1), else_=0)))
            .group_by(Device.device_class))}
    jobs: dict[str, dict[str, int]] = {}
    for cls, state, n in session.execute(select(Job.device_class, Job.state, func.count())
                                         .group_by(Job.device_class, Job.state)):
        jobs.setdefault(cls, {})[state] = int(n)
    measured = dict(session.execute(select(Measurement.device_class, func.count())
                                    .group_by(Measurement.device_class)).tuples().all())
    fitted = dict(session.execute(select(Fit.device_class, func.count())
                                  .where(Fit.current.is_(True))
                                  .group_by(Fit.device_class)).tuples().all())
    return [ClassRow(name=c, boards=boards.get(c, (0, 0))[0], healthy=boards.get(c, (0, 0))[1],
                     jobs=jobs.get(c, {}), measurements=int(measured.get(c, 0)),
                     fits=int(fitted.get(c, 0))) for c in classes]


def _job_query() -> Any:
    return (select(Job.id, Job.model_id, Model.name, Job.device_class, Job.state, Job.attempts,
                   Job.max_attempts, Job.created_at, Job.updated_at, Job.error,
                   Measurement.latency_ms, Measurement.device, Measurement.cycle_source)
            .join(Model, Model.id == Job.model_id)
            .outerjoin(Measurement, Measurement.job_id == Job.id))


def recent_jobs(session: Session, *, limit: int = RECENT_JOBS,
                device_class: str | None = None) -> list[JobRow]:
    query = _job_query()
    if device_class is not None:
        query = query.where(Job.device_class == device_class)
    return [JobRow(*row) for row in session.execute(query.order_by(Job.id.desc())
                                                    .limit(limit))]


@dataclass(frozen=True)
class JobsPage:
    rows: list[JobRow]
    total: int
    before: int | None  # the ``before`` of the next (older) page, None on the last
    first: bool


def jobs_page(session: Session, *, state: str | None, device_class: str | None,
              before: int | None, limit: int = JOBS_PAGE) -> JobsPage:
    """One page of jobs, newest first, older than job ``before`` (keyset pagination)."""
    filters = []
    if state is not None:
        filters.append(Job.state == state)
    if device_class is not None:
        filters.append(Job.device_class == device_class)
    total = int(session.scalar(select(func.count()).select_from(Job).where(*filters)) or 0)
    query = _job_query().where(*filters)
    if before is not None:
        query = query.where(Job.id < before)
    rows = [JobRow(*row) for row in session.execute(query.order_by(Job.id.desc())
                                                    .limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    return JobsPage(rows=rows, total=total, before=rows[-1].id if more else None,
                    first=before is None)


@dataclass(frozen=True)
class ModelRow:
    id: int
    name: str
    backbone: str | None
    ops: int | None
    created_at: datetime
    measurements: int


def recent_models(session: Session, *, limit: int = RECENT_MODELS) -> list[ModelRow]:
    measured = (select(func.count()).where(Measurement.model_id == Model.id)
                .correlate(Model).scalar_subquery())
    query = (select(Model.id, Model.name, ModelTag.value, Model.analysis["ops"],
                    Model.created_at, measured)
             .outerjoin(ModelTag, backbone_join(Model.id))
             .order_by(Model.id.desc()).limit(limit))
    return [ModelRow(mid, name, backbone, int(ops) if ops is not None else None, created,
                     int(n)) for mid, name, backbone, ops, created, n in session.execute(query)]


def totals(session: Session) -> dict[str, int]:
    """Counts of models, measurements and current fits."""
    return {
        "models": int(session.scalar(select(func.count()).select_from(Model)) or 0),
        "measurements": int(session.scalar(select(func.count()).select_from(Measurement))
                            or 0),
        "fits": int(session.scalar(select(func.count()).select_from(Fit)
                                   .where(Fit.current.is_(True))) or 0),
    }


SCATTER_COLUMNS = ("measurement_id", "model_id", "model", "backbone", "kernels", "ops",
                   "latency_ms", "cycle_source")


def scatter_frame(session: Session, device_class: str) -> pd.DataFrame:
    """Latency vs ops of every usable measurement of a device class (one query, tuples)."""
    rows = session.execute(
        select(Measurement.id, Measurement.model_id, Model.name, ModelTag.value,
               Measurement.kernels, Measurement.ops, Measurement.latency_ms,
               Measurement.cycle_source)
        .join(Model, Model.id == Measurement.model_id)
        .outerjoin(ModelTag, backbone_join(Measurement.model_id))
        .where(Measurement.device_class == device_class, Measurement.latency_ms > 0)
        .order_by(Measurement.id)).all()
    # Column-wise: pandas probing thousands of Row objects one by one costs more than the
    # query.
    columns: list[Sequence[Any]] = (list(zip(*rows, strict=True)) if rows
                                    else [[] for _ in SCATTER_COLUMNS])
    return pd.DataFrame(dict(zip(SCATTER_COLUMNS, columns, strict=True)))


def current_fits(session: Session, device_class: str | None = None) -> list[Fit]:
    query = select(Fit).where(Fit.current.is_(True))
    if device_class is not None:
        query = query.where(Fit.device_class == device_class)
    return list(session.scalars(query.order_by(Fit.device_class, Fit.kernels, Fit.kind,
                                               Fit.backbone)))


def partition_rows(session: Session, device_class: str) -> list[FitPartition]:
    return list(session.scalars(select(FitPartition)
                                .where(FitPartition.device_class == device_class)
                                .order_by(FitPartition.kernels)))


def kernel_paths(session: Session, device_class: str) -> list[str]:
    """The kernel paths measured on a device class, dsp first."""
    found = set(session.scalars(select(Measurement.kernels).distinct()
                                .where(Measurement.device_class == device_class)))
    return sorted(found, key=lambda k: (k != "dsp", k))


@dataclass(frozen=True)
class ModelMeasurement:
    id: int
    device_class: str
    device: str
    kernels: str
    cycles: int | None
    cycle_source: str | None
    latency_ms: float | None
    energy_mj: float | None
    energy_source: str | None
    arena_bytes: int
    plan_bytes: int
    created_at: datetime

    @property
    def latency_kind(self) -> LatencyKind:
        return kind_of(self.cycle_source, self.device)

    @property
    def error_band(self) -> ErrorBand | None:
        return error_band(self.cycle_source, self.device)

    @property
    def energy_label(self) -> str:
        return energy_label(self.energy_source)


def model_measurements(session: Session, model_id: int) -> list[ModelMeasurement]:
    """A model's measurements (without their layers), oldest first."""
    rows = session.execute(
        select(Measurement.id, Measurement.device_class, Measurement.device,
               Measurement.kernels, Measurement.cycles, Measurement.cycle_source,
               Measurement.latency_ms, Measurement.energy_mj, Measurement.energy_source,
               Measurement.arena_bytes, Measurement.plan_bytes, Measurement.created_at)
        .where(Measurement.model_id == model_id).order_by(Measurement.id))
    return [ModelMeasurement(*tuple(row)) for row in rows]


def latest_layers(session: Session, model_id: int) -> dict[tuple[str, str], list[Any]]:
    """(device class, kernels) → the per-layer records of the model's latest measurement
    there (the only ``layers`` JSON any page reads: one row per device class)."""
    latest = (select(func.max(Measurement.id))
              .where(Measurement.model_id == model_id)
              .group_by(Measurement.device_class, Measurement.kernels))
    rows = session.execute(select(Measurement.device_class, Measurement.kernels,
                                  Measurement.layers)
                           .where(Measurement.id.in_(latest)).order_by(Measurement.device_class))
    return {(cls, kern): list(layers) for cls, kern, layers in rows}


def known_device_classes(session: Session) -> list[str]:
    """Device classes with boards, jobs, measurements or fits."""
    names = union(select(Device.device_class), select(Job.device_class),
                  select(Measurement.device_class), select(Fit.device_class)).subquery()
    return sorted(n for n in session.scalars(select(names.c[0])) if n)
