"""AVERAGE_POOL_2D, MAX_POOL_2D, ADD, PAD, SOFTMAX, RELU, RELU6, MEAN, CONCATENATION, QUANTIZE
and DEQUANTIZE: plan compiler + host kernels against TensorFlow Lite Micro, bit for bit.

Small Keras models, converted to int8 by the real TFLite converter, mostly without weighted
layers (pools, ADDs and concatenations of branches of the input) so they exercise these ops
alone; a few put a conv or dense layer in front to get the scales real networks have. The
representative data's spread (``std``) sets the input scale, so softmax and RELU6 see small
and large scales. Quantizations the converter never emits (MEAN with equal input and output
quantization, which older TFLM releases computed differently) are made by editing the
converted flatbuffer.
Each model runs on four inputs (calibration-like, uniform, the int8 extremes) with both
kernel paths. A last group checks that the compiler refuses what TFLM would not run the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import tflite

from bench_firmware.boards import HOST
from bench_firmware.compiler import compile_model
from bench_firmware.errors import UnsupportedOpError
from bench_firmware.host import run_plan
from bench_firmware.tflite_model import Graph, read_tflite
from tests.tflite_convert import import_tf, quiet, to_int8_tflite

pytestmark = pytest.mark.slow

REPRESENTATIVE_SAMPLES = 16
INPUT_KINDS = ("signal", "signal", "uniform", "extremes")

Build = Callable[[Any, Any, Any], Any]  # (tf, keras, input) -> output
Patch = Callable[[bytearray, Graph], None]  # edits the converted model in place


@dataclass(frozen=True)
class Case:
    name: str
    input_shape: tuple[int, ...]  # without the batch dimension
    build: Build
    ops: frozenset[str]
    std: float = 1.0  # spread of the representative data: sets the input scale
    float_io: bool = False
    fused: dict[str, str] = field(default_factory=dict)  # op -> fused activation expected
    patch: Patch | None = None
    refuse: str | None = None  # the compiler must refuse the model with this message


def _ops(*names: str) -> frozenset[str]:
    return frozenset(names)


def _set_quant(model: bytearray, tensor: int, scale: float, zero_point: int) -> None:
    """Overwrite one tensor's (per-tensor) quantization in the flatbuffer, in place."""
    t = tflite.Model.GetRootAsModel(model, 0).Subgraphs(0).Tensors(tensor)
    q = t.Quantization()
    q.ScaleAsNumpy()[0] = scale
    q.ZeroPointAsNumpy()[0] = zero_point


def _output_like_input(op_name: str) -> Patch:
    """Give ``op_name``'s output its input's quantization."""
    def patch(model: bytearray, graph: Graph) -> None:
        op = next(o for o in graph.operators if o.name == op_name)
        src = op.inputs[0]
        assert src is not None
        _set_quant(model, op.outputs[0].index, src.scale, src.zero_point)
    return patch


def _input_quant(op_name: str, k: int, scale_factor: float) -> Patch:
    """Scale the quantization of input ``k`` of ``op_name``."""
    def patch(model: bytearray, graph: Graph) -> None:
        op = next(o for o in graph.operators if o.name == op_name)
        t = op.inputs[k]
        assert t is not None
        _set_quant(model, t.index, t.scale * scale_factor, t.zero_point)
    return patch


def _output_quant(op_name: str, scale: float, zero_point: int) -> Patch:
    def patch(model: bytearray, graph: Graph) -> None:
        op = next(o for o in graph.operators if o.name == op_name)
        _set_quant(model, op.outputs[0].index, scale, zero_point)
    return patch


def _add_bias(keras: Any, x: Any) -> Any:
    """``x + b`` with a trained-looking per-channel constant ``b``: ADD with a constant."""
    class AddBias(keras.layers.Layer):  # type: ignore[misc, name-defined]
        def build(self, shape: Any) -> None:
            self.b = self.add_weight(shape=(shape[-1],),
                                     initializer=keras.initializers.RandomNormal(stddev=1.0))

        def call(self, t: Any) -> Any:
            return t + self.b

    return AddBias()(x)


