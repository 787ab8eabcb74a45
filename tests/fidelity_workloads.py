"""The twin-fidelity microbenchmarks (``tests/fixtures/microbench/fidelity.c``) built bare-metal
for a board's core: shared by the fidelity checks and the cycle-count guard."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from bench_firmware.boards import Board

SOURCE = Path(__file__).resolve().parent / "fixtures" / "microbench" / "fidelity.c"
GCC = "arm-none-eabi-gcc"
WORKLOADS = {"scalar": 1, "mem_flash": 2, "mac_flash": 3, "mac_sram": 4}
REPEATS = 4
LINK_FLAGS = ("-nostdlib", "-ffreestanding", "-fno-tree-loop-distribute-patterns",
              "-Wl,-Ttext=0x08000000", "-Wl,-Tdata=0x20010000", "-Wl,-e,setup")


def builder(out: Path) -> Callable[[Board, str], Path]:
    """``build(board, workload) -> ELF`` into ``out``, compiled once per (core, workload)."""
    built: dict[tuple[str, str], Path] = {}

    def build(board: Board, name: str) -> Path:
        key = (board.core, name)
        if key not in built:
            elf = out / f"{board.core}-{name}.elf"
            flags = [f for f in board.gcc_cpu_flags if not f.startswith("-mfloat-abi")]
            subprocess.run([GCC, "-O2", *flags, f"-DWORKLOAD={WORKLOADS[name]}",
                            f"-DREPEATS={REPEATS}", *LINK_FLAGS, str(SOURCE), "-o", str(elf)],
                           check=True, capture_output=True, text=True)
            built[key] = elf
        return built[key]

    return build
