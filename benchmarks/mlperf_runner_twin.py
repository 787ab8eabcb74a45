"""The MLPerf Tiny runner's stock scripts on a twin, with a client that behaves like the runner
(``tests/mlperf_runner.py``).

    .venv/bin/python benchmarks/mlperf_runner_twin.py [--network ds_cnn_kws|mlperf-kws|mlperf-ad]
        [--board nucleo-l4r5zi] [--mode p|a] [--iterations N --warmups W] [--files N]
        [--line-timeout S]

Compiles the network with its EEMBC name (``kws01`` / ``ad01``), boots a twin with the plan in
its model region and no host on its UART, then runs what the runner runs: identification
(``name%``, ``profile%``), then the stock script for that name (performance: five windows of
``download`` + ``infer 70 10`` for KWS, ``infer 1500 10`` for AD; accuracy: ``infer 1 0`` per
file). Random inputs stand in for the dataset; in accuracy mode their labels are TFLite's
classes, so the top-1 printed is the agreement with TFLite. AD files are float32 frames the
runner cuts into 5-frame segments (``tests.mlperf_runner.anomaly_files``), labelled anomalous
when TFLite's score is above the median, so the AUC printed is the agreement with TFLite.
It prints per window the laps' latency, then the median, the runner's own error flags, the
longest wait for one answer line (the runner gives up after 5 s; ``--line-timeout`` raises
the limit this client applies so the stock figures can finish on a slow twin and the figure
says whether the runner's would have held) and the wall time. ``ds_cnn_kws`` is the zoo's KWS
network; ``mlperf-kws`` and ``mlperf-ad`` are the presets, converted once as
``benchmarks/mlperf_tiny_latency.py`` does (needs TensorFlow). Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tests.mlperf_runner import (  # noqa: E402
    ACCURACY,
    LINE_TIMEOUT_S,
    PERFORMANCE,
    RunnerDut,
    Sample,
    anomaly_files,
    run_script,
    scaled,
)

EEMBC_NAMES = {"ds_cnn_kws": "kws01", "mlperf-kws": "kws01", "mlperf-ad": "ad01"}
BOOT_TIMEOUT_S = 30.0
IDENTIFY_WAIT_S = 2.0  # as the runner
BUDGET_S = 3600.0  # board and host seconds the twin may run without a received byte


def model_bytes(network: str) -> bytes:
    if network == "ds_cnn_kws":
        from tests.zoo import build_zoo

        zoo = build_zoo(ROOT / "build" / "zoo-cache")
        return zoo[network].read_bytes()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mlperf_tiny_latency import model_path  # type: ignore[import-not-found]

    return Path(model_path(network)).read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="ds_cnn_kws", choices=sorted(EEMBC_NAMES))
    parser.add_argument("--board", default="nucleo-l4r5zi")
    parser.add_argument("--mode", default="p", choices=("p", "a"))
    parser.add_argument("--iterations", type=int, default=None,
                        help="timed runs per window instead of the stock script's")
    parser.add_argument("--warmups", type=int, default=None)
    parser.add_argument("--files", type=int, default=5, help="dataset files (random inputs)")
    parser.add_argument("--line-timeout", type=float, default=600.0,
                        help=f"seconds to wait for one line (the runner: {LINE_TIMEOUT_S:g})")
    args = parser.parse_args()

    from bench_firmware.backends.virtual.machine import VirtualMachine
    from bench_firmware.boards import BOARDS
    from bench_firmware.build import build_firmware
    from bench_firmware.compiler import compile_model
    from tests.zoo import random_input

    board = BOARDS[args.board]
    model = model_bytes(args.network)
    plan = compile_model(model, board, mlperf_name=EEMBC_NAMES[args.network])
    samples = []
    if EEMBC_NAMES[args.network] == "ad01":
        # float32 frames, cut by the runner into 5-frame segments; labelled by TFLite's scores
        samples, _ = anomaly_files(model, args.files)
    for k in range(args.files if not samples else 0):
        x = random_input(model, seed=100 + k)
        label = 0
        if args.mode == "a":
            from tests.oracle import tflm_run

            label = int(np.argmax(tflm_run(model, x)))
        samples.append(Sample(f"file_{k}.bin", x.tobytes(), label))
    scripts = PERFORMANCE if args.mode == "p" else ACCURACY
    if args.iterations is not None or args.warmups is not None:
        stock = scripts[EEMBC_NAMES[args.network]][0][2][1]
        scripts = scaled(scripts, args.iterations or stock[1], args.warmups
                         if args.warmups is not None else stock[2])

    machine = VirtualMachine(board, build_firmware(board).elf, budget_s=BUDGET_S,
                             wall_budget_s=BUDGET_S)
    machine.program_flash(board.model_region_base, plan.data)
    with machine:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while b"m-ready" not in machine.uart_tx_log and time.monotonic() < deadline:
            time.sleep(0.05)
        dut = RunnerDut(machine.url, line_timeout_s=args.line_timeout)
        dut.identify(IDENTIFY_WAIT_S)
        print(f"{args.network} on virtual {board.name}: name {dut.name}, model {dut.model}, "
              f"profile {dut.profile}")
        start = time.monotonic()
        report = run_script(dut, samples, args.mode, scripts=scripts)
        wall = time.monotonic() - start
    for i, w in enumerate(report.windows):
        us = w.elapsed_us or 0
        print(f"  window {i}: infer {w.iterations} {w.warmups}: {us / 1e3:10.3f} ms, "
              f"{us / 1e3 / w.iterations:8.3f} ms per inference, {len(w.results)} results")
    if args.mode == "p":
        print(f"median latency {report.median_latency_ms:.3f} ms "
              f"({report.median_throughput:.2f} inferences per board second)")
    elif EEMBC_NAMES[args.network] == "ad01":
        print(f"AUC of the board's anomaly scores against TFLite's ranking: {report.auc():.3f}")
    else:
        print(f"top-1 agreement with TFLite: {report.top1():.1%}")
    held = dut.serial.longest_wait_s <= LINE_TIMEOUT_S
    print(f"runner's flags: {sorted(set(report.errors)) or 'none'}; longest wait for one line "
          f"{dut.serial.longest_wait_s:.1f} s: the runner's {LINE_TIMEOUT_S:g} s timeout "
          f"{'holds' if held else 'would have failed'}; {wall:.1f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
