"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: plan compiler + both host kernel paths
against TensorFlow Lite Micro, bit for bit.

Small Keras models (seeded He weights, non-zero biases) are converted to int8 by the real
TFLite converter (per-channel by default, per-tensor with ``_experimental_disable_per_channel``),
compiled with ``compile_model`` and run on the host library with ``kernels="ref"`` and
``"dsp"`` (the DSP path on the host runs the portable ACLE intrinsics of ``mp_acle.h``).
A second group checks those intrinsics against a Python model of the Arm ACLE semantics, and a
third the compiler's refusals, without TensorFlow.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench_firmware import plan_format as pf
from bench_firmware.boards import HOST
from bench_firmware.compiler import compile_model
from bench_firmware.errors import UnsupportedOpError
from bench_firmware.host import run_plan
from bench_firmware.ops.conv import compile_conv2d, compile_depthwise_conv2d
from bench_firmware.ops.fully_connected import (
    compile_fully_connected,
    fc_short_requant,
    fc_weight_quads,
)
from bench_firmware.tflite_model import Operator, Tensor, read_tflite
from tests.tflite_convert import import_tf, quiet, to_int8_tflite

pytestmark = pytest.mark.slow

INPUT_SEEDS = (0, 1, 2)  # 0 and 1: the calibration-like signal; 2: uniform int8 (saturating)
REPRESENTATIVE_SAMPLES = 16
FIRMWARE_INCLUDE = Path(__file__).resolve().parents[2] / "bench_firmware" / "firmware" / "include"


@dataclass(frozen=True)
class Case:
    name: str
    input_shape: tuple[int, ...]  # without the batch dimension
    build: Callable[[Any, Any], Any]  # (keras, input) -> output
    ops: frozenset[str]
    per_tensor: bool = False


def _he(keras: Any, mode: str = "fan_in") -> Any:
    return keras.initializers.VarianceScaling(2.0, mode, "truncated_normal")


def _conv(keras: Any, filters: int, kernel: Any, **kw: Any) -> Any:
    kw.setdefault("kernel_initializer", _he(keras))
    kw.setdefault("bias_initializer", keras.initializers.RandomNormal(stddev=0.3))
    return keras.layers.Conv2D(filters, kernel, **kw)


def _dw(keras: Any, kernel: Any, **kw: Any) -> Any:
    kw.setdefault("depthwise_initializer", _he(keras, "fan_out"))
    kw.setdefault("bias_initializer", keras.initializers.RandomNormal(stddev=0.3))
    return keras.layers.DepthwiseConv2D(kernel, **kw)


def _dense(keras: Any, units: int, **kw: Any) -> Any:
    kw.setdefault("kernel_initializer", _he(keras))
    if kw.get("use_bias", True):
        kw.setdefault("bias_initializer", keras.initializers.RandomNormal(stddev=0.3))
    return keras.layers.Dense(units, **kw)


CONV, DW, FC = frozenset({"CONV_2D"}), frozenset({"DEPTHWISE_CONV_2D"}), \
    frozenset({"FULLY_CONNECTED"})

