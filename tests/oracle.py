"""TensorFlow Lite Micro (its Python interpreter) as the bit-exact reference for our runtime.

``tflm_run(model, x)`` runs one inference and returns the output; ``tflm_arena(model)``
returns the recording allocator's arena figures (``head`` = non-persistent, planned
activations and scratch; ``tail`` = persistent; ``total``).

TFLM aborts the whole process (segfault) when the arena is far too small to hold even its own
bookkeeping, and raises ``RuntimeError`` when it is merely too small for the tensors, so we
start from a generous arena and double it on ``RuntimeError``. The arena size does not change
the figures ``tflm_arena`` reports (it records what was used, not what was offered).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_FIRST_ARENA = 1 << 20
_MAX_ARENA = 256 << 20
_ALLOC_LINE = re.compile(
    r"\[RecordingMicroAllocator\] Arena allocation (head|tail|total) (\d+) bytes"
)


def _as_bytes(model: bytes | bytearray | str | Path) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    return Path(model).read_bytes()


def _runtime() -> Any:
    """TFLM's Python runtime; skips the calling test when ``tflite-micro`` is not installed."""
    mod = pytest.importorskip(
        "tflite_micro.python.tflite_micro.runtime", reason="the TFLM oracle needs tflite-micro"
    )
    return mod


def has_int4(model: bytes) -> bool:
    """Whether the model has INT4 tensors (4-bit weights)."""
    import tflite

    m = tflite.Model.GetRootAsModel(model, 0)
    sg = m.Subgraphs(0)
    return any(sg.Tensors(i).Type() == tflite.TensorType.INT4 for i in range(sg.TensorsLength()))


def reference_model(model: bytes) -> bytes:
    """The model TFLM runs as the reference for ``model``: itself, or for a model with 4-bit
    weights the same model widened to int8 (same values and scales, ``search.int4.
    widen_int4``): TFLM's FULLY_CONNECTED takes no INT4 weights, and its CONV_2D unpacks
    them to int8 before computing, which is what widening does
    (``test_int4.py`` checks the two agree where TFLM runs 4-bit)."""
    if not has_int4(model):
        return model
    from search.int4 import widen_int4

    return widen_int4(model)


def tflm_interpreter(model: bytes | bytearray | str | Path, arena_size: int | None = None) -> Any:
    """A TFLM ``runtime.Interpreter`` for ``model``, growing the arena until allocation succeeds.

    With ``arena_size`` given, exactly that size is tried (``RuntimeError`` if too small).
    """
    data = reference_model(_as_bytes(model))
    runtime = _runtime()
    if arena_size is not None:
        return runtime.Interpreter.from_bytes(data, arena_size=arena_size)
    size = max(_FIRST_ARENA, 8 * len(data))
    while True:
        try:
            return runtime.Interpreter.from_bytes(data, arena_size=size)
        except RuntimeError:
            if size >= _MAX_ARENA:
                raise
            size *= 2


def _check_input(interp: Any, x: np.ndarray, index: int = 0) -> np.ndarray:
    details = interp.get_input_details(index)
    want_shape = tuple(int(d) for d in details["shape"])
    want_dtype = np.dtype(details["dtype"])
    x = np.asarray(x)
    if x.dtype != want_dtype:
        raise TypeError(f"input {index}: dtype {x.dtype}, model wants {want_dtype}")
    if tuple(x.shape) != want_shape:
        if x.size == int(np.prod(want_shape)):
            x = x.reshape(want_shape)
        else:
            raise ValueError(f"input {index}: shape {x.shape}, model wants {want_shape}")
    return np.ascontiguousarray(x)


def tflm_run(model: bytes | bytearray | str | Path, x: np.ndarray) -> np.ndarray:
    """Run one inference of ``model`` on ``x`` in TFLM; returns (a copy of) output 0.

    ``x`` must have the model input's dtype (int8, or float32 for float-I/O models); a
    different shape with the same number of elements is reshaped.
    """
    interp = tflm_interpreter(model)
    interp.set_input(_check_input(interp, x), 0)
    interp.invoke()
    return np.array(interp.get_output(0), copy=True)


def tflm_run_all(model: bytes | bytearray | str | Path, xs: list[np.ndarray]) -> list[np.ndarray]:
    """Like ``tflm_run`` for several inputs, reusing one interpreter (faster for many inputs)."""
    interp = tflm_interpreter(model)
    outs = []
    for x in xs:
        interp.set_input(_check_input(interp, x), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0), copy=True))
    return outs


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers (a buffered C ``stdout`` would else leak late)."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _capture_native_output(fn: Any) -> str:
    """Call ``fn()`` with file descriptors 1 and 2 redirected to a temp file; return its text.

    TFLM's ``MicroPrintf`` writes from C++ (stderr in current builds, stdout in some), so both
    descriptors are captured; Python-level buffers are flushed first and the descriptors are
    always restored.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    _flush_c_stdio()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile(mode="w+b") as tmp:
            try:
                os.dup2(tmp.fileno(), 1)
                os.dup2(tmp.fileno(), 2)
                fn()
            finally:
                _flush_c_stdio()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
            tmp.seek(0)
            return tmp.read().decode("utf-8", errors="replace")
    finally:
        for fd in saved:
            os.close(fd)


def tflm_allocation_report(model: bytes | bytearray | str | Path) -> str:
    """The raw text of TFLM's ``print_allocations()`` after one inference on zeros."""
    interp = tflm_interpreter(model)
    details = interp.get_input_details(0)
    x = np.zeros([int(d) for d in details["shape"]], dtype=details["dtype"])
    interp.set_input(x, 0)
    interp.invoke()
    return _capture_native_output(interp.print_allocations)


def tflm_arena(model: bytes | bytearray | str | Path) -> dict[str, int]:
    """TFLM's recorded arena use in bytes: ``{"head": ..., "tail": ..., "total": ...}``.

    ``head`` is the non-persistent section (planned activations + scratch buffers), ``tail``
    the persistent one (tensor structs, quantization params, op data), ``total`` their sum.
    """
    text = tflm_allocation_report(model)
    found = {kind: int(n) for kind, n in _ALLOC_LINE.findall(text)}
    missing = {"head", "tail", "total"} - set(found)
    if missing:
        raise RuntimeError(f"TFLM allocation report lacks {sorted(missing)}:\n{text}")
    return found
