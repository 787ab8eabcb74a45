"""The calibration microbenchmarks shipped in ``bench_firmware/samples/calibration`` (made by
``benchmarks/make_calibration_set.py``): they match their manifest (SHA-256, operators, MACs),
stay small, are package data, and each runs on every twin in a few milliseconds of board time,
with the twin's output equal to the host build's.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib

from bench_firmware.boards import BOARDS, get_board
from bench_firmware.calibration import (
    MICROBENCHMARK,
    MICROBENCHMARKS,
    default_models,
    manifest,
    microbenchmarks,
    sample_networks,
)
from bench_firmware.compiler import compile_model
from bench_firmware.host import run_plan
from bench_firmware.runner import make_input
from bench_firmware.tflite_model import read_tflite
from tests.conftest import REPO_ROOT

BUDGET_BYTES = 300 * 1024  # the whole set, shipped in every wheel
BOARD_MS = 10.0  # each microbenchmark's board time on every twin stays "a few ms"
# The instruction classes / memory paths the set must cover: the operator of each.
COVERED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "ADD",
           "SOFTMAX"}
needs_gcc = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                               reason="arm-none-eabi-gcc is not installed (the twin's firmware)")


def test_the_set_matches_its_manifest() -> None:
    entries = manifest()["models"]
    names = [e["name"] for e in entries]
    assert len(set(names)) == len(names) >= 9
    files = {p.name for p in MICROBENCHMARKS.glob("*.tflite")}
    assert files == {e["file"] for e in entries}, "every shipped file is in the manifest"
    total = 0
    board = get_board("nucleo-f446re")
    for e in entries:
        data = (MICROBENCHMARKS / e["file"]).read_bytes()
        total += len(data)
        assert hashlib.sha256(data).hexdigest() == e["sha256"], e["name"]
        assert len(data) == e["bytes"] and e["exercises"]
        ops = [op.name for op in read_tflite(data).operators]
        assert ops == e["ops"] and e["op"] in ops, e["name"]
        plan = compile_model(data, board, name=e["name"])
        assert plan.macs == e["macs"], e["name"]
    assert total < BUDGET_BYTES
    assert {e["op"] for e in entries} >= COVERED
    # the 1x1 / 3x3 / first-layer convolutions and both fully connected memory paths
    assert sum(e["op"] == "CONV_2D" for e in entries) >= 3
    assert sum(e["op"] == "FULLY_CONNECTED" for e in entries) >= 2


def test_the_default_set_is_the_microbenchmarks_then_the_networks() -> None:
    models = default_models()
    benches = microbenchmarks()
    assert [m.name for m in models] == ([m.name for m in benches]
                                        + [m.name for m in sample_networks()])
    assert all(m.kind == MICROBENCHMARK and m.exercises for m in benches)
    assert [m.name for m in benches] == [e["name"] for e in manifest()["models"]]


def test_the_set_is_package_data() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["bench_firmware"]
    package = REPO_ROOT / "bench_firmware"
    shipped = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    for p in [*MICROBENCHMARKS.glob("*.tflite"), MICROBENCHMARKS / "manifest.json"]:
        assert p in shipped, p


@needs_gcc
@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_each_microbenchmark_runs_on_the_twin(board_name: str) -> None:
    """One timed run per model (a single firmware session per board): positive cycles,
    per-layer cycles accounting for them, under a few ms at the board clock, and the same
    output bytes as the host build."""
    from bench_firmware.backends.virtual.backend import VirtualBoard

    board = BOARDS[board_name]
    with VirtualBoard(f"virtual:{board_name}") as vb:
        for m in microbenchmarks():
            plan = compile_model(m.data, board, name=m.name)
            x = make_input(plan, None, seed=0)
            expected = run_plan(plan.data, x, output_bytes=int(np.prod(plan.output_shape)))
            vb.load_plan(plan.data)
            run = vb.run(x.tobytes(), runs=1, warmup=0, kernels="dsp")
            [cycles] = run.cycles_per_run
            assert run.output == expected, f"{m.name} on {board_name}: output differs"
            assert len(run.layer_cycles) == len(plan.layers)
            assert 0 < sum(run.layer_cycles) <= cycles
            ms = cycles / board.clock_hz * 1000
            assert ms < BOARD_MS, f"{m.name} on {board_name}: {ms:.2f} ms"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                    reason="regenerating the set needs TensorFlow (the ml extra)")
def test_the_generator_writes_what_is_shipped(tmp_path: Path) -> None:
    """benchmarks/make_calibration_set.py, rerun with the same seed and TensorFlow, writes the
    shipped bytes (a different TensorFlow may convert differently: the test says so)."""
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" /
                                               "make_calibration_set.py"), "--out", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    made = json.loads((tmp_path / "manifest.json").read_text())
    shipped = manifest()
    if made["converter"] != shipped["converter"]:
        pytest.skip(f"shipped with {shipped['converter']}, this is {made['converter']}")
    assert [(e["name"], e["sha256"]) for e in made["models"]] == \
        [(e["name"], e["sha256"]) for e in shipped["models"]]