CASES = [
    # CONV_2D
    Case("conv_3to7_same_s1_relu", (8, 8, 3),
         lambda k, x: _conv(k, 7, 3, padding="same", activation="relu")(x), CONV),
    Case("conv_5to13_valid_s2_relu6", (9, 9, 5),
         lambda k, x: _conv(k, 13, 3, padding="valid", strides=2, activation="relu6")(x), CONV),
    Case("conv_1ch_5x3_same_s2x1", (10, 9, 1),
         lambda k, x: _conv(k, 6, (5, 3), padding="same", strides=(2, 1))(x), CONV),
    Case("conv_dil2_same_relu", (11, 10, 4),
         lambda k, x: _conv(k, 5, 3, padding="same", dilation_rate=2, activation="relu")(x),
         CONV),
    Case("conv_dil2_valid_2x3", (10, 9, 3),
         lambda k, x: _conv(k, 4, (2, 3), padding="valid", dilation_rate=2)(x), CONV),
    Case("conv_even_same_s2_8to8", (8, 8, 8),
         lambda k, x: _conv(k, 8, 3, padding="same", strides=2, activation="relu6")(x), CONV),
    Case("conv_1x1_16to9", (4, 5, 16), lambda k, x: _conv(k, 9, 1)(x), CONV),
    Case("conv_12to1_same", (6, 7, 12), lambda k, x: _conv(k, 1, 3, padding="same")(x), CONV),
    Case("conv_per_tensor", (8, 8, 3),
         lambda k, x: _conv(k, 5, (3, 2), padding="valid", strides=2)(
             _conv(k, 7, 3, padding="same", activation="relu")(x)),
         CONV, per_tensor=True),
    # DEPTHWISE_CONV_2D
    Case("dw_m1_same_relu6", (8, 8, 8),
         lambda k, x: _dw(k, 3, padding="same", activation="relu6")(x), DW),
    Case("dw_m1_7ch_same_s2_relu", (9, 10, 7),
         lambda k, x: _dw(k, 3, padding="same", strides=2, activation="relu")(x), DW),
    Case("dw_m2_valid_s2", (9, 9, 4),
         lambda k, x: _dw(k, 3, padding="valid", strides=2, depth_multiplier=2)(x), DW),
    Case("dw_m3_same_5ch", (7, 7, 5),
         lambda k, x: _dw(k, 3, padding="same", depth_multiplier=3)(x), DW),
    Case("dw_dil2_same", (11, 11, 6),
         lambda k, x: _dw(k, 3, padding="same", dilation_rate=2, activation="relu")(x), DW),
    Case("dw_5x3_valid_s1x2_13ch", (9, 8, 13),
         lambda k, x: _dw(k, (5, 3), padding="valid", strides=(1, 2))(x), DW),
    Case("dw_1ch", (8, 8, 1), lambda k, x: _dw(k, 3, padding="same")(x), DW),
    Case("dw_per_tensor", (8, 8, 6),
         lambda k, x: _dw(k, 3, padding="valid", depth_multiplier=2)(
             _dw(k, 3, padding="same", activation="relu")(x)),
         DW, per_tensor=True),
    # FULLY_CONNECTED
    Case("fc_bias_relu", (37,),
         lambda k, x: _dense(k, 11)(_dense(k, 19, activation="relu")(x)), FC),
    Case("fc_nobias", (23,),
         lambda k, x: _dense(k, 5, activation="relu6")(_dense(k, 9, use_bias=False)(x)), FC),
    Case("fc_rows", (5, 7), lambda k, x: _dense(k, 6, activation="relu")(x), FC),
    Case("fc_one_output", (16,), lambda k, x: _dense(k, 1)(x), FC),
    Case("fc_per_tensor", (37,),
         lambda k, x: _dense(k, 3)(_dense(k, 19, activation="relu")(x)), FC, per_tensor=True),
    Case("fc_after_conv_flatten", (3, 4, 5),
         lambda k, x: _dense(k, 10)(k.layers.Flatten()(_conv(k, 6, 1)(x))),
         frozenset({"CONV_2D", "FULLY_CONNECTED", "RESHAPE"})),
]
CASE_NAMES = [c.name for c in CASES]


def _convert(case: Case, tf: Any, keras: Any, seed: int) -> bytes:
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    inp = keras.Input(case.input_shape, batch_size=1)
    model = keras.Model(inp, case.build(keras, inp))
    shape = (1, *case.input_shape)

    def representative() -> Iterator[list[np.ndarray]]:
        rng = np.random.default_rng(seed)
        for _ in range(REPRESENTATIVE_SAMPLES):
            yield [rng.standard_normal(shape).astype(np.float32)]

    return to_int8_tflite(model, representative, per_tensor=case.per_tensor)


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    """name -> .tflite bytes for every case, converted once per test run."""
    pytest.importorskip("tensorflow")
    tf, keras = import_tf()
    out: dict[str, bytes] = {}
    with quiet():
        for seed, case in enumerate(CASES):
            out[case.name] = _convert(case, tf, keras, 1000 + seed)
    return out


