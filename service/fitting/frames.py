"""Measurements as pandas DataFrames, every latency model fitted from them, and exports.

A *record* is a measurement as the API returns it (``profiler_client.schemas.MeasurementOut``, as a
dict or the pydantic object) plus, optionally, ``tags`` (the model's tags, e.g.
``{"backbone": "kws"}``) and ``input_shape`` (the model's analysis input shape, which helps the
per-layer features of the first layer). Tags may instead be passed per model id.

``measurements_frame`` makes one row per measurement, ``layers_frame`` one row per layer with
the per-layer features (``service.fitting.per_layer``). ``fit_all`` fits an op-count line for
every (device class, backbone, kernel path) with enough measurements and, given the layer
frame, a per-layer model for every (device class, kernel path); each result carries the ids of
the measurements it came from and a version derived from them, so a search can say which fit
it used and the service can tell when a refit would change anything. List-valued and mapping
columns (``output_shape``, ``tags``) are JSON text so CSV and Parquet hold the same frame.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from profiler_client.fitting.errors import FitError, InsufficientDataError
from profiler_client.fitting.linear import DEFAULT_K_FOLDS, MIN_POINTS, LineFit, fit_ops_line
from profiler_client.fitting.metrics import Metrics
from service.fitting.per_layer import PerLayerModel, fit_per_layer, layer_rows, usable

# Bump when a change to the fitting code changes fitted numbers: it is part of every version.
FIT_CODE_VERSION = "2"
BACKBONE_TAG = "backbone"
DEFAULT_KERNELS = "dsp"
VERSION_DIGEST_CHARS = 16

FitKind = Literal["ops_line", "per_layer"]
FrameKind = Literal["measurements", "layers", "fits"]

# Column → dtype of each frame; "Int64" columns may be missing (<NA>).
MEASUREMENT_COLUMNS: dict[str, str] = {
    "measurement_id": "int64", "job_id": "Int64", "model_id": "int64",
    "device": "str", "device_class": "str", "board": "str", "backbone": "str",
    "kernels": "str", "ops": "int64", "macs": "int64", "cycles": "Int64",
    "latency_ms": "float64", "energy_mj": "float64", "arena_bytes": "Int64",
    "plan_bytes": "Int64", "flash_bytes": "Int64", "n_layers": "int64",
    "layer_cycles": "Int64", "tags": "str", "created_at": "datetime64[us, UTC]",
}
LAYER_COLUMNS: dict[str, str] = {
    "measurement_id": "int64", "model_id": "int64", "device_class": "str", "backbone": "str",
    "kernels": "str", "layer_index": "int64", "op": "str", "macs": "int64", "ops": "int64",
    "param_bytes": "int64", "plan_bytes": "int64", "output_shape": "str", "cycles": "Int64",
    "out_elems": "int64", "out_channels": "int64", "in_channels": "Int64",
    "out_pixels": "float64", "window": "float64", "gather": "float64", "tail_macs": "float64",
    "reduce_ops": "float64",
}
FIT_COLUMNS: dict[str, str] = {
    "kind": "str", "device_class": "str", "backbone": "str", "kernels": "str",
    "version": "str", "n": "int64", "n_models": "int64", "k": "int64",
    "a_ms_per_op": "float64", "b_ms": "float64", "rse_ms": "float64",
    "r2": "float64", "cv_r2": "float64", "cv_mape": "float64", "cv_acc10": "float64",
    "cv_rmse_ms": "float64", "model_json": "str", "measurement_ids": "str",
}
_SCHEMAS: dict[str, dict[str, str]] = {
    "measurements": MEASUREMENT_COLUMNS, "layers": LAYER_COLUMNS, "fits": FIT_COLUMNS,
}


def _as_dict(record: Any) -> dict[str, Any]:
    if hasattr(record, "model_dump"):
        return dict(record.model_dump())
    return dict(record)


def _tags(rec: Mapping[str, Any], tags_by_model: Mapping[int, Mapping[str, str]] | None,
          ) -> dict[str, str]:
    tags = dict(rec.get("tags") or {})
    if tags_by_model is not None:
        tags = dict(tags_by_model.get(int(rec["model_id"]), {})) | tags
    return {str(k): str(v) for k, v in tags.items()}


def apply_schema(df: pd.DataFrame, kind: FrameKind) -> pd.DataFrame:
    """``df`` with exactly the columns of ``kind``'s schema, in order, with their dtypes
    (a missing column becomes all-missing)."""
    schema = _SCHEMAS[kind]
    out = pd.DataFrame(index=df.index)
    for col, dtype in schema.items():
        values = df[col] if col in df else pd.Series([None] * len(df), index=df.index,
                                                     dtype=object)
        if dtype.startswith("datetime64"):
            out[col] = pd.to_datetime(values, utc=True).astype(dtype)
        elif dtype == "str":
            out[col] = values.astype("object").where(values.notna(), None).astype("str")
        else:
            out[col] = values.astype(dtype)
    return out.reset_index(drop=True)


def measurements_frame(records: Iterable[Any], *,
                       tags_by_model: Mapping[int, Mapping[str, str]] | None = None,
                       ) -> pd.DataFrame:
    """One row per measurement (columns ``MEASUREMENT_COLUMNS``); ``backbone`` is the model's
    ``backbone`` tag, ``layer_cycles`` the sum of the per-layer cycles (missing unless every
    layer has them)."""
    rows: list[dict[str, Any]] = []
    for record in records:
        rec = _as_dict(record)
        tags = _tags(rec, tags_by_model)
        layers = rec.get("layers") or []
        cyc = [layer.get("cycles") for layer in layers]
        rows.append({
            "measurement_id": rec["id"], "job_id": rec.get("job_id"),
            "model_id": rec["model_id"], "device": rec.get("device"),
            "device_class": rec.get("device_class") or rec.get("device"),
            "board": rec.get("board"), "backbone": rec.get("backbone") or tags.get(BACKBONE_TAG),
            "kernels": rec.get("kernels") or DEFAULT_KERNELS, "ops": rec["ops"],
            "macs": rec["macs"], "cycles": rec.get("cycles"), "latency_ms": rec.get("latency_ms"),
            "energy_mj": rec.get("energy_mj"), "arena_bytes": rec.get("arena_bytes"),
            "plan_bytes": rec.get("plan_bytes"), "flash_bytes": rec.get("flash_bytes"),
            "n_layers": len(layers),
            "layer_cycles": sum(cyc) if cyc and all(c is not None for c in cyc) else None,
            "tags": json.dumps(tags, sort_keys=True), "created_at": rec.get("created_at"),
        })
    return apply_schema(pd.DataFrame(rows, columns=list(MEASUREMENT_COLUMNS)), "measurements")


def layers_frame(records: Iterable[Any], *,
                 tags_by_model: Mapping[int, Mapping[str, str]] | None = None) -> pd.DataFrame:
    """One row per layer of every measurement (columns ``LAYER_COLUMNS``), with the per-layer
    features of ``service.fitting.per_layer.layer_rows``."""
    rows: list[dict[str, Any]] = []
    for record in records:
        rec = _as_dict(record)
        head = {
            "measurement_id": rec["id"], "model_id": rec["model_id"],
            "device_class": rec.get("device_class") or rec.get("device"),
            "backbone": rec.get("backbone") or _tags(rec, tags_by_model).get(BACKBONE_TAG),
            "kernels": rec.get("kernels") or DEFAULT_KERNELS,
        }
        rows.extend(head | row for row in layer_rows(rec.get("layers") or [],
                                                     input_shape=rec.get("input_shape")))
    return apply_schema(pd.DataFrame(rows, columns=list(LAYER_COLUMNS)), "layers")


def fit_version(kind: FitKind, key: Mapping[str, Any], measurement_ids: Iterable[int]) -> str:
    """``v<code version>-<digest>``: the same code on the same measurements (and options)
    gives the same version; a new measurement or a code change gives a new one."""
    payload = json.dumps({"kind": kind, "key": dict(key), "code": FIT_CODE_VERSION,
                          "ids": sorted(int(i) for i in measurement_ids)}, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:VERSION_DIGEST_CHARS]
    return f"v{FIT_CODE_VERSION}-{digest}"


@dataclass(frozen=True)
class FitResult:
    """One fitted latency model as the service stores it.

    ``kind`` "ops_line": ``model`` is a ``LineFit`` for (``device_class``, ``backbone``,
    ``kernels``). ``kind`` "per_layer": a ``PerLayerModel`` for (``device_class``,
    ``kernels``) over every backbone, ``backbone`` None. ``measurement_ids`` are the
    measurements it was fitted on; ``version`` derives from them (``fit_version``).
    """

    kind: FitKind
    device_class: str
    backbone: str | None
    kernels: str
    version: str
    n: int
    n_models: int
    measurement_ids: tuple[int, ...]
    model: LineFit | PerLayerModel

    @property
    def cv(self) -> Metrics:
        """The cross-validated metrics (the ones to quote)."""
        return self.model.cv

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "device_class": self.device_class, "backbone": self.backbone,
            "kernels": self.kernels, "version": self.version, "n": self.n,
            "n_models": self.n_models, "measurement_ids": list(self.measurement_ids),
            "model": self.model.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitResult:
        kind = d["kind"]
        model: LineFit | PerLayerModel
        if kind == "ops_line":
            model = LineFit.from_dict(d["model"])
        elif kind == "per_layer":
            model = PerLayerModel.from_dict(d["model"])
        else:
            raise FitError(f"unknown fit kind {kind!r}: expected ops_line or per_layer")
        return cls(kind=kind, device_class=str(d["device_class"]),
                   backbone=None if d["backbone"] is None else str(d["backbone"]),
                   kernels=str(d["kernels"]), version=str(d["version"]), n=int(d["n"]),
                   n_models=int(d["n_models"]),
                   measurement_ids=tuple(int(i) for i in d["measurement_ids"]), model=model)


def fit_all(measurements: pd.DataFrame, layers: pd.DataFrame | None = None, *,
            k_folds: int = DEFAULT_K_FOLDS, seed: int = 0) -> list[FitResult]:
    """Every latency model the frames support, in a stable order.

    An op-count line for each (device_class, backbone, kernels) with at least ``MIN_POINTS``
    measurements with a latency (and enough distinct op counts and models to cross-validate);
    measurements without a backbone tag get no line. With ``layers``, a per-layer model for
    each (device_class, kernels) with at least ``MIN_MODELS`` models with per-layer cycles.
    Groups with too little data are left out, not errors.
    """
    m = measurements[measurements["latency_ms"].notna() & (measurements["latency_ms"] > 0)]
    results: list[FitResult] = []
    lines = m[m["backbone"].notna()]
    for (dev, backbone, kern), g in lines.groupby(["device_class", "backbone", "kernels"],
                                                  sort=True):
        if len(g) < MIN_POINTS:
            continue
        try:
            line = fit_ops_line(g["ops"], g["latency_ms"], k_folds=k_folds, seed=seed,
                                groups=g["model_id"].to_numpy())
        except InsufficientDataError:
            continue
        key = {"device_class": dev, "backbone": backbone, "kernels": kern,
               "k_folds": k_folds, "seed": seed}
        ids = tuple(sorted(int(i) for i in g["measurement_id"]))
        results.append(FitResult(
            kind="ops_line", device_class=str(dev), backbone=str(backbone), kernels=str(kern),
            version=fit_version("ops_line", key, ids), n=len(g),
            n_models=int(g["model_id"].nunique()), measurement_ids=ids, model=line))
    if layers is None:
        return results
    for (dev, kern), g in m.groupby(["device_class", "kernels"], sort=True):
        g_ok, lay = usable(g, layers)
        try:
            model = fit_per_layer(g_ok, lay, k_folds=k_folds, seed=seed)
        except InsufficientDataError:
            continue
        key = {"device_class": dev, "kernels": kern, "k_folds": k_folds, "seed": seed}
        ids = tuple(sorted(int(i) for i in g_ok["measurement_id"]))
        results.append(FitResult(
            kind="per_layer", device_class=str(dev), backbone=None, kernels=str(kern),
            version=fit_version("per_layer", key, ids), n=model.n, n_models=model.n_models,
            measurement_ids=ids, model=model))
    return results


def fits_frame(fits: Iterable[FitResult]) -> pd.DataFrame:
    """One row per fit (columns ``FIT_COLUMNS``): keys, version, coefficients (lines only),
    in-sample r², cross-validated metrics, and the whole model as JSON."""
    rows: list[dict[str, Any]] = []
    for f in fits:
        line = f.model if isinstance(f.model, LineFit) else None
        rows.append({
            "kind": f.kind, "device_class": f.device_class, "backbone": f.backbone,
            "kernels": f.kernels, "version": f.version, "n": f.n, "n_models": f.n_models,
            "k": f.model.k, "a_ms_per_op": line.a if line else np.nan,
            "b_ms": line.b if line else np.nan, "rse_ms": line.rse_ms if line else np.nan,
            "r2": f.model.in_sample.r2, "cv_r2": f.cv.r2, "cv_mape": f.cv.mape,
            "cv_acc10": f.cv.acc10, "cv_rmse_ms": f.cv.rmse_ms,
            "model_json": json.dumps(f.model.to_dict(), sort_keys=True),
            "measurement_ids": json.dumps(list(f.measurement_ids)),
        })
    return apply_schema(pd.DataFrame(rows, columns=list(FIT_COLUMNS)), "fits")


def to_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write a frame as CSV (UTF-8, header, no index)."""
    df.to_csv(path, index=False)


def to_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a frame as Parquet (pyarrow)."""
    df.to_parquet(path, index=False, engine="pyarrow")


def read_csv(path: str | Path, *, kind: FrameKind) -> pd.DataFrame:
    """Read a frame ``to_csv`` wrote, with ``kind``'s column types restored."""
    # Read text as text: an all-digit backbone or a JSON string stays what it was.
    text = [c for c, t in _SCHEMAS[kind].items() if t == "str"]
    return apply_schema(pd.read_csv(path, dtype={c: "str" for c in text}), kind)


def read_parquet(path: str | Path, *, kind: FrameKind) -> pd.DataFrame:
    """Read a frame ``to_parquet`` wrote, with ``kind``'s column types."""
    return apply_schema(pd.read_parquet(path, engine="pyarrow"), kind)
