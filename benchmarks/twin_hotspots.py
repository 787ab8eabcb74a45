"""Where a model's cycles go on a twin: modelled cycles per firmware function (and, with
``--blocks``, per basic block) for one timed inference, for kernel work.

    .venv/bin/python benchmarks/twin_hotspots.py MODEL.tflite|PRESET [--board nucleo-l4r5zi]
        [--kernels dsp|ref] [--weight-bits 8|4] [--top 25] [--blocks 0]

MODEL is a ``.tflite`` file or an MLPerf Tiny preset name (``mlperf-kws``, ``mlperf-vww``,
``mlperf-ic``, ``mlperf-ad``, converted as ``benchmarks/mlperf_tiny_latency.py`` does). The
twin runs with the Python cycle model (the C one keeps its counter out of reach) and a block
hook that reads the cycle counter at the start of every translated block: the cycles between
two starts go to the first block, so a function's total is exact up to the block that
straddles each call or return. Blocks are named by the ELF symbol that contains them; with
``--blocks N`` the N costliest are listed with their execution counts (disassemble them with
``arm-none-eabi-objdump -d --start-address=...`` on ``build/firmware/<board>/<board>.elf``).
Not a pass/fail test; figures are modelled cycles, not silicon.
"""

from __future__ import annotations

import argparse
import bisect
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def function_table(elf: Path) -> tuple[list[int], list[tuple[int, int, str]]]:
    """(sorted start addresses, [(start, size, name)]) of the ELF's functions."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    syms = []
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        for s in symtab.iter_symbols():
            if s["st_info"]["type"] == "STT_FUNC" and s["st_size"]:
                syms.append((int(s["st_value"]) & ~1, int(s["st_size"]), s.name))
    syms.sort()
    return [s[0] for s in syms], syms


def model_bytes(spec: str, weight_bits: int) -> bytes:
    if spec.endswith(".tflite"):
        return Path(spec).read_bytes()
    from mlperf_tiny_latency import model_path  # type: ignore[import-not-found]

    return Path(model_path(spec, weight_bits)).read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help=".tflite file or MLPerf Tiny preset name")
    parser.add_argument("--board", default="nucleo-l4r5zi")
    parser.add_argument("--kernels", choices=("dsp", "ref"), default="dsp")
    parser.add_argument("--weight-bits", type=int, choices=(8, 4), default=8,
                        help="for a preset: 4-bit conv and FC weights")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--blocks", type=int, default=0, help="costliest blocks to list")
    args = parser.parse_args(argv)

    from unicorn import UC_HOOK_BLOCK

    from bench_firmware.backends.virtual.machine import VirtualMachine
    from bench_firmware.backends.virtual.timing import create_cycle_model
    from bench_firmware.boards import BOARDS
    from bench_firmware.build import build_firmware
    from bench_firmware.compiler import compile_model
    from bench_firmware.protocol import DutClient
    from bench_firmware.runner import make_input

    board = BOARDS[args.board]
    elf = build_firmware(board).elf
    starts, syms = function_table(elf)
    plan = compile_model(model_bytes(args.model, args.weight_bits), board, name=args.model)
    model = create_cycle_model(board, implementation="python")
    machine = VirtualMachine(board, elf, cycle_model=model, budget_s=3600, wall_budget_s=3600)
    machine.program_flash(board.model_region_base, plan.data)
    cycles: Counter[int] = Counter()
    runs: Counter[int] = Counter()
    state: dict[str, Any] = {"on": False, "last": 0, "pc": 0}

    def on_block(uc: Any, address: int, size: int, user: Any) -> None:
        if state["on"]:
            now = model.cycles
            cycles[state["pc"]] += now - state["last"]
            runs[state["pc"]] += 1
            state["last"] = now
        state["pc"] = address

    def name(pc: int) -> str:
        i = bisect.bisect_right(starts, pc) - 1
        return syms[i][2] if i >= 0 and pc < syms[i][0] + syms[i][1] else f"{pc:#x}"

    machine._uc.hook_add(UC_HOOK_BLOCK, on_block)  # an observer only: it changes no state
    with machine, DutClient.open(machine.url, timeout_s=600) as client:
        client.sync()
        client.set_kernels(args.kernels)
        client.load_input(make_input(plan, None).tobytes())
        client.infer(1, 0, budget_s=3600)  # warm the caches as `mcuprof run --warmup 1`
        state["on"], state["last"] = True, model.cycles
        client.infer(1, 0, budget_s=3600)
        state["on"] = False
        [timed] = client.cycles()
    by_function: Counter[str] = Counter()
    for pc, c in cycles.items():
        by_function[name(pc)] += c
    total = sum(by_function.values())
    print(f"{args.model} on virtual:{args.board} ({args.kernels} kernels): {timed:,} cycles "
          f"in the timed inference (DWT), {total:,} between its command's blocks")
    for fn, c in by_function.most_common(args.top):
        print(f"{c:14,} {100 * c / total:5.1f} %  {fn}")
    if args.blocks:
        print("\ncostliest blocks (address, cycles, executions, function):")
        for pc, c in cycles.most_common(args.blocks):
            print(f"  {pc:#010x} {c:12,} {runs[pc]:10,}  {name(pc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