def _conv(keras: Any, filters: int, kernel: int, **kw: Any) -> Any:
    kw.setdefault("padding", "same")
    kw.setdefault("bias_initializer", keras.initializers.RandomNormal(stddev=0.3))
    return keras.layers.Conv2D(filters, kernel, **kw)


def _dense(keras: Any, units: int, stddev: float) -> Any:
    return keras.layers.Dense(units,
                              kernel_initializer=keras.initializers.RandomNormal(stddev=stddev),
                              bias_initializer=keras.initializers.RandomNormal(stddev=0.3))


AVG, MAX = "AVERAGE_POOL_2D", "MAX_POOL_2D"

CASES = [
    # AVERAGE_POOL_2D / MAX_POOL_2D
    Case("avgpool_same_3x2_s2x1", (7, 6, 3),
         lambda tf, k, x: k.layers.AveragePooling2D((3, 2), (2, 1), padding="same")(x),
         _ops(AVG)),
    Case("avgpool_valid_3x3_s2", (9, 8, 5),
         lambda tf, k, x: k.layers.AveragePooling2D(3, 2, padding="valid")(x), _ops(AVG)),
    Case("avgpool_same_4x1_s1x3", (6, 7, 2),
         lambda tf, k, x: k.layers.AveragePooling2D((4, 1), (1, 3), padding="same")(x),
         _ops(AVG)),
    Case("avgpool_whole_map_7x5", (7, 5, 4),
         lambda tf, k, x: k.layers.AveragePooling2D((7, 5))(x), _ops(AVG)),
    Case("maxpool_same_3x2_s2x1", (7, 6, 3),
         lambda tf, k, x: k.layers.MaxPooling2D((3, 2), (2, 1), padding="same")(x), _ops(MAX)),
    Case("maxpool_valid_2x2_s2_odd", (9, 9, 4),
         lambda tf, k, x: k.layers.MaxPooling2D(2, 2, padding="valid")(x), _ops(MAX)),
    Case("maxpool_fused_relu", (6, 6, 3),
         lambda tf, k, x: k.layers.ReLU()(k.layers.MaxPooling2D(2)(x)), _ops(MAX),
         fused={MAX: "RELU"}),
    Case("avgpool_after_conv", (8, 8, 3),
         lambda tf, k, x: k.layers.AveragePooling2D(2)(_conv(k, 6, 3)(x)),
         _ops("CONV_2D", AVG)),
    # ADD
    Case("add_input_and_relu", (5, 6, 3),
         lambda tf, k, x: k.layers.Add()([x, k.layers.ReLU()(x)]), _ops("RELU", "ADD")),
    Case("add_fused_relu", (5, 6, 3),
         lambda tf, k, x: k.layers.ReLU()(k.layers.Add()([x, k.layers.ReLU()(x)])),
         _ops("RELU", "ADD"), fused={"ADD": "RELU"}),
    Case("add_fused_relu6", (4, 4, 5),
         lambda tf, k, x: k.layers.ReLU(6.0)(k.layers.Add()([x, k.layers.ReLU()(x)])),
         _ops("RELU", "ADD"), std=4.0, fused={"ADD": "RELU6"}),
    Case("add_self", (4, 4, 3), lambda tf, k, x: k.layers.Add()([x, x]), _ops("ADD"), std=5.0),
    Case("add_constant_per_channel", (4, 5, 6), lambda tf, k, x: _add_bias(k, x), _ops("ADD")),
    Case("add_constant_scalar", (4, 5, 6),
         lambda tf, k, x: k.layers.Lambda(lambda t: t + 0.7)(x), _ops("ADD")),
    Case("add_broadcast_mean", (4, 4, 3),
         lambda tf, k, x: k.layers.Add()(
             [x, k.layers.GlobalAveragePooling2D(keepdims=True)(x)]),
         _ops("MEAN", "RESHAPE", "ADD")),
    Case("add_broadcast_first", (3, 5, 4),
         lambda tf, k, x: k.layers.Add()(
             [k.layers.GlobalAveragePooling2D(keepdims=True)(x), x]),
         _ops("MEAN", "ADD")),
    Case("add_residual_conv", (6, 6, 4),
         lambda tf, k, x: k.layers.Add()([x, _conv(k, 4, 3)(x)]), _ops("CONV_2D", "ADD")),
    # PAD
    Case("pad_asymmetric", (4, 5, 3),
         lambda tf, k, x: k.layers.ZeroPadding2D(((2, 1), (0, 3)))(x), _ops("PAD")),
    Case("pad_rank3", (9, 4), lambda tf, k, x: k.layers.ZeroPadding1D((3, 1))(x), _ops("PAD")),
    Case("pad_then_maxpool", (5, 5, 2),
         lambda tf, k, x: k.layers.MaxPooling2D(3, 2)(k.layers.ZeroPadding2D(1)(x)),
         _ops("PAD", MAX)),
    Case("padv2_constant", (4, 4, 3),
         lambda tf, k, x: k.layers.Lambda(lambda t: tf.pad(
             t, [[0, 0], [1, 2], [2, 0], [0, 1]], constant_values=0.5))(x),
         _ops("PADV2")),
    # SOFTMAX
    Case("softmax_10_narrow", (10,), lambda tf, k, x: k.layers.Softmax()(x), _ops("SOFTMAX"),
         std=0.5),
    Case("softmax_100", (100,), lambda tf, k, x: k.layers.Softmax()(x), _ops("SOFTMAX"),
         std=3.0),
    Case("softmax_1000_wide", (1000,), lambda tf, k, x: k.layers.Softmax()(x),
         _ops("SOFTMAX"), std=20.0),
    Case("softmax_rows_4d", (3, 4, 10), lambda tf, k, x: k.layers.Softmax()(x),
         _ops("SOFTMAX"), std=2.0),
    *[Case(f"softmax_dense_w{w}", (24,),
           lambda tf, k, x, w=w, n=n: k.layers.Softmax()(_dense(k, n, w)(x)),
           _ops("FULLY_CONNECTED", "SOFTMAX"))
      for w, n in ((0.05, 10), (1.0, 37), (5.0, 12))],
    # RELU / RELU6 (standalone: on the input or after a concatenation nothing fuses them)
    Case("relu_on_input", (4, 5, 6), lambda tf, k, x: k.layers.ReLU()(x), _ops("RELU")),
    Case("relu6_on_input", (4, 5, 6), lambda tf, k, x: k.layers.ReLU(6.0)(x), _ops("RELU6"),
         std=5.0),
    Case("relu_after_concat", (4, 4, 3),
         lambda tf, k, x: k.layers.ReLU()(k.layers.Concatenate()(
             [x, k.layers.MaxPooling2D(2, 1, padding="same")(x)])),
         _ops(MAX, "CONCATENATION", "RELU")),
    Case("relu6_after_concat", (4, 4, 3),
         lambda tf, k, x: k.layers.ReLU(6.0)(k.layers.Concatenate()(
             [x, k.layers.MaxPooling2D(2, 1, padding="same")(x)])),
         _ops(MAX, "CONCATENATION", "RELU6"), std=5.0),
    # MEAN (GlobalAveragePooling2D)
    Case("mean_gap", (5, 3, 4), lambda tf, k, x: k.layers.GlobalAveragePooling2D()(x),
         _ops("MEAN")),
    Case("mean_gap_keepdims", (6, 6, 8),
         lambda tf, k, x: k.layers.GlobalAveragePooling2D(keepdims=True)(x), _ops("MEAN")),
    Case("mean_gap_15x13", (15, 13, 3), lambda tf, k, x: k.layers.GlobalAveragePooling2D()(x),
         _ops("MEAN"), std=3.0),
    Case("mean_gap_70ch", (4, 4, 70), lambda tf, k, x: k.layers.GlobalAveragePooling2D()(x),
         _ops("MEAN")),
    Case("mean_equal_quantization", (5, 3, 4),
         lambda tf, k, x: k.layers.GlobalAveragePooling2D()(x), _ops("MEAN"),
         patch=_output_like_input("MEAN")),
    Case("mean_equal_quantization_keepdims", (7, 7, 6),
         lambda tf, k, x: k.layers.GlobalAveragePooling2D(keepdims=True)(x), _ops("MEAN"),
         patch=_output_like_input("MEAN")),
    Case("mean_after_conv", (6, 5, 3),
         lambda tf, k, x: k.layers.GlobalAveragePooling2D()(_conv(k, 8, 3, activation="relu")(x)),
         _ops("CONV_2D", "MEAN")),
    # CONCATENATION (and QUANTIZE int8 -> int8, which the converter puts before a concat input
    # whose scale is fixed elsewhere)
    Case("concat_channels", (4, 4, 3),
         lambda tf, k, x: k.layers.Concatenate()(
             [x, k.layers.ReLU()(x), k.layers.MaxPooling2D(2, 1, padding="same")(x)]),
         _ops(MAX, "RELU", "CONCATENATION")),
    Case("concat_height", (4, 4, 3),
         lambda tf, k, x: k.layers.Concatenate(axis=1)([x, k.layers.MaxPooling2D((2, 1))(x)]),
         _ops(MAX, "CONCATENATION")),
    Case("concat_softmax_requantized", (10,),
         lambda tf, k, x: k.layers.Concatenate()([k.layers.Softmax()(x), x]),
         _ops("SOFTMAX", "QUANTIZE", "CONCATENATION"), std=2.0),
    # QUANTIZE float32 -> int8 at the input, DEQUANTIZE int8 -> float32 at the output
    Case("float_io_avgpool", (4, 4, 3), lambda tf, k, x: k.layers.AveragePooling2D(2)(x),
         _ops("QUANTIZE", AVG, "DEQUANTIZE"), float_io=True),
    Case("float_io_softmax", (12,), lambda tf, k, x: k.layers.Softmax()(x),
         _ops("QUANTIZE", "SOFTMAX", "DEQUANTIZE"), std=3.0, float_io=True),
    Case("float_io_mean", (5, 5, 3), lambda tf, k, x: k.layers.GlobalAveragePooling2D()(x),
         _ops("QUANTIZE", "MEAN", "DEQUANTIZE"), std=0.3, float_io=True),
    # Refusals
    Case("refuse_softmax_output_scale", (10,), lambda tf, k, x: k.layers.Softmax()(x),
         _ops("SOFTMAX"), patch=_output_quant("SOFTMAX", 1.0 / 255, -128), refuse="1/256"),
    Case("refuse_concat_mixed_quantization", (4, 4, 3),
         lambda tf, k, x: k.layers.Concatenate()([x, k.layers.ReLU()(x)]),
         _ops("RELU", "CONCATENATION"), patch=_input_quant("CONCATENATION", 1, 2.0),
         refuse="quantized differently"),
    Case("refuse_add_two_sided_broadcast", (4, 4, 3),
         lambda tf, k, x: k.layers.Lambda(lambda t: t[0] + t[1])(
             [k.layers.MaxPooling2D((1, 4))(x), k.layers.MaxPooling2D((4, 1))(x)]),
         _ops(MAX, "ADD"), refuse="output's shape"),
    Case("refuse_mean_over_channels", (4, 4, 3),
         lambda tf, k, x: k.layers.Lambda(lambda t: tf.reduce_mean(t, axis=-1))(x),
         _ops("MEAN"), refuse="axes"),
    Case("refuse_pool_requantizing", (6, 6, 3), lambda tf, k, x: k.layers.MaxPooling2D(2)(x),
         _ops(MAX), patch=_output_quant(MAX, 0.5, 3), refuse="quantized differently"),
]
CASES_BY_NAME = {c.name: c for c in CASES}
RUN_CASES = [c.name for c in CASES if c.refuse is None]
REFUSE_CASES = [c.name for c in CASES if c.refuse is not None]


