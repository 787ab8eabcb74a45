"""Fidelity of the virtual boards' flash path: workloads at each accelerator setting.

    .venv/bin/python benchmarks/twin_fidelity.py [--repeats N] [--board B ...] [-o FILE]

Builds ``tests/fixtures/microbench/fidelity.c`` (four workloads: CoreMark-like scalar code,
a memory-bound sum over a 16 KB flash table, SMLAD dot products with the weights in flash and
the same with the weights in SRAM) with arm-none-eabi-gcc -O2 for each core, runs each on a bare
core with the board's cycle model (``timing/harness.py``) under several flash settings, and
prints modelled cycles and the ratio to the same code at 0 wait states with everything on. Next
to a ratio stands the published figure it should match, with its source, where one exists:

* ``RM0390 §3.4.2`` (STM32F446) and ``RM0090 §3.5.2`` (the other F4 parts, same text): "Based
  on CoreMark benchmark, the performance achieved thanks to the ART accelerator is equivalent to
  0 wait state program execution from flash memory at a CPU frequency up to 180 MHz": ratio 1.00
  for scalar code at 5 WS with the ART on.
* ``RM0432 §3.3.4`` (STM32L4+; the same ART text as RM0440 §3.3.4, STM32G4, which was checked):
  the same CoreMark statement for the L4+ ART, ratio 1.00. Its §3.2 / §3.3.1: flash reads are
  64 bits wide in dual-bank mode (DBANK = 1, the NUCLEO-L4R5ZI's factory setting); §3.3.4: the
  data cache holds 8 rows of 4 x 64 bits and there is no prefetch on DCode, so a 32-byte row of
  weights costs 4 reads x ws stall cycles.
* ``DDI 0489 §5.9`` (Cortex-M7 TRM, L1 caches): linefills are critical-word-first, so a D-cache
  miss waits the wait states once.
* ``DS10916`` / ``DS11532`` (STM32F746xx / STM32F767xx datasheets, features): "ART Accelerator
  and L1-cache ... allowing 0-wait state execution from embedded Flash": ratio 1.00 with the
  caches on.

Ratios, not absolute CoreMark scores: the workload is CoreMark-like, not CoreMark. Figures, not
pass/fail (``tests/integration/test_twin_fidelity.py`` holds the checks).
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_firmware.backends.virtual.timing import MemoryConfig
from bench_firmware.backends.virtual.timing.harness import BareCore
from bench_firmware.boards import BOARDS, Board

SOURCE = (Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "microbench"
          / "fidelity.c")
WORKLOADS = {"scalar": 1, "mem_flash": 2, "mac_flash": 3, "mac_sram": 4}
LINK_FLAGS = ("-nostdlib", "-ffreestanding", "-fno-tree-loop-distribute-patterns",
              "-Wl,-Ttext=0x08000000", "-Wl,-Tdata=0x20010000", "-Wl,-e,setup")
ALL_ON = MemoryConfig()
# (label, memory configuration, wait states: None = the board's own)
SETTINGS_M4 = (
    ("ART on, N WS", ALL_ON, None),
    ("prefetch off", MemoryConfig(prefetch=False), None),
    ("I-cache off", MemoryConfig(icache=False), None),
    ("D-cache off", MemoryConfig(dcache=False), None),
    ("ART all off", MemoryConfig(icache=False, dcache=False, prefetch=False), None),
)
SETTINGS_M7 = (
    ("L1 on, N WS", ALL_ON, None),
    ("I-cache off", MemoryConfig(icache=False), None),
    ("D-cache off", MemoryConfig(dcache=False), None),
    ("L1 all off", MemoryConfig(icache=False, dcache=False), None),
)
ZERO_WAIT_CLAIM = {
    "STM32F446RE": ("1.00", "RM0390 §3.4.2 (CoreMark, ART on = 0 WS)"),
    "STM32L4R5ZI": ("1.00", "RM0432 §3.3.4 (CoreMark, ART on = 0 WS)"),
    "STM32F746ZG": ("1.00", "DS10916 features (L1 cache: 0-WS execution)"),
    "STM32F767ZI": ("1.00", "DS11532 features (L1 cache: 0-WS execution)"),
}


def build(workdir: Path, board: Board, workload: str, repeats: int) -> Path:
    """Compile ``workload`` for ``board``'s core; returns the ELF."""
    elf = workdir / f"{board.core}-{workload}-{repeats}.elf"
    if not elf.exists():
        flags = [f for f in board.gcc_cpu_flags if not f.startswith("-mfloat-abi")]
        subprocess.run(["arm-none-eabi-gcc", "-O2", *flags, f"-DWORKLOAD={WORKLOADS[workload]}",
                        f"-DREPEATS={repeats}", *LINK_FLAGS, str(SOURCE), "-o", str(elf)],
                       check=True)
    return elf


