"""Emulator speed and MAC/cycle per layer type on the virtual boards.

    .venv/bin/python benchmarks/virtual_board_speed.py [--board nucleo-f446re ...] [--runs 3]
        [--repeat 1] [--firmware-dir DIR] [--no-alignment-check]

For the sample KWS DS-CNN and MobileNet-style networks, on each board and kernel path, prints
emulated instructions and modeled cycles per host second (timed around the timed inferences
only, boot and upload excluded), and MAC/cycle per operator type from the per-layer cycles.
Speeds are given per wall-clock second and per second of process CPU time (the figure to compare
when other work shares the machine); ``--repeat N`` times the runs N times and keeps the fastest.
``--firmware-dir`` runs the ``<board>.elf`` images found there instead of building the firmware
(to compare the emulator on the same images while the sources change). Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

from bench_firmware.backends.virtual.backend import VirtualBoard
from bench_firmware.boards import BOARDS
from bench_firmware.compiler import compile_model
from bench_firmware.runner import make_input

SAMPLES = Path(__file__).resolve().parent.parent / "bench_firmware" / "samples"
MODELS = {
    "kws-ds-cnn": SAMPLES / "kws_tiny.tflite",
    "mobilenet-v2": SAMPLES / "mobilenet_tiny.tflite",
}


def bench(board_name: str, model_name: str, path: Path, runs: int, check_alignment: bool,
          repeat: int = 1, firmware_dir: Path | None = None) -> None:
    board = BOARDS[board_name]
    plan = compile_model(path.read_bytes(), board, name=model_name)
    x = make_input(plan, None).tobytes()
    firmware = firmware_dir / f"{board_name}.elf" if firmware_dir is not None else None
    with VirtualBoard(f"virtual:{board_name}", check_alignment=check_alignment,
                      firmware=firmware) as vb:
        vb.load_plan(plan.data)
        machine = vb.machine
        assert machine is not None  # booted by __enter__
        for kernels in ("ref", "dsp"):
            vb.run(x, runs=1, warmup=0, kernels=kernels)  # translate the code once
            wall = cpu = float("inf")
            for _ in range(repeat):
                insn0, cyc0 = machine.instructions, machine.cycles
                t0, c0 = time.perf_counter(), time.process_time()
                result = vb.run(x, runs=runs, warmup=0, kernels=kernels)
                wall = min(wall, time.perf_counter() - t0)
                cpu = min(cpu, time.process_time() - c0)
                insns = machine.instructions - insn0
                cycles = machine.cycles - cyc0
            per_run = sorted(result.cycles_per_run)[len(result.cycles_per_run) // 2]
            print(f"{board_name:14} {model_name:13} {kernels:3}  "
                  f"{insns / wall / 1e6:6.2f} M instr/s wall {insns / cpu / 1e6:6.2f} CPU  "
                  f"{cycles / wall / 1e6:7.2f} M cycles/s wall  "
                  f"{per_run:>10,} cycles/inference = {board.cycles_to_ms(per_run):8.3f} ms  "
                  f"{plan.macs / per_run:5.3f} MAC/cycle")
            by_op: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for layer, cyc in zip(plan.layers, result.layer_cycles, strict=False):
                by_op[layer.op][0] += layer.macs
                by_op[layer.op][1] += cyc
            for op, (macs, cyc) in sorted(by_op.items()):
                if macs:
                    print(f"{'':33}{op:20} {macs:>10,} MACs {cyc:>11,} cycles "
                          f"{macs / cyc:6.3f} MAC/cycle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", action="append", choices=sorted(BOARDS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1,
                        help="time the runs this many times and keep the fastest")
    parser.add_argument("--firmware-dir", type=Path,
                        help="run <board>.elf from this folder instead of building the firmware")
    parser.add_argument("--no-alignment-check", action="store_true",
                        help="drop the unaligned-LDRD/LDM fault checks (faster, less faithful)")
    args = parser.parse_args()
    for board_name in args.board or ["nucleo-f446re", "nucleo-f746zg"]:
        for model_name, path in MODELS.items():
            bench(board_name, model_name, path, args.runs, not args.no_alignment_check,
                  args.repeat, args.firmware_dir)


if __name__ == "__main__":
    main()