def _inputs(model: bytes) -> list[np.ndarray]:
    from tests.zoo import random_input

    return [random_input(model, seed, kind="uniform" if seed == 2 else "signal")
            for seed in INPUT_SEEDS]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_matches_tflm_bit_exact(models: dict[str, bytes], name: str) -> None:
    from tests.oracle import tflm_run_all

    case = next(c for c in CASES if c.name == name)
    model = models[name]
    graph = read_tflite(model)
    assert {op.name for op in graph.operators} == case.ops, "the converter changed the graph"
    if case.per_tensor:
        weighted = [op for op in graph.operators if op.name in CONV | DW | FC]
        assert all(len(op.inputs[1].scales) == 1 for op in weighted)  # type: ignore[arg-type,union-attr]
    plan = compile_model(model, HOST)
    xs = _inputs(model)
    expected = tflm_run_all(model, xs)
    outputs = set()
    for x, want in zip(xs, expected, strict=True):
        for kernels in ("ref", "dsp"):
            got = run_plan(plan.data, x, output_bytes=want.nbytes, kernels=kernels)
            assert got == want.tobytes(), (
                f"{name} ({kernels} kernels) differs from TFLM: "
                f"{np.frombuffer(got, np.int8)[:16]} vs {want.reshape(-1)[:16]}")
        outputs.add(want.tobytes())
    assert len(outputs) > 1, "every input gave the same output: the case tests nothing"


# --------------------------------------------------------------------------------------------
# mp_acle.h: the portable intrinsics against the Arm ACLE semantics
# --------------------------------------------------------------------------------------------

_ACLE_SHIM = r"""
#include "mp_acle.h"
uint32_t t_sxtb16(uint32_t x) { return mp_sxtb16(x); }
uint32_t t_sxtb16_ror8(uint32_t x) { return mp_sxtb16_ror8(x); }
uint32_t t_sxtab16(uint32_t a, uint32_t x) { return mp_sxtab16(a, x); }
uint32_t t_sxtab16_ror8(uint32_t a, uint32_t x) { return mp_sxtab16_ror8(a, x); }
int32_t t_smlad(uint32_t a, uint32_t b, int32_t c) { return mp_smlad(a, b, c); }
int32_t t_smlabb(uint32_t a, uint32_t b, int32_t c) { return mp_smlabb(a, b, c); }
int32_t t_smlatt(uint32_t a, uint32_t b, int32_t c) { return mp_smlatt(a, b, c); }
uint32_t t_sadd16(uint32_t a, uint32_t b) { return mp_sadd16(a, b); }
uint32_t t_qadd16(uint32_t a, uint32_t b) { return mp_qadd16(a, b); }
uint32_t t_ror(uint32_t x, uint32_t n) { return mp_ror(x, n); }
uint32_t t_pack16(int32_t lo, int32_t hi) { return mp_pack16(lo, hi); }
uint32_t t_load32(const uint8_t *p) { return mp_load32(p); }
"""


def _s(x: int, bits: int) -> int:
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def _lanes8(x: int) -> list[int]:
    return [_s(x >> (8 * k), 8) for k in range(4)]


def _lo(x: int) -> int:
    return _s(x, 16)


def _hi(x: int) -> int:
    return _s(x >> 16, 16)


def _halves(lo: int, hi: int) -> int:
    return (lo & 0xFFFF) | ((hi & 0xFFFF) << 16)


def _wrap32(x: int) -> int:
    return _s(x, 32)


def _sat16(x: int) -> int:
    return max(-32768, min(32767, x))


