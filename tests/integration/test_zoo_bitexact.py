"""The acceptance test of the runtime: every zoo model, both kernel paths, bit for bit equal
to TensorFlow Lite Micro's own interpreter; and our activation arena never larger than TFLM's
(its reference kernels take no scratch buffers; ours are counted on top)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench_firmware.boards import HOST
from bench_firmware.compiler import compile_model
from bench_firmware.host import run_plan
from tests.oracle import tflm_arena, tflm_run
from tests.zoo import ZOO_NAMES, random_input

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_outputs_equal_tflite_micro(zoo: dict[str, Path], name: str) -> None:
    model = zoo[name].read_bytes()
    plan = compile_model(model, HOST, name=name)
    out_dtype = np.float32 if plan.output_dtype == "float32" else np.int8
    out_bytes = int(np.prod(plan.output_shape)) * np.dtype(out_dtype).itemsize
    for seed in SEEDS:
        x = random_input(model, seed)
        expected = np.asarray(tflm_run(model, x)).astype(out_dtype).reshape(-1)
        for kernels in ("ref", "dsp"):
            got = np.frombuffer(run_plan(plan.data, x, output_bytes=out_bytes, kernels=kernels),
                                dtype=out_dtype)
            mismatch = np.flatnonzero(got != expected)
            assert mismatch.size == 0, (
                f"{name} seed {seed} {kernels}: {mismatch.size} of {got.size} outputs differ; "
                f"first at {mismatch[0]}: got {got[mismatch[0]]}, TFLM {expected[mismatch[0]]}"
            )


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_arena_not_larger_than_tflm_head(zoo: dict[str, Path], name: str) -> None:
    model = zoo[name].read_bytes()
    plan = compile_model(model, HOST, name=name)
    head = tflm_arena(model)["head"]
    ours = plan.activation_bytes
    assert ours <= head, f"{name}: our activation arena {ours} > TFLM head {head}"
    # Each op's scratch is one 16-byte aligned buffer planned beside the activations.
    scratch = max(((layer.scratch_bytes + 15) // 16 * 16 for layer in plan.layers), default=0)
    assert ours <= plan.arena_bytes <= ours + scratch
