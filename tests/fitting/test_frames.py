"""Measurement records → frames, fit_all's versioned fit records, CSV / Parquet round trips."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from profiler_client.fitting.linear import MIN_POINTS, LineFit
from profiler_client.schemas import MeasurementOut
from service.fitting.frames import (
    LAYER_COLUMNS,
    MEASUREMENT_COLUMNS,
    FitResult,
    fit_all,
    fits_frame,
    layers_frame,
    measurements_frame,
    read_csv,
    read_parquet,
    to_csv,
    to_parquet,
)
from service.fitting.per_layer import PerLayerModel
from tests.fitting import synth

CREATED = dt.datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=dt.timezone.utc)


def records(per_backbone: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    recs = synth.dataset(per_backbone, seed=seed)
    for r in recs:
        r["created_at"] = CREATED
    return recs


def test_measurement_frame_columns_and_tags() -> None:
    recs = records(3)
    m = measurements_frame(recs)
    assert list(m.columns) == list(MEASUREMENT_COLUMNS) and len(m) == 9
    assert {c: str(t) for c, t in m.dtypes.items()} == MEASUREMENT_COLUMNS
    assert list(m["backbone"]) == ["kws"] * 3 + ["ad"] * 3 + ["vww"] * 3
    first = m.iloc[0]
    assert first["layer_cycles"] == first["cycles"] - synth.OVERHEAD_CYCLES
    assert json.loads(first["tags"]) == {"backbone": "kws"}


def test_frames_from_pydantic_measurements_with_tags_by_model() -> None:
    recs = records(2)
    outs = [MeasurementOut.model_validate({k: v for k, v in r.items()
                                           if k not in ("tags", "input_shape")})
            for r in recs]
    tags = {r["model_id"]: r["tags"] for r in recs}
    m = measurements_frame(outs, tags_by_model=tags)
    pd.testing.assert_frame_equal(m, measurements_frame(recs))
    lay = layers_frame(outs, tags_by_model=tags)
    assert list(lay.columns) == list(LAYER_COLUMNS)
    assert len(lay) == sum(len(r["layers"]) for r in recs)
    assert set(lay["backbone"]) == {"kws", "ad", "vww"}


def test_fit_all_fits_every_group_with_enough_points() -> None:
    recs = records(8)
    few = synth.dataset(MIN_POINTS - 1, seed=9, backbones=("kws",))  # too few for a line
    recs += [r | {"id": 1000 + i, "model_id": 1000 + i, "tags": {"backbone": "ic"}}
             for i, r in enumerate(few)]
    fits = fit_all(measurements_frame(recs), layers_frame(recs))
    keys = [(f.kind, f.device_class, f.backbone, f.kernels) for f in fits]
    dev = synth.DEVICE_CLASS
    assert keys == [("ops_line", dev, "ad", "dsp"), ("ops_line", dev, "kws", "dsp"),
                    ("ops_line", dev, "vww", "dsp"), ("per_layer", dev, None, "dsp")]
    line = fits[0]
    assert isinstance(line.model, LineFit) and line.n == 8 and len(line.measurement_ids) == 8
    per_layer = fits[-1]
    assert isinstance(per_layer.model, PerLayerModel) and per_layer.n == 24 + MIN_POINTS - 1
    assert all(f.version.startswith("v2-") for f in fits)
    assert len({f.version for f in fits}) == len(fits)
    # Without layers: lines only.
    assert [f.kind for f in fit_all(measurements_frame(recs))] == ["ops_line"] * 3


def test_versions_follow_the_data() -> None:
    recs = records(8)
    base = {f.backbone: f.version for f in fit_all(measurements_frame(recs))}
    shuffled = {f.backbone: f.version for f in fit_all(measurements_frame(recs[::-1]))}
    assert shuffled == base
    extra = synth.dataset(1, seed=7, backbones=("kws",))[0] | {"id": 500, "model_id": 500}
    grown = {f.backbone: f.version for f in fit_all(measurements_frame(recs + [extra]))}
    assert grown["kws"] != base["kws"] and grown["ad"] == base["ad"]


def test_fit_result_json_round_trip() -> None:
    recs = records(6)
    for fit in fit_all(measurements_frame(recs), layers_frame(recs)):
        again = FitResult.from_dict(json.loads(json.dumps(fit.to_dict())))
        assert again == fit
        assert again.cv == fit.cv


def test_device_classes_and_kernel_paths_are_fitted_apart() -> None:
    recs = records(6)
    ref = [r | {"id": r["id"] + 100, "kernels": "ref",
                "latency_ms": r["latency_ms"] * 3} for r in recs]
    fits = fit_all(measurements_frame(recs + ref))
    assert sorted({f.kernels for f in fits}) == ["dsp", "ref"] and len(fits) == 6
    ref_kws = next(f for f in fits if f.kernels == "ref" and f.backbone == "kws")
    dsp_kws = next(f for f in fits if f.kernels == "dsp" and f.backbone == "kws")
    assert isinstance(ref_kws.model, LineFit) and isinstance(dsp_kws.model, LineFit)
    assert ref_kws.model.a == pytest.approx(3 * dsp_kws.model.a)


def test_measurements_without_latency_or_backbone_get_no_line() -> None:
    recs = records(6)
    for r in recs[:2]:
        r["latency_ms"] = None
    recs[2]["tags"] = {}
    fits = fit_all(measurements_frame(recs))
    assert [f.backbone for f in fits] == ["ad", "vww"]  # kws is down to 3 points


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    recs = records(6)
    recs[0]["tags"] = {"backbone": "kws", "note": "a, \"quoted\" value"}
    recs[1]["cycles"] = recs[1]["latency_ms"] = None
    recs[2]["layers"][0]["cycles"] = None
    recs[3]["created_at"] = None
    m, lay = measurements_frame(recs), layers_frame(recs)
    frames = {"measurements": m, "layers": lay, "fits": fits_frame(fit_all(m, lay))}
    assert len(frames["fits"]) == 4
    for kind, df in frames.items():
        path = tmp_path / f"{kind}.{fmt}"
        if fmt == "csv":
            to_csv(df, path)
            back = read_csv(path, kind=kind)  # type: ignore[arg-type]
        else:
            to_parquet(df, path)
            back = read_parquet(path, kind=kind)  # type: ignore[arg-type]
        pd.testing.assert_frame_equal(back, df)
    fit_row = frames["fits"].iloc[0]
    assert LineFit.from_dict(json.loads(fit_row["model_json"])).a == fit_row["a_ms_per_op"]
