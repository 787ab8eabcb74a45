"""Read an int8 ``.tflite`` flatbuffer into a small graph (no TensorFlow import).

The flatbuffer accessors come from the ``tflite`` package (the generated schema reader);
this module turns them into plain dataclasses and wraps every parse failure in
``CorruptModelError`` so a truncated or foreign file never surfaces as a flatbuffers
traceback.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tflite

from bench_firmware import validate
from bench_firmware.errors import CorruptModelError

_TENSOR_TYPES = {
    getattr(tflite.TensorType, name): name.lower()
    for name in dir(tflite.TensorType)
    if not name.startswith("_")
}
_NUMPY = {
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "float32": np.float32, "float16": np.float16, "bool": np.bool_,
}
BUILTIN_NAMES = {
    getattr(tflite.BuiltinOperator, name): name
    for name in dir(tflite.BuiltinOperator)
    if not name.startswith("_")
}
_PADDING = {tflite.Padding.SAME: "SAME", tflite.Padding.VALID: "VALID"}
_ACTIVATION = {
    getattr(tflite.ActivationFunctionType, name): name
    for name in dir(tflite.ActivationFunctionType)
    if not name.startswith("_")
}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: np.ndarray | None = None  # float32, one per channel or one
    zero_points: np.ndarray | None = None
    quantized_dimension: int = 0
    data: np.ndarray | None = None  # constant tensors (weights, biases, shapes)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def scale(self) -> float:
        """The per-tensor scale as the float32 the runtime reads, widened exactly."""
        if self.scales is None or len(self.scales) == 0:
            return 0.0
        return float(np.float32(self.scales[0]))

    @property
    def zero_point(self) -> int:
        if self.zero_points is None or len(self.zero_points) == 0:
            return 0
        return int(self.zero_points[0])

    @property
    def is_quantized(self) -> bool:
        return self.scales is not None and len(self.scales) > 0

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        if self.dtype == "int4":
            return (self.elements + 1) // 2  # two per byte
        return self.elements * np.dtype(_NUMPY.get(self.dtype, np.int8)).itemsize


def unpack_int4(packed: bytes, count: int) -> np.ndarray:
    """TFLite's INT4 tensor data (two values per byte, the first in the low nibble, each a
    signed 4-bit value: tensorflow/lite/kernels/internal/portable_tensor_utils.h
    UnpackDenseInt4IntoInt8) as ``count`` int8 values."""
    b = np.frombuffer(packed, dtype=np.uint8)
    low = (b << 4).astype(np.int8) >> 4
    high = b.astype(np.int8) >> 4
    return np.stack([low, high], axis=1).reshape(-1)[:count].astype(np.int8)


def pack_int4(values: np.ndarray) -> bytes:
    """int8 values in [-8, 7] packed two per byte, the first in the low nibble (TFLite INT4)."""
    v = np.asarray(values, dtype=np.int8).reshape(-1)
    if v.size and (v.min() < -8 or v.max() > 7):
        raise ValueError("int4 values must be in [-8, 7]")
    if v.size % 2:
        v = np.concatenate([v, np.zeros(1, np.int8)])
    u = v.astype(np.uint8) & 0x0F
    return (u[0::2] | (u[1::2] << 4)).astype(np.uint8).tobytes()


def _unpack_int4(raw: bytes, shape: tuple[int, ...], index: int, name: str) -> np.ndarray:
    count = math.prod(shape)
    if any(d <= 0 for d in shape):
        raise CorruptModelError(f"tensor {index} ({name!r}) has shape {list(shape)}; every "
                                f"dimension must be >= 1. {validate.REEXPORT}")
    if len(raw) != (count + 1) // 2:
        raise CorruptModelError(
            f"tensor {index} ({name!r}) has shape {list(shape)} (int4, {(count + 1) // 2} "
            f"bytes packed two per byte) but its buffer holds {len(raw)} bytes. "
            f"{validate.REEXPORT}")
    return unpack_int4(raw, count).reshape(shape if shape else ())


@dataclass
class Operator:
    index: int
    name: str  # the TFLite builtin name, e.g. "CONV_2D"
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[Tensor]
    outputs: list[Tensor]
    sha256: str
    size_bytes: int
    description: str = ""


def _options(op: Any, name: str) -> dict[str, Any]:
    """The builtin options we use, as a plain dict."""
    table = op.BuiltinOptions()
    classes = {
        "CONV_2D": tflite.Conv2DOptions,
        "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
        "FULLY_CONNECTED": tflite.FullyConnectedOptions,
        "AVERAGE_POOL_2D": tflite.Pool2DOptions,
        "MAX_POOL_2D": tflite.Pool2DOptions,
        "ADD": tflite.AddOptions,
        "SOFTMAX": tflite.SoftmaxOptions,
        "CONCATENATION": tflite.ConcatenationOptions,
        "RESHAPE": tflite.ReshapeOptions,
        "MEAN": tflite.ReducerOptions,
    }
    cls = classes.get(name)
    if table is None or cls is None:
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    if hasattr(opts, "FusedActivationFunction"):
        out["activation"] = _ACTIVATION.get(opts.FusedActivationFunction(), "UNKNOWN")
    if hasattr(opts, "Padding"):
        out["padding"] = _PADDING.get(opts.Padding(), "UNKNOWN")
    if hasattr(opts, "StrideH"):
        out["stride_h"], out["stride_w"] = opts.StrideH(), opts.StrideW()
    if hasattr(opts, "DilationHFactor"):
        out["dilation_h"], out["dilation_w"] = opts.DilationHFactor(), opts.DilationWFactor()
    if hasattr(opts, "DepthMultiplier"):
        out["depth_multiplier"] = opts.DepthMultiplier()
    if hasattr(opts, "FilterHeight"):
        out["filter_h"], out["filter_w"] = opts.FilterHeight(), opts.FilterWidth()
    if hasattr(opts, "KeepNumDims"):
        out["keep_num_dims"] = bool(opts.KeepNumDims())
    if hasattr(opts, "WeightsFormat"):
        out["weights_format"] = opts.WeightsFormat()
    if hasattr(opts, "Beta"):
        out["beta"] = float(opts.Beta())
    if hasattr(opts, "Axis"):
        out["axis"] = opts.Axis()
    if hasattr(opts, "KeepDims"):
        out["keep_dims"] = bool(opts.KeepDims())
    if hasattr(opts, "NewShapeAsNumpy") and opts.NewShapeLength():
        out["new_shape"] = tuple(int(x) for x in opts.NewShapeAsNumpy())
    return out


def read_tflite(data: bytes, name: str = "model") -> Graph:
    """Parse ``data`` (the bytes of a .tflite file)."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise CorruptModelError(
            f"{name} is not a TensorFlow Lite flatbuffer (no 'TFL3' identifier in its first "
            f"8 bytes; {len(data)} bytes read). Export the model with tf.lite.TFLiteConverter."
        )
    try:
        return _read(data)
    except CorruptModelError:
        raise
    except Exception as e:  # flatbuffers raises plain IndexError/struct.error on bad offsets
        raise CorruptModelError(
            f"{name} is a damaged .tflite file ({len(data)} bytes; the reader failed with "
            f"{type(e).__name__}: {e}). Re-export it; a truncated download or copy is the "
            "usual cause."
        ) from e


