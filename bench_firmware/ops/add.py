"""ADD (int8), with the parameters of TFLM ``micro/kernels/add_common.cc``
(``CalculateOpDataAdd``): both inputs are shifted left by 20 bits, scaled by
``scale / (2 * max(scale1, scale2))``, summed, and the sum scaled by
``2 * max(scale1, scale2) / (2**20 * output scale)``; all three multipliers through
``QuantizeMultiplierSmallerThanOneExp``. The elementwise function is ``AddFunc`` in
``reference/integer_ops/add.h``; TFLM's broadcast path applies the same function, so a
broadcast only changes which input2 element each output reads.

Supported shapes: equal shapes, and one operand that broadcasts over the other's leading
dimensions (a per-channel vector ``[C]`` / ``[1, 1, 1, C]``, or a scalar). Either operand may
be a constant; it is copied into the plan.
"""

from __future__ import annotations

import numpy as np

from bench_firmware import plan_format as pf
from bench_firmware.ops import DataSink, fail, register, require_int8
from bench_firmware.quantization import activation_range, quantize_multiplier_smaller_than_one
from bench_firmware.tflite_model import Operator

LEFT_SHIFT = 20  # add_common.cc: left_shift = 20 for int8 outputs


def _trailing_broadcast(shape: tuple[int, ...], out: tuple[int, ...]) -> bool:
    """True when ``shape`` is 1s followed by the trailing dimensions of ``out``."""
    dims = list(shape)
    while dims and dims[0] == 1:
        dims.pop(0)
    return len(dims) <= len(out) and tuple(dims) == tuple(out[len(out) - len(dims):])


# The DSP kernel's lookup tables (firmware/kernels/add.c): each input's scaled value for all 256
# int8 codes, int32, both inputs. Built once per invocation (512 scalings), they replace two of
# the three scalings per element, so they pay from a few hundred elements on.
ADD_LUT_BYTES = 2 * 256 * 4
ADD_LUT_MIN_ELEMENTS = 256


def add_scratch_bytes(op: Operator) -> int:
    """The lookup tables' scratch for an ADD of at least ADD_LUT_MIN_ELEMENTS outputs."""
    if not op.outputs or op.outputs[0] is None:
        return 0
    return ADD_LUT_BYTES if op.outputs[0].elements >= ADD_LUT_MIN_ELEMENTS else 0


@register("ADD", scratch=add_scratch_bytes)
def compile_add(op: Operator, ctx: DataSink) -> bytes:
    if len(op.inputs) != 2:
        raise fail(op, f"it has {len(op.inputs)} inputs, not 2")
    x1 = require_int8(op, op.inputs[0], "first input")
    x2 = require_int8(op, op.inputs[1], "second input")
    out = require_int8(op, op.outputs[0] if op.outputs else None, "output")
    for t in (x1, x2, out):
        if t.scales is not None and len(t.scales) > 1:
            raise fail(op, f"tensor {t.name!r} is quantized per channel",
                       "ADD needs per-tensor quantization, as the TFLite converter makes it")
    if x1.is_constant and x2.is_constant:
        raise fail(op, "both inputs are constants", "fold the constant ADD before conversion")

    # `a` is the operand with the output's shape (read from the arena), `b` the other one.
    full = tuple(out.shape)
    if tuple(x1.shape) == full and not x1.is_constant:
        a, b = x1, x2
    elif tuple(x2.shape) == full and not x2.is_constant:
        a, b = x2, x1
    else:
        raise fail(op, f"input shapes {list(x1.shape)} and {list(x2.shape)} give output "
                       f"{list(out.shape)}; the runtime needs one non-constant input of the "
                       "output's shape")
    if not _trailing_broadcast(tuple(b.shape), full):
        raise fail(op, f"input {list(b.shape)} broadcasts against {list(full)} in a way the "
                       "runtime does not implement",
                   "only equal shapes, per-channel vectors and scalars are supported")
    # Which of the op's non-constant inputs (the kernel's inputs, in order) holds `a`.
    a_slot = 1 if (a is x2 and not x1.is_constant) else 0
    b_const_off = 0
    if b.is_constant:
        b_const_off = ctx.add_data(np.ascontiguousarray(b.data, dtype=np.int8))

    twice_max_input_scale = 2 * max(a.scale, b.scale)  # max of the float32 scales, then double
    try:
        m1, s1 = quantize_multiplier_smaller_than_one(a.scale / twice_max_input_scale)
        m2, s2 = quantize_multiplier_smaller_than_one(b.scale / twice_max_input_scale)
        mo, so = quantize_multiplier_smaller_than_one(
            twice_max_input_scale / ((1 << LEFT_SHIFT) * out.scale))
    except ValueError as e:
        raise fail(op, f"the input scales {a.scale}, {b.scale} and output scale {out.scale} "
                       "give a multiplier TFLM cannot represent ({e})",
                   "re-convert the model with a representative dataset") from e
    activation = op.options.get("activation", "NONE")
    try:
        act_min, act_max = activation_range(activation, out.scale, out.zero_point)
    except ValueError as e:
        raise fail(op, f"fused activation {activation} is not supported",
                   "use NONE, RELU, RELU6 or RELU_N1_TO_1") from e
    return pf.ADD.pack(
        input1_offset=-a.zero_point, input2_offset=-b.zero_point, output_offset=out.zero_point,
        left_shift=LEFT_SHIFT, input1_mult=m1, input1_shift=s1, input2_mult=m2,
        input2_shift=s2, output_mult=mo, output_shift=so, act_min=act_min, act_max=act_max,
        input2_elements=b.elements, input2_const_off=b_const_off, input1_slot=a_slot,
        scratch_off=getattr(ctx, "scratch_off", 0),
        scratch_bytes=getattr(ctx, "scratch_bytes", add_scratch_bytes(op)),
    )
