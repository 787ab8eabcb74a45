"""Standalone RELU and RELU6 (int8), as TFLM ``micro/kernels/activations_common.cc``.

* RELU (``CalculateReluOpData`` + ``ReluQuantized``) requantizes:
  ``out = out_zp + MultiplyByQuantizedMultiplier(x - in_zp, QuantizeMultiplier(in_scale /
  out_scale))``, clamped to ``[max(-128, out_zp + round(0 / out_scale)), 127]``.
* RELU6 (``Relu6Prepare`` + ``Relu6Quantized``) does not requantize: it clamps the raw input to
  ``[in_zp, FloatToQuantizedType(6.0, in_scale, in_zp)]`` and ignores the output's
  quantization. The converter does give a standalone RELU6 its own output scale (0..6 over
  256 steps), so TFLM's bytes then mean other reals than intended; we reproduce TFLM's bytes.
"""

from __future__ import annotations

from bench_firmware import plan_format as pf
from bench_firmware.ops import DataSink, fail, register, require_int8
from bench_firmware.quantization import quantize_multiplier, quantize_value
from bench_firmware.tflite_model import Operator, Tensor

QMIN, QMAX = -128, 127
MODE_REQUANT = pf.CONSTANTS["MP_ACT_REQUANT"]
MODE_CLAMP = pf.CONSTANTS["MP_ACT_CLAMP"]


def _tensors(op: Operator) -> tuple[Tensor, Tensor]:
    src = require_int8(op, op.inputs[0] if op.inputs else None, "input")
    dst = require_int8(op, op.outputs[0] if op.outputs else None, "output")
    if src.elements != dst.elements:
        raise fail(op, f"input {list(src.shape)} and output {list(dst.shape)} differ in size")
    return src, dst


@register("RELU")
def compile_relu(op: Operator, ctx: DataSink) -> bytes:
    src, dst = _tensors(op)
    mult, shift = quantize_multiplier(src.scale / dst.scale)
    act_min = max(QMIN, dst.zero_point)  # out_zp + roundf(0.0f / scale), which is out_zp
    return pf.ACTIVATION.pack(input_offset=-src.zero_point, output_offset=dst.zero_point,
                              mult=mult, shift=shift, act_min=act_min, act_max=QMAX,
                              mode=MODE_REQUANT)


@register("RELU6")
def compile_relu6(op: Operator, ctx: DataSink) -> bytes:
    src, _ = _tensors(op)
    zero = src.zero_point
    six = min(QMAX, max(QMIN, quantize_value(6.0, src.scale, src.zero_point)))
    return pf.ACTIVATION.pack(input_offset=0, output_offset=0, mult=0, shift=0,
                              act_min=zero, act_max=six, mode=MODE_CLAMP)
