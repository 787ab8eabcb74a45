"""Latency-model fits in the database: stored with the measurements they came from, refitted
when new measurements arrive (not on every request), versioned.

The unit of refitting is a *partition*: one (device class, kernel path). ``service.fitting``
fits, from a partition's measurements, an op-count line per backbone tag and one per-layer
model over every backbone; any new measurement of the partition changes the per-layer
model's data, so the whole partition is refitted together.

**When.** A partition's *fingerprint* digests, per backbone, the count, largest id and sum of
ids of its usable measurements (a latency > 0), plus the fitting code's version and options.
One aggregate query over ``measurements ⋈ model_tags`` gives every partition's fingerprint;
where it differs from the one stored in ``fit_partitions`` the partition is stale. That sees
every path that stores a measurement (an agent's report, a bulk import) and a model whose
backbone tag changed, without a hook in the queue. Stale partitions are refitted lazily, by
the next request that reads fits (``ensure_fresh``: ``GET /fits``, ``POST /predict``, the
dashboard's device and model pages); a read that finds nothing stale fits nothing.

**Versions.** A fit's version is ``service.fitting.frames.fit_version``: the code version and
a digest of its kind, group, options and measurement ids. The same data give the same
version, so an unchanged group keeps its fit row across refits and a version names one fit
for good. Older versions stay in ``fits`` (``current`` false) with their measurement links.

**Concurrency.** One refit per partition at a time in a process (a lock); across API
replicas the store step re-reads the partition's fingerprint under its row lock (SQLite:
the write transaction's lock) and stores nothing when another replica got there first.
Fitting itself runs outside any write transaction. (A replica that finishes a refit of older
data after another stored a newer one overwrites it; the next read sees the fingerprint
differ and refits again.)
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from profiler_client.schemas import FitMetricsOut, FitOut
from service.db.engine import Database
from service.db.models import (
    Fit,
    FitMeasurement,
    FitPartition,
    Measurement,
    Model,
    ModelTag,
    utcnow,
)
from service.fitting import (
    MIN_POINTS,
    FitError,
    FitResult,
    LineFit,
    PerLayerModel,
    fit_all,
    fits_frame,
    layers_frame,
    measurements_frame,
)
from service.fitting.frames import BACKBONE_TAG, FIT_CODE_VERSION
from service.fitting.per_layer import MIN_MODELS
from service.twin_band import device_class_view

logger = logging.getLogger("mcuprof.fits")

K_FOLDS = 5  # folds of every stored fit's cross-validation
SEED = 0  # fixes the folds, so a refit of the same data gives the same version
LINK_BATCH = 5000  # fit_measurements rows per INSERT

ExportFormat = Literal["csv", "parquet"]
PartitionKey = tuple[str, str]  # (device class, kernels)

_locks: dict[PartitionKey, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(key: PartitionKey) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _usable() -> Any:
    """Measurements a fit can use: with a latency (host runs have none)."""
    return Measurement.latency_ms > 0


def backbone_join(model_id: Any) -> Any:
    """The ON clause joining ``model_tags`` to its model's ``backbone`` tag (outer join it:
    untagged models have none)."""
    return and_(ModelTag.model_id == model_id, ModelTag.key == BACKBONE_TAG)


# --------------------------------------------------------------------------------------------
# Staleness


def fingerprint(groups: Iterable[tuple[str | None, int, int, int]]) -> str:
    """The digest of a partition's usable measurements: (backbone, count, max id, sum of
    ids) per backbone, with the fitting code's version and options."""
    rows = sorted(([b, int(c), int(mx), int(sm)] for b, c, mx, sm in groups),
                  key=lambda r: (r[0] is not None, str(r[0] or ""), r[1:]))
    payload = json.dumps({"code": FIT_CODE_VERSION, "k_folds": K_FOLDS, "seed": SEED,
                          "groups": rows}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def partition_fingerprints(session: Session, *, device_class: str | None = None,
                           ) -> dict[PartitionKey, tuple[str, int]]:
    """(device class, kernels) → (fingerprint, usable measurements), from one aggregate
    query."""
    query = (select(Measurement.device_class, Measurement.kernels, ModelTag.value,
                    func.count(Measurement.id), func.max(Measurement.id),
                    func.sum(Measurement.id))
             .outerjoin(ModelTag, backbone_join(Measurement.model_id))
             .where(_usable())
             .group_by(Measurement.device_class, Measurement.kernels, ModelTag.value))
    if device_class is not None:
        query = query.where(Measurement.device_class == device_class)
    groups: dict[PartitionKey, list[tuple[str | None, int, int, int]]] = defaultdict(list)
    for dev, kern, backbone, count, largest, total in session.execute(query):
        groups[(dev, kern)].append((backbone, count, largest, total))
    return {key: (fingerprint(rows), sum(r[1] for r in rows)) for key, rows in groups.items()}


def stale_partitions(session: Session, *, device_class: str | None = None,
                     ) -> list[PartitionKey]:
    """Partitions whose measurements changed since they were last fitted (or that were
    never fitted), in a stable order."""
    now = partition_fingerprints(session, device_class=device_class)
    query = select(FitPartition.device_class, FitPartition.kernels, FitPartition.fingerprint)
    if device_class is not None:
        query = query.where(FitPartition.device_class == device_class)
    stored = {(dev, kern): fp for dev, kern, fp in session.execute(query)}
    empty = fingerprint([])
    keys = set(now) | set(stored)
    return sorted(k for k in keys if stored.get(k) != now.get(k, (empty, 0))[0])


# --------------------------------------------------------------------------------------------
# Refitting


def load_records(session: Session, key: PartitionKey) -> list[dict[str, Any]]:
    """The partition's usable measurements as ``service.fitting.frames`` records (with the
    backbone tag and the model's input shape), selecting only the columns a fit needs."""
    dev, kern = key
    rows = session.execute(
        select(Measurement.id, Measurement.job_id, Measurement.model_id, Measurement.device,
               Measurement.device_class, Measurement.board, Measurement.kernels,
               Measurement.ops, Measurement.macs, Measurement.cycles, Measurement.latency_ms,
               Measurement.energy_mj, Measurement.arena_bytes, Measurement.plan_bytes,
               Measurement.flash_bytes, Measurement.layers, Measurement.created_at,
               ModelTag.value, Model.analysis["input_shape"], Measurement.firmware_id)
        .join(Model, Model.id == Measurement.model_id)
        .outerjoin(ModelTag, backbone_join(Measurement.model_id))
        .where(Measurement.device_class == dev, Measurement.kernels == kern, _usable())
        .order_by(Measurement.id))
    names = ("id", "job_id", "model_id", "device", "device_class", "board", "kernels", "ops",
             "macs", "cycles", "latency_ms", "energy_mj", "arena_bytes", "plan_bytes",
             "flash_bytes", "layers", "created_at", "backbone", "input_shape", "firmware_id")
    return [dict(zip(names, row, strict=True)) for row in rows]


def current_firmware(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records measured with the firmware image of the partition's newest measurement.

    The cycles are those of the runtime in the image: a new image (faster kernels, or only
    code that moved in flash) changes them, so a fit mixing images would describe none. The
    older measurements stay in the database, and come back into the fit if their image does.
    Records without a firmware id count as one image of their own."""
    if not records:
        return []
    newest = max(records, key=lambda r: int(r["id"]))["firmware_id"]
    return [r for r in records if r["firmware_id"] == newest]


def records_fingerprint(records: Sequence[dict[str, Any]]) -> str:
    """``fingerprint`` of loaded records (equal to the SQL aggregate's for the same rows)."""
    groups: dict[str | None, list[int]] = defaultdict(list)
    for rec in records:
        groups[rec["backbone"]].append(int(rec["id"]))
    return fingerprint((b, len(ids), max(ids), sum(ids)) for b, ids in groups.items())


def _notes(records: Sequence[dict[str, Any]], results: Sequence[FitResult]) -> list[str]:
    """Why groups of the partition have no fit, in words."""
    notes: list[str] = []
    fitted = {r.backbone for r in results if r.kind == "ops_line"}
    by_backbone: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_backbone[rec["backbone"]].append(rec)
    untagged = by_backbone.pop(None, [])
    if untagged:
        notes.append(f"{len(untagged)} measurement(s) of models without a {BACKBONE_TAG} tag "
                     f"have no op-count line (tag the models {BACKBONE_TAG}=NAME)")
    for backbone, recs in sorted(by_backbone.items(), key=lambda kv: str(kv[0])):
        if backbone in fitted:
            continue
        distinct_ops = len({r["ops"] for r in recs})
        models = len({r["model_id"] for r in recs})
        notes.append(f"backbone {backbone}: {len(recs)} measurement(s) of {models} model(s) "
                     f"with {distinct_ops} distinct op count(s); a line needs at least "
                     f"{MIN_POINTS} measurements with 2 op counts: profile more models")
    if records and not any(r.kind == "per_layer" for r in results):
        models = len({r["model_id"] for r in records
                      if r["layers"] and all(x.get("cycles") is not None for x in r["layers"])})
        notes.append(f"per-layer model: {models} model(s) with per-layer cycles; it needs at "
                     f"least {MIN_MODELS}")
    return notes


def refit(db: Database, key: PartitionKey) -> bool:
    """Refit one partition if its measurements changed; returns whether it stored a refit."""
    with _lock(key):
        with db.read() as session:
            records = load_records(session, key)
            stored = session.scalar(select(FitPartition.fingerprint).where(
                FitPartition.device_class == key[0], FitPartition.kernels == key[1]))
        fp = records_fingerprint(records)  # of every measurement: any new one refits
        if fp == stored:
            return False
        results: list[FitResult] | None = []
        notes: list[str] = []
        current = current_firmware(records)
        if len(current) < len(records):
            notes.append(f"{len(records) - len(current)} measurement(s) from earlier firmware "
                         f"images are left out: the fits use the {len(current)} made with "
                         f"firmware {current[0]['firmware_id'] or '(unnamed)'}, the newest; "
                         "profile the models again to bring them into the fits")
        if current:
            try:
                results = fit_all(measurements_frame(current), layers_frame(current),
                                  k_folds=K_FOLDS, seed=SEED)
            except (FitError, ValueError, np.linalg.LinAlgError) as e:
                logger.warning("refitting %s (%s kernels) failed: %s", *key, e)
                results = None
                notes.append(f"refit failed ({e}); the previous fits stay current")
        notes += _notes(current, results or [])
        try:
            with db.transaction() as session:
                stored_now = _store(session, key, fp, len(current), results, notes)
        except IntegrityError:
            # Another replica stored the same partition (or the same versions) first.
            logger.info("refit of %s (%s kernels) was stored by another process", *key)
            return False
        if stored_now:
            logger.info("refitted %s (%s kernels): %d measurements, %d fits", *key,
                        len(records), len(results or []))
        return stored_now


def _store(session: Session, key: PartitionKey, fp: str, n: int,
           results: Sequence[FitResult] | None, notes: list[str]) -> bool:
    """Write one partition's refit in the caller's write transaction."""
    dev, kern = key
    part = session.scalars(select(FitPartition).where(
        FitPartition.device_class == dev, FitPartition.kernels == kern).with_for_update()).first()
    if part is not None and part.fingerprint == fp:
        return False
    now = utcnow()
    if part is None:
        part = FitPartition(device_class=dev, kernels=kern, fingerprint=fp, n_measurements=n,
                            refitted_at=now, notes=notes)
        session.add(part)
    part.fingerprint, part.n_measurements, part.refitted_at, part.notes = fp, n, now, notes
    if results is None:
        session.flush()
        return True
    versions = [r.version for r in results]
    session.execute(update(Fit).where(Fit.device_class == dev, Fit.kernels == kern,
                                      Fit.current.is_(True), Fit.version.not_in(versions))
                    .values(current=False).execution_options(synchronize_session=False))
    known = set(session.scalars(select(Fit.version).where(Fit.version.in_(versions))))
    if known:
        session.execute(update(Fit).where(Fit.version.in_(known)).values(current=True)
                        .execution_options(synchronize_session=False))
    for result in results:
        if result.version in known:
            continue
        fit = _fit_row(result, now)
        session.add(fit)
        session.flush()
        links = [{"fit_id": fit.id, "measurement_id": i} for i in result.measurement_ids]
        for start in range(0, len(links), LINK_BATCH):
            session.execute(insert(FitMeasurement), links[start:start + LINK_BATCH])
    session.flush()
    return True


def _fit_row(result: FitResult, now: Any) -> Fit:
    model = result.model
    line = model if isinstance(model, LineFit) else None
    return Fit(
        kind=result.kind, device_class=result.device_class, backbone=result.backbone,
        kernels=result.kernels, version=result.version, current=True, n=result.n,
        n_models=result.n_models, k=model.k, a_ms_per_op=line.a if line else None,
        b_ms=line.b if line else None, r2=model.in_sample.r2, cv_r2=model.cv.r2,
        cv_mape=model.cv.mape, cv_acc10=model.cv.acc10, cv_rmse_ms=model.cv.rmse_ms,
        coefficients=model.to_dict(), created_at=now,
    )


def ensure_fresh(db: Database, *, device_class: str | None = None) -> list[PartitionKey]:
    """Refit the stale partitions (of ``device_class``, or all); returns those refitted.

    Costs one aggregate query when nothing changed."""
    with db.read() as session:
        stale = stale_partitions(session, device_class=device_class)
    return [key for key in stale if refit(db, key)]


# --------------------------------------------------------------------------------------------
# Reading


def select_fits(session: Session, *, device_class: str | None = None,
                backbone: str | None = None, kernels: str | None = None,
                kind: str | None = None, history: bool = False) -> list[Fit]:
    """Current fits (every version with ``history``), filtered. A ``backbone`` keeps that
    backbone's lines and the per-layer models (they predict any backbone)."""
    query = select(Fit)
    if not history:
        query = query.where(Fit.current.is_(True))
    if device_class is not None:
        query = query.where(Fit.device_class == device_class)
    if kernels is not None:
        query = query.where(Fit.kernels == kernels)
    if kind is not None:
        query = query.where(Fit.kind == kind)
    if backbone is not None:
        query = query.where((Fit.backbone == backbone) | Fit.backbone.is_(None))
    return list(session.scalars(query.order_by(Fit.device_class, Fit.kernels, Fit.kind,
                                               Fit.backbone, Fit.id.desc())))


def fit_by_version(session: Session, version: str) -> Fit | None:
    return session.scalars(select(Fit).where(Fit.version == version)).first()


def measurement_ids(session: Session, fit_ids: Sequence[int]) -> dict[int, list[int]]:
    """fit id → the ids of the measurements it was fitted on, ascending."""
    out: dict[int, list[int]] = {i: [] for i in fit_ids}
    if fit_ids:
        for fit_id, mid in session.execute(
                select(FitMeasurement.fit_id, FitMeasurement.measurement_id)
                .where(FitMeasurement.fit_id.in_(list(fit_ids)))
                .order_by(FitMeasurement.fit_id, FitMeasurement.measurement_id)):
            out[fit_id].append(mid)
    return out


def partitions(session: Session, *, device_class: str | None = None) -> list[FitPartition]:
    query = select(FitPartition).order_by(FitPartition.device_class, FitPartition.kernels)
    if device_class is not None:
        query = query.where(FitPartition.device_class == device_class)
    return list(session.scalars(query))


def _metrics(d: dict[str, Any]) -> FitMetricsOut:
    return FitMetricsOut(n=int(d["n"]), r2=float(d["r2"]), mape=float(d["mape"]),
                         acc10=float(d["acc10"]), rmse_ms=float(d["rmse_ms"]))


def fit_out(fit: Fit, ids: list[int] | None = None) -> FitOut:
    """The API's view of a stored fit (``ids``: its measurements, when asked for)."""
    coefficients = dict(fit.coefficients)
    return FitOut(
        id=fit.id, kind=fit.kind,  # type: ignore[arg-type]
        device_class=fit.device_class, backbone=fit.backbone, kernels=fit.kernels,
        version=fit.version, current=fit.current, created_at=fit.created_at, n=fit.n,
        n_models=fit.n_models, k=fit.k, a_ms_per_op=fit.a_ms_per_op, b_ms=fit.b_ms,
        r2=fit.r2, metrics=_metrics(coefficients["cv"]),
        in_sample=_metrics(coefficients["in_sample"]), coefficients=coefficients,
        measurement_ids=ids, **_band(fit),
    )


def _band(fit: Fit) -> dict[str, Any]:
    """A twin's fit: the twin's band, or the latest calibration's (``service.twin_band``)."""
    view = device_class_view(object_session(fit), fit.device_class, fit.kernels)
    if view is None:
        return {}
    out = view.as_dict()
    if view.calibration is not None:
        out["calibration_factor"] = view.calibration.factor
    return out


def fit_result(fit: Fit, ids: Sequence[int] = ()) -> FitResult:
    """A stored fit as ``service.fitting``'s ``FitResult`` (for predictions and exports)."""
    return FitResult.from_dict({
        "kind": fit.kind, "device_class": fit.device_class, "backbone": fit.backbone,
        "kernels": fit.kernels, "version": fit.version, "n": fit.n, "n_models": fit.n_models,
        "measurement_ids": list(ids), "model": fit.coefficients})


def line_of(fit: Fit) -> LineFit:
    return LineFit.from_dict(fit.coefficients)


def per_layer_of(fit: Fit) -> PerLayerModel:
    return PerLayerModel.from_dict(fit.coefficients)


# --------------------------------------------------------------------------------------------
# Exports


MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


def frame_bytes(df: pd.DataFrame, fmt: ExportFormat) -> bytes:
    """A frame as CSV (UTF-8, header, no index) or Parquet (pyarrow) bytes, the formats of
    ``service.fitting.frames.to_csv`` / ``to_parquet``."""
    buffer = io.BytesIO()
    if fmt == "csv":
        buffer.write(df.to_csv(index=False).encode())
    else:
        df.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def fits_export(session: Session, fits: Sequence[Fit], fmt: ExportFormat) -> bytes:
    """Fits as ``service.fitting.frames.fits_frame`` (one row each, with the whole model as
    JSON and the measurement ids) in ``fmt``."""
    ids = measurement_ids(session, [f.id for f in fits])
    df = fits_frame(fit_result(f, ids[f.id]) for f in fits)
    df.insert(df.columns.get_loc("version") + 1, "current", [f.current for f in fits])
    return frame_bytes(df, fmt)


def measurements_export(session: Session, records: Sequence[Any], fmt: ExportFormat) -> bytes:
    """Measurements (``MeasurementOut``) as ``service.fitting.frames.measurements_frame`` with
    their models' tags, in ``fmt``."""
    model_ids = sorted({int(r.model_id) for r in records})
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    for start in range(0, len(model_ids), LINK_BATCH):
        for model_id, k, v in session.execute(
                select(ModelTag.model_id, ModelTag.key, ModelTag.value)
                .where(ModelTag.model_id.in_(model_ids[start:start + LINK_BATCH]))):
            tags[model_id][k] = v
    return frame_bytes(measurements_frame(records, tags_by_model=tags), fmt)