def _ror(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


# The ACLE / Armv7-M ARM (A7.7) definitions, in Python.
ACLE_MODEL: dict[str, Callable[..., int]] = {
    "sxtb16": lambda x: _halves(_lanes8(x)[0], _lanes8(x)[2]),
    "sxtb16_ror8": lambda x: _halves(_lanes8(x)[1], _lanes8(x)[3]),
    "sxtab16": lambda a, x: _halves(_lo(a) + _lanes8(x)[0], _hi(a) + _lanes8(x)[2]),
    "sxtab16_ror8": lambda a, x: _halves(_lo(a) + _lanes8(x)[1], _hi(a) + _lanes8(x)[3]),
    "smlad": lambda a, b, c: _wrap32(c + _lo(a) * _lo(b) + _hi(a) * _hi(b)),
    "smlabb": lambda a, b, c: _wrap32(c + _lo(a) * _lo(b)),
    "smlatt": lambda a, b, c: _wrap32(c + _hi(a) * _hi(b)),
    "sadd16": lambda a, b: _halves(_lo(a) + _lo(b), _hi(a) + _hi(b)),
    "qadd16": lambda a, b: _halves(_sat16(_lo(a) + _lo(b)), _sat16(_hi(a) + _hi(b))),
}


@pytest.fixture(scope="module")
def acle_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler")
    work = tmp_path_factory.mktemp("acle")
    src, lib = work / "acle_shim.c", work / "libacle_shim.so"
    src.write_text(_ACLE_SHIM)
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                    f"-I{FIRMWARE_INCLUDE}", str(src), "-o", str(lib)], check=True)
    dll = ctypes.CDLL(str(lib))
    u32, i32 = ctypes.c_uint32, ctypes.c_int32
    for name in ("sxtb16", "sxtb16_ror8"):
        getattr(dll, f"t_{name}").argtypes, getattr(dll, f"t_{name}").restype = [u32], u32
    for name in ("sxtab16", "sxtab16_ror8", "sadd16", "qadd16", "ror"):
        getattr(dll, f"t_{name}").argtypes, getattr(dll, f"t_{name}").restype = [u32, u32], u32
    for name in ("smlad", "smlabb", "smlatt"):
        getattr(dll, f"t_{name}").argtypes, getattr(dll, f"t_{name}").restype = [u32, u32, i32], i32
    dll.t_pack16.argtypes, dll.t_pack16.restype = [i32, i32], u32
    dll.t_load32.argtypes, dll.t_load32.restype = [ctypes.c_char_p], u32
    return dll


def _words(rng: np.random.Generator, n: int) -> list[int]:
    edge = [0, 1, 0x7F7F7F7F, 0x80808080, 0xFFFFFFFF, 0x80008000, 0x7FFF7FFF, 0x00FF00FF]
    return edge + [int(v) for v in rng.integers(0, 1 << 32, size=n, dtype=np.uint64)]


@pytest.mark.parametrize("name", sorted(ACLE_MODEL))
def test_portable_intrinsics_follow_acle(acle_lib: ctypes.CDLL, name: str) -> None:
    rng = np.random.default_rng(7)
    fn, model = getattr(acle_lib, f"t_{name}"), ACLE_MODEL[name]
    words = _words(rng, 300)
    arity = model.__code__.co_argcount
    for i, a in enumerate(words):
        b = words[(i * 7 + 3) % len(words)]
        if arity == 1:
            args: tuple[int, ...] = (a,)
        elif arity == 2:
            args = (a, b)
        else:
            args = (a, b, _s(words[(i * 13 + 5) % len(words)], 32))
        got = fn(*args)
        want = model(*args)
        if isinstance(want, int) and fn.restype is ctypes.c_uint32:
            want &= 0xFFFFFFFF
        assert got == want, f"{name}{tuple(hex(v) for v in args)}: {got:#x} != {want:#x}"


def test_smlad_accumulates_extreme_products_modulo_2_32(acle_lib: ctypes.CDLL) -> None:
    # -32768 * -32768 twice is 2^31: the instruction wraps (and sets Q), so must the C model.
    assert acle_lib.t_smlad(0x80008000, 0x80008000, 0) == -(1 << 31)
    assert acle_lib.t_smlad(0x80008000, 0x80008000, -1) == (1 << 31) - 1


def test_ror_pack_and_unaligned_load(acle_lib: ctypes.CDLL) -> None:
    assert acle_lib.t_ror(0x12345678, 8) == 0x78123456
    assert acle_lib.t_ror(0x80000001, 1) == 0xC0000000
    assert acle_lib.t_pack16(-1, -32768) == 0x8000FFFF
    buf = bytes([0x11, 0x22, 0x33, 0x44, 0x55, 0x66])
    assert acle_lib.t_load32(buf[1:]) == 0x55443322


