"""4-bit weights for int8 models (MicroNets §4.2's sub-byte option): re-quantize the weights
of every CONV_2D and FULLY_CONNECTED operator to TFLite's INT4 tensors.

A post-training conversion: each output channel's int8 weights are dequantized, given the
symmetric 4-bit scale ``max|w| / 7``, rounded to [-7, 7] and packed two per byte, the first
in the low nibble (TFLite's INT4 layout, ``UnpackDenseInt4IntoInt8`` in
tensorflow/lite/kernels/internal/portable_tensor_utils.h). The int32 bias is re-quantized with
the new ``input_scale * weight_scale``, so the layer's real-valued function changes only by
the weights' rounding. Depthwise weights stay at 8 bits (they are a small share of a model's
flash, and the firmware runs 4-bit weights on CONV_2D and FULLY_CONNECTED only). This costs
accuracy that training with 4-bit weights would recover; it is for measuring what 4-bit
weights do to flash and latency.

Reading and writing the flatbuffer uses the object API TensorFlow ships
(``tensorflow.lite.python.schema_py_generated``), so this module needs TensorFlow, like the
rest of the converter.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from search.errors import ConversionError

CONV_2D, FULLY_CONNECTED = 3, 9  # tflite.BuiltinOperator codes
INT4_MAX = 7  # symmetric: [-7, 7] of the type's [-8, 7]


def _schema() -> Any:
    return importlib.import_module("tensorflow.lite.python.schema_py_generated")


def int4_weights(model: bytes, *, name: str = "model") -> bytes:
    """``model`` (an int8 .tflite) with the weights of its CONV_2D and FULLY_CONNECTED
    operators as INT4 tensors. ConversionError when it has none, or a weight tensor is not
    int8 with symmetric per-channel or per-tensor scales."""
    import flatbuffers

    schema = _schema()
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    converted = 0
    for sg in m.subgraphs:
        ops = []
        for op in sg.operators:
            code = m.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) in (CONV_2D, FULLY_CONNECTED):
                ops.append(op)
        _unshare(schema, m, sg, ops)
        done: set[int] = set()  # weight tensors two operators share are converted once
        for op in ops:
            if int(op.inputs[1]) in done:
                continue
            b_index = int(op.inputs[2]) if len(op.inputs) > 2 else -1
            _convert(schema, m, sg, int(op.inputs[0]), int(op.inputs[1]), b_index, name)
            done.add(int(op.inputs[1]))
            converted += 1
    if converted == 0:
        raise ConversionError(f"{name}: no CONV_2D or FULLY_CONNECTED weights to make 4-bit",
                              name=name)
    builder = flatbuffers.Builder(len(model))
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _unshare(schema: Any, m: Any, sg: Any, ops: list[Any]) -> None:
    """The converter lets identical constant tensors share one buffer, scales aside; each
    weight and bias tensor to re-quantize gets a buffer of its own (a copy)."""
    owners: dict[int, int] = {}
    for i, t in enumerate(sg.tensors):
        owners.setdefault(t.buffer, i)
    for op in ops:
        for index in [int(i) for i in op.inputs[1:] if int(i) >= 0]:
            t = sg.tensors[index]
            if owners.get(t.buffer) == index:
                continue
            copy = schema.BufferT()
            copy.data = np.array(m.buffers[t.buffer].data, dtype=np.uint8, copy=True)
            m.buffers.append(copy)
            t.buffer = len(m.buffers) - 1
            owners[t.buffer] = index


def _convert(schema: Any, m: Any, sg: Any, in_index: int, w_index: int, b_index: int,
             name: str) -> None:
    from bench_firmware.tflite_model import pack_int4

    weights = sg.tensors[w_index]
    bias = sg.tensors[b_index] if b_index >= 0 else None
    if weights.type != schema.TensorType.INT8 or weights.quantization is None \
            or weights.quantization.scale is None:
        raise ConversionError(f"{name}: weight tensor {weights.name!r} is not quantized int8",
                              name=name)
    q = np.frombuffer(bytes(m.buffers[weights.buffer].data), np.int8)
    q = q.reshape(tuple(int(d) for d in weights.shape)).astype(np.int64)
    scales = np.asarray(weights.quantization.scale, np.float64)
    axis = int(weights.quantization.quantizedDimension) if len(scales) > 1 else 0
    bshape = [1] * q.ndim
    bshape[axis] = -1
    others = tuple(a for a in range(q.ndim) if a != axis)
    per_channel = len(scales) > 1
    if per_channel:
        real = q * scales.reshape(bshape)
        peak = np.abs(real).max(axis=others)
    else:
        real = q * scales[0]
        peak = np.array([np.abs(real).max()])
    new_scales = np.where(peak > 0, peak / INT4_MAX, scales).astype(np.float32)
    divisor = new_scales.reshape(bshape) if per_channel else new_scales[0]
    q4 = np.clip(np.round(real / divisor), -INT4_MAX, INT4_MAX).astype(np.int8)
    m.buffers[weights.buffer].data = np.frombuffer(pack_int4(q4), np.uint8)
    weights.type = schema.TensorType.INT4
    weights.quantization.scale = new_scales.tolist()
    if bias is None:
        return
    in_scale = float(np.float32(sg.tensors[in_index].quantization.scale[0]))
    b32 = np.frombuffer(bytes(m.buffers[bias.buffer].data), np.int32).astype(np.float64)
    old = in_scale * scales if per_channel else np.full(len(b32), in_scale * scales[0])
    new = in_scale * new_scales.astype(np.float64)
    new = new if per_channel else np.full(len(b32), new[0])
    requantized = np.clip(np.round(b32 * old / new), -2**31, 2**31 - 1).astype("<i4")
    m.buffers[bias.buffer].data = np.frombuffer(requantized.tobytes(), np.uint8)
    bias.quantization.scale = (in_scale * new_scales).astype(np.float32).tolist()


def widen_int4(model: bytes) -> bytes:
    """The same model with every INT4 tensor widened to INT8 (same values, same scales): what
    the firmware computes for a 4-bit model, runnable by interpreters without 4-bit support
    (TFLite Micro's FULLY_CONNECTED takes no INT4 weights); the reference the tests compare
    4-bit models against."""
    import flatbuffers

    from bench_firmware.tflite_model import unpack_int4

    schema = _schema()
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    for sg in m.subgraphs:
        for t in sg.tensors:
            if t.type != schema.TensorType.INT4:
                continue
            count = int(np.prod([int(d) for d in t.shape]))
            values = unpack_int4(bytes(m.buffers[t.buffer].data), count)
            m.buffers[t.buffer].data = values.view(np.uint8)
            t.type = schema.TensorType.INT8
    builder = flatbuffers.Builder(len(model) * 2)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
