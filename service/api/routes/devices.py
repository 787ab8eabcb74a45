"""``/api/v1/devices``: boards with their health, and health reports from their agents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from bench_firmware.errors import McuprofError
from profiler_client.schemas import DeviceOut, HealthIn
from service.api.convert import device_outs
from service.api.deps import AgentScope, Reader, SessionDep
from service.api.errors import error_responses, http_error
from service.api.json_body import JSONRoute
from service.db.models import NAME_LENGTH, Device
from service.queue import set_health

router = APIRouter(prefix="/devices", tags=["devices"],
                   responses=error_responses(404),
                   route_class=JSONRoute)

DeviceName = Annotated[str, Path(max_length=NAME_LENGTH,
                                 description="full device name, e.g. virtual:nucleo-f446re:h0")]


@router.get("")
def list_devices(session: SessionDep, _reader: Reader) -> list[DeviceOut]:
    """Every registered board, by name."""
    devices = session.scalars(select(Device).options(joinedload(Device.agent))
                              .order_by(Device.name)).all()
    return device_outs(session, devices)


@router.post("/{name}/health")
def report_health(name: DeviceName, body: HealthIn, session: SessionDep,
                  agent: AgentScope) -> DeviceOut:
    """A health check's verdict: a bad board gets no work until a report says ok."""
    try:
        device = set_health(session, name, ok=body.ok, detail=body.detail, agent_name=agent)
    except McuprofError as e:
        raise http_error(e) from e
    out = device_outs(session, [device])[0]
    session.commit()
    return out
