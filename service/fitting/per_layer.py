"""A per-layer-type latency model, fitted on per-layer cycles, for any backbone.

MicroNets (Banbury et al., MLSys 2021, RQ1) fits latency = a·ops + b per (device, backbone)
because cycles per op differ between layer types: depthwise convolutions cost more per op than
convolutions and fully connected layers, and CMSIS-NN convolutions are much faster when channel
counts are multiples of 4 (138 → 140 channels: 37.5 ms → 21.5 ms). A line fitted on one
backbone therefore mispredicts another whose mix of layers differs. mcuprof measures cycles for
every layer, so it can fit the cost of each layer *type* instead, and predict a whole model as

    latency_ms = (Σ_layers cycles_op(features) + overhead_cycles) / clock_hz · 1000

which carries over to a backbone that was never measured.

Features (cycles of layer i of type op = Σ_j w_op,j · feature_j, every w ≥ 0). The bench
firmware's kernels (``bench_firmware/firmware/kernels/``) spend their time in loops whose trip
counts are these, so a layer's cycles are close to linear in them:

``macs``
    Multiply-accumulates on the 4-lane DSP path (SXTB16 / SMLAD: two MACs per instruction, four
    int8 lanes per word load). The bulk of a convolution's cycles.
``tail_macs``
    MACs that fall off the 4-lane path and run as scalar multiply-accumulates, several times
    dearer: CONV_2D and FULLY_CONNECTED vectorize along the reduction (input channels), so a
    layer whose input channels (FULLY_CONNECTED: input features) are not a multiple of 4 runs
    ``macs · (c mod 4) / c`` of them scalar; DEPTHWISE_CONV_2D vectorizes across channels four
    at a time, so ``(out_c mod 4) / out_c`` of its MACs are scalar, and with a depth multiplier
    other than 1 every MAC takes the reference loops. This is the multiple-of-4 effect of
    MicroNets as a cost proportional to the work it slows, rather than a 0/1 flag.
``out_elems``
    Output values: each one gets its bias, a fixed-point requantization (two multiplies and a
    rounding shift), a clamp and a store, whatever the kernel size. Together with ``macs`` this
    carries the kernel area: a 3×3 depthwise output takes 9 MACs where a pointwise one takes
    in_c, so the per-output cost weighs far more per op in depthwise layers, which is why they
    cost more per op (MicroNets RQ1).
``out_pixels``
    Output pixels (out_elems / out_c): per-pixel window set-up (clipping the taps at the
    borders, pointer arithmetic) in the convolutions.
``window``
    CONV_2D only: the input values each output pixel's window holds (kh·kw·in_c, the MACs per
    output) times the output pixels. The DSP convolution gathers a pixel's window into a
    column (padding filled in) unless it can read a 1×1 window straight from the input, and
    widens every column to int16 pairs once for all output channels
    (``bench_firmware/firmware/kernels/conv.c``): work per window value, not per MAC, which
    is what a narrow layer with a wide window spends its time on (a KWS stem, 10×4 over one
    input channel, costs ~1,100 cycles per pixel before its first MAC on the F446RE twin).
``gather``
    The part of ``window`` that is gathered value by value: every CONV_2D but a 1×1 one over
    a multiple of 4 channels (which reads its column straight from the input: ``conv_direct``
    in ``bench_firmware/ops/conv.py``). A gathered value costs a bounds check and a byte
    copy; a direct one only its share of the widening.
``reduce_ops``
    For layers without MACs: ops beyond one per output (the window reads of a pool, the inputs
    a MEAN sums). Copies and element-wise ops (ADD, PAD, RESHAPE, RELU, SOFTMAX) are carried by
    ``out_elems``.
``const``
    A fixed cost per layer: operator dispatch, parameter decoding, the cycle-counter reads.

Stride, padding and dilation are not features: they change which input addresses a loop reads,
not how many iterations run per output, and the trip counts above are already in output terms
(border taps that are skipped are a second-order effect). The layer records mcuprof stores carry
op, MACs, ops and the output shape, not the kernel or the input shape, so input channels are
taken from the layer's ``input_shape`` when present and otherwise from the previous layer's
output channels (operator order), checked against the layer's MACs per output; where the check
fails (a branch of a skip connection) a CONV_2D is treated as 1×1 (c = MACs per output).

The model: for each op type, non-negative least squares (scipy's NNLS, the solver under
scikit-learn's ``LinearRegression(positive=True)``) of the layer's cycles on that family's
features (MAC layers: macs, tail_macs, out_elems, out_pixels, window, gather, const; the
others: reduce_ops, out_elems, const), minimizing relative
error (sample weights 1 / cycles²): what varies a layer's cycles from run to run and from the
model (cache and flash wait states, data-dependent branches) grows with the layer, so errors
are multiplicative, and weighting them so lets small layers determine the small per-layer
and per-pixel costs instead of drowning in the noise of large ones. Why this and not a
gradient-boosted model: cycles are sums of per-iteration costs times trip counts, so a linear
model in the trip counts has the right form; non-negative weights are physical (no loop makes a
layer faster) and stop terms cancelling each other, which is what keeps a prediction sane on a
backbone whose layers are larger or shaped differently from the training ones, where trees
cannot extrapolate at all (they predict a constant beyond the largest training layer). NNLS is
deterministic, takes milliseconds, and its weights read as cycles per MAC (MAC/cycle for the
dashboard). Op types with fewer than ``MIN_LAYERS_PER_OP`` training layers, and op types never
seen, use a fallback fitted on all layers pooled (the prediction says so: ``extrapolated``).
The per-inference overhead (``cycles − Σ layer cycles``: invoke, input copy, timer reads) is
the median over the training measurements. A limit: when every training layer of a type has the
same kernel (all 3×3 depthwise), ``macs`` and ``out_elems`` are proportional and their split is
not determined by the data; predictions for that kernel stay right, others less so.

Metrics are those of the op-count line (``profiler_client.fitting.metrics``) on whole-model
latency, under k-fold cross-validation grouped by model so a model's layers never straddle
train and test; the prediction interval is the empirical quantiles of the out-of-fold
relative errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from sklearn.metrics import r2_score

from profiler_client.fitting.errors import FitError, InsufficientDataError
from profiler_client.fitting.linear import MIN_POINTS, LineFit, fit_ops_line
from profiler_client.fitting.metrics import DEFAULT_LEVEL, Metrics, Prediction, folds, score

PER_LAYER_KIND = "per_layer"
PER_LAYER_SCHEMA = 2  # bump when PerLayerModel.to_dict changes shape
DEFAULT_K_FOLDS = 5
# Fewest models (not measurements) to fit and cross-validate: as for a line.
MIN_MODELS = MIN_POINTS
# Fewest training layers of one op type to fit its own weights (about twice the features);
# rarer types use the pooled fallback.
MIN_LAYERS_PER_OP = 10
# Width of the DSP kernels' SIMD path: four int8 lanes per 32-bit word.
SIMD_LANES = 4
# Relative size below which an eigenvalue of the NNLS normal matrix counts as zero.
EIG_RTOL = 1e-12

MAC_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})
MAC_FEATURES = ("macs", "tail_macs", "out_elems", "out_pixels", "window", "gather", "const")
OTHER_FEATURES = ("reduce_ops", "out_elems", "const")
ALL_FEATURES = ("macs", "tail_macs", "reduce_ops", "out_elems", "out_pixels", "window",
                "gather", "const")


def features_for(op: str) -> tuple[str, ...]:
    """The feature names of ``op``'s family."""
    return MAC_FEATURES if op in MAC_OPS else OTHER_FEATURES


