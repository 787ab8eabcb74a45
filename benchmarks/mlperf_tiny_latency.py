"""MLPerf Tiny reference networks on the virtual twins, beside the published results.

    .venv/bin/python benchmarks/mlperf_tiny_latency.py [--board B]... [--network N]...
        [--kernels dsp|ref] [--weight-bits 8|4] [--runs N] [--json]

For the presets ``mlperf-kws``, ``mlperf-vww``, ``mlperf-ic`` and ``mlperf-ad``
(``search/presets.py``) the script builds the int8 ``.tflite`` the way ``mcuprof sample --preset``
does (cached under ``build/mlperf-tiny/``; latency does not depend on the weight values), runs it
on each virtual board the way ``mcuprof run`` does, and prints per network: cycles, ms at the
board's clock, MAC/cycle, arena and plan bytes; then MAC/cycle per layer type (conv 1x1,
conv kxk, first layer with 1-3 input channels, depthwise 3x3, other depthwise, fully
connected, everything else) per board.

The published figures are MLPerf Tiny Inference v1.1/v1.2 closed-division latencies (median
single-stream, ms): NUCLEO-L4R5ZI with ST X-CUBE-AI 9.0 and with Plumerai's engine, and the
DISCO-F746NG (216 MHz) with Plumerai's engine. They are what a real board with a tuned runtime
does; the twin's figures are modelled cycles (see ``bench_firmware/backends/virtual/timing``).
Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "mlperf-tiny"
NETWORKS = ("mlperf-ad", "mlperf-kws", "mlperf-ic", "mlperf-vww")  # smallest first
BOARDS = ("nucleo-l4r5zi", "nucleo-f746zg")  # the boards with published results: the default
ALL_BOARDS = ("nucleo-f446re", "nucleo-l4r5zi", "nucleo-f746zg", "nucleo-f767zi")
# Published MLPerf Tiny latencies in ms: (L4R5ZI X-CUBE-AI 9.0, L4R5ZI Plumerai,
# DISCO-F746NG Plumerai at 216 MHz).
PUBLISHED: dict[str, tuple[float, float, float]] = {
    "mlperf-kws": (43.2, 47.8, 17.75),
    "mlperf-vww": (88.9, 98.8, 34.08),
    "mlperf-ic": (165.1, 167.8, 62.88),
    "mlperf-ad": (5.3, 4.05, 1.71),
}
PUBLISHED_COLUMNS = ("L4R5 X-CUBE-AI", "L4R5 Plumerai", "F746NG Plumerai")
SERIAL_TIMEOUT_S = 60.0  # seconds; the default 5 s is short for a 300 KB plan's CRC on a busy host
LAYER_TYPES = ("conv 1x1", "conv kxk", "first layer", "depthwise 3x3", "depthwise other",
               "fully connected", "other")


def model_path(name: str, weight_bits: int = 8) -> Path:
    """The preset's .tflite, converted once (as ``mcuprof sample --preset NAME
    [--weight-bits 4]``; 4-bit models are cached under ``build/mlperf-tiny/w4/``)."""
    cache = CACHE if weight_bits == 8 else CACHE / f"w{weight_bits}"
    path = cache / f"{name}.tflite"
    if path.exists():
        return path
    from search.cli import plan_jobs, run_jobs

    cache.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(space=None, presets=(name,), n=1, seed=0, out=cache, input_size=None,
                     representative=None, weight_seed=0, force=False, weight_bits=weight_bits)
    _, failures = run_jobs(jobs, 1, progress=False)
    if failures:
        raise SystemExit(f"converting {name} failed: {failures[0][1]}")
    return path


def layer_type(op: Any) -> str:
    """The layer-type bucket of one TFLite operator."""
    if op.name == "CONV_2D":
        _, kh, kw, in_c = op.inputs[1].shape
        if in_c <= 3:
            return "first layer"
        return "conv 1x1" if (kh, kw) == (1, 1) else "conv kxk"
    if op.name == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = op.inputs[1].shape
        return "depthwise 3x3" if (kh, kw) == (3, 3) else "depthwise other"
    if op.name == "FULLY_CONNECTED":
        return "fully connected"
    return "other"


def profile(data: bytes, device: str, *, runs: int, kernels: str, name: str) -> dict[str, Any]:
    """``bench_firmware.runner.profile_model`` on a virtual board, with a serial timeout long
    enough for the firmware to CRC-check a 300 KB plan on a loaded host."""
    from bench_firmware.backends.virtual.backend import VirtualBoard
    from bench_firmware.boards import get_board
    from bench_firmware.compiler import compile_model
    from bench_firmware.runner import build_result, decode_output, make_input

    plan = compile_model(data, get_board(device), name=name)
    x = make_input(plan, None)
    with VirtualBoard(device, timeout_s=SERIAL_TIMEOUT_S) as backend:
        backend.load_plan(plan.data)
        run = backend.run(x.tobytes(), runs=runs, warmup=0, kernels=kernels)
    return build_result(plan, decode_output(plan, run.output), run.cycles_per_run or None,
                        run.layer_cycles or None, cycle_source="cycle-model")


def measure(name: str, board: str, kernels: str, runs: int,
            weight_bits: int = 8) -> dict[str, Any]:
    from bench_firmware.tflite_model import read_tflite

    data = model_path(name, weight_bits).read_bytes()
    graph = read_tflite(data, name=name)
    start = time.monotonic()
    result = profile(data, f"virtual:{board}", runs=runs, kernels=kernels, name=name)
    wall = time.monotonic() - start
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for op, layer in zip(graph.operators, result["layers"], strict=True):
        bucket = by_type[layer_type(op)]
        bucket[0] += int(layer["macs"])
        bucket[1] += int(layer["cycles"] or 0)
    cycles = int(result["cycles"])
    return {
        "network": name, "board": board, "kernels": kernels, "weight_bits": weight_bits,
        "cycles": cycles,
        "latency_ms": result["latency_ms"], "macs": result["macs"],
        "mac_per_cycle": result["macs"] / cycles if cycles else None,
        "arena_bytes": result["arena_bytes"], "plan_bytes": result["plan_bytes"],
        "wall_s": round(wall, 1),
        "layer_types": {t: {"macs": m, "cycles": c, "mac_per_cycle": m / c if c else None}
                        for t, (m, c) in by_type.items()},
    }


def print_tables(rows: list[dict[str, Any]]) -> None:
    out = sys.stdout.write
    for board in dict.fromkeys(r["board"] for r in rows):
        mine = [r for r in rows if r["board"] == board]
        bits = mine[0].get("weight_bits", 8)
        out(f"\n{board} (virtual twin, {mine[0]['kernels']} kernels, {bits}-bit conv and FC "
            "weights)\n")
        out(f"{'network':<11} {'MACs':>11} {'cycles':>12} {'ms':>8} {'MAC/cyc':>8} "
            f"{'arena':>8} {'plan':>8} | " + " ".join(f"{c:>15}" for c in PUBLISHED_COLUMNS)
            + "\n")
        for r in mine:
            pub = " ".join(f"{v:>15.2f}" for v in PUBLISHED[r["network"]])
            out(f"{r['network']:<11} {r['macs']:>11,} {r['cycles']:>12,} {r['latency_ms']:>8.2f} "
                f"{r['mac_per_cycle']:>8.3f} {r['arena_bytes']:>8,} {r['plan_bytes']:>8,} | "
                f"{pub}\n")
        out(f"\n  MAC/cycle per layer type on {board}\n")
        out(f"  {'layer type':<16} " + " ".join(f"{r['network']:>11}" for r in mine)
            + f" {'all':>11}\n")
        for t in LAYER_TYPES:
            cells = []
            tm = tc = 0
            for r in mine:
                lt = r["layer_types"].get(t)
                if lt is None or not lt["macs"]:
                    cells.append(f"{'-':>11}")
                    continue
                tm += lt["macs"]
                tc += lt["cycles"]
                cells.append(f"{lt['mac_per_cycle']:>11.3f}")
            if tm:
                out(f"  {t:<16} " + " ".join(cells) + f" {tm / tc:>11.3f}\n")
        others = [r["layer_types"].get("other", {}).get("cycles", 0) for r in mine]
        out(f"  {'other (cycles)':<16} " + " ".join(f"{c:>11,}" for c in others) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--board", action="append", choices=ALL_BOARDS,
                        help="virtual board (repeatable) [default: the L4R5ZI and F746ZG, "
                             "whose MLPerf Tiny results are published]")
    parser.add_argument("--network", action="append", choices=NETWORKS,
                        help="network (repeatable) [default: all, smallest first]")
    parser.add_argument("--kernels", choices=("dsp", "ref"), default="dsp")
    parser.add_argument("--weight-bits", type=int, choices=(8, 4), default=8,
                        help="4: the presets with 4-bit conv and FC weights (search/int4.py)")
    parser.add_argument("--runs", type=int, default=1,
                        help="timed runs per network (the twin is deterministic) [default: 1]")
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--tables-from", type=Path, metavar="JSONL",
                        help="print the tables of an earlier --json run instead of measuring")
    args = parser.parse_args(argv)
    if args.tables_from is not None:
        print_tables([json.loads(line) for line in args.tables_from.read_text().splitlines()
                      if line.strip()])
        return 0
    rows = []
    for board in args.board or BOARDS:
        for name in args.network or NETWORKS:
            row = measure(name, board, args.kernels, args.runs, args.weight_bits)
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)  # noqa: T201
            else:
                print(f"# {name} on {board}: {row['cycles']:,} cycles, "  # noqa: T201
                      f"{row['wall_s']} s wall", file=sys.stderr, flush=True)
    if not args.json:
        print_tables(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
