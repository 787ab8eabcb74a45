"""``/api/v1/calibrations``: twins calibrated against their real boards (``mcuprof
calibrate``). A user uploads the cycles of the same networks on both; the server works out the
factor and the error (``service.calibrations``), and from then on twins of that board report
calibrated cycles, fits predict with them, and the device page shows twin-vs-silicon error."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from bench_firmware.errors import McuprofError
from profiler_client.schemas import MAX_ID, NAME_CHARS, CalibrationIn, CalibrationOut
from service.api.deps import Reader, SessionDep, User
from service.api.errors import error_responses, http_error
from service.api.json_body import JSONRoute
from service.calibrations import calibration_out, listed, store
from service.db.models import Calibration
from service.queue import NotFoundError
from service.twin_band import forget_calibrations

router = APIRouter(prefix="/calibrations", tags=["calibrations"],
                   responses=error_responses(404), route_class=JSONRoute)


@router.post("", status_code=status.HTTP_201_CREATED)
def upload_calibration(body: CalibrationIn, session: SessionDep,
                       _user: User) -> CalibrationOut:
    """Store a calibration; the twins of its board report calibrated cycles from now on."""
    try:
        row = store(session, body)
    except McuprofError as e:
        raise http_error(e) from e
    out = calibration_out(row)
    session.commit()
    forget_calibrations(session)
    return out


@router.get("")
def list_calibrations(
        session: SessionDep, _reader: Reader,
        board: Annotated[str | None, Query(max_length=NAME_CHARS,
                                           description="e.g. nucleo-f446re")] = None,
) -> list[CalibrationOut]:
    """Calibrations, newest first."""
    return [calibration_out(row) for row in listed(session, board=board)]


@router.get("/{calibration_id}")
def get_calibration(calibration_id: int, session: SessionDep,
                    _reader: Reader) -> CalibrationOut:
    row = session.get(Calibration, calibration_id) if 1 <= calibration_id <= MAX_ID else None
    if row is None:
        raise http_error(NotFoundError(f"there is no calibration {calibration_id}; list them "
                                       f"with GET /api/v1/calibrations"))
    return calibration_out(row)