def _read(data: bytes) -> Graph:
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() < 1:
        raise CorruptModelError("the model has no subgraph")
    sg = model.Subgraphs(0)
    validate.check_flatbuffer(model, BUILTIN_NAMES)  # indices are in range from here on
    tensors: list[Tensor] = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        dtype = _TENSOR_TYPES.get(t.Type(), f"type{t.Type()}")
        shape = tuple(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        q = t.Quantization()
        scales = zps = None
        qdim = 0
        if q is not None and q.ScaleLength():
            scales = np.asarray(q.ScaleAsNumpy(), dtype=np.float32)
            zps = np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64)
            qdim = q.QuantizedDimension()
        buf = model.Buffers(t.Buffer())
        const: np.ndarray | None = None
        raw: bytes | None = None
        if buf is not None and buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
        elif buf is not None and buf.Offset() > 1:
            # Models over 2 GB keep buffers outside the flatbuffer; none fits an MCU anyway.
            start, size = buf.Offset(), buf.Size()
            raw = data[start : start + size]
        if raw is not None and dtype == "int4":
            const = _unpack_int4(raw, shape, i, t.Name().decode(errors="replace"))
        elif raw is not None:
            np_type = _NUMPY.get(dtype)
            if np_type is None:
                raise CorruptModelError(
                    f"tensor {t.Name().decode(errors='replace')!r} has unsupported type {dtype}")
            if any(d <= 0 for d in shape):
                raise CorruptModelError(
                    f"tensor {i} ({t.Name().decode(errors='replace')!r}) has shape "
                    f"{list(shape)}; every dimension must be >= 1. {validate.REEXPORT}")
            want = math.prod(shape) * np.dtype(np_type).itemsize
            if len(raw) != want:
                raise CorruptModelError(
                    f"tensor {i} ({t.Name().decode(errors='replace')!r}) has shape "
                    f"{list(shape)} ({dtype}, {want} bytes) but its buffer {t.Buffer()} holds "
                    f"{len(raw)} bytes. {validate.REEXPORT}")
            const = np.frombuffer(raw, dtype=np_type).reshape(shape if shape else ())
        tensors.append(Tensor(i, t.Name().decode(errors="replace"), shape, dtype, scales, zps,
                              qdim, const))

    operators: list[Operator] = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = "CUSTOM:" + (code.CustomCode() or b"?").decode(errors="replace")
        in_ids = op.InputsAsNumpy() if op.InputsLength() else []
        ins = [tensors[j] if j >= 0 else None for j in in_ids]
        outs = [tensors[j] for j in op.OutputsAsNumpy()] if op.OutputsLength() else []
        operators.append(Operator(i, name, ins, outs, _options(op, name)))

    inputs = [tensors[j] for j in sg.InputsAsNumpy()]
    outputs = [tensors[j] for j in sg.OutputsAsNumpy()]
    desc = model.Description().decode(errors="replace") if model.Description() else ""
    graph = Graph(tensors, operators, inputs, outputs, hashlib.sha256(data).hexdigest(),
                  len(data), desc)
    validate.check_graph(graph)
    return graph
