"""The fitting on real measurements: 27 models sampled from mcuprof's KWS, AD and VWW spaces,
run on the virtual nucleo-f746zg (the bench firmware in the cycle model), stored in
``data/virtual_f746zg_sampled.json`` (how they were made is in its ``source`` field)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from service.fitting.frames import fit_all, layers_frame, measurements_frame
from service.fitting.per_layer import PerLayerModel, evaluate_held_out_backbone

Frames = tuple[pd.DataFrame, pd.DataFrame]

DATA = Path(__file__).parent / "data" / "virtual_f746zg_sampled.json"


@pytest.fixture(scope="module")
def frames() -> Frames:
    records = json.loads(DATA.read_text())["records"]
    return measurements_frame(records), layers_frame(records)


@pytest.mark.parametrize("held_out", ["kws", "ad"])
def test_per_layer_model_beats_pooled_line_on_held_out_backbone(frames: Frames,
                                                                held_out: str) -> None:
    report = evaluate_held_out_backbone(*frames, held_out)
    print(report.summary())
    line, per_layer = report.line_held_out, report.per_layer_held_out
    assert per_layer.mape < line.mape and per_layer.acc10 >= line.acc10
    assert per_layer.r2 > line.r2


def test_fits_on_real_measurements(frames: Frames) -> None:
    fits = {(f.kind, f.backbone): f for f in fit_all(*frames)}
    assert set(fits) == {("ops_line", "ad"), ("ops_line", "kws"), ("per_layer", None)}
    for f in fits.values():
        print(f.kind, f.backbone, f.n, f.version, f.model.in_sample.r2, f.cv)
    assert fits["ops_line", "kws"].model.in_sample.r2 > 0.9
    per_layer = fits["per_layer", None].model
    assert isinstance(per_layer, PerLayerModel)
    assert per_layer.cv.acc10 >= 0.9
    assert per_layer.clock_hz == pytest.approx(216e6, rel=1e-6)
    # MicroNets RQ1: depthwise convolutions cost more per MAC than convolutions.
    w = per_layer.weights
    assert w["DEPTHWISE_CONV_2D"]["macs"] > w["CONV_2D"]["macs"]