def _shape(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value) if value else []
    return [int(v) for v in value]


def _tail_fraction(c: int) -> float:
    """Share of a length-``c`` reduction that runs on the scalar path after 4-wide chunks."""
    return (c % SIMD_LANES) / c if c > 0 else 0.0


def layer_rows(layers: Sequence[Mapping[str, Any]], *,
               input_shape: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One model's layer records (``LayerOut``-shaped dicts, in operator order) with the
    derived feature columns added (see the module docstring): ``out_elems``, ``out_channels``,
    ``in_channels`` (the estimate used, or None), ``out_pixels``, ``tail_macs``,
    ``reduce_ops``. ``input_shape`` is the model's input shape, for the first layer."""
    rows: list[dict[str, Any]] = []
    prev_c: int | None = int(input_shape[-1]) if input_shape else None
    for i, layer in enumerate(layers):
        op = str(layer["op"])
        macs = int(layer.get("macs") or 0)
        ops = int(layer.get("ops") or 0)
        shape = _shape(layer.get("output_shape"))
        out_elems = math.prod(shape) if shape else 0
        out_c = shape[-1] if shape else 0
        given_in = _shape(layer.get("input_shape"))
        in_c: int | None = given_in[-1] if given_in else prev_c
        tail = 0.0
        per_out = macs / out_elems if out_elems else 0.0
        if op == "CONV_2D" and macs:
            # macs per output = kh·kw·in_c: a guessed in_c must divide it.
            if not in_c or per_out % in_c:
                in_c = round(per_out) or None
            tail = macs * _tail_fraction(in_c or 0)
        elif op == "DEPTHWISE_CONV_2D" and macs:
            multiplier_not_1 = bool(in_c) and in_c != out_c and out_c % (in_c or 1) == 0
            tail = float(macs) if multiplier_not_1 else macs * _tail_fraction(out_c)
        elif op == "FULLY_CONNECTED" and macs:
            in_c = round(per_out) or None
            tail = macs * _tail_fraction(in_c or 0)
        # CONV_2D: the values of every output pixel's window; read in place (direct) by a 1x1
        # kernel over a multiple of 4 channels, else gathered one by one.
        window = float(macs) / out_c if op == "CONV_2D" and out_c else 0.0
        direct = op == "CONV_2D" and bool(in_c) and per_out == in_c and (in_c or 0) % 4 == 0
        cycles = layer.get("cycles")
        rows.append({
            "layer_index": int(layer.get("index", i)),
            "op": op,
            "macs": macs,
            "ops": ops,
            "param_bytes": int(layer.get("param_bytes") or 0),
            "plan_bytes": int(layer.get("plan_bytes") or 0),
            "output_shape": "[" + ", ".join(map(str, shape)) + "]",  # = json.dumps(shape)
            "cycles": None if cycles is None else int(cycles),
            "out_elems": out_elems,
            "out_channels": out_c,
            "in_channels": in_c,
            "out_pixels": out_elems / out_c if out_c else 0.0,
            "window": window,
            "gather": window if not direct else 0.0,
            "tail_macs": float(tail),
            "reduce_ops": float(max(ops - out_elems, 0)) if not macs else 0.0,
        })
        prev_c = out_c or prev_c
    return rows


def layer_table(layers: Sequence[Mapping[str, Any]], *,
                input_shape: Sequence[int] | None = None) -> pd.DataFrame:
    """``layer_rows`` as a DataFrame."""
    return pd.DataFrame(layer_rows(layers, input_shape=input_shape))


def _design(layers: pd.DataFrame) -> np.ndarray:
    """The ``ALL_FEATURES`` columns of a layer table as a float matrix, one column per feature."""
    return np.column_stack([np.ones(len(layers)) if f == "const"
                            else layers[f].to_numpy(dtype=float) for f in ALL_FEATURES])


_COLUMN = {f: j for j, f in enumerate(ALL_FEATURES)}


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares of *relative* error: min Σ ((x·w − y) / y)² over w ≥ 0.

    Solved on the p × p normal equations rather than the n rows (scipy's active-set NNLS is
    O(n) per iteration, and n is every layer of every measurement): with A = XᵀX = V Λ Vᵀ and
    b = Xᵀy for the row-weighted X, y, ‖Λ^½ Vᵀ w − Λ^-½ Vᵀ b‖² equals ‖X w − y‖² up to a
    constant. Columns are RMS-scaled first (features span 1 to 10⁸); directions the data do
    not determine (eigenvalues below ``EIG_RTOL`` of the largest) are dropped, and all-zero
    columns get weight 0."""
    w = np.zeros(x.shape[1])
    rows = 1.0 / np.maximum(y, 1.0)  # √ of the sample weight 1 / y²
    xs = x * rows[:, None]
    scale = np.sqrt(np.mean(xs**2, axis=0))
    used = scale > 0
    if not used.any():
        return w
    xs = xs[:, used] / scale[used]
    ys = y * rows
    lam, vec = np.linalg.eigh(xs.T @ xs)
    keep = lam > EIG_RTOL * lam.max()
    lam, vec = lam[keep], vec[:, keep]
    r = np.sqrt(lam)[:, None] * vec.T
    t = (vec.T @ (xs.T @ ys)) / np.sqrt(lam)
    sol, _ = optimize.nnls(r, t)
    w[used] = sol / scale[used]
    return w


def _fit_weights(x: np.ndarray, ops: np.ndarray, y: np.ndarray,
                 ) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per-op-type weights (op types with at least ``MIN_LAYERS_PER_OP`` layers) and the
    pooled fallback, from a design matrix ``x`` (``ALL_FEATURES``), op names and cycles."""
    fallback = {f: float(v) for f, v in zip(ALL_FEATURES, _nnls(x, y), strict=True)}
    weights: dict[str, dict[str, float]] = {}
    for op in sorted(set(ops.tolist())):
        rows = ops == op
        if rows.sum() < MIN_LAYERS_PER_OP:
            continue
        names = features_for(op)
        w = _nnls(x[np.ix_(rows, [_COLUMN[f] for f in names])], y[rows])
        weights[op] = {f: float(v) for f, v in zip(names, w, strict=True)}
    return weights, fallback


def _layer_predictions(weights: Mapping[str, Mapping[str, float]],
                       fallback: Mapping[str, float], x: np.ndarray,
                       ops: np.ndarray) -> np.ndarray:
    """Predicted cycles of each layer (rows of ``x``, op names ``ops``)."""
    out = np.zeros(len(ops))
    for op in set(ops.tolist()):
        rows = ops == op
        w = weights.get(op, fallback)
        vec = np.zeros(len(ALL_FEATURES))
        for f, v in w.items():
            vec[_COLUMN[f]] = v
        out[rows] = x[rows] @ vec
    return out


@dataclass(frozen=True)
class _Data:
    """A measurement frame and its layers as arrays: ``pos[i]`` is the row in ``m`` of layer
    ``i``."""

    m: pd.DataFrame
    x: np.ndarray
    ops: np.ndarray
    cycles: np.ndarray
    pos: np.ndarray

    @classmethod
    def of(cls, measurements: pd.DataFrame, layers: pd.DataFrame) -> _Data:
        m = measurements.reset_index(drop=True)
        where = pd.Series(np.arange(len(m)), index=m["measurement_id"].to_numpy())
        lay = layers[layers["measurement_id"].isin(where.index)]
        return cls(m=m, x=_design(lay), ops=lay["op"].to_numpy(dtype=object).astype(str),
                   cycles=lay["cycles"].to_numpy(dtype=float, na_value=np.nan),
                   pos=where.reindex(lay["measurement_id"].to_numpy()).to_numpy(dtype=int))

    def layers_of(self, rows: np.ndarray) -> np.ndarray:
        """Mask of the layers of measurement rows ``rows``."""
        chosen = np.zeros(len(self.m), dtype=bool)
        chosen[rows] = True
        return np.asarray(chosen[self.pos])

    def predict_ms(self, weights: Mapping[str, Mapping[str, float]],
                   fallback: Mapping[str, float], overhead_cycles: float, clock_hz: float,
                   rows: np.ndarray) -> np.ndarray:
        """Predicted latency in ms of measurement rows ``rows``."""
        mask = self.layers_of(rows)
        pred = _layer_predictions(weights, fallback, self.x[mask], self.ops[mask])
        total = np.bincount(self.pos[mask], weights=pred, minlength=len(self.m))
        return np.asarray((total[rows] + overhead_cycles) / clock_hz * 1e3)

    def overhead(self, rows: np.ndarray) -> float:
        """Median per-inference overhead (cycles − Σ layer cycles) of measurement rows."""
        mask = self.layers_of(rows)
        sums = np.bincount(self.pos[mask], weights=self.cycles[mask], minlength=len(self.m))
        total = self.m["cycles"].to_numpy(dtype=float, na_value=np.nan)[rows]
        over = total - sums[rows]
        over = over[np.isfinite(over)]
        return max(float(np.median(over)), 0.0) if len(over) else 0.0


@dataclass(frozen=True)
class PerLayerModel:
    """Per-op-type cycle weights, a per-inference overhead and the device clock.

    ``weights[op][feature]`` are cycles per unit of feature; ``fallback`` the pooled weights
    for op types without their own. ``cv`` scores whole-model latency on out-of-fold
    predictions (folds grouped by model), ``in_sample`` on the training models, ``layer_r2``
    the per-layer cycles in sample. ``rel_lo`` / ``rel_hi`` are the ``level`` quantiles of the
    out-of-fold relative error (measured / predicted − 1), the prediction interval.
    """

    clock_hz: float
    overhead_cycles: float
    weights: dict[str, dict[str, float]]
    fallback: dict[str, float]
    n: int
    n_models: int
    n_layers: int
    k: int
    in_sample: Metrics
    cv: Metrics
    layer_r2: float
    level: float
    rel_lo: float
    rel_hi: float
    backbones: tuple[str, ...] = field(default=())

    def unseen_ops(self, layers: Sequence[Mapping[str, Any]]) -> list[str]:
        """Op types in ``layers`` that this model predicts with the pooled fallback."""
        return sorted({str(layer["op"]) for layer in layers} - set(self.weights))

    def layer_cycles(self, layers: Sequence[Mapping[str, Any]], *,
                     input_shape: Sequence[int] | None = None) -> np.ndarray:
        """Predicted cycles of each layer of one model (``LayerOut``-shaped dicts, in order)."""
        if not layers:
            return np.zeros(0)
        table = layer_table(layers, input_shape=input_shape)
        return _layer_predictions(self.weights, self.fallback, _design(table),
                                  table["op"].to_numpy(dtype=str))

    def predict_cycles(self, layers: Sequence[Mapping[str, Any]], *,
                       input_shape: Sequence[int] | None = None) -> float:
        """Predicted cycles of one inference: the layers plus the per-inference overhead."""
        return float(self.layer_cycles(layers, input_shape=input_shape).sum()
                     + self.overhead_cycles)

    def predict(self, layers: Sequence[Mapping[str, Any]], *,
                input_shape: Sequence[int] | None = None) -> Prediction:
        """Predicted latency in ms of the model with these layers, with the cross-validated
        ``level`` interval; ``extrapolated`` when an op type was not fitted on its own."""
        value = self.predict_cycles(layers, input_shape=input_shape) / self.clock_hz * 1e3
        return Prediction(value=value, lo=max(value * (1.0 + self.rel_lo), 0.0),
                          hi=value * (1.0 + self.rel_hi), level=self.level,
                          extrapolated=bool(self.unseen_ops(layers)))

    def predict_frame(self, measurements: pd.DataFrame, layers: pd.DataFrame) -> np.ndarray:
        """Predicted latency in ms of each row of a measurement frame, from a layer frame with
        the feature columns (``service.fitting.frames``)."""
        data = _Data.of(measurements, layers)
        return data.predict_ms(self.weights, self.fallback, self.overhead_cycles,
                               self.clock_hz, np.arange(len(data.m)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": PER_LAYER_KIND, "schema": PER_LAYER_SCHEMA,
            "clock_hz": self.clock_hz, "overhead_cycles": self.overhead_cycles,
            "weights": {op: dict(w) for op, w in self.weights.items()},
            "fallback": dict(self.fallback),
            "n": self.n, "n_models": self.n_models, "n_layers": self.n_layers, "k": self.k,
            "in_sample": self.in_sample.to_dict(), "cv": self.cv.to_dict(),
            "layer_r2": self.layer_r2, "level": self.level,
            "rel_lo": self.rel_lo, "rel_hi": self.rel_hi, "backbones": list(self.backbones),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PerLayerModel:
        if d.get("kind") != PER_LAYER_KIND or d.get("schema") != PER_LAYER_SCHEMA:
            raise FitError(f"not a {PER_LAYER_KIND} fit of schema {PER_LAYER_SCHEMA}: kind "
                           f"{d.get('kind')!r}, schema {d.get('schema')!r}; refit it")
        return cls(
            clock_hz=float(d["clock_hz"]), overhead_cycles=float(d["overhead_cycles"]),
            weights={str(op): {str(f): float(v) for f, v in w.items()}
                     for op, w in d["weights"].items()},
            fallback={str(f): float(v) for f, v in d["fallback"].items()},
            n=int(d["n"]), n_models=int(d["n_models"]), n_layers=int(d["n_layers"]),
            k=int(d["k"]), in_sample=Metrics.from_dict(d["in_sample"]),
            cv=Metrics.from_dict(d["cv"]), layer_r2=float(d["layer_r2"]),
            level=float(d["level"]), rel_lo=float(d["rel_lo"]), rel_hi=float(d["rel_hi"]),
            backbones=tuple(str(b) for b in d.get("backbones", ())),
        )


def _clock_hz(measurements: pd.DataFrame, device_class: str, clock_hz: float | None) -> float:
    """The clock that turned cycles into latency_ms: given, else read off the measurements
    (cycles / latency), else the board catalogue's."""
    if clock_hz:
        return float(clock_hz)
    ok = measurements["cycles"].notna() & (measurements["latency_ms"] > 0)
    if ok.any():
        ratio = (measurements.loc[ok, "cycles"].astype(float)
                 / measurements.loc[ok, "latency_ms"].astype(float) * 1e3)
        return float(ratio.median())
    from bench_firmware.boards import get_board
    from bench_firmware.errors import McuprofError

    try:
        hz = get_board(device_class).clock_hz
    except McuprofError as e:
        raise FitError(f"no cycle counts to read the clock of {device_class!r} from, and it "
                       f"is not a known board; pass clock_hz") from e
    if not hz:
        raise FitError(f"{device_class!r} has no cycle clock (host build): nothing to fit")
    return float(hz)


def usable(measurements: pd.DataFrame,
            layers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measurements with a latency whose every layer has a cycle count, and their layers."""
    m = measurements[measurements["latency_ms"].notna() & (measurements["latency_ms"] > 0)]
    lay = layers[layers["measurement_id"].isin(m["measurement_id"])]
    missing = lay["cycles"].isna().groupby(lay["measurement_id"]).any()
    keep = missing.index[~missing.to_numpy(dtype=bool)]
    m = m[m["measurement_id"].isin(keep)].reset_index(drop=True)
    lay = lay[lay["measurement_id"].isin(keep)].reset_index(drop=True)
    return m, lay


def _single(measurements: pd.DataFrame, column: str, given: str | None) -> str:
    values = sorted(str(v) for v in measurements[column].dropna().unique())
    if given is not None:
        return given
    if len(values) != 1:
        raise FitError(f"the measurements span {column} {values or '(none)'}; a per-layer model "
                       f"is per device and kernel path: select one")
    return values[0]


def fit_per_layer(measurements: pd.DataFrame, layers: pd.DataFrame, *,
                  k_folds: int = DEFAULT_K_FOLDS, seed: int = 0,
                  clock_hz: float | None = None, level: float = DEFAULT_LEVEL,
                  device_class: str | None = None, kernels: str | None = None,
                  ) -> PerLayerModel:
    """Fit the per-layer-type model on one device class's measurements (frames as built by
    ``service.fitting.frames``: a measurement frame and its layer frame) of any backbones.

    Uses the measurements with a latency whose every layer has cycles. Raises
    ``InsufficientDataError`` below ``MIN_MODELS`` distinct models, ``FitError`` when the
    frames mix device classes or kernel paths (or pass ``device_class`` / ``kernels``).
    """
    if device_class is not None:
        measurements = measurements[measurements["device_class"] == device_class]
    if kernels is not None:
        measurements = measurements[measurements["kernels"] == kernels]
    m, lay = usable(measurements, layers)
    n_models = int(m["model_id"].nunique())
    if n_models < MIN_MODELS:
        raise InsufficientDataError(
            f"insufficient data: {n_models} models with per-layer cycles, the per-layer model "
            f"needs at least {MIN_MODELS}; profile more models on this device",
            n=n_models, needed=MIN_MODELS)
    dev = _single(m, "device_class", device_class)
    _single(m, "kernels", kernels)
    hz = _clock_hz(m, dev, clock_hz)
    y = m["latency_ms"].to_numpy(dtype=float)

    data = _Data.of(m, lay)
    oof = np.empty(len(m))
    splits = folds(len(m), k_folds=k_folds, seed=seed, groups=m["model_id"].to_numpy())
    for train, test in splits:
        mask = data.layers_of(train)
        w, fb = _fit_weights(data.x[mask], data.ops[mask], data.cycles[mask])
        oof[test] = data.predict_ms(w, fb, data.overhead(train), hz, test)

    everything = np.arange(len(m))
    weights, fallback = _fit_weights(data.x, data.ops, data.cycles)
    overhead = data.overhead(everything)
    fitted = data.predict_ms(weights, fallback, overhead, hz, everything)
    layer_fit = _layer_predictions(weights, fallback, data.x, data.ops)
    # Relative error measured / predicted − 1; a zero prediction (no weights) counts as +∞.
    rel = np.where(oof > 0, y / np.maximum(oof, np.finfo(float).tiny) - 1.0, np.inf)
    tail = (1.0 - level) / 2.0
    backbones = (tuple(sorted(str(b) for b in m["backbone"].dropna().unique()))
                 if "backbone" in m else ())
    return PerLayerModel(
        clock_hz=hz, overhead_cycles=overhead, weights=weights, fallback=fallback,
        n=len(m), n_models=n_models, n_layers=len(lay), k=len(splits),
        in_sample=score(y, fitted), cv=score(y, oof),
        layer_r2=float(r2_score(data.cycles, layer_fit)),
        level=level, rel_lo=float(np.quantile(rel, tail)),
        rel_hi=float(np.quantile(rel, 1.0 - tail)), backbones=backbones,
    )


@dataclass(frozen=True)
class HeldOutReport:
    """How well latency on a backbone never measured is predicted from the others.

    ``line`` is the op-count line pooled over the training backbones' measurements (the only
    line one can have for a backbone without measurements; MicroNets fits per backbone, so this
    is the line at its disadvantage), ``per_layer`` the per-layer model fitted on the same
    measurements; ``line_held_out`` / ``per_layer_held_out`` score both on the held-out
    backbone. ``own_line_cv`` is the cross-validated line fitted on the held-out backbone
    itself, the reference that needs its measurements (None when there are too few).
    """

    device_class: str
    kernels: str
    held_out: str
    train_backbones: tuple[str, ...]
    n_train: int
    n_held_out: int
    line: LineFit
    per_layer: PerLayerModel
    line_held_out: Metrics
    per_layer_held_out: Metrics
    own_line_cv: Metrics | None

    def summary(self) -> str:
        def fmt(m: Metrics) -> str:
            return f"r² {m.r2:.3f}, MAPE {m.mape:.1%}, ±10% acc {m.acc10:.0%}"
        own = f"; its own line (CV): {fmt(self.own_line_cv)}" if self.own_line_cv else ""
        return (f"{self.device_class} held-out {self.held_out} (n={self.n_held_out}), trained on "
                f"{', '.join(self.train_backbones)} (n={self.n_train}): pooled op-count line "
                f"{fmt(self.line_held_out)}; per-layer model {fmt(self.per_layer_held_out)}{own}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_class": self.device_class, "kernels": self.kernels,
            "held_out": self.held_out, "train_backbones": list(self.train_backbones),
            "n_train": self.n_train, "n_held_out": self.n_held_out,
            "line": self.line.to_dict(), "per_layer": self.per_layer.to_dict(),
            "line_held_out": self.line_held_out.to_dict(),
            "per_layer_held_out": self.per_layer_held_out.to_dict(),
            "own_line_cv": self.own_line_cv.to_dict() if self.own_line_cv else None,
        }


def evaluate_held_out_backbone(measurements: pd.DataFrame, layers: pd.DataFrame,
                               held_out: str = "vww", *, device_class: str | None = None,
                               kernels: str | None = None, k_folds: int = DEFAULT_K_FOLDS,
                               seed: int = 0) -> HeldOutReport:
    """Fit on every backbone but ``held_out`` and score both models on ``held_out``.

    The frames may hold several device classes or kernel paths only if ``device_class`` /
    ``kernels`` pick one. Measurements without a backbone tag are left out.
    """
    if device_class is not None:
        measurements = measurements[measurements["device_class"] == device_class]
    if kernels is not None:
        measurements = measurements[measurements["kernels"] == kernels]
    m, lay = usable(measurements[measurements["backbone"].notna()], layers)
    dev = _single(m, "device_class", device_class)
    kern = _single(m, "kernels", kernels)
    is_test = (m["backbone"] == held_out).to_numpy()
    if not is_test.any():
        raise FitError(f"no measurements of backbone {held_out!r} on {dev}; backbones there: "
                       f"{sorted(m['backbone'].unique())}")
    train, test = m[~is_test], m[is_test]
    if train.empty:
        raise FitError(f"only backbone {held_out!r} was measured on {dev}: nothing to train on")
    train_lay = lay[lay["measurement_id"].isin(train["measurement_id"])]
    test_lay = lay[lay["measurement_id"].isin(test["measurement_id"])]
    y_test = test["latency_ms"].to_numpy(dtype=float)

    line = fit_ops_line(train["ops"], train["latency_ms"], k_folds=k_folds, seed=seed,
                        groups=train["model_id"].to_numpy())
    per_layer = fit_per_layer(train, train_lay, k_folds=k_folds, seed=seed)
    try:
        own: Metrics | None = fit_ops_line(test["ops"], test["latency_ms"], k_folds=k_folds,
                                           seed=seed, groups=test["model_id"].to_numpy()).cv
    except InsufficientDataError:
        own = None
    return HeldOutReport(
        device_class=dev, kernels=kern, held_out=held_out,
        train_backbones=tuple(sorted(str(b) for b in train["backbone"].unique())),
        n_train=len(train), n_held_out=len(test), line=line, per_layer=per_layer,
        line_held_out=score(y_test, line.predict_ms(test["ops"].to_numpy(dtype=float))),
        per_layer_held_out=score(y_test, per_layer.predict_frame(test, test_lay)),
        own_line_cv=own,
    )
