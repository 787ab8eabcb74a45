"""``/api/v1/fits`` and ``/api/v1/predict``: the latency models fitted from the measurements,
as JSON, CSV or Parquet, and predictions from them.

Reading fits first refits the partitions whose measurements changed since their last fit
(``service.fits_store.ensure_fresh``: one aggregate query when nothing changed), so the
answer always reflects every stored measurement.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from bench_firmware.errors import McuprofError
from profiler_client.schemas import (
    MAX_DEVICES,
    TAG_CHARS,
    FitKind,
    FitOut,
    Kernels,
    PredictIn,
    PredictOut,
)
from service.api.deps import Reader, SessionDep, SettingsDep
from service.api.errors import error_responses, http_error
from service.api.json_body import JSONRoute, json_invalid, parse_json, read_body
from service.api.storage import analyze
from service.db.engine import Database
from service.db.models import NAME_LENGTH, TAG_LENGTH
from service.fits_store import (
    MEDIA_TYPES,
    ensure_fresh,
    fit_by_version,
    fit_out,
    fits_export,
    measurement_ids,
    select_fits,
)
from service.predict import predict, subject_from_analysis, subject_from_request
from service.queue import parse_device_class

router = APIRouter(tags=["fits and predictions"], responses=error_responses(404),
                   route_class=JSONRoute)

# bytes of a JSON prediction request: PredictIn at its largest (MAX_LAYERS layers) is a
# few hundred KiB; anything bigger is refused before it is parsed.
MAX_PREDICT_JSON_BYTES = 1024 * 1024

Version = Annotated[str, Path(max_length=NAME_LENGTH, description="a fit's version")]

# LayerOut, the one model PredictIn refers to, is already a component (MeasurementOut's).
_PREDICT_JSON = {k: v for k, v in PredictIn.model_json_schema(
    ref_template="#/components/schemas/{model}").items() if k != "$defs"}
_PREDICT_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": _PREDICT_JSON},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "the int8 .tflite model"},
                "device": {"type": "array", "items": {"type": "string"},
                           "description": "device class, repeatable (none: every class "
                                          "with a fit)"},
                "backbone": {"type": "string", "description": "the model's backbone tag"},
                "kernels": {"type": "string", "enum": ["dsp", "ref"], "default": "dsp"},
            }}},
    }},
}


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _device_class(device: str | None) -> str | None:
    if device is None:
        return None
    try:
        return parse_device_class(device.strip()).name
    except McuprofError as e:
        raise http_error(e) from e


@router.get("/fits", response_model=list[FitOut], responses={200: {
    "content": {"text/csv": {}, MEDIA_TYPES["parquet"]: {}},
    "description": "JSON list, or with format=csv|parquet the table of "
                   "service.fitting.frames.fits_frame"}})
def list_fits(
    request: Request, session: SessionDep, _reader: Reader,
    device: Annotated[str | None, Query(max_length=NAME_LENGTH,
                                        description="device class")] = None,
    backbone: Annotated[str | None, Query(
        max_length=TAG_LENGTH, description="this backbone's lines (and the per-layer models, "
                                           "which predict any backbone)")] = None,
    kernels: Kernels | None = None,
    kind: FitKind | None = None,
    history: Annotated[bool, Query(description="every version, not only the current")] = False,
    format: Literal["json", "csv", "parquet"] = "json",
) -> list[FitOut] | Response:
    """Latency models per device class (and backbone): coefficients, cross-validated r²,
    MAPE and ±10 % accuracy, n, and the version to cite."""
    device_class = _device_class(device)
    session.rollback()  # read after the refit, not in a snapshot taken before it
    ensure_fresh(_db(request), device_class=device_class)
    fits = select_fits(session, device_class=device_class, backbone=backbone,
                       kernels=kernels, kind=kind, history=history)
    if format == "json":
        return [fit_out(f) for f in fits]
    return Response(fits_export(session, fits, format), media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="fits.{format}"'})


@router.get("/fits/{version}")
def get_fit(session: SessionDep, _reader: Reader, version: Version) -> FitOut:
    """One fit by version (current or not), with the ids of the measurements it came from."""
    fit = fit_by_version(session, version)
    if fit is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"there is no fit {version!r}; list fits with "
                                   f"GET /api/v1/fits (history=true for old versions)")
    return fit_out(fit, measurement_ids(session, [fit.id])[fit.id])


def _bad(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


def _refresh(db: Database, devices: list[str]) -> None:
    """Refit what the prediction may use: the named classes' partitions, or all."""
    if not devices:
        ensure_fresh(db)
    for device in devices:
        ensure_fresh(db, device_class=device)


