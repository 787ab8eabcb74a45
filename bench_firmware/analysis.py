"""Per-layer work and parameter counts (pure: no TensorFlow).

Ops follow MicroNets: one multiply-accumulate is two ops. Layers without MACs count one op per
element they combine (pool windows, ADD, MEAN) and none for pure data movement (RESHAPE, PAD,
CONCATENATION, QUANTIZE, DEQUANTIZE) and lookups (SOFTMAX, RELU, RELU6 count one per element).
"""

from __future__ import annotations

from bench_firmware.tflite_model import Operator


def layer_macs(op: Operator) -> int:
    out = op.outputs[0]
    if op.name == "CONV_2D":
        w = op.inputs[1]
        assert w is not None
        _, kh, kw, in_c = w.shape
        return out.elements * kh * kw * in_c
    if op.name == "DEPTHWISE_CONV_2D":
        w = op.inputs[1]
        assert w is not None
        _, kh, kw, _ = w.shape
        return out.elements * kh * kw
    if op.name == "FULLY_CONNECTED":
        w = op.inputs[1]
        assert w is not None
        out_features, in_features = w.shape
        rows = out.elements // out_features
        return rows * in_features * out_features
    return 0


def layer_ops(op: Operator, macs: int) -> int:
    if macs:
        return 2 * macs
    out = op.outputs[0]
    if op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return out.elements * op.options.get("filter_h", 1) * op.options.get("filter_w", 1)
    if op.name == "MEAN":
        src = op.inputs[0]
        return src.elements if src is not None else 0
    if op.name in ("ADD", "SOFTMAX", "RELU", "RELU6"):
        return out.elements
    return 0


def param_bytes(op: Operator) -> int:
    """Bytes of the constant tensors (weights, biases) the layer reads, as stored in the
    .tflite; shape tensors of RESHAPE / PAD / MEAN are not parameters."""
    if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return 0
    return sum(t.nbytes for t in op.inputs if t is not None and t.is_constant)  # int4: packed