def _convert(case: Case, tf: Any, keras: Any, seed: int) -> bytes:
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    inp = keras.Input(case.input_shape, batch_size=1)
    model = keras.Model(inp, case.build(tf, keras, inp))
    shape = (1, *case.input_shape)

    def representative() -> Iterator[list[np.ndarray]]:
        rng = np.random.default_rng(seed)
        for _ in range(REPRESENTATIVE_SAMPLES):
            yield [(case.std * rng.standard_normal(shape)).astype(np.float32)]

    data = bytearray(to_int8_tflite(model, representative, float_io=case.float_io))
    if case.patch is not None:
        case.patch(data, read_tflite(bytes(data)))
    return bytes(data)


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    """name -> .tflite bytes for every case, converted once per test run."""
    pytest.importorskip("tensorflow")
    tf, keras = import_tf()
    out: dict[str, bytes] = {}
    with quiet():
        for seed, case in enumerate(CASES):
            out[case.name] = _convert(case, tf, keras, 2000 + seed)
    return out


def _inputs(graph: Graph, std: float) -> list[np.ndarray]:
    """One input per ``INPUT_KINDS`` entry, seeded by its position."""
    t = graph.inputs[0]
    xs = []
    for seed, kind in enumerate(INPUT_KINDS):
        rng = np.random.default_rng(seed)
        if t.dtype == "float32":
            scale = graph.operators[0].outputs[0].scale  # the QUANTIZE that follows
            if kind == "signal":
                x = std * rng.standard_normal(t.shape)
            elif kind == "uniform":
                x = rng.uniform(-200 * scale, 200 * scale, size=t.shape)
            else:  # halfway between quantization steps: the rounding rule decides
                x = (rng.integers(-140, 140, size=t.shape) + 0.5) * scale
            xs.append(np.asarray(x, dtype=np.float32))
        elif kind == "signal":
            q = np.round(std * rng.standard_normal(t.shape) / t.scale) + t.zero_point
            xs.append(np.clip(q, -128, 127).astype(np.int8))
        elif kind == "uniform":
            xs.append(rng.integers(-128, 128, size=t.shape, dtype=np.int8))
        else:
            choices = np.array([-128, -127, 126, 127, np.clip(t.zero_point, -128, 127)])
            xs.append(rng.choice(choices, size=t.shape).astype(np.int8))
    return xs


