"""QUANTIZE (float32 → int8, int8 → int8) and DEQUANTIZE (int8 → float32).

TFLM ``micro/kernels/quantize_common.cc`` and ``dequantize_common.cc``:

* float32 → int8 is ``AffineQuantize`` (``reference/quantize.h``):
  ``clamp(round(x / float(scale)) + zero_point)``, a float32 division and rounding half away
  from zero;
* int8 → int8 is ``Requantize`` (``reference/requantize.h``) with
  ``QuantizeMultiplier(in_scale / out_scale)``:
  ``clamp(MultiplyByQuantizedMultiplier(x - in_zp, mult, shift) + out_zp)``;
* int8 → float32 is ``Dequantize`` (``reference/dequantize.h``):
  ``float(double(scale) * (x - zero_point))``, which equals the float32 product because
  ``x - zero_point`` has at most 9 significant bits.
"""

from __future__ import annotations

from bench_firmware import plan_format as pf
from bench_firmware.ops import DataSink, fail, register, require_int8
from bench_firmware.quantization import quantize_multiplier
from bench_firmware.tflite_model import Operator, Tensor

MODE_FROM_FLOAT = pf.CONSTANTS["MP_QUANT_FROM_FLOAT"]
MODE_REQUANT = pf.CONSTANTS["MP_QUANT_REQUANT"]


def _per_tensor(op: Operator, t: Tensor, role: str) -> None:
    if t.scales is not None and len(t.scales) != 1:
        raise fail(op, f"{role} {t.name!r} is quantized per channel",
                   "TFLM quantizes per tensor only")


@register("QUANTIZE")
def compile_quantize(op: Operator, ctx: DataSink) -> bytes:
    src = op.inputs[0] if op.inputs else None
    dst = require_int8(op, op.outputs[0] if op.outputs else None, "output")
    _per_tensor(op, dst, "output")
    if src is None or src.elements != dst.elements:
        raise fail(op, "input and output differ in size")
    if src.dtype == "float32":
        return pf.QUANTIZE.pack(output_offset=dst.zero_point, scale=dst.scale,
                                mode=MODE_FROM_FLOAT)
    if src.dtype == "int8" and src.is_quantized:
        _per_tensor(op, src, "input")
        mult, shift = quantize_multiplier(src.scale / dst.scale)
        return pf.QUANTIZE.pack(input_offset=-src.zero_point, output_offset=dst.zero_point,
                                mult=mult, shift=shift, scale=dst.scale, mode=MODE_REQUANT)
    raise fail(op, f"it quantizes {src.dtype} to int8",
               "the runtime quantizes float32 or int8 inputs only")


@register("DEQUANTIZE")
def compile_dequantize(op: Operator, ctx: DataSink) -> bytes:
    src = require_int8(op, op.inputs[0] if op.inputs else None, "input")
    dst = op.outputs[0] if op.outputs else None
    _per_tensor(op, src, "input")
    if dst is None or dst.dtype != "float32" or dst.elements != src.elements:
        raise fail(op, "the output is not a float32 tensor of the input's size",
                   "the runtime dequantizes int8 to float32 only")
    return pf.DEQUANTIZE.pack(zero_point=src.zero_point, scale=src.scale)
