"""MEAN over H and W of an int8 NHWC tensor (what GlobalAveragePooling2D converts to),
``keep_dims`` true or false.

TFLM (``micro/kernels/reduce_common.cc``, ``EvalIntegerMean``) runs ``QuantizedMeanOrSum``
(``reference/reduce.h``) for every int8 MEAN: ``(multiplier, shift)`` from
``QuantizeMultiplier(in_scale / out_scale)`` absorb ``1 / count`` as
``s = min(floor(log2(count)), 32, 31 + shift)``, ``multiplier = (multiplier << s) // count``
(int64, truncated), ``shift -= s``; each output is
``clamp(MultiplyByQuantizedMultiplier(sum - in_zp * count, multiplier, shift) + out_zp)``
with ``sum`` the int32 sum of the raw int8 values. Older TFLM releases took a different path
(``reference_ops::Mean``, a truncating ``sum / count``) when input and output quantization
were equal; the TFLM we check against does not, and neither do we.
"""

from __future__ import annotations

import numpy as np

from bench_firmware import plan_format as pf
from bench_firmware.ops import DataSink, fail, register, require_int8
from bench_firmware.quantization import quantize_multiplier
from bench_firmware.tflite_model import Operator


def mean_multiplier(real: float, count: int) -> tuple[int, int]:
    """QuantizedMeanOrSum's multiplier and shift with ``1 / count`` folded in."""
    mult, shift = quantize_multiplier(real)
    s = min(count.bit_length() - 1, 32, 31 + shift)  # 63 - CountLeadingZeros(uint64 count)
    if s < 0:
        raise ValueError(f"shift {shift} leaves no room for 1/{count}")
    return (mult << s) // count, shift - s


@register("MEAN")
def compile_mean(op: Operator, ctx: DataSink) -> bytes:
    src = require_int8(op, op.inputs[0] if op.inputs else None, "input")
    dst = require_int8(op, op.outputs[0] if op.outputs else None, "output")
    axis_t = op.inputs[1] if len(op.inputs) > 1 else None
    if axis_t is None or axis_t.data is None:
        raise fail(op, "the axis is not a constant tensor")
    if len(src.shape) != 4:
        raise fail(op, f"input {list(src.shape)} is not NHWC (rank 4)",
                   "the runtime implements MEAN over H and W only (GlobalAveragePooling2D)")
    axes = {int(a) + 4 if int(a) < 0 else int(a)
            for a in np.asarray(axis_t.data).reshape(-1)}
    if axes != {1, 2}:
        raise fail(op, f"it reduces axes {sorted(axes)}",
                   "the runtime implements MEAN over H and W (axes 1 and 2) only")
    n, h, w, c = src.shape
    if dst.elements != n * c:
        raise fail(op, f"output {list(dst.shape)} does not hold one value per batch and "
                       f"channel of {list(src.shape)}")
    count = h * w
    try:
        mult, shift = mean_multiplier(src.scale / dst.scale, count)
    except ValueError as e:
        raise fail(op, f"input scale {src.scale} and output scale {dst.scale} are out of "
                       f"range ({e})") from e
    return pf.MEAN.pack(input_offset=-src.zero_point, output_offset=dst.zero_point,
                        mult=mult, shift=shift, count=count)