# --------------------------------------------------------------------------------------------
# Compiler refusals and packing (no TensorFlow)
# --------------------------------------------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.items: list[bytes] = []

    def add_data(self, data: bytes | np.ndarray, align: int = 8) -> int:
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        self.items.append(raw)
        return 8 * len(self.items)


def _q(index: int, shape: tuple[int, ...], scales: list[float], zps: list[int] | None = None,
       data: np.ndarray | None = None, dtype: str = "int8", qdim: int = 0) -> Tensor:
    return Tensor(index, f"t{index}", shape, dtype, np.asarray(scales, np.float32),
                  np.asarray(zps if zps is not None else [0] * len(scales), np.int64), qdim, data)


def _conv_op(**over: Any) -> Operator:
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(4, 3, 3, 2)).astype(np.int8)
    inputs = over.pop("inputs", None) or [
        _q(0, (1, 6, 6, 2), [0.05], [3]),
        _q(1, (4, 3, 3, 2), [0.01, 0.02, 0.03, 0.04], data=w),
        _q(2, (4,), [0.0005] * 4, data=np.arange(4, dtype=np.int32), dtype="int32"),
    ]
    options = {"padding": "SAME", "stride_h": 1, "stride_w": 1, "dilation_h": 1,
               "dilation_w": 1, "activation": "NONE"}
    options.update(over.pop("options", {}))
    out = over.pop("output", None) or _q(3, (1, 6, 6, 4), [0.1], [-5])
    return Operator(7, "CONV_2D", inputs, [out], options)


def test_conv_packs_word_aligned_ohwi_rows_and_tflm_params() -> None:
    op = _conv_op()
    sink = _Sink()
    params = pf.CONV.unpack(compile_conv2d(op, sink))
    assert params["row_bytes"] == 20  # 3 * 3 * 2 = 18 bytes, padded to a word
    assert (params["pad_top"], params["pad_left"]) == (1, 1)
    assert params["input_offset"] == -3 and params["output_offset"] == -5
    # The DSP order: per channel pair, its two int32 biases, then the rows word by word.
    stream = np.frombuffer(sink.items[0], np.int8).reshape(2, 8 + 2 * 20)
    biases = stream[:, :8].copy().view("<i4").reshape(4)
    weights = stream[:, 8:].reshape(2, 5, 2, 4).transpose(0, 2, 1, 3).reshape(4, 20)
    assert np.array_equal(biases, np.frombuffer(sink.items[1], "<i4"))
    assert np.array_equal(weights[:, :18], op.inputs[1].data.reshape(4, 18))  # type: ignore[union-attr]
    assert not weights[:, 18:].any()
    mults = np.frombuffer(sink.items[2], "<i4")
    shifts = np.frombuffer(sink.items[3], "<i4")
    from bench_firmware.quantization import quantize_multiplier

    f32 = np.float32
    for c, filter_scale in enumerate((0.01, 0.02, 0.03, 0.04)):
        # every scale widened to double first, then multiplied and divided in double
        real = float(f32(0.05)) * float(f32(filter_scale)) / float(f32(0.1))
        assert (mults[c], shifts[c]) == quantize_multiplier(real)
    assert shifts[0] == -7  # 0.005 = 0.64 * 2^-7


def test_depthwise_pads_each_tap_to_a_word() -> None:
    w = np.arange(1 * 3 * 3 * 6, dtype=np.int8).reshape(1, 3, 3, 6)
    op = Operator(2, "DEPTHWISE_CONV_2D", [
        _q(0, (1, 5, 5, 3), [0.05]),
        _q(1, (1, 3, 3, 6), [0.01] * 6, data=w, qdim=3),
        None,
    ], [_q(3, (1, 3, 3, 6), [0.1])], {
        "padding": "VALID", "stride_h": 1, "stride_w": 1, "dilation_h": 1, "dilation_w": 1,
        "activation": "RELU", "depth_multiplier": 2})
    sink = _Sink()
    params = pf.CONV.unpack(compile_depthwise_conv2d(op, sink))
    assert params["row_bytes"] == 8 and params["depth_multiplier"] == 2
    weights = np.frombuffer(sink.items[0], np.int8).reshape(9, 8)
    assert np.array_equal(weights[:, :6], w.reshape(9, 6))
    assert not np.frombuffer(sink.items[1], "<i4").any()  # no bias: zeros