@pytest.mark.parametrize("name", RUN_CASES)
def test_matches_tflm_bit_exact(models: dict[str, bytes], name: str) -> None:
    from tests.oracle import tflm_run_all

    case = CASES_BY_NAME[name]
    model = models[name]
    graph = read_tflite(model)
    assert {op.name for op in graph.operators} == case.ops, "the converter changed the graph"
    for op_name, activation in case.fused.items():
        op = next(o for o in graph.operators if o.name == op_name)
        assert op.options.get("activation") == activation, f"{op_name} is not fused"
    try:
        plan = compile_model(model, HOST)
    except KeyError as e:  # ops/pad.py compiles PADV2; the plan needs PAD's op code for it
        if "PADV2" not in case.ops:
            raise
        pytest.skip(f"the compiler has no plan op code for PADV2 yet ({e!r})")
    xs = _inputs(graph, case.std)
    expected = tflm_run_all(model, xs)
    outputs = set()
    for x, want in zip(xs, expected, strict=True):
        for kernels in ("ref", "dsp"):
            got = run_plan(plan.data, x, output_bytes=want.nbytes, kernels=kernels)
            assert got == want.tobytes(), (
                f"{name} ({kernels} kernels) differs from TFLM: "
                f"{np.frombuffer(got, want.dtype)[:12]} vs {want.reshape(-1)[:12]}")
        outputs.add(want.tobytes())
    assert len(outputs) > 1, "every input gave the same output: the case tests nothing"


@pytest.mark.parametrize("name", REFUSE_CASES)
def test_compiler_refuses(models: dict[str, bytes], name: str) -> None:
    case = CASES_BY_NAME[name]
    model = models[name]
    assert {op.name for op in read_tflite(model).operators} == case.ops
    assert case.refuse is not None
    with pytest.raises(UnsupportedOpError, match=case.refuse):
        compile_model(model, HOST)
