"""The per-layer-type model: features, recovery of known per-op costs, whole-model prediction,
and the held-out backbone against the op-count line."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from profiler_client.fitting.errors import FitError, InsufficientDataError
from service.fitting.frames import layers_frame, measurements_frame
from service.fitting.per_layer import (
    PerLayerModel,
    evaluate_held_out_backbone,
    fit_per_layer,
    layer_rows,
)
from tests.fitting import synth


def frames(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return measurements_frame(records), layers_frame(records)


def random_records(n: int, *, noise: float, seed: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [synth.record(synth.random_chain(rng), measurement_id=i, model_id=i,
                         backbone="random", rng=rng, layer_noise=noise) for i in range(1, n + 1)]


def test_layer_features() -> None:
    chain = synth.Chain(8, 8, 30).conv(10).dw(3).conv(12, k=3).head(6)
    rows = {r["layer_index"]: r for r in layer_rows(chain.layers, input_shape=[1, 8, 8, 30])}
    pw, dw, conv3, pool, fc = rows[0], rows[1], rows[2], rows[3], rows[5]
    assert (pw["in_channels"], pw["out_elems"], pw["out_pixels"]) == (30, 640, 64)
    assert pw["tail_macs"] == pytest.approx(pw["macs"] * 2 / 30)  # 30 = 7·4 + 2
    assert dw["tail_macs"] == pytest.approx(dw["macs"] * 2 / 10)  # 10 channels = 2·4 + 2
    assert conv3["in_channels"] == 10 and conv3["tail_macs"] == pytest.approx(conv3["macs"] * 0.2)
    assert pool["reduce_ops"] == 12 * 64 - 12 and pool["tail_macs"] == 0
    assert fc["in_channels"] == 12 and fc["tail_macs"] == 0
    assert json.loads(pw["output_shape"]) == [1, 8, 8, 10]


def test_conv_after_a_branch_falls_back_to_pointwise() -> None:
    # The previous layer's 7 channels do not divide this conv's 24 MACs per output.
    layers = [{"op": "ADD", "macs": 0, "ops": 49, "output_shape": [1, 7, 1, 7]},
              {"op": "CONV_2D", "macs": 7 * 5 * 24, "ops": 2 * 7 * 5 * 24,
               "output_shape": [1, 7, 1, 5]}]
    conv = layer_rows(layers)[1]
    assert conv["in_channels"] == 24 and conv["tail_macs"] == 0


def test_depth_multiplier_runs_every_mac_scalar() -> None:
    layers = [{"op": "CONV_2D", "macs": 64 * 8, "ops": 0, "output_shape": [1, 8, 8, 8]},
              {"op": "DEPTHWISE_CONV_2D", "macs": 64 * 16 * 9, "ops": 0,
               "output_shape": [1, 8, 8, 16]}]
    dw = layer_rows(layers, input_shape=[1, 8, 8, 1])[1]
    assert dw["tail_macs"] == dw["macs"]


def test_recovers_known_per_op_costs_exactly_without_noise() -> None:
    model = fit_per_layer(*frames(random_records(60, noise=0.0)))
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "SOFTMAX", "PAD"):
        for feature, true in synth.TRUE_WEIGHTS[op].items():
            assert model.weights[op][feature] == pytest.approx(true, rel=0.01, abs=0.01), (
                op, feature)
    fc = model.weights["FULLY_CONNECTED"]
    for feature in ("macs", "tail_macs", "out_elems"):
        assert fc[feature] == pytest.approx(synth.TRUE_WEIGHTS["FULLY_CONNECTED"][feature],
                                            rel=0.01)
    # An FC layer's output is one pixel: its per-pixel and per-layer costs are one number.
    assert fc["out_pixels"] + fc["const"] == pytest.approx(250.0, rel=0.01)
    assert model.overhead_cycles == pytest.approx(synth.OVERHEAD_CYCLES)
    assert model.clock_hz == pytest.approx(synth.CLOCK_HZ)
    assert model.cv.r2 == pytest.approx(1.0) and model.cv.acc10 == 1.0


def test_recovers_main_costs_with_noise() -> None:
    model = fit_per_layer(*frames(random_records(60, noise=0.02)))
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w, true = model.weights[op], synth.TRUE_WEIGHTS[op]
        assert w["macs"] == pytest.approx(true["macs"], rel=0.03)
        assert w["tail_macs"] == pytest.approx(true["tail_macs"], rel=0.10)
        assert w["out_elems"] == pytest.approx(true["out_elems"], rel=0.10)
    assert model.cv.acc10 > 0.95 and model.cv.mape < 0.03
    assert model.rel_lo < 0 < model.rel_hi


def test_predicts_whole_model_latency_from_a_layer_list() -> None:
    model = fit_per_layer(*frames(random_records(40, noise=0.0)))
    rng = np.random.default_rng(99)
    for _ in range(5):
        chain = synth.vww(rng)  # a backbone it never saw
        truth = sum(layer["true_cycles"] for layer in chain.layers) + synth.OVERHEAD_CYCLES
        p = model.predict(chain.layers, input_shape=chain.input_shape)
        assert p.value == pytest.approx(truth / synth.CLOCK_HZ * 1e3, rel=1e-3)
        assert p.lo <= p.value <= p.hi and not p.extrapolated
    cycles = model.layer_cycles(chain.layers, input_shape=chain.input_shape)
    assert len(cycles) == len(chain.layers) and (cycles > 0).all()


def test_unseen_op_uses_the_pooled_fallback() -> None:
    model = fit_per_layer(*frames(random_records(20, noise=0.0)))
    layers = [{"op": "MUL", "macs": 0, "ops": 100, "output_shape": [1, 10, 10]}]
    assert model.unseen_ops(layers) == ["MUL"]
    p = model.predict(layers)
    assert p.extrapolated and p.value > 0


def test_held_out_backbone_per_layer_beats_pooled_line() -> None:
    m, lay = frames(synth.dataset(40, seed=1))
    report = evaluate_held_out_backbone(m, lay, "vww")
    print(report.summary())
    assert report.train_backbones == ("ad", "kws") and report.n_held_out == 40
    assert report.per_layer.backbones == ("ad", "kws")
    line, per_layer = report.line_held_out, report.per_layer_held_out
    assert per_layer.mape <= line.mape and per_layer.acc10 >= line.acc10
    assert per_layer.r2 >= line.r2
    assert per_layer.mape < 0.05 and per_layer.acc10 >= 0.9
    assert report.own_line_cv is not None
    json.dumps(report.to_dict())


def test_held_out_backbone_refusals() -> None:
    m, lay = frames(synth.dataset(6, seed=2, backbones=("kws", "vww")))
    with pytest.raises(FitError, match="no measurements of backbone 'ic'"):
        evaluate_held_out_backbone(m, lay, "ic")
    m2, lay2 = frames(synth.dataset(6, seed=2, backbones=("vww",)))
    with pytest.raises(FitError, match="nothing to train on"):
        evaluate_held_out_backbone(m2, lay2, "vww")


def test_interval_covers_fresh_models_of_the_training_backbones() -> None:
    m, lay = frames(synth.dataset(40, seed=4))
    model = fit_per_layer(m, lay)
    fresh = synth.dataset(30, seed=5)
    inside = 0
    for rec in fresh:
        p = model.predict(rec["layers"], input_shape=rec["input_shape"])
        inside += p.lo <= rec["latency_ms"] <= p.hi
    assert inside / len(fresh) >= 0.85


def test_folds_are_grouped_by_model() -> None:
    records = random_records(8, noise=0.01)
    rng = np.random.default_rng(0)
    repeats = [dict(r) | {"id": 100 + r["id"], "layers": [
        layer | {"cycles": int(layer["cycles"] * (1 + 0.01 * rng.standard_normal()))}
        for layer in r["layers"]]} for r in records]
    model = fit_per_layer(*frames(records + repeats))
    assert model.n == 16 and model.n_models == 8


def test_insufficient_and_mixed_data_are_refused() -> None:
    with pytest.raises(InsufficientDataError, match="4 models with per-layer cycles"):
        fit_per_layer(*frames(random_records(4, noise=0.0)))
    rng = np.random.default_rng(1)
    other = [synth.record(synth.random_chain(rng), measurement_id=100 + i, model_id=100 + i,
                          backbone="random", rng=rng, device_class="virtual:nucleo-f746zg")
             for i in range(6)]
    m, lay = frames(random_records(6, noise=0.0) + other)
    with pytest.raises(FitError, match="span device_class"):
        fit_per_layer(m, lay)
    assert fit_per_layer(m, lay, device_class="virtual:nucleo-f746zg").n == 6


def test_measurements_without_complete_layer_cycles_are_left_out() -> None:
    records = random_records(7, noise=0.0)
    records[0]["layers"][1]["cycles"] = None
    records[1]["latency_ms"] = None
    assert fit_per_layer(*frames(records)).n == 5


def test_json_round_trip_and_determinism() -> None:
    m, lay = frames(random_records(30, noise=0.02))
    model = fit_per_layer(m, lay)
    again = PerLayerModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model
    chain = synth.kws(np.random.default_rng(5))
    assert again.predict(chain.layers) == model.predict(chain.layers)
    assert fit_per_layer(m, lay).to_dict() == model.to_dict()
    with pytest.raises(FitError, match="refit"):
        PerLayerModel.from_dict(model.to_dict() | {"kind": "ops_line"})
