"""RESHAPE: a byte copy (TFLM copies too unless input and output share a buffer)."""

from __future__ import annotations

from bench_firmware.ops import DataSink, fail, register
from bench_firmware.tflite_model import Operator


@register("RESHAPE")
def compile_reshape(op: Operator, ctx: DataSink) -> bytes:
    src, dst = op.inputs[0], op.outputs[0]
    if src is None or src.nbytes != dst.nbytes:
        raise fail(op, "input and output sizes differ")
    return b""
