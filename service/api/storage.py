"""Model files: analysis on upload (the figures of ``mcuprof analyze``), storage
deduplicated by SHA-256 within ``MCUPROF_STORAGE_QUOTA_BYTES``, and tags (``key=value``, one
row each so SQL can filter on them)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from bench_firmware.boards import HOST
from bench_firmware.compiler import compile_model
from bench_firmware.errors import CorruptModelError, ModelError
from profiler_client.schemas import AnalysisOut
from service.db.models import NAME_LENGTH, TAG_LENGTH, Model, ModelTag, utcnow
from service.queue import InvalidRequestError
from service.retention import check_quota

# What is kept of `mcuprof analyze --json`: the board-independent figures.
ANALYSIS_KEYS = (*AnalysisOut.model_fields, "input_dtype", "output_dtype")


def analyze(data: bytes, name: str) -> dict[str, Any]:
    """The analysis of a ``.tflite`` file; ``ModelError`` when it is not an int8 model the
    firmware can run (a float model, an unsupported operator, not a .tflite file)."""
    try:
        summary = compile_model(data, HOST, name=name, check_fit=False).summary()
    except ModelError:
        raise
    except Exception as e:  # the reader wraps parse errors; anything else is still bad input
        raise CorruptModelError(f"{name} could not be read as a .tflite model ({e}); "
                                f"export it with tf.lite.TFLiteConverter") from e
    return {k: summary[k] for k in ANALYSIS_KEYS if k in summary}


def parse_tags(tags: Iterable[str]) -> dict[str, str]:
    """``["backbone=kws", "width=0.5"]`` → dict; a malformed tag raises InvalidRequestError."""
    out: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise InvalidRequestError(f"tag {tag!r} is not key=value (e.g. backbone=kws)")
        if len(key) > TAG_LENGTH or len(value) > TAG_LENGTH:
            raise InvalidRequestError(f"tag {tag[:40]!r}... is longer than {TAG_LENGTH} "
                                      f"characters per key or value")
        if not (key + value).isprintable():
            raise InvalidRequestError(f"tag {tag[:40]!r} has control characters")
        out[key] = value
    return out


def tag_filters(model_id: InstrumentedAttribute[int],
                tags: Mapping[str, str]) -> list[ColumnElement[bool]]:
    """WHERE clauses: the row's model has every ``key=value`` of ``tags``."""
    return [exists().where(and_(ModelTag.model_id == model_id, ModelTag.key == k,
                                ModelTag.value == v)) for k, v in tags.items()]


def _merge_tags(model: Model, tags: Mapping[str, str]) -> None:
    current = {t.key: t for t in model.tags}
    for key, value in tags.items():
        if key in current:
            current[key].value = value
        else:
            model.tags.append(ModelTag(key=key, value=value))


def store_model(session: Session, data: bytes, *, name: str, tags: Mapping[str, str],
                analysis: dict[str, Any], quota_bytes: int = 0) -> tuple[Model, bool]:
    """Store ``data`` unless the same bytes are there; returns (model, created).

    Uploading known bytes again merges the tags (new values win) and keeps the name, and
    takes no more space. New bytes that would take the stored models over ``quota_bytes``
    (0: no quota) raise :class:`~service.retention.StorageQuotaError`, and nothing is written.
    """
    digest = hashlib.sha256(data).hexdigest()
    model = session.scalars(select(Model).where(Model.sha256 == digest)).first()
    if model is None:
        check_quota(session, len(data), quota_bytes)
        try:
            with session.begin_nested():  # a concurrent upload of the same bytes may win
                clean = "".join(c for c in name if c.isprintable())[:NAME_LENGTH] or "model"
                model = Model(sha256=digest, name=clean, size_bytes=len(data),
                              data=data, analysis=analysis, created_at=utcnow(),
                              tags=[ModelTag(key=k, value=v) for k, v in tags.items()])
                session.add(model)
            return model, True
        except IntegrityError:
            model = session.scalars(select(Model).where(Model.sha256 == digest)).one()
    _merge_tags(model, tags)
    session.flush()
    return model, False
