"""PAD and PADV2 (int8), as TFLM ``micro/kernels/pad.cc`` / ``pad_common.cc``: constant
paddings, at most 4 dimensions, the value outside the input is the output zero point (PAD)
or the scalar ``constant_values`` input, which must share the output's quantization (PADV2).
The input bytes are copied unchanged (no requantization, as TFLM).
"""

from __future__ import annotations

import numpy as np

from bench_firmware import plan_format as pf
from bench_firmware.ops import DataSink, fail, register, require_int8
from bench_firmware.tflite_model import Operator

_U16 = 0xFFFF


@register("PAD")
@register("PADV2")
def compile_pad(op: Operator, ctx: DataSink) -> bytes:
    if len(op.inputs) not in (2, 3):
        raise fail(op, f"it has {len(op.inputs)} inputs, not 2 or 3")
    src = require_int8(op, op.inputs[0], "input")
    dst = require_int8(op, op.outputs[0] if op.outputs else None, "output")
    paddings = op.inputs[1]
    if paddings is None or paddings.data is None:
        raise fail(op, "the paddings are not a constant tensor",
                   "TFLM needs constant paddings; build the model with static shapes")
    if paddings.dtype not in ("int32", "int64"):
        raise fail(op, f"paddings are {paddings.dtype}, not int32")
    rank = len(src.shape)
    flat = [int(v) for v in np.asarray(paddings.data).reshape(-1)]
    if rank > 4 or len(dst.shape) != rank or len(flat) != 2 * rank:
        raise fail(op, f"input {list(src.shape)}, output {list(dst.shape)} and "
                       f"{len(flat)} padding values do not match (at most rank 4)")
    pads = [(flat[2 * d], flat[2 * d + 1]) for d in range(rank)]
    if any(not 0 <= v <= _U16 for v in flat):
        raise fail(op, f"paddings {pads} are negative or too large")
    expected = tuple(d + b + a for d, (b, a) in zip(src.shape, pads, strict=True))
    if expected != tuple(dst.shape):
        raise fail(op, f"output shape {list(dst.shape)} is not input {list(src.shape)} "
                       f"padded by {pads}")

    pad_value = dst.zero_point
    if len(op.inputs) == 3 and op.inputs[2] is not None:
        value = op.inputs[2]
        if value.data is None or value.elements != 1 or value.dtype != "int8":
            raise fail(op, "constant_values is not a constant int8 scalar")
        if value.zero_point != dst.zero_point or value.scale != dst.scale:
            raise fail(op, "constant_values is quantized differently from the output",
                       "TFLM requires the pad value in the output's quantization")
        pad_value = int(np.asarray(value.data).reshape(-1)[0])
    lead = 4 - rank  # the runtime sees every tensor as NHWC, left-padded with 1s
    before = [0] * lead + [b for b, _ in pads]
    after = [0] * lead + [a for _, a in pads]
    return pf.PAD.pack(pad_value=pad_value, before=before, after=after)