def test_fc_folds_input_offset_into_bias_and_uses_float_product_per_tensor() -> None:
    w = np.array([[1, -2, 3], [-4, 5, -6]], dtype=np.int8)
    op = Operator(0, "FULLY_CONNECTED", [
        _q(0, (1, 3), [0.3], [10]),
        _q(1, (2, 3), [0.7], data=w),
        _q(2, (2,), [0.21, 0.21], data=np.array([100, -100], np.int32), dtype="int32"),
    ], [_q(3, (1, 2), [0.11], [1])], {"activation": "NONE", "weights_format": 0})
    sink = _Sink()
    params = pf.FULLY_CONNECTED.unpack(compile_fully_connected(op, sink))
    assert params["row_bytes"] == 4 and params["input_offset"] == -10
    folded = np.frombuffer(sink.items[2], "<i4")
    assert list(folded) == [100 - 10 * 2, -100 - 10 * -5]
    from bench_firmware.quantization import quantize_multiplier

    product = float(np.float32(0.3) * np.float32(0.7))  # float32 multiply, as TFLM
    mult, shift = quantize_multiplier(product / float(np.float32(0.11)))
    assert list(np.frombuffer(sink.items[3], "<i4")) == [mult, mult]
    assert list(np.frombuffer(sink.items[4], "<i4")) == [shift, shift]


def test_fc_rows_are_stored_in_fours_interleaved_word_by_word() -> None:
    """Six rows of 8 weights: rows 0-3 interleaved word by word (word 0 of rows 0..3, then word
    1 of rows 0..3), rows 4-5 after them as they are (fully_connected.c reads them so)."""
    rows = np.arange(6 * 8, dtype=np.int8).reshape(6, 8)
    stored = fc_weight_quads(rows)
    assert stored.size == rows.size
    quad = stored[:32].reshape(2, 4, 4)  # [word][row][byte]
    for word in range(2):
        for row in range(4):
            assert list(quad[word, row]) == list(rows[row, 4 * word:4 * word + 4])
    assert np.array_equal(stored[32:].reshape(2, 8), rows[4:])


@pytest.mark.parametrize(("change", "short"), [
    ({}, True),
    ({"act_min": 0}, False),                 # a clamp narrower than int8: not SSAT alone
    ({"shifts": [-1, 0]}, False),            # a left shift or none
    ({"shifts": [-23, -5]}, False),          # the offset would not fold into the constant
    ({"mults": [2**30, -5]}, False),         # a negative multiplier
    ({"folded": [2**30 - 128 * 128 * 10, 0]}, False),  # 2 * acc could overflow
])
def test_fc_short_requantization_is_marked_only_where_it_holds(change: dict[str, Any],
                                                                short: bool) -> None:
    args = {"folded": [1000, -1000], "mults": [2**30, 2**29], "shifts": [-7, -9],
            "act_min": -128} | change
    got = fc_short_requant(np.asarray(args["folded"], np.int32), np.asarray(args["mults"]),
                           np.asarray(args["shifts"]), 10, args["act_min"], 127)
    assert got is short


