"""Per-operator plan compilers.

Each supported TFLite builtin has one function, registered with ``@register("NAME")``, that
validates the operator, precomputes every quantization parameter, appends weights and
per-channel arrays to the plan's data section through ``ctx.add_data`` and returns the packed
parameter struct (``bench_firmware.plan_format``), or ``b""`` when the op has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bench_firmware.boards import Board
from bench_firmware.errors import ModelError, UnsupportedOpError
from bench_firmware.tflite_model import Operator, Tensor


class DataSink(Protocol):
    """What an op compiler may do with the plan being built. ``scratch_off`` is the arena
    offset the memory planner gave the op's scratch buffer, ``scratch_bytes`` its size: what
    its spec's ``scratch`` asked for, plus its ``extra`` when the arena had room for it; both
    0 when it asked for none. ``resident_off`` and ``resident_bytes``: where in the arena the
    runtime copies the op's weights at load, as its spec's ``resident`` asked (0 bytes: none,
    or the arena had no room)."""

    scratch_off: int
    scratch_bytes: int
    resident_off: int
    resident_bytes: int

    def add_data(self, data: bytes | np.ndarray, align: int = 8) -> int:
        """Append bytes to the data section; returns their absolute offset in the plan."""
        ...


OpCompileFn = Callable[[Operator, DataSink], bytes]
ScratchFn = Callable[[Operator], int]
ExtraScratchFn = Callable[[Operator, Board], int]
ResidentFn = Callable[[Operator, Board], int]


@dataclass(frozen=True)
class OpSpec:
    name: str
    compile: OpCompileFn
    scratch: ScratchFn | None = None  # bytes of arena scratch the op's kernel needs
    # Bytes of scratch beyond `scratch` with which the kernel runs faster on a board (the
    # kernel uses them when its buffer is that large); bench_firmware/compiler.py
    # extra_scratch_ops gives them while the arena fits the board. None: nothing to gain.
    extra: ExtraScratchFn | None = None
    # Bytes of the op's constant data that the runtime copies into the arena when the plan
    # loads, for its kernel to read from SRAM instead of flash on a board (alive for the whole
    # graph; bench_firmware/compiler.py gives them while the arena fits). None: nothing.
    resident: ResidentFn | None = None

    def scratch_bytes(self, op: Operator) -> int:
        return self.scratch(op) if self.scratch is not None else 0

    def extra_scratch_bytes(self, op: Operator, board: Board) -> int:
        return self.extra(op, board) if self.extra is not None else 0

    def resident_bytes(self, op: Operator, board: Board) -> int:
        return self.resident(op, board) if self.resident is not None else 0


REGISTRY: dict[str, OpSpec] = {}


def register(name: str, *, scratch: ScratchFn | None = None,
             extra: ExtraScratchFn | None = None,
             resident: ResidentFn | None = None) -> Callable[[OpCompileFn], OpCompileFn]:
    """Registers an op compiler; ``scratch`` sizes the arena scratch buffer its kernel uses
    (planned with the activations, alive during that op only); ``extra`` the scratch beyond
    that with which its kernel runs faster; ``resident`` the constant data copied into the
    arena at load (:class:`OpSpec`)."""
    def wrap(fn: OpCompileFn) -> OpCompileFn:
        REGISTRY[name] = OpSpec(name, fn, scratch, extra, resident)
        return fn

    return wrap


def fail(op: Operator, what: str, hint: str = "") -> UnsupportedOpError:
    """An error naming the operator, its index and what about it is unsupported."""
    msg = f"operator {op.index} ({op.name}): {what}"
    if hint:
        msg += f". {hint}"
    return UnsupportedOpError(msg, op=op.name, index=op.index)


WEIGHT_BITS = {"int8": 8, "int4": 4}


def require_weights(op: Operator, tensor: Tensor | None, role: str) -> Tensor:
    """A quantized int8 or int4 weight tensor (4-bit: CONV_2D and FULLY_CONNECTED only)."""
    if tensor is not None and tensor.dtype == "int4" and tensor.is_quantized:
        return tensor
    return require_int8(op, tensor, role)


def weight_rows(rows: np.ndarray, bits: int) -> np.ndarray:
    """Weight rows as the plan stores them: int8 as they are; 4-bit packed two per byte for
    the kernels' unpacking (``firmware/include/mp_kernels.h``): each row padded with zeros to
    a multiple of 8 weights, each 8 in 4 bytes, byte k holding weight k in its low nibble and
    weight k + 4 in its high one, so a word unpacks into two words of int8 in order."""
    if bits == 8:
        return rows
    n_rows, n = rows.shape
    padded = np.zeros((n_rows, -(-n // 8) * 8), dtype=np.uint8)
    padded[:, :n] = rows.astype(np.uint8) & 0x0F
    blocks = padded.reshape(n_rows, -1, 2, 4)  # [row][block][half][k]
    return (blocks[:, :, 0, :] | (blocks[:, :, 1, :] << 4)).reshape(n_rows, -1)


def require_int8(op: Operator, tensor: Tensor | None, role: str) -> Tensor:
    if tensor is None:
        raise ModelError(f"operator {op.index} ({op.name}) has no {role} tensor")
    if tensor.dtype == "int4" and tensor.is_constant:
        raise fail(op, f"{role} tensor {tensor.name!r} has 4-bit weights, which mcuprof runs "
                       "on CONV_2D and FULLY_CONNECTED only",
                   "keep this operator's weights at 8 bits (search/int4.py converts conv and "
                   "fully connected weights only)")
    if tensor.dtype != "int8" or not tensor.is_quantized:
        raise fail(op, f"{role} tensor {tensor.name!r} is {tensor.dtype}, not quantized int8")
    return tensor


def nhwc(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A rank ≤ 4 shape left-padded with 1s to rank 4."""
    if len(shape) > 4:
        raise ModelError(f"tensor shape {shape} has rank {len(shape)}; the runtime handles ≤ 4")
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return padded  # type: ignore[return-value]


def load_all() -> None:
    """Import every op module so their ``@register`` calls run."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
