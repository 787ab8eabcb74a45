"""AVERAGE_POOL_2D and MAX_POOL_2D (int8, NHWC).

TFLM ``micro/kernels/pooling_common.cc`` (``PoolingPrepare``): input and output share one
quantization (scales within 1e-6, equal zero points), so pooling never requantizes; the
padding is ``ComputePaddingHeightWidth`` (``kernels/padding.h``, dilation 1) and the fused
activation becomes a clamp (``CalculateActivationRangeQuantized``).
"""

from __future__ import annotations

from bench_firmware import plan_format as pf
from bench_firmware.ops import DataSink, fail, register, require_int8
from bench_firmware.quantization import activation_range
from bench_firmware.tflite_model import Operator

_U16 = 0xFFFF
_I16 = 0x7FFF
SCALE_TOLERANCE = 1.0e-6  # pooling_common.cc: |input scale - output scale| <= 1e-6


def out_size(padding: str, in_size: int, filter_size: int, stride: int) -> int:
    """TFLM ``ComputeOutSize`` with dilation 1."""
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - filter_size) // stride


def pad_before(in_size: int, filter_size: int, stride: int, out: int) -> int:
    """TFLM ``ComputePaddingWithOffset``: the smaller half of the total padding goes first."""
    return max((out - 1) * stride + filter_size - in_size, 0) // 2


def _compile_pool(op: Operator) -> bytes:
    src = require_int8(op, op.inputs[0] if op.inputs else None, "input")
    dst = require_int8(op, op.outputs[0] if op.outputs else None, "output")
    if len(src.shape) != 4 or len(dst.shape) != 4:
        raise fail(op, f"input {list(src.shape)} and output {list(dst.shape)} must be NHWC "
                       "(rank 4)")
    o = op.options
    padding = o.get("padding")
    fh, fw = o.get("filter_h", 0), o.get("filter_w", 0)
    sh, sw = o.get("stride_h", 0), o.get("stride_w", 0)
    if padding not in ("SAME", "VALID"):
        raise fail(op, f"padding {padding} is not SAME or VALID")
    if min(fh, fw, sh, sw) < 1 or max(fh, fw, sh, sw) > _U16:
        raise fail(op, f"filter {fh}x{fw} with strides {sh}x{sw} is out of range")
    n, in_h, in_w, c = src.shape
    out_h, out_w = out_size(padding, in_h, fh, sh), out_size(padding, in_w, fw, sw)
    if out_h < 1 or out_w < 1 or tuple(dst.shape) != (n, out_h, out_w, c):
        raise fail(op, f"output shape {list(dst.shape)} is not what a {fh}x{fw} {padding} "
                       f"pool with strides {sh}x{sw} makes of {list(src.shape)}",
                   "re-export the model with the TFLite converter")
    if abs(src.scale - dst.scale) > SCALE_TOLERANCE or src.zero_point != dst.zero_point:
        raise fail(op, f"input (scale {src.scale}, zero point {src.zero_point}) and output "
                       f"(scale {dst.scale}, zero point {dst.zero_point}) are quantized "
                       "differently; TFLM pools without requantizing",
                   "let the TFLite converter quantize the model (it gives pools one scale)")
    pad_top = pad_before(in_h, fh, sh, out_h)
    pad_left = pad_before(in_w, fw, sw, out_w)
    if max(pad_top, pad_left) > _I16:
        raise fail(op, f"padding {pad_top}x{pad_left} is out of range")
    activation = o.get("activation", "NONE")
    try:
        act_min, act_max = activation_range(activation, dst.scale, dst.zero_point)
    except ValueError as e:
        raise fail(op, f"fused activation {activation} is not supported",
                   "use NONE, RELU, RELU6 or RELU_N1_TO_1") from e
    return pf.POOL.pack(act_min=act_min, act_max=act_max, filter_h=fh, filter_w=fw,
                        stride_h=sh, stride_w=sw, pad_top=pad_top, pad_left=pad_left)


@register("AVERAGE_POOL_2D")
def compile_average_pool(op: Operator, ctx: DataSink) -> bytes:
    return _compile_pool(op)


@register("MAX_POOL_2D")
def compile_max_pool(op: Operator, ctx: DataSink) -> bytes:
    return _compile_pool(op)
