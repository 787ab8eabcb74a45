"""Reject a structurally corrupt ``.tflite`` before the compiler computes anything from it.

A flatbuffer that parses can still carry values no TensorFlow Lite converter writes: a scale
of 0 or NaN, an int8 zero point of 300, an operator version of 99, a tensor index of -1 that
Python would read as "the last tensor". Each check here raises one ``CorruptModelError`` that
names the tensor or operator, the value, and what to do, so such a file is refused instead of
being compiled into a plan the firmware would run with garbage parameters.

Two passes: ``check_flatbuffer`` on the raw schema objects (indices, buffers, operator
versions, options tables), before the reader dereferences anything; ``check_graph`` on the
parsed graph (quantization parameters, shapes, data flow).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import tflite

from bench_firmware.errors import CorruptModelError

if TYPE_CHECKING:
    from bench_firmware.tflite_model import Graph, Operator, Tensor

REEXPORT = "Re-export the model with tf.lite.TFLiteConverter; the file was altered or damaged."

# Scales a converter writes lie far inside these bounds: activation scales are
# (max - min) / 255 of a float32 range, weight scales max|w| / 127, bias scales the product
# input_scale * weight_scale (TFLite quantization spec, "int8 quantization specification").
# Anything below 1e-30 or above 1e30 is a denormal, an overflow, or a corrupted float, and its
# requantization multipliers would leave the range QuantizeMultiplier can represent.
MIN_SCALE = 1e-30
MAX_SCALE = 1e30
# TFLite stores dimensions as int32 (TfLiteIntArray).
MAX_ELEMENTS = 2**31 - 1
# Zero-point ranges per storage type (TFLite quantization spec: int8 activations in
# [-128, 127]; int16 activations, int32 biases and per-axis weights symmetric, zero point 0).
_ZP_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (0, 0), "int32": (0, 0),
             "int64": (0, 0)}
# The highest version of each builtin TensorFlow Lite's kernel registry accepts
# (tensorflow/lite/core/kernels/register.cc, BuiltinOpResolver: AddBuiltin(op, kernel, min, max)).
MAX_VERSION = {
    "ADD": 5, "AVERAGE_POOL_2D": 3, "CONCATENATION": 4, "CONV_2D": 8,
    "DEPTHWISE_CONV_2D": 7, "DEQUANTIZE": 6, "FULLY_CONNECTED": 13, "MAX_POOL_2D": 3,
    "MEAN": 3, "PAD": 5, "PADV2": 5, "QUANTIZE": 4, "RELU": 3, "RELU6": 3, "RESHAPE": 1,
    "SOFTMAX": 3,
}
# Above any builtin's version in the registry: a bigger number is corruption, not a newer op.
_ANY_MAX_VERSION = 20
_OPTION_TYPE_NAMES = {
    getattr(tflite.BuiltinOptions, n): n for n in dir(tflite.BuiltinOptions)
    if not n.startswith("_")
}
# The options table each builtin carries (schema.fbs); None (NONE) is also accepted where the
# converter may omit an all-default table.
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", False),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", False),
    "FULLY_CONNECTED": ("FullyConnectedOptions", True),
    "AVERAGE_POOL_2D": ("Pool2DOptions", False),
    "MAX_POOL_2D": ("Pool2DOptions", False),
    "ADD": ("AddOptions", True),
    "SOFTMAX": ("SoftmaxOptions", True),
    "CONCATENATION": ("ConcatenationOptions", True),
    "RESHAPE": ("ReshapeOptions", True),
    "MEAN": ("ReducerOptions", True),
    "PAD": ("PadOptions", True),
    "PADV2": ("PadV2Options", True),
    "QUANTIZE": ("QuantizeOptions", True),
    "DEQUANTIZE": ("DequantizeOptions", True),
    "RELU": ("NONE", True),
    "RELU6": ("NONE", True),
}


def _fail(message: str) -> CorruptModelError:
    return CorruptModelError(f"{message}. {REEXPORT}")


def _index(value: int, count: int, what: str) -> None:
    if not 0 <= value < count:
        raise _fail(f"{what} refers to tensor {value}, but the subgraph has {count} tensors "
                    "(valid: 0.." f"{count - 1})")


def check_flatbuffer(model: Any, names: dict[int, str]) -> None:
    """Indices, buffer references, operator versions and options tables of subgraph 0."""
    sg = model.Subgraphs(0)
    n_tensors, n_buffers = sg.TensorsLength(), model.BuffersLength()
    for i in range(n_tensors):
        buf = sg.Tensors(i).Buffer()
        if not 0 <= buf < n_buffers:
            name = sg.Tensors(i).Name().decode(errors="replace")
            raise _fail(f"tensor {i} ({name!r}) refers to buffer {buf}, but the model has "
                        f"{n_buffers} buffers")
    n_codes = model.OperatorCodesLength()
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code_index = op.OpcodeIndex()
        if not 0 <= code_index < n_codes:
            raise _fail(f"operator {i} refers to operator code {code_index}, but the model has "
                        f"{n_codes}")
        code = model.OperatorCodes(code_index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, f"BUILTIN_{builtin}")
        version = code.Version()
        limit = MAX_VERSION.get(name, _ANY_MAX_VERSION)
        if not 1 <= version <= limit:
            raise _fail(f"operator {i} ({name}) has version {version}; TensorFlow Lite "
                        f"implements versions 1..{limit} of {name}")
        for j in (op.InputsAsNumpy() if op.InputsLength() else []):
            if int(j) != -1:  # -1 marks an omitted optional input (schema.fbs)
                _index(int(j), n_tensors, f"operator {i} ({name}) input")
        for j in (op.OutputsAsNumpy() if op.OutputsLength() else []):
            _index(int(j), n_tensors, f"operator {i} ({name}) output")
        if not op.OutputsLength():
            raise _fail(f"operator {i} ({name}) has no output")
        expected = _OPTIONS.get(name)
        if expected is not None:
            got = _OPTION_TYPE_NAMES.get(op.BuiltinOptionsType(),
                                         f"type {op.BuiltinOptionsType()}")
            want, none_ok = expected
            if got != want and not (none_ok and got == "NONE"):
                raise _fail(f"operator {i} ({name}) carries {got} options; {name} takes {want}")
    for what, ids in (("input", sg.InputsAsNumpy() if sg.InputsLength() else []),
                      ("output", sg.OutputsAsNumpy() if sg.OutputsLength() else [])):
        for j in ids:
            _index(int(j), n_tensors, f"model {what}")


def _check_quantization(t: Tensor) -> None:
    where = f"tensor {t.index} ({t.name!r})"
    scales, zps = t.scales, t.zero_points
    if scales is None or zps is None:
        return
    if len(zps) != len(scales):
        raise _fail(f"{where} has {len(scales)} scales but {len(zps)} zero points")
    with np.errstate(all="ignore"):  # a signalling NaN must not warn on its way to float
        values = [float(s) for s in scales]
    for s in values:
        if not (math.isfinite(s) and MIN_SCALE <= s <= MAX_SCALE):
            raise _fail(f"{where} has quantization scale {s!r}; a scale must be finite "
                        f"and in [{MIN_SCALE:g}, {MAX_SCALE:g}]")
    lo, hi = _ZP_RANGE.get(t.dtype, (-(2**31), 2**31 - 1))
    rule = f"{t.dtype} tensors" if lo != hi else f"{t.dtype} tensors are symmetric"
    if len(scales) > 1:
        lo, hi = 0, 0  # per-axis quantization is symmetric (TFLite quantization spec)
        rule = "per-channel quantization is symmetric"
        qdim = t.quantized_dimension
        if not 0 <= qdim < len(t.shape) or t.shape[qdim] != len(scales):
            raise _fail(f"{where} has {len(scales)} per-channel scales on quantized dimension "
                        f"{qdim}, but its shape is {list(t.shape)}")
    elif t.quantized_dimension < 0:
        raise _fail(f"{where} has quantized dimension {t.quantized_dimension}")
    for z in zps:
        if not lo <= int(z) <= hi:
            raise _fail(f"{where} ({t.dtype}) has zero point {int(z)}; it must be in "
                        f"[{lo}, {hi}] ({rule})")


def _check_options(op: Operator) -> None:
    o = op.options
    for key in ("stride_h", "stride_w", "dilation_h", "dilation_w", "filter_h", "filter_w",
                "depth_multiplier"):
        if key in o and not 1 <= o[key] <= 0xFFFF:
            raise _fail(f"operator {op.index} ({op.name}) has {key} {o[key]}; it must be in "
                        "[1, 65535]")
    for key in ("activation", "padding"):
        if o.get(key) == "UNKNOWN":
            raise _fail(f"operator {op.index} ({op.name}) has an unknown {key} code")
    if "beta" in o and not (math.isfinite(o["beta"]) and o["beta"] > 0):
        raise _fail(f"operator {op.index} ({op.name}) has softmax beta {o['beta']!r}; it must "
                    "be finite and > 0")


def check_graph(graph: Graph) -> None:
    """Quantization parameters, shapes and data flow of a parsed graph."""
    for t in graph.tensors:
        where = f"tensor {t.index} ({t.name!r})"
        if any(d <= 0 for d in t.shape):
            raise _fail(f"{where} has shape {list(t.shape)}; every dimension must be >= 1")
        if math.prod(t.shape) > MAX_ELEMENTS:
            raise _fail(f"{where} has shape {list(t.shape)}: over 2^31 elements")
        _check_quantization(t)
    for op in graph.operators:
        _check_options(op)
    model_inputs = {t.index for t in graph.inputs}
    available = set(model_inputs) | {t.index for t in graph.tensors if t.is_constant}
    produced: set[int] = set()
    for op in graph.operators:
        for src in op.inputs:
            if src is not None and src.index not in available:
                raise _fail(f"operator {op.index} ({op.name}) reads tensor {src.index} "
                            f"({src.name!r}) before any operator writes it")
        for out in op.outputs:
            if out.index in model_inputs or out.is_constant or out.index in produced:
                raise _fail(f"operator {op.index} ({op.name}) writes tensor {out.index} "
                            f"({out.name!r}), which is a model input, a constant or already "
                            "written by another operator")
            produced.add(out.index)
            available.add(out.index)
    for t in graph.outputs:
        if t.index in model_inputs:
            raise _fail(f"model output tensor {t.index} ({t.name!r}) is also the model input")
        if t.index not in produced:
            raise _fail(f"model output tensor {t.index} ({t.name!r}) is written by no operator")