def _json_body(raw: bytes) -> PredictIn:
    """The JSON body as ``PredictIn``, with errors shaped as FastAPI's own (``body`` first in
    every location), so the app's handler words them the same way. Runs in a worker thread:
    parsing a large body must not hold up the event loop."""
    try:
        data = parse_json(raw)
    except json.JSONDecodeError as e:
        raise json_invalid(e.pos, e.msg) from e
    try:
        return PredictIn.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError([err | {"loc": ("body", *err["loc"])}
                                      for err in e.errors()]) from e


def _predict_json(db: Database, body: PredictIn) -> PredictOut:
    devices = [_device_class(d) or "" for d in body.devices]
    _refresh(db, devices)
    with db.read() as session:
        subject = subject_from_request(session, body)
        return predict(session, subject, devices, kernels=body.kernels)


def _predict_upload(db: Database, data: bytes, name: str, devices: list[str],
                    backbone: str | None, kernels: str) -> PredictOut:
    subject = subject_from_analysis(analyze(data, name), name=name, backbone=backbone)
    classes = [_device_class(d) or "" for d in devices]
    _refresh(db, classes)
    with db.read() as session:
        return predict(session, subject, classes, kernels=kernels)


@router.post("/predict", response_model=PredictOut, openapi_extra=_PREDICT_BODY)
async def predict_latency(request: Request, session: SessionDep, settings: SettingsDep,
                          _reader: Reader) -> PredictOut:
    """Predicted latency and energy, with intervals, on one or many device classes, and
    which latency model predicted them.

    JSON (``PredictIn``): ``ops`` + ``backbone`` for the op-count line, ``layers`` or a
    stored ``model_id`` for the per-layer model too. Multipart: a ``.tflite`` as ``file``
    (analyzed like an upload, not stored), repeated ``device``, optional ``backbone`` and
    ``kernels``: both models."""
    # End the token lookup's transaction: nothing here writes through this session, and
    # SQLite's writer lock must not be held while a model is analyzed or fitted.
    await run_in_threadpool(session.rollback)
    db = _db(request)
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            # As a context manager the form closes its spooled upload files.
            async with request.form(max_files=1, max_fields=MAX_DEVICES + 8) as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise _bad("send the .tflite file as the multipart field 'file'")
                data = await upload.read(settings.max_upload_bytes + 1)
                filename = upload.filename or "model"
                devices = [str(d) for d in form.getlist("device") if str(d).strip()]
                backbone = str(form.get("backbone") or "").strip() or None
                kernels = str(form.get("kernels") or "dsp")
            if len(data) > settings.max_upload_bytes:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                    detail=f"the model file is larger than "
                                           f"{settings.max_upload_bytes} bytes "
                                           f"(MCUPROF_MAX_UPLOAD_BYTES)")
            if not data:
                raise _bad("the uploaded file is empty; send the .tflite file as 'file'")
            if kernels not in ("dsp", "ref"):
                raise _bad(f"kernels must be dsp or ref, not {kernels!r}")
            if len(devices) > MAX_DEVICES:
                raise _bad(f"{len(devices)} devices; predict at most {MAX_DEVICES} at once")
            if backbone is not None and len(backbone) > TAG_CHARS:
                raise _bad(f"backbone is longer than {TAG_CHARS} characters")
            name = filename.rsplit("/", 1)[-1].removesuffix(".tflite") or "model"
            return await run_in_threadpool(_predict_upload, db, data, name, devices, backbone,
                                           kernels)
        raw = await read_body(request, MAX_PREDICT_JSON_BYTES,
                              "send fewer layers, or the .tflite file as multipart 'file'")
        body = await run_in_threadpool(_json_body, raw)
        return await run_in_threadpool(_predict_json, db, body)
    except McuprofError as e:
        raise http_error(e) from e

