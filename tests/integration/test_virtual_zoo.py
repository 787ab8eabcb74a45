"""The acceptance test of the virtual boards: the firmware image of every board runs the whole
model zoo on its virtual twin, both kernel paths, bit for bit equal to TFLite Micro, with
per-layer cycles that account for the run's total."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench_firmware.backends.virtual.backend import VirtualBoard
from bench_firmware.boards import BOARDS
from tests.oracle import tflm_run
from tests.zoo import ZOO_NAMES, random_input
from tests.zoo_plans import zoo_plans

pytestmark = pytest.mark.slow

LAYER_SUM_TOLERANCE = 0.01  # the runtime's own overhead between operators stays under 1 %
# ...except in models of a few thousand cycles, where the fixed cost of entering and leaving
# the operator loop (two CYCCNT reads and a call, ~40 cycles) is itself over 1 %.
FIXED_OVERHEAD_CYCLES = 64


@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_zoo_bit_exact_on_the_virtual_twin(zoo: dict[str, Path], board_name: str) -> None:
    board = BOARDS[board_name]
    failures: list[str] = []
    ran = 0
    with VirtualBoard(f"virtual:{board_name}") as vb:
        for name, model, plan in zoo_plans(zoo, board):
            x = random_input(model, 0)
            expected = np.asarray(tflm_run(model, x))
            out_dtype = np.float32 if plan.output_dtype == "float32" else np.int8
            vb.load_plan(plan.data)
            for kernels in ("ref", "dsp"):
                run = vb.run(x.tobytes(), runs=2, warmup=0, kernels=kernels)
                got = np.frombuffer(run.output, dtype=out_dtype)
                if not np.array_equal(got, expected.reshape(-1).astype(out_dtype)):
                    failures.append(f"{name}/{kernels}: output differs from TFLM")
                total = run.cycles_per_run[-1]
                layers = sum(run.layer_cycles)
                if not (total > 0 and len(run.layer_cycles) == len(plan.layers)
                        and 0 <= total - layers <= max(LAYER_SUM_TOLERANCE * total,
                                                       FIXED_OVERHEAD_CYCLES)):
                    failures.append(f"{name}/{kernels}: layer cycles {layers} vs total {total}")
            ran += 1
    assert ran >= len(ZOO_NAMES) - 2, f"only {ran} zoo models fit {board_name}"
    assert not failures, "\n".join(failures)
