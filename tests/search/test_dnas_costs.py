"""The DNAS costs are exact at the corners: at a one-hot architecture, ops, parameter bytes,
arena and plan bytes equal what ``mcuprof analyze`` says for the converted model, and the
latency models equal the service's own predictions, on every search space.

The converted models are real TensorFlow conversions (``search.convert``), analyzed with the
function ``mcuprof analyze`` calls (``compile_model`` and the plan's summary); the latency
side uses the service's per-layer model class on the analyzed layers.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from bench_firmware.boards import get_board
from bench_firmware.compiler import compile_model
from search.dnas.costs import CostModel, argmax_arch, budget_for
from search.dnas.graph import exact_costs
from search.dnas.latency import LatencyModel
from search.dnas.relaxed import one_hot, relax, terms
from search.spaces import SKIP, SPACES, Architecture, get_space

BOARDS = ("host", "nucleo-f446re", "nucleo-f746zg")
PLAN_SHARING_SLACK = 64  # bytes: equal requantization arrays the plan happens to share


def _arches(space: str, n: int, seed: int, cap: int) -> list[Architecture]:
    """``n`` random architectures with widths up to ``cap`` (the first keeps every block,
    the second skips every skippable one, the rest mix)."""
    sp = get_space(space)
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        choices = {}
        for node in sp.nodes:
            allowed = [c for c in node.choices if not isinstance(c, int) or c <= cap]
            allowed = allowed or [min(node.choices)]  # type: ignore[type-var]
            if node.kind == "depth":
                choices[node.name] = "block" if i == 0 else SKIP if i == 1 else rnd.choice(
                    allowed)
            else:
                choices[node.name] = rnd.choice(allowed)
        out.append(Architecture(space, choices))
    return out


def _per_layer_fit(device: str, seed: int) -> dict:
    """A per-layer model with arbitrary non-negative weights, as the service stores it."""
    from service.fitting.per_layer import ALL_FEATURES, features_for

    rng = np.random.default_rng(seed)
    weights = {op: {f: float(rng.uniform(0.1, 5.0)) for f in features_for(op)}
               for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")}
    fallback = {f: float(rng.uniform(0.1, 3.0)) for f in ALL_FEATURES}
    return {"clock_hz": 180e6, "overhead_cycles": 1234.0, "weights": weights,
            "fallback": fallback, "rel_lo": -0.05, "rel_hi": 0.05}


class _Fit:
    """The fields of ``FitOut`` that LatencyModel.from_fit reads."""

    def __init__(self, kind: str, device: str, coefficients: dict, *, a: float | None = None,
                 b: float | None = None) -> None:
        self.kind, self.device_class, self.coefficients = kind, device, coefficients
        self.version, self.n_models, self.error_band_pct = f"{kind}-test", 10, None
        self.a_ms_per_op, self.b_ms = a, b
        self.metrics = type("M", (), {"mape": 0.02})()


@pytest.mark.slow
@pytest.mark.parametrize("space", sorted(SPACES))
def test_one_hot_costs_equal_mcuprof_analyze(space: str) -> None:
    pytest.importorskip("tensorflow", reason="converting architectures needs tensorflow")
    from search.convert import convert_architecture
    from service.fitting.per_layer import PER_LAYER_SCHEMA, PerLayerModel

    rs = relax(space)
    devices = [f"virtual:{b}" for b in BOARDS if b != "host"]
    model = CostModel(rs, [budget_for(d, None) for d in devices])
    cap = 48 if space != "vww" else 40
    for arch in _arches(space, 3, seed=len(space), cap=cap):
        converted = convert_architecture(arch)
        p = one_hot(rs, arch.choices)
        t = terms(rs, p)
        for board in BOARDS:
            summary = compile_model(converted.tflite, get_board(board), check_fit=False).summary()
            # What `mcuprof analyze --board B` prints, against the corner of the relaxation.
            assert float(t.total("op_count")) == summary["ops"], (arch, board)
            assert float(t.total("macs")) == summary["macs"]
            params = float(t.total("weight_bytes")) + float(t.total("bias_bytes"))
            assert params == summary["param_bytes"]
            exact = exact_costs(arch.network(), get_board(board))
            assert (exact.ops, exact.param_bytes, exact.arena_bytes) == (
                summary["ops"], summary["param_bytes"], summary["arena_bytes"]), (arch, board)
            # The plan stores equal arrays once, and whether two layers' requantization
            # shifts happen to be equal depends on trained scales: the skeleton's plan is
            # exact up to that sharing (a few words).
            assert abs(exact.plan_bytes - summary["plan_bytes"]) <= PLAN_SHARING_SLACK
        relaxed = model.relaxed(p, arch)
        for d in devices:
            summary = compile_model(converted.tflite, get_board(d.split(":")[1]),
                                    check_fit=False).summary()
            assert relaxed[f"sram:{d}"] == summary["arena_bytes"]
            assert abs(relaxed[f"flash:{d}"] - summary["plan_bytes"]) <= PLAN_SHARING_SLACK
        # Latency: the relaxed per-layer prediction is the service's prediction of the layers.
        coeffs = _per_layer_fit(devices[0], seed=len(space))
        lm = LatencyModel.from_fit(_Fit("per_layer", devices[0], coeffs))
        service_model = PerLayerModel.from_dict({
            "kind": "per_layer", "schema": PER_LAYER_SCHEMA, **coeffs, "n": 1, "n_models": 1,
            "n_layers": 1, "k": 1, "level": 0.9, "layer_r2": 1.0, "backbones": [],
            "in_sample": {"n": 1, "r2": 1, "mape": 0, "acc10": 1, "rmse_ms": 0},
            "cv": {"n": 1, "r2": 1, "mape": 0, "acc10": 1, "rmse_ms": 0}})
        layers = summary["layers"]
        want = service_model.predict(layers, input_shape=list(arch.input_shape)).value
        assert float(lm.latency_ms(t)) == pytest.approx(want, rel=1e-9)
        line = LatencyModel.from_fit(_Fit("ops_line", devices[0], {}, a=2e-5, b=0.7))
        assert float(line.latency_ms(t)) == pytest.approx(2e-5 * summary["ops"] + 0.7,
                                                          rel=1e-12)


@pytest.mark.parametrize("space", sorted(SPACES))
def test_skeleton_costs_cover_the_whole_choice_range(space: str) -> None:
    """Without TensorFlow: the relaxed corner equals the compiled skeleton at full widths
    too (the converted-model test above caps widths to stay fast)."""
    rs = relax(space)
    for arch in _arches(space, 4, seed=7, cap=10_000):
        t = terms(rs, one_hot(rs, arch.choices))
        e = exact_costs(arch.network(), get_board("nucleo-f767zi"))
        assert float(t.total("op_count")) == e.ops
        assert float(t.total("weight_bytes")) + float(t.total("bias_bytes")) == e.param_bytes
        assert arch.network().macs() == e.macs
        assert argmax_arch(rs, one_hot(rs, arch.choices)) == arch


@pytest.mark.parametrize("space", sorted(SPACES))
def test_cost_factors_are_independent(space: str) -> None:
    """Each cost term is a product of factors that depend on disjoint nodes: what makes the
    expectation of a product the product of expectations."""
    for op in relax(space).ops:
        parts = [s for s in op.nodes() if s]
        for a, b in itertools.combinations(parts, 2):
            assert not (a & b), (op, a & b)


@pytest.mark.parametrize("space", ["kws", "ad"])
def test_expectation_is_the_mean_over_architectures(space: str) -> None:
    """Away from the corners the relaxed cost is the probability-weighted mean of the
    architectures' costs: checked by enumerating a sub-space of three two-way nodes."""
    sp = get_space(space)
    free = [n for n in sp.nodes if n.kind == "depth"][:1] + \
        [n for n in sp.nodes if n.kind == "width"][:2]
    choices = {n.name: (n.choices[:2] if n in free else n.choices[:1]) for n in sp.nodes}
    rs = relax(space, choices=choices)
    rng = np.random.default_rng(3)
    probs = {}
    for name, allowed in rs.choices.items():
        v = rng.random(len(allowed))
        probs[name] = list(v / v.sum())
    mean_ops = mean_params = 0.0
    for picks in itertools.product(*(range(len(rs.choices[n.name])) for n in free)):
        weight = 1.0
        arch_choices = {name: allowed[0] for name, allowed in rs.choices.items()}
        for node, k in zip(free, picks, strict=True):
            weight *= probs[node.name][k]
            arch_choices[node.name] = rs.choices[node.name][k]
        for node in sp.nodes:
            if node.active_if and arch_choices[node.active_if] == SKIP:
                arch_choices[node.name] = None
        e = exact_costs(Architecture(space, arch_choices).network(), get_board("host"))
        mean_ops += weight * e.ops
        mean_params += weight * e.param_bytes
    t = terms(rs, probs)
    assert float(t.total("op_count")) == pytest.approx(mean_ops, rel=1e-12)
    assert float(t.total("weight_bytes")) + float(t.total("bias_bytes")) == pytest.approx(
        mean_params, rel=1e-12)


def test_exact_costs_take_the_arena_the_sram_budget_allows() -> None:
    """Under an SRAM budget below the board's, the plan compiler drops the kernels' speed-ups
    (SRAM weight copies, planar images) until the arena fits the budget, as it does against
    the board's SRAM: the search sees the arena of the plan that budget allows, not one
    sized to the whole board."""
    device = "virtual:nucleo-l4r5zi"
    arch = _arches("kws", 1, seed=7, cap=32)[0]
    rs = relax("kws")
    full = CostModel(rs, [budget_for(device, None)]).exact(arch, device)
    board = get_board("nucleo-l4r5zi")
    assert full.arena_bytes < board.arena_capacity
    budget = budget_for(device, None, sram_kib=(full.arena_bytes - 1) / 1024)
    tight = CostModel(rs, [budget]).exact(arch, device)
    assert tight.arena_bytes <= budget.sram_bytes < full.arena_bytes
    assert (tight.ops, tight.param_bytes) == (full.ops, full.param_bytes)
