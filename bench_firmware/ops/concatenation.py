"""CONCATENATION (int8) of up to ``MAX_INPUTS`` activation tensors along one axis.

TFLM ``micro/kernels/concatenation.cc`` copies the raw int8 values (``EvalUnquantized``) even
when the inputs' quantization differs from the output's. The TFLite converter always gives
every input the output's scale and zero point; a model where they differ would compute
garbage on TFLM too, so we refuse it.
"""

from __future__ import annotations

from bench_firmware import plan_format as pf
from bench_firmware.ops import DataSink, fail, register, require_int8
from bench_firmware.tflite_model import Operator

MAX_INPUTS = 8  # mp_kernels.h MP_MAX_INPUTS


@register("CONCATENATION")
def compile_concatenation(op: Operator, ctx: DataSink) -> bytes:
    dst = require_int8(op, op.outputs[0] if op.outputs else None, "output")
    if not 1 <= len(op.inputs) <= MAX_INPUTS:
        raise fail(op, f"it has {len(op.inputs)} inputs; the runtime takes 1 to {MAX_INPUTS}")
    if op.options.get("activation", "NONE") != "NONE":
        raise fail(op, f"fused activation {op.options['activation']}",
                   "TFLM's CONCATENATION takes no fused activation")
    rank = len(dst.shape)
    if not 1 <= rank <= 4:
        raise fail(op, f"output {list(dst.shape)} has rank {rank}; at most 4 is supported")
    axis = op.options.get("axis", 0)
    if axis < 0:
        axis += rank
    if not 0 <= axis < rank:
        raise fail(op, f"axis {op.options.get('axis')} is outside rank {rank}")
    total = 0
    for k, t in enumerate(op.inputs):
        src = require_int8(op, t, f"input {k}")
        if src.is_constant:
            raise fail(op, f"input {k} ({src.name!r}) is a constant",
                       "the runtime concatenates activations only")
        if len(src.shape) != rank or any(
                src.shape[d] != dst.shape[d] for d in range(rank) if d != axis):
            raise fail(op, f"input {k} {list(src.shape)} does not fit output "
                           f"{list(dst.shape)} along axis {axis}")
        if src.scale != dst.scale or src.zero_point != dst.zero_point:
            raise fail(op, f"input {k} (scale {src.scale}, zero point {src.zero_point}) is "
                           f"quantized differently from the output (scale {dst.scale}, zero "
                           f"point {dst.zero_point}); TFLM would copy its raw values anyway",
                       "convert with the TFLite converter, which gives all inputs of a "
                       "concatenation the output's quantization")
        total += src.shape[axis]
    if total != dst.shape[axis]:
        raise fail(op, f"inputs add up to {total} along axis {axis}, output has "
                       f"{dst.shape[axis]}")
    return pf.CONCATENATION.pack(axis=axis + 4 - rank)  # in the runtime's rank-4 view
