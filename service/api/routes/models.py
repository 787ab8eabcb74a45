"""``/api/v1/models``: upload (multipart, deduplicated by SHA-256, analyzed, within the
storage quota), list, get, delete, the file itself, and a model's measurements."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Path, Query, Response, UploadFile, status
from sqlalchemy import select

from bench_firmware.errors import McuprofError
from profiler_client.schemas import (
    MAX_ID,
    MAX_TAGS,
    NAME_CHARS,
    MeasurementOut,
    ModelOut,
    TagFilter,
)
from service.api.convert import measurement_out, model_out
from service.api.deps import Reader, SessionDep, SettingsDep, User
from service.api.errors import ErrorOut, error_responses, http_error
from service.api.json_body import JSONRoute
from service.api.storage import analyze, parse_tags, store_model, tag_filters
from service.db.models import Measurement, Model
from service.retention import StorageQuotaError, delete_model

router = APIRouter(prefix="/models", tags=["models"],
                   responses=error_responses(404),
                   route_class=JSONRoute)

DEFAULT_LIMIT = 100  # rows per page
MAX_LIMIT = 1000  # rows per page at most

ModelId = Annotated[int, Path(ge=1, le=MAX_ID, description="model id")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="rows to skip")]
Tags = Annotated[list[TagFilter] | None, Query(
    max_length=MAX_TAGS, description="key=value; repeat to require several")]


def _model(session: SessionDep, model_id: int) -> Model:
    model = session.get(Model, model_id)
    if model is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"there is no model {model_id}; list models with "
                                   f"GET /api/v1/models")
    return model


@router.post("", status_code=status.HTTP_201_CREATED, responses={
    200: {"model": ModelOut, "description": "the same bytes were uploaded before"},
    413: {"model": ErrorOut, "description": "larger than MCUPROF_MAX_UPLOAD_BYTES"},
    422: {"model": ErrorOut, "description": "not an int8 .tflite model the firmware can run"},
    507: {"model": ErrorOut, "description": "storing it would exceed "
                                            "MCUPROF_STORAGE_QUOTA_BYTES; nothing was stored"},
})
def upload_model(
    session: SessionDep, settings: SettingsDep, _user: User, response: Response,
    file: Annotated[UploadFile, File(description="the int8 .tflite file")],
    name: Annotated[str | None, Form(max_length=NAME_CHARS,
                                     description="defaults to the file name")] = None,
    tag: Annotated[list[TagFilter] | None, Form(max_length=MAX_TAGS,
                                                description="key=value, repeatable")] = None,
) -> ModelOut:
    """Upload a model: 201 when new, 200 when the same bytes exist (tags are merged)."""
    # End the transaction of the token lookup: SQLite's writer lock must not be held while
    # the model is analyzed (the next statement begins a new one).
    session.rollback()
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            detail=f"the model file is larger than {settings.max_upload_bytes} "
                                   f"bytes (MCUPROF_MAX_UPLOAD_BYTES)")
    if not data:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail="the uploaded file is empty; send the .tflite file as the "
                                   "multipart field 'file'")
    model_name = (name or "").strip() or PurePath(file.filename or "model").stem or "model"
    try:
        tags = parse_tags(tag or [])
        analysis = analyze(data, model_name)
        model, created = store_model(session, data, name=model_name, tags=tags,
                                     analysis=analysis, quota_bytes=settings.storage_quota_bytes)
    except StorageQuotaError as e:
        session.rollback()
        raise HTTPException(status.HTTP_507_INSUFFICIENT_STORAGE, detail=str(e)) from e
    except McuprofError as e:
        raise http_error(e) from e
    out = model_out(model)
    session.commit()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return out


@router.get("")
def list_models(session: SessionDep, _reader: Reader, tag: Tags = None,
                limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> list[ModelOut]:
    """Models, oldest first; ``tag=k=v`` (repeatable) keeps those with every tag."""
    try:
        tags = parse_tags(tag or [])
    except McuprofError as e:
        raise http_error(e) from e
    query = select(Model).where(*tag_filters(Model.id, tags)).order_by(Model.id)
    return [model_out(m) for m in session.scalars(query.limit(limit).offset(offset))]


@router.get("/{model_id}")
def get_model(session: SessionDep, _reader: Reader, model_id: ModelId) -> ModelOut:
    return model_out(_model(session, model_id))


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, responses=error_responses(409))
def remove_model(session: SessionDep, _user: User, model_id: ModelId) -> Response:
    """Delete a model, its tags and its finished jobs, freeing its storage; 409 while a
    queued or leased job or a measurement (which the fits are made from) needs it."""
    try:
        delete_model(session, model_id)
    except McuprofError as e:
        raise http_error(e) from e
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{model_id}/file", response_class=Response, responses={
    200: {"content": {"application/octet-stream": {}}, "description": "the .tflite bytes"}})
def get_model_file(session: SessionDep, _reader: Reader, model_id: ModelId) -> Response:
    """The ``.tflite`` bytes as uploaded (ETag: their SHA-256)."""
    model = _model(session, model_id)
    filename = "".join(c for c in model.name if c.isalnum() or c in "-_.") or "model"
    return Response(model.data, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{filename}.tflite"',
        "ETag": f'"{model.sha256}"',
    })


@router.get("/{model_id}/measurements")
def model_measurements(session: SessionDep, _reader: Reader,
                       model_id: ModelId) -> list[MeasurementOut]:
    """Every measurement of the model, oldest first."""
    _model(session, model_id)
    rows = session.scalars(select(Measurement).where(Measurement.model_id == model_id)
                           .order_by(Measurement.id))
    return [measurement_out(m) for m in rows]