@pytest.mark.parametrize(("change", "message"), [
    ({"options": {"activation": "TANH"}}, "fused activation TANH"),
    ({"options": {"padding": "UNKNOWN"}}, "padding UNKNOWN"),
    ({"output": _q(3, (1, 5, 5, 4), [0.1])}, "SAME padding gives 6x6"),
    ({"inputs": [_q(0, (1, 6, 6, 4), [0.05]),
                 _q(1, (4, 3, 3, 2), [0.01], data=np.zeros((4, 3, 3, 2), np.int8)), None]},
     "grouped convolution"),
    ({"inputs": [_q(0, (1, 6, 6, 2), [0.05]),
                 _q(1, (4, 3, 3, 2), [0.01], [2], data=np.zeros((4, 3, 3, 2), np.int8)), None]},
     "non-zero zero point"),
    ({"inputs": [_q(0, (1, 6, 6, 2), [0.05]), _q(1, (4, 3, 3, 2), [0.01]), None]},
     "not a constant"),
    ({"inputs": [_q(0, (1, 6, 6, 2), [0.05]),
                 _q(1, (4, 3, 3, 2), [0.01], data=np.zeros((4, 3, 3, 2), np.int8)),
                 _q(2, (4,), [1.0], data=np.zeros(4, np.int64), dtype="int64")]},
     "not int32"),
    ({"inputs": [_q(0, (1, 6, 6, 2), [0.05], dtype="int16"),
                 _q(1, (4, 3, 3, 2), [0.01], data=np.zeros((4, 3, 3, 2), np.int8)), None]},
     "not quantized int8"),
])
def test_conv_refuses_what_it_cannot_run_exactly(change: dict[str, Any], message: str) -> None:
    with pytest.raises(UnsupportedOpError, match=message) as info:
        compile_conv2d(_conv_op(**change), _Sink())
    assert info.value.index == 7 and "operator 7 (CONV_2D)" in str(info.value)


def test_fc_refuses_shuffled_weights_and_bad_shapes() -> None:
    w = np.zeros((2, 3), np.int8)
    base = [_q(0, (1, 3), [0.3]), _q(1, (2, 3), [0.7], data=w), None]
    shuffled = Operator(4, "FULLY_CONNECTED", base, [_q(3, (1, 2), [0.1])],
                        {"activation": "NONE", "weights_format": 1})
    with pytest.raises(UnsupportedOpError, match="shuffled"):
        compile_fully_connected(shuffled, _Sink())
    wrong = Operator(4, "FULLY_CONNECTED", [_q(0, (1, 4), [0.3]), *base[1:]],
                     [_q(3, (1, 2), [0.1])], {"activation": "NONE"})
    with pytest.raises(UnsupportedOpError, match="expected 1 rows of 3"):
        compile_fully_connected(wrong, _Sink())


# --------------------------------------------------------------------------------------------
# The DSP path on the target: warning-free, and really the DSP instructions
# --------------------------------------------------------------------------------------------

KERNEL_DIR = FIRMWARE_INCLUDE.parent / "kernels"
CROSS_TARGETS = {
    "cortex-m4": ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16"),
    "cortex-m7": ("-mcpu=cortex-m7", "-mfpu=fpv5-d16"),
}


@pytest.mark.parametrize("core", sorted(CROSS_TARGETS))
def test_kernels_cross_compile_to_dsp_instructions(tmp_path: Path, core: str) -> None:
    gcc = shutil.which("arm-none-eabi-gcc")
    objdump = shutil.which("arm-none-eabi-objdump")
    if gcc is None or objdump is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    for name in ("conv", "depthwise_conv", "fully_connected"):
        obj = tmp_path / f"{name}.o"
        subprocess.run([gcc, *CROSS_TARGETS[core], "-mthumb", "-mfloat-abi=hard", "-std=c99",
                        "-O2", "-Wall", "-Wextra", "-Werror", f"-I{FIRMWARE_INCLUDE}", "-c",
                        str(KERNEL_DIR / f"{name}.c"), "-o", str(obj)], check=True)
        asm = subprocess.run([objdump, "-d", str(obj)], check=True, capture_output=True,
                             text=True).stdout
        wanted = {
            "conv": {"sxtb16", "sxtab16", "smlad"},  # input offset added while extending
            "depthwise_conv": {"sxtb16", "sxtab16", "smlabb", "smlatt"},
            "fully_connected": {"sxtb16", "smlad"},  # offset folded into the bias
        }[name]
        missing = {ins for ins in wanted if f"\t{ins}\t" not in asm}
        assert not missing, f"{name}.c for {core} lacks {sorted(missing)}"
        assert "ror #8" in asm, f"{name}.c: SXTB16/SXTAB16 should rotate in the instruction"
