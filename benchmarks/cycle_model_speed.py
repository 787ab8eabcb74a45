"""Emulation speed with the cycle model attached, on a bare core (no peripherals).

    .venv/bin/python benchmarks/cycle_model_speed.py [--instructions 50e6] [--board B ...]

Builds ``tests/fixtures/microbench/dot_product.c`` (int8 dot products, weights in flash) with
arm-none-eabi-gcc -O2 for each core and runs it for about ``--instructions`` instructions:
once on bare Unicorn, then under the cycle model of each board. Prints instructions and
modelled cycles per host second (wall clock and process CPU time: the CPU figure is the one to
compare when other work shares the machine), the modelled CPI, and how often the slow paths
ran. Figures, not pass/fail. The full-firmware figure is ``benchmarks/virtual_board_speed.py``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from bench_firmware.backends.virtual.timing.harness import BareCore
from bench_firmware.boards import BOARDS, Board

SOURCE = (Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "microbench"
          / "dot_product.c")
# Instructions per inner-loop pass of one dot_* call over N_IN = 1024 bytes, to size REPEATS
# (counted from the -O2 code: 5 per byte for dot_plain, 17 per 4 bytes for dot_dsp).
INSTRUCTIONS_PER_CALL = {"plain": 5 * 1024, "dsp": 17 * 256}
LINK_FLAGS = ("-nostdlib", "-ffreestanding", "-Wl,-Ttext=0x08000000",
              "-Wl,-Tdata=0x20010000", "-Wl,-Tbss=0x20010000")


def build(workdir: Path, board: Board, variant: str, repeats: int) -> Path:
    """Compile the dot product for ``board``'s core; returns the ELF."""
    elf = workdir / f"{board.core}-{variant}-{repeats}.elf"
    if not elf.exists():
        defines = [f"-DREPEATS={repeats}"] + (["-DDOT_DSP"] if variant == "dsp" else [])
        flags = [f for f in board.gcc_cpu_flags if not f.startswith("-mfloat-abi")]
        subprocess.run(["arm-none-eabi-gcc", "-O2", *flags, *defines, *LINK_FLAGS,
                        str(SOURCE), "-o", str(elf)], check=True)
    return elf


def measure(board: Board, elf: Path, *, with_model: bool) -> dict[str, float]:
    core = BareCore(board, elf, with_model=with_model)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    cycles, instructions = core.run("_start", "end")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    result = {"wall": wall, "cpu": cpu, "cycles": float(cycles),
              "instructions": float(instructions)}
    if core.model is not None:
        result["imiss"] = float(core.model.instruction_misses)
        result["dmiss"] = float(core.model.data_misses)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instructions", type=float, default=50e6)
    parser.add_argument("--board", action="append", choices=sorted(BOARDS))
    parser.add_argument("--variant", action="append", choices=sorted(INSTRUCTIONS_PER_CALL))
    args = parser.parse_args()
    boards = [BOARDS[name] for name in (args.board or sorted(BOARDS))]
    variants = args.variant or ["plain", "dsp"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for variant in variants:
            repeats = max(1, int(args.instructions / INSTRUCTIONS_PER_CALL[variant]))
            print(f"dot_{variant}: {repeats} calls over 1024 int8 weights in flash")
            bare = measure(boards[0], build(workdir, boards[0], variant, repeats),
                           with_model=False)
            print(f"  bare unicorn ({boards[0].core}): {bare['wall']:.2f} s wall")
            for board in boards:
                r = measure(board, build(workdir, board, variant, repeats), with_model=True)
                n, c = r["instructions"], r["cycles"]
                print(f"  {board.name:14s} {n / 1e6:6.1f} M instructions  {c / 1e6:7.1f} M cycles"
                      f"  CPI {c / n:.3f}  |  {n / r['wall'] / 1e6:5.1f} M instr/s wall,"
                      f" {n / r['cpu'] / 1e6:5.1f} M instr/s CPU,"
                      f" {c / r['cpu'] / 1e6:5.1f} M cycles/s CPU"
                      f"  |  I-misses {r['imiss']:.0f}, D-misses {r['dmiss']:.0f}")


if __name__ == "__main__":
    main()
