"""Database rows → the response bodies of ``profiler_client.schemas`` (built inside the request's
transaction, so nothing is loaded lazily after the session is gone). Lists are converted
with one query per related table, not one per row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from fastapi import Response
from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from profiler_client.schemas import (
    AnalysisOut,
    AttemptOut,
    DeviceOut,
    JobOut,
    LayerOut,
    MeasurementOut,
    ModelOut,
)
from service.db.models import Attempt, Device, Job, Measurement, Model
from service.queue import LEASED
from service.twin_band import twin_view


def model_out(model: Model) -> ModelOut:
    return ModelOut(
        id=model.id, sha256=model.sha256, name=model.name, size_bytes=model.size_bytes,
        tags={t.key: t.value for t in model.tags},
        analysis=AnalysisOut.model_validate(model.analysis), created_at=model.created_at,
    )


def measurement_out(m: Measurement) -> MeasurementOut:
    return MeasurementOut(
        id=m.id, job_id=m.job_id, model_id=m.model_id, device=m.device,
        device_class=m.device_class, board=m.board, cycles=m.cycles,
        cycles_per_run=list(m.cycles_per_run), cycle_source=m.cycle_source,
        latency_ms=m.latency_ms, energy_mj=m.energy_mj, energy_source=m.energy_source,
        arena_bytes=m.arena_bytes, plan_bytes=m.plan_bytes, flash_bytes=m.flash_bytes,
        ops=m.ops, macs=m.macs, layers=[LayerOut.model_validate(x) for x in m.layers],
        output=list(m.output), kernels=m.kernels, firmware_id=m.firmware_id,
        plan_id=m.plan_id, created_at=m.created_at,
        **_band(m),
    )


def _band(m: Measurement) -> dict[str, Any]:
    """The twin's band and, where a real board calibrated it, the calibrated cycles
    (``service.twin_band``); nothing for silicon and other sources."""
    if m.cycles is None:
        return {}
    view = twin_view(object_session(m), m.board, m.cycle_source, m.device, m.kernels)
    if view is None:
        return {}
    out = view.as_dict()
    if view.calibration is not None:
        factor = view.calibration.factor
        out["calibrated_cycles"] = round(m.cycles * factor)
        out["calibrated_latency_ms"] = m.latency_ms * factor if m.latency_ms else None
    return out


def job_outs(session: Session, jobs: Sequence[Job], *, embed: bool = True) -> list[JobOut]:
    """JobOut for each job, with its attempt history, its measurement's id and (``embed``)
    the measurement itself."""
    if not jobs:
        return []
    ids = [job.id for job in jobs]
    history: dict[int, list[Attempt]] = defaultdict(list)
    for attempt in session.scalars(select(Attempt).where(Attempt.job_id.in_(ids))
                                   .order_by(Attempt.job_id, Attempt.attempt)):
        history[attempt.job_id].append(attempt)
    done = [job.id for job in jobs if job.state == "done"]
    measurements: dict[int, Measurement] = {}
    measurement_ids: dict[int, int] = {}
    if done and embed:
        measurements = {m.job_id: m for m in session.scalars(
            select(Measurement).where(Measurement.job_id.in_(done)))}
        measurement_ids = {job_id: m.id for job_id, m in measurements.items()}
    elif done:
        measurement_ids = {job_id: mid for mid, job_id in session.execute(
            select(Measurement.id, Measurement.job_id).where(Measurement.job_id.in_(done)))}
    return [
        JobOut(
            id=job.id, model_id=job.model_id, device=job.device_class,
            state=job.state,  # type: ignore[arg-type]
            runs=job.runs, warmup=job.warmup, kernels=job.kernels, attempts=job.attempts,
            max_attempts=job.max_attempts, error=job.error, created_at=job.created_at,
            updated_at=job.updated_at, lease_expires_at=job.lease_expires_at,
            history=[AttemptOut(attempt=a.attempt, agent=a.agent, device=a.device,
                                started_at=a.started_at, error=a.error)
                     for a in history[job.id]],
            measurement_id=measurement_ids.get(job.id),
            measurement=measurement_out(measurements[job.id]) if job.id in measurements
            else None,
        )
        for job in jobs
    ]


def job_out(session: Session, job: Job) -> JobOut:
    return job_outs(session, [job])[0]


def device_outs(session: Session, devices: Sequence[Device]) -> list[DeviceOut]:
    """DeviceOut for each device; ``busy`` when it holds a lease, ``last_seen`` the later of
    its own and its agent's."""
    if not devices:
        return []
    busy = set(session.scalars(select(Job.lease_device_id).where(
        Job.state == LEASED, Job.lease_device_id.in_([d.id for d in devices]))))
    out = []
    for d in devices:
        seen = [t for t in (d.last_seen, d.agent.last_seen if d.agent else None) if t]
        out.append(DeviceOut(
            name=d.name, device_class=d.device_class, board=d.board, backend=d.backend,
            agent=d.agent.name if d.agent else None,
            health=d.health,  # type: ignore[arg-type]
            health_detail=d.health_detail, last_seen=max(seen) if seen else None,
            busy=d.id in busy, energy_monitor=d.energy_monitor,
        ))
    return out


JOB_LIST: TypeAdapter[list[JobOut]] = TypeAdapter(list[JobOut])
MEASUREMENT_LIST: TypeAdapter[list[MeasurementOut]] = TypeAdapter(list[MeasurementOut])


def json_list(adapter: TypeAdapter[list[Any]], rows: list[Any]) -> Response:
    """A list of response bodies as JSON, written by pydantic in one pass (FastAPI would
    turn each into Python dicts first and then encode those; on a page of measurements
    that is most of the request's time). The route declares the same ``response_model``."""
    return Response(adapter.dump_json(rows), media_type="application/json")
