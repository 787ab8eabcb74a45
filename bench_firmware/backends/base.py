"""The one protocol every board backend implements.

Lifecycle (misuse raises ``BoardError``)::

    with open_backend("virtual:nucleo-f446re") as board:   # open(): boot / connect serial
        board.load_plan(plan.data)                          # write the model region, reload
        run = board.run(x.tobytes(), runs=5, warmup=1)      # upload, infer, read cycles
    # close(): stop the emulator / release the probe

A backend owns one board; it is not thread-safe. Every backend talks to its firmware through
the same serial client (``bench_firmware.protocol.DutClient``), so the host code that drives a
physical board is the code the tests run against virtual ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bench_firmware.boards import Board


@dataclass
class RunResult:
    """One ``run``: raw output bytes, total cycles of every timed run (empty where the board
    has no cycle counter), per-operator cycles of the last timed run, lap timestamps and the
    serial transcript."""

    output: bytes
    cycles_per_run: list[int]
    layer_cycles: list[int]
    lap_us: tuple[int, int]
    energy_mj: float | None = None  # per inference, when a monitor measured it
    transcript: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class BoardBackend(Protocol):
    device: str  # e.g. "virtual:nucleo-f446re"
    board: Board

    def open(self) -> None:
        """Boot or connect to the board; afterwards the firmware answers on serial."""

    def close(self) -> None:
        """Release everything; safe to call twice."""

    def load_plan(self, plan: bytes) -> dict[str, int | str]:
        """Put ``plan`` in the board's model region and have the firmware validate it;
        returns the firmware's plan status (``mp-plan``)."""
        ...

    def run(self, input_bytes: bytes, *, runs: int, warmup: int,
            kernels: str = "dsp") -> RunResult:
        """Upload the input, run ``warmup`` untimed and ``runs`` timed inferences."""
        ...

    def __enter__(self) -> BoardBackend: ...

    def __exit__(self, *exc: object) -> None: ...
