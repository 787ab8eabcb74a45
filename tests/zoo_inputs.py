"""Reading zoo models (op lists, input tensors; no TensorFlow needed) and drawing inputs for
them: the calibration :func:`signal` and :func:`random_input` (see ``tests/zoo.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tflite

_BUILTIN_NAMES: dict[int, str] = {
    getattr(tflite.BuiltinOperator, n): n
    for n in dir(tflite.BuiltinOperator)
    if not n.startswith("_")
}
_NUMPY_TYPES: dict[int, type[np.generic]] = {
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT16: np.int16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.FLOAT32: np.float32,
}


def _as_bytes(model: bytes | bytearray | str | Path) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    return Path(model).read_bytes()


def model_ops(model: bytes | bytearray | str | Path) -> list[str]:
    """The builtin op names of subgraph 0, in execution order."""
    m = tflite.Model.GetRootAsModel(_as_bytes(model), 0)
    sg = m.Subgraphs(0)
    names = []
    for i in range(sg.OperatorsLength()):
        code = m.OperatorCodes(sg.Operators(i).OpcodeIndex())
        op = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        names.append(_BUILTIN_NAMES.get(op, f"UNKNOWN_{op}"))
    return names


def input_details(model: bytes | bytearray | str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and numpy dtype of the model's (first) input tensor."""
    shape, dtype, _, _ = _input_tensor(model)
    return shape, dtype


def _input_tensor(
    model: bytes | bytearray | str | Path,
) -> tuple[tuple[int, ...], np.dtype, float, int]:
    return _io_tensor(model, output=False)


def output_quantization(model: bytes | bytearray | str | Path) -> tuple[float, int]:
    """Scale and zero point of the model's (first) output tensor (1.0, 0 when it has none)."""
    _, _, scale, zero_point = _io_tensor(model, output=True)
    return scale, zero_point


def input_quantization(model: bytes | bytearray | str | Path) -> tuple[float, int]:
    """Scale and zero point of the model's (first) input tensor (1.0, 0 when it has none)."""
    _, _, scale, zero_point = _io_tensor(model, output=False)
    return scale, zero_point


def _io_tensor(
    model: bytes | bytearray | str | Path, *, output: bool
) -> tuple[tuple[int, ...], np.dtype, float, int]:
    m = tflite.Model.GetRootAsModel(_as_bytes(model), 0)
    sg = m.Subgraphs(0)
    t = sg.Tensors(sg.Outputs(0) if output else sg.Inputs(0))
    shape = tuple(int(d) for d in t.ShapeAsNumpy())
    q = t.Quantization()
    scale, zero_point = 1.0, 0
    if q is not None and q.ScaleLength() > 0:
        scale, zero_point = float(q.Scale(0)), int(q.ZeroPoint(0))
    return shape, np.dtype(_NUMPY_TYPES[t.Type()]), scale, zero_point


def signal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 test signal: white noise + a per-sample per-channel offset + a ramp along H.

    I.i.d. noise alone is a poor probe: global pooling averages it to a constant, so deep
    models (``ds_cnn_kws``) give the same output for every input. The zoo is calibrated with
    this distribution and ``random_input`` draws from it by default.
    """
    x = 0.7 * rng.standard_normal(shape)
    x += 0.7 * rng.standard_normal((1,) * (len(shape) - 1) + (shape[-1],))
    if len(shape) >= 3:
        ramp = np.linspace(-1.0, 1.0, shape[1]).reshape((1, shape[1]) + (1,) * (len(shape) - 2))
        x += 0.7 * rng.standard_normal() * ramp
    return x.astype(np.float32)


def random_input(
    model: bytes | bytearray | str | Path, seed: int, kind: str = "signal"
) -> np.ndarray:
    """A seeded random input of the model's input dtype and shape.

    ``kind="signal"`` (default): ``signal()`` -- the calibration distribution -- as float32
    for float-input models, or quantized with the input's scale/zero point (round, clamp to
    [-128, 127]; tails reach the full int8 range) for int8 models.
    ``kind="uniform"``: i.i.d. uniform over the full int8 range (float models: U(-4, 4)),
    which drives many layers into saturation -- a stress test for clamping paths.
    """
    shape, dtype, scale, zero_point = _input_tensor(model)
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        if dtype == np.float32:
            return rng.uniform(-4.0, 4.0, size=shape).astype(np.float32)
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)
    if kind != "signal":
        raise ValueError(f"unknown input kind {kind!r} (use 'signal' or 'uniform')")
    x = signal(rng, shape)
    if dtype == np.float32:
        return x
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)
