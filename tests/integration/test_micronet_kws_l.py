"""MicroNet-KWS-L, which the MicroNets authors deployed on a NUCLEO-F746ZG (arXiv 2010.11267,
Table 5), fits that board and runs on its virtual twin bit for bit equal to TFLite Micro.

Its plan (about 556 KiB) did not fit the old 512 KiB model region; the region sized from the
F746ZG's sector map (sectors 2-7, 960 KiB) takes it. One inference on the twin takes about 20 s
of this machine's time (90 M cycles); the host runs cover both kernel paths."""

from __future__ import annotations

import numpy as np
import pytest

from bench_firmware.backends.virtual.backend import VirtualBoard
from bench_firmware.boards import BOARDS, HOST
from bench_firmware.compiler import compile_model
from bench_firmware.errors import DoesNotFitError
from bench_firmware.host import run_plan
from tests.oracle import tflm_run
from tests.zoo import random_input

pytestmark = pytest.mark.slow

PRESET = "micronet-kws-l"
BOARD = BOARDS["nucleo-f746zg"]
# The layer cycles account for the run's total, up to the runtime's own overhead (1 %).
LAYER_SUM_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def model() -> bytes:
    pytest.importorskip("tensorflow", reason="building the preset needs tensorflow")
    from search.convert import convert_preset

    return convert_preset(PRESET).tflite


@pytest.fixture(scope="module")
def expected(model: bytes) -> np.ndarray:
    return np.asarray(tflm_run(model, random_input(model, 0))).reshape(-1).astype(np.int8)


def test_fits_the_f746zg(model: bytes) -> None:
    plan = compile_model(model, BOARD, name=PRESET)  # raises DoesNotFitError otherwise
    assert 512 * 1024 < plan.plan_bytes <= BOARD.model_region_bytes
    assert plan.arena_bytes <= BOARD.arena_capacity
    # The F446RE has 512 KiB of flash in all: no layout can hold this plan there.
    with pytest.raises(DoesNotFitError):
        compile_model(model, BOARDS["nucleo-f446re"], name=PRESET)


@pytest.mark.parametrize("kernels", ["ref", "dsp"])
def test_host_bit_exact(model: bytes, expected: np.ndarray, kernels: str) -> None:
    plan = compile_model(model, HOST, name=PRESET)
    got = run_plan(plan.data, random_input(model, 0), output_bytes=expected.size,
                   kernels=kernels)
    assert np.array_equal(np.frombuffer(got, dtype=np.int8), expected)


def test_runs_bit_exact_on_the_f746zg_twin(model: bytes, expected: np.ndarray) -> None:
    plan = compile_model(model, BOARD, name=PRESET)
    with VirtualBoard(f"virtual:{BOARD.name}") as vb:
        vb.load_plan(plan.data)
        run = vb.run(random_input(model, 0).tobytes(), runs=1, warmup=0)
    assert np.array_equal(np.frombuffer(run.output, dtype=np.int8), expected)
    total = run.cycles_per_run[-1]
    assert len(run.layer_cycles) == len(plan.layers)
    assert 0 <= total - sum(run.layer_cycles) <= LAYER_SUM_TOLERANCE * total
