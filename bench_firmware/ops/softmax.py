"""SOFTMAX (int8 in, int8 out), as TFLM ``micro/kernels/softmax_common.cc``
(``CalculateSoftmaxParams``): the output must be quantized with scale exactly 1/256 and zero
point -128; the input differences are scaled into gemmlowp's Q5.26 by
``PreprocessSoftmaxScaling(beta, input_scale, 5)`` and differences below
``-CalculateInputRadius(5, left_shift)`` contribute nothing (``quantization_util.cc``).
"""

from __future__ import annotations

import math

from bench_firmware import plan_format as pf
from bench_firmware.ops import DataSink, fail, register, require_int8
from bench_firmware.quantization import quantize_multiplier
from bench_firmware.tflite_model import Operator

SCALED_DIFF_INTEGER_BITS = 5  # softmax_common.cc: kScaledDiffIntegerBits
OUTPUT_SCALE = 1.0 / 256  # exact in float32
OUTPUT_ZERO_POINT = -128
# quantization_util.cc PreprocessSoftmaxScaling, double-rounding build: (1 << 31) - 1.
MAX_REAL_MULTIPLIER = (1 << 31) - 1.0


def softmax_scaling(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) exactly as TFLM computes them."""
    real = min(beta * input_scale * (1 << (31 - SCALED_DIFF_INTEGER_BITS)), MAX_REAL_MULTIPLIER)
    if not real > 1.0:  # QuantizeMultiplierGreaterThanOne's CHECK
        raise ValueError(f"beta * input scale * 2**26 = {real} is not above 1")
    mult, left_shift = quantize_multiplier(real)
    # CalculateInputRadius(5, left_shift, 31): floor(31 * 2**26 / 2**left_shift).
    radius = math.floor(1.0 * ((1 << SCALED_DIFF_INTEGER_BITS) - 1)
                        * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) / (1 << left_shift))
    return mult, left_shift, -radius


@register("SOFTMAX")
def compile_softmax(op: Operator, ctx: DataSink) -> bytes:
    src = require_int8(op, op.inputs[0] if op.inputs else None, "input")
    dst = require_int8(op, op.outputs[0] if op.outputs else None, "output")
    if not src.shape or tuple(src.shape) != tuple(dst.shape):
        raise fail(op, f"input {list(src.shape)} and output {list(dst.shape)} differ")
    if dst.scale != OUTPUT_SCALE or dst.zero_point != OUTPUT_ZERO_POINT:
        raise fail(op, f"output is quantized with scale {dst.scale} and zero point "
                       f"{dst.zero_point}; TFLM's int8 softmax needs 1/256 and -128",
                   "convert with the TFLite converter, which fixes the softmax output "
                   "quantization")
    beta = float(op.options.get("beta", 1.0))
    try:
        mult, shift, diff_min = softmax_scaling(beta, src.scale)
    except ValueError as e:
        raise fail(op, f"beta {beta} and input scale {src.scale} are out of range ({e})") from e
    return pf.SOFTMAX.pack(input_mult=mult, input_left_shift=shift, diff_min=diff_min,
                           depth=src.shape[-1])
