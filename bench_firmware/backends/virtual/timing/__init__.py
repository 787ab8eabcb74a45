"""Cycle model of the virtual boards: how many core cycles the emulated code takes.

Usage (the virtual machine owns the ``Uc``; the model only adds hooks)::

    model = create_cycle_model(get_board("nucleo-f446re"))
    model.attach(uc)          # memory mapped (firmware written), before emu_start
    uc.emu_start(...)
    model.cycles, model.instructions

Derived from documented instruction timings (Cortex-M4 TRM, GCC and LLVM scheduling models,
published measurements) and the STM32 flash-accelerator facts; never fitted to whole-network
latencies. ``model.py`` explains how a run's cost is assembled, ``m4.py`` / ``m7.py`` the
per-instruction rules, ``memory.py`` the flash path of each board.
"""

from __future__ import annotations

from bench_firmware.backends.virtual.timing.model import CycleModel, MemoryConfig
from bench_firmware.boards import Board

__all__ = ["CycleModel", "MemoryConfig", "create_cycle_model"]


def create_cycle_model(board: Board, memory: MemoryConfig | None = None,
                       implementation: str | None = None) -> CycleModel:
    """A cycle model for ``board`` (its core, clock-derived flash wait states and caches).
    ``memory`` turns flash-accelerator parts off (for experiments); the default is what the
    bench firmware enables at boot. ``implementation``: "c" (the compiled hot paths),
    "python" (the reference) or "auto"; default ``MCUPROF_TWIN_MODEL``, else auto."""
    return CycleModel(board, memory, implementation)
