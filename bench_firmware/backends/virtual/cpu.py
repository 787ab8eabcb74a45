"""The emulated core's interfaces: the cycle model the machine runs under
(:class:`CycleModel`) and a fast reader of core registers for hot hooks.
"""

from __future__ import annotations

import ctypes
import importlib
from collections.abc import Callable
from typing import Any, Protocol

from unicorn import Uc

from bench_firmware.boards import Board
from bench_firmware.errors import BoardError


class CycleModel(Protocol):
    """The cycle model's interface
    (``bench_firmware.backends.virtual.timing.create_cycle_model``)."""

    @property
    def cycles(self) -> int:
        """Modeled core cycles since reset (monotonic)."""
        ...

    @property
    def instructions(self) -> int:
        """Emulated instructions since reset."""
        ...

    def attach(self, uc: Any) -> None:
        """Installs its hooks; called after memory is mapped, before ``emu_start``."""


def default_cycle_model(board: Board) -> CycleModel:
    """The project's cycle model for ``board``."""
    try:
        # By name, so this module type-checks whatever state the timing package is in.
        timing = importlib.import_module("bench_firmware.backends.virtual.timing")
        create_cycle_model = timing.create_cycle_model
    except (ImportError, AttributeError) as e:
        raise BoardError(
            f"the virtual boards' cycle model (bench_firmware.backends.virtual.timing."
            f"create_cycle_model) cannot be imported: {e}; pass cycle_model= explicitly or "
            f"reinstall mcuprof") from e
    model: CycleModel = create_cycle_model(board)
    return model


def register_reader(uc: Uc) -> Callable[[int], int]:
    """A reader of 32-bit core registers for hot hooks. ``Uc.reg_read`` spends most of its
    ~1 µs choosing the register's type; with the pinned binding's C entry point at hand, a
    read costs a third of that. Falls back to ``reg_read`` if the binding changes."""
    try:
        from unicorn.unicorn_py3.unicorn import uclib  # the binding's ctypes library

        read_c = uclib.uc_reg_read
        handle = uc._uch
    except (ImportError, AttributeError):
        return uc.reg_read
    value = ctypes.c_uint32()
    ref = ctypes.byref(value)

    def read(reg_id: int) -> int:
        read_c(handle, reg_id, ref)
        return value.value

    return read
