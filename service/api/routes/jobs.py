"""``/api/v1/jobs``: submit a model for one or many device classes, list, get, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from sqlalchemy import select

from bench_firmware.errors import McuprofError
from profiler_client.schemas import MAX_ID, NAME_CHARS, JobOut, JobsIn, JobState
from service.api.convert import JOB_LIST, job_out, job_outs, json_list
from service.api.deps import Reader, SessionDep, SettingsDep, User
from service.api.errors import error_responses, http_error
from service.api.json_body import JSONRoute
from service.db.models import Job, Model
from service.fitting.frames import BACKBONE_TAG
from service.predict import predict, subject_from_analysis
from service.queue import cancel, enqueue, known_devices_hint

router = APIRouter(prefix="/jobs", tags=["jobs"],
                   responses=error_responses(404, 409),
                   route_class=JSONRoute)

DEFAULT_LIMIT = 100  # rows per page
MAX_LIMIT = 1000  # rows per page at most

JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="job id")]


def _job(session: SessionDep, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"there is no job {job_id}; list jobs with GET /api/v1/jobs")
    return job


@router.post("", status_code=status.HTTP_201_CREATED)
def submit(body: JobsIn, session: SessionDep, settings: SettingsDep,
           _user: User) -> list[JobOut]:
    """One job per device class. A model that does not fit a class's board gets a job that
    is already failed, with the arena and flash figures in its error."""
    model = session.get(Model, body.model_id)
    if model is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"there is no model {body.model_id}; upload it first with "
                                   f"POST /api/v1/models (mcuprof submit does both)")
    if any(not d.strip() for d in body.devices):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"empty device class; {known_devices_hint()}")
    devices = [d.strip() for d in body.devices]
    try:
        jobs = enqueue(session, model, devices, runs=body.runs,
                       warmup=body.warmup, kernels=body.kernels, priority=body.priority,
                       max_attempts=settings.max_attempts,
                       physical_run_s=settings.physical_run_seconds,
                       latency_ms=_predicted_ms(session, model, devices, body.kernels))
    except McuprofError as e:
        raise http_error(e) from e
    out = job_outs(session, jobs)
    session.commit()
    return out


def _predicted_ms(session: SessionDep, model: Model, devices: list[str],
                  kernels: str) -> dict[str, float]:
    """Each device class's predicted latency of ``model`` from its current fit (the upper
    end of the fit's own interval, for the cost check), where a fit has one. A twin's run
    budget is host time spent on the twin's own cycles, which its fit predicts: the band
    that widens the interval towards silicon does not apply."""
    backbone = next((t.value for t in model.tags if t.key == BACKBONE_TAG), None)
    subject = subject_from_analysis(model.analysis, name=model.name, backbone=backbone)
    out: dict[str, float] = {}
    for p in predict(session, subject, devices, kernels=kernels).predictions:
        headline = next((e for e in p.estimates if e.model == p.model
                         and e.fit_version == p.fit_version), None)
        fit_hi = headline.fit_hi_ms if headline is not None else None
        value = next((v for v in (fit_hi, p.latency_hi_ms, p.latency_ms) if v is not None),
                     None)
        if value is not None:
            out[p.device] = value
    return out


@router.get("", response_model=list[JobOut])
def list_jobs(
    session: SessionDep, _reader: Reader,
    state: JobState | None = None,
    device: Annotated[str | None, Query(max_length=NAME_CHARS,
                                        description="device class")] = None,
    model_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="rows to skip")] = 0,
    embed: Annotated[bool, Query(description="each done job with its whole measurement "
                                             "(else its measurement_id only)")] = False,
) -> Response:
    """Jobs, newest first; a done job names its measurement (``measurement_id``: GET
    /jobs/{id} or /measurements?model_id= have it), or carries it with ``embed=true``."""
    query = select(Job)
    if state is not None:
        query = query.where(Job.state == state)
    if device is not None:
        query = query.where(Job.device_class == device)
    if model_id is not None:
        query = query.where(Job.model_id == model_id)
    jobs = session.scalars(query.order_by(Job.id.desc()).limit(limit).offset(offset)).all()
    return json_list(JOB_LIST, job_outs(session, jobs, embed=embed))


@router.get("/{job_id}")
def get_job(session: SessionDep, _reader: Reader, job_id: JobId) -> JobOut:
    """One job, with its attempts and, once done, its measurement."""
    return job_out(session, _job(session, job_id))


@router.post("/{job_id}/cancel")
def cancel_job(session: SessionDep, _user: User, job_id: JobId) -> JobOut:
    """Cancel a queued or running job (a cancelled one stays cancelled; a finished one: 409)."""
    try:
        job = cancel(session, job_id)
    except McuprofError as e:
        raise http_error(e) from e
    out = job_out(session, job)
    session.commit()
    return out