def run(board: Board, elf: Path, memory: MemoryConfig) -> tuple[int, int, int, int]:
    """(cycles, instructions, I-misses, D-misses) of ``bench`` after ``setup``."""
    core = BareCore(board, elf, memory=memory)
    core.run("setup", "setup_done")
    assert core.model is not None
    i0, d0 = core.model.instruction_misses, core.model.data_misses
    cycles, instructions = core.run("bench", "end")
    return (cycles, instructions, core.model.instruction_misses - i0,
            core.model.data_misses - d0)


# (flash reads per data-line refill, source): from the documents, not from the model, so the
# floor below checks the model's rule.
DATA_RULE = {
    "STM32F446RE": (1, "RM0390 §3.4.2: 1 read (128 bits) x ws per 16-B row"),
    "STM32L4R5ZI": (4, "RM0432 §3.2/§3.3.4: 4 reads (64 bits) x ws per 32-B row"),
    "STM32F746ZG": (1, "DDI 0489 §5.9: ws per 32-B linefill (critical word first)"),
    "STM32F767ZI": (1, "DDI 0489 §5.9: ws per 32-B linefill (critical word first)"),
}


def published(board: Board, workload: str, label: str, base: int,
              dmiss: int) -> tuple[str, str]:
    """What a row should show, and its source: the published 0-wait-state ratio for code that
    fits the instruction cache; for weights or tables in flash, the ratio the data-refill rule
    alone gives (the cycles at 0 WS plus refills x reads x ws), a floor; dashes otherwise."""
    if not label.endswith("on, N WS"):
        return ("-", "")
    if workload in ("scalar", "mac_sram"):
        return ZERO_WAIT_CLAIM[board.mcu]
    reads, source = DATA_RULE[board.mcu]
    floor = (base + dmiss * reads * board.flash_wait_states) / base
    return (f">={floor:.2f}", source)


def table(boards: list[Board], repeats: int) -> list[str]:
    lines = [f"{'board':14s} {'workload':10s} {'setting':14s} {'cycles':>10s} {'CPI':>6s}"
             f" {'I-miss':>7s} {'D-miss':>7s} {'/0WS':>6s}  {'published':>9s}  source"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for board in boards:
            zero = dataclasses.replace(board, flash_wait_states=0)
            settings = SETTINGS_M7 if board.core == "cortex-m7" else SETTINGS_M4
            for workload in WORKLOADS:
                elf = build(workdir, board, workload, repeats)
                base, n, _, _ = run(zero, elf, ALL_ON)
                lines.append(f"{board.name:14s} {workload:10s} {'all on, 0 WS':14s}"
                             f" {base:10d} {base / n:6.3f} {'':7s} {'':7s} {1:6.2f}")
                for label, memory, ws in settings:
                    target = board if ws is None else dataclasses.replace(
                        board, flash_wait_states=ws)
                    cycles, n2, imiss, dmiss = run(target, elf, memory)
                    assert n2 == n, "the same code ran a different number of instructions"
                    value, source = published(board, workload, label, base, dmiss)
                    lines.append(f"{board.name:14s} {workload:10s} {label:14s} {cycles:10d}"
                                 f" {cycles / n:6.3f} {imiss:7d} {dmiss:7d}"
                                 f" {cycles / base:6.2f}  {value:>9s}  {source}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--board", action="append", choices=sorted(BOARDS))
    parser.add_argument("-o", "--output", type=Path, help="also write the table here")
    args = parser.parse_args()
    boards = [BOARDS[name] for name in (args.board or
              ("nucleo-f446re", "nucleo-l4r5zi", "nucleo-f746zg", "nucleo-f767zi"))]
    lines = table(boards, args.repeats)
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
