"""Agents and leases (agent tokens): who a token is, register boards, heartbeat, lease work,
report results and failures. Each route is one transaction; see ``service.queue`` for the
rules and ``service.auth`` for how an agent token is its agent's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from bench_firmware.errors import McuprofError
from profiler_client.schemas import (
    MAX_ID,
    AgentIn,
    AgentOut,
    FailureIn,
    HeartbeatIn,
    HeartbeatOut,
    JobOut,
    LeaseIn,
    LeaseOut,
    MeasurementIn,
    WhoamiOut,
)
from service.api.convert import device_outs, job_out
from service.api.deps import AgentPrincipal, AgentScope, Reader, SessionDep, SettingsDep
from service.api.errors import error_responses, http_error
from service.api.json_body import JSONRoute
from service.auth import bind_agent
from service.db.models import Device
from service.queue import (
    InvalidRequestError,
    Lease,
    check_name,
    heartbeat,
    lease,
    register_agent,
    report_failure,
    report_result,
)

router = APIRouter(tags=["agents and leases"], responses=error_responses(404, 409),
                   route_class=JSONRoute)

NO_WORK_HEADER = "X-Mcuprof-Reason"  # why a lease request got 204

AgentId = Annotated[int, Path(ge=1, le=MAX_ID, description="agent id from POST /agents")]
LeaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="lease id from POST /leases")]


@router.get("/whoami")
def whoami(principal: Reader) -> WhoamiOut:
    """The calling token's name and role, and the agent an agent token is bound to (an agent
    started without --name takes that name)."""
    return WhoamiOut(token=principal.name, role=principal.role, agent=principal.agent_name)


@router.post("/agents")
def register(body: AgentIn, session: SessionDep, settings: SettingsDep,
             principal: AgentPrincipal) -> AgentOut:
    """Register (or re-register, by name) an agent and exactly the boards it lists. An agent
    token registers only its own agent (binding an unbound token to ``name``), and never
    takes another agent's boards."""
    name = body.name.strip()
    try:
        check_name("agent name", name)
        bind_agent(session, principal, name, lease_seconds=settings.lease_seconds)
        agent = register_agent(
            session, name, [b.device.strip() for b in body.boards], version=body.version,
            lease_seconds=settings.lease_seconds,
            energy_monitors={b.device.strip() for b in body.boards if b.energy_monitor},
            tokens_own_agents=not principal.anonymous)
    except McuprofError as e:
        raise http_error(e) from e
    devices = session.scalars(select(Device).where(Device.agent_id == agent.id)
                              .options(joinedload(Device.agent)).order_by(Device.name)).all()
    out = AgentOut(id=agent.id, name=agent.name, devices=device_outs(session, devices))
    session.commit()
    return out


@router.post("/agents/{agent_id}/heartbeat")
def agent_heartbeat(agent_id: AgentId, body: HeartbeatIn, session: SessionDep,
                    settings: SettingsDep, agent: AgentScope) -> HeartbeatOut:
    """Extend the listed leases; ``lost`` lists those to stop working on."""
    try:
        extended, lost = heartbeat(session, agent_id, body.leases, agent_name=agent,
                                   lease_seconds=settings.lease_seconds)
    except McuprofError as e:
        raise http_error(e) from e
    session.commit()
    return HeartbeatOut(extended=extended, lost=lost, lease_seconds=settings.lease_seconds)


@router.post("/leases", response_model=LeaseOut, responses={
    204: {"description": f"no work for this board now (the {NO_WORK_HEADER} header says why)"}})
def lease_job(body: LeaseIn, session: SessionDep, settings: SettingsDep,
              agent: AgentScope) -> LeaseOut | Response:
    """Lease the next job for one idle board of this agent, or 204 when there is none;
    with ``finished``, first store the result of the lease the board just finished (as
    ``POST /leases/{lease_id}/result`` does)."""
    try:
        if body.finished is not None:
            if body.finished.result.device != body.device:
                raise InvalidRequestError(
                    f"the finished lease's result is from {body.finished.result.device}, "
                    f"the lease is asked for {body.device}; report and lease for one board")
            report_result(session, body.finished.lease_id, body.finished.result,
                          agent_name=agent)
        granted = lease(session, body.device, agent_name=agent,
                        lease_seconds=settings.lease_seconds)
    except McuprofError as e:
        raise http_error(e) from e
    if not isinstance(granted, Lease):
        session.commit()
        return Response(status_code=status.HTTP_204_NO_CONTENT,
                        headers={NO_WORK_HEADER: granted.reason})
    job = granted.job
    assert job.lease_expires_at is not None
    out = LeaseOut(lease_id=granted.attempt.id, job=job_out(session, job),
                   model_sha256=granted.model_sha256,
                   model_url=f"/api/v1/models/{job.model_id}/file",
                   expires_at=job.lease_expires_at, lease_seconds=settings.lease_seconds)
    session.commit()
    return out


@router.post("/leases/{lease_id}/result")
def lease_result(lease_id: LeaseId, body: MeasurementIn, session: SessionDep,
                 agent: AgentScope) -> JobOut:
    """Store the measurement and finish the job; repeating an identical report is harmless,
    a report for a lease no longer held is a 409."""
    try:
        job = report_result(session, lease_id, body, agent_name=agent)
    except McuprofError as e:
        raise http_error(e) from e
    out = job_out(session, job)
    session.commit()
    return out


@router.post("/leases/{lease_id}/failure")
def lease_failure(lease_id: LeaseId, body: FailureIn, session: SessionDep,
                  agent: AgentScope) -> JobOut:
    """Record a failed attempt: retryable ones go back to the queue until max attempts."""
    try:
        job = report_failure(session, lease_id, body.error, retryable=body.retryable,
                             serial_log=body.serial_log, agent_name=agent)
    except McuprofError as e:
        raise http_error(e) from e
    out = job_out(session, job)
    session.commit()
    return out
