"""``/api/v1/measurements``: every measurement, filtered, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import defer

from bench_firmware.errors import McuprofError
from profiler_client.schemas import (
    MAX_ID,
    MAX_TAGS,
    NAME_CHARS,
    MeasurementOut,
    TagFilter,
    measurement_row,
)
from service.api.convert import MEASUREMENT_LIST, json_list, measurement_out
from service.api.deps import Reader, SessionDep
from service.api.errors import error_responses, http_error
from service.api.json_body import JSONRoute
from service.api.storage import parse_tags, tag_filters
from service.db.models import Measurement
from service.fits_store import MEDIA_TYPES, measurements_export

router = APIRouter(prefix="/measurements", tags=["measurements"],
                   responses=error_responses(),
                   route_class=JSONRoute)

DEFAULT_LIMIT = 1000  # rows per page
MAX_LIMIT = 100_000  # rows per page at most (a CSV export of a campaign)


@router.get("", response_model=list[MeasurementOut], responses={
    200: {"content": {"text/csv": {}, MEDIA_TYPES["parquet"]: {}},
          "description": "JSON list, CSV with format=csv, or with format=parquet the table of "
                         "service.fitting.frames.measurements_frame (for pandas)"}})
def list_measurements(
    session: SessionDep, _reader: Reader,
    device: Annotated[str | None, Query(max_length=NAME_CHARS,
                                        description="a device class or a full device name")]
    = None,
    model_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    tag: Annotated[list[TagFilter] | None, Query(max_length=MAX_TAGS,
                                                 description="model tag key=value, repeatable")]
    = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="rows to skip")] = 0,
    format: Literal["json", "csv", "parquet"] = "json",
) -> list[MeasurementOut] | Response:
    """Measurements, oldest first. CSV has one row each (layers and outputs left out)."""
    try:
        tags = parse_tags(tag or [])
    except McuprofError as e:
        raise http_error(e) from e
    # The serial log is stored for the job's page, never listed: not loaded (or decoded).
    query = (select(Measurement).options(defer(Measurement.serial_log))
             .where(*tag_filters(Measurement.model_id, tags)))
    if device is not None:
        query = query.where(or_(Measurement.device_class == device, Measurement.device == device))
    if model_id is not None:
        query = query.where(Measurement.model_id == model_id)
    rows = [measurement_out(m) for m in session.scalars(
        query.order_by(Measurement.id).limit(limit).offset(offset))]
    if format == "json":
        return json_list(MEASUREMENT_LIST, rows)
    if format == "parquet":
        return Response(measurements_export(session, rows, "parquet"),
                        media_type=MEDIA_TYPES["parquet"], headers={
                            "Content-Disposition": 'attachment; filename="measurements.parquet"'})
    buffer = io.StringIO()
    fields = list(measurement_row(rows[0]) if rows else _csv_header())
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(measurement_row(row))
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="measurements.csv"'})


def _csv_header() -> list[str]:
    return [k for k in MeasurementOut.model_fields if k not in ("layers", "output")]
