"""The CLI as a user runs it: `mcuprof analyze / compile / run --board host`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench_firmware.compiler import read_plan
from profiler_client.cli import main
from tests.oracle import tflm_run
from tests.zoo import random_input

pytestmark = pytest.mark.slow

MODEL = "ds_cnn_kws"


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_analyze_json_fields(zoo: dict[str, Path]) -> None:
    code, out, err = _invoke("analyze", str(zoo[MODEL]), "--json")
    assert code == 0, err
    data = json.loads(out)
    for key in ("ops", "macs", "param_bytes", "plan_bytes", "arena_bytes", "layers",
                "tflite_bytes"):
        assert key in data
    assert data["tflite_bytes"] == zoo[MODEL].stat().st_size
    assert data["ops"] >= 2 * data["macs"] > 0  # MACs count twice; pools, ADD, etc. once
    assert sum(layer["ops"] for layer in data["layers"]) == data["ops"]
    assert sum(layer["macs"] for layer in data["layers"]) == data["macs"]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= {
        layer["op"] for layer in data["layers"]}
    for layer in data["layers"]:
        assert set(layer) >= {"index", "op", "macs", "ops", "param_bytes", "plan_bytes"}


def test_analyze_table_says_whether_it_fits(zoo: dict[str, Path]) -> None:
    code, out, _ = _invoke("analyze", str(zoo[MODEL]), "--board", "nucleo-f446re")
    assert code == 0
    assert "arena:" in out and "fits" in out and "CONV_2D" in out
    # The plan's size against the .tflite's, so a bloated plan shows.
    assert re.search(r"plan: .*model region \(fits; \.tflite [\d.]+ KiB, plan [\d.]+x\)", out)
    # The fully connected layer's weights, kept in SRAM on a board whose flash waits: named
    # with their size, and counted in the arena (not in its activations).
    data = json.loads(_invoke("analyze", str(zoo[MODEL]), "--board", "nucleo-f446re",
                              "--json")[1])
    fc = [layer for layer in data["layers"] if layer["resident_bytes"]]
    assert [layer["op"] for layer in fc] == ["FULLY_CONNECTED"]
    assert data["resident_bytes"] == fc[0]["resident_bytes"] > 0
    assert data["arena_bytes"] >= data["activation_arena_bytes"] + data["resident_bytes"]
    assert re.search(rf"the rest kernel scratch and weights copied to SRAM\)\n"
                     rf"weights copied to SRAM when the plan loads .*: "
                     rf"{fc[0]['resident_bytes']} B, layers {fc[0]['index']}\n", out)


def test_compile_writes_a_valid_plan(zoo: dict[str, Path], tmp_path: Path) -> None:
    from bench_firmware.boards import BOARDS

    out = tmp_path / "kws.plan"
    code, stdout, err = _invoke("compile", str(zoo[MODEL]), "-o", str(out), "--board",
                                "nucleo-f746zg")
    assert code == 0, err
    info = read_plan(out.read_bytes(), BOARDS["nucleo-f746zg"])
    assert info.header["board_code"] == BOARDS["nucleo-f746zg"].code
    assert info.model_id in stdout
    assert f"{len(out.read_bytes()):,} bytes (.tflite " in stdout


def test_run_on_host_matches_tflm(zoo: dict[str, Path], tmp_path: Path) -> None:
    model = zoo[MODEL].read_bytes()
    x = random_input(model, 3)
    np.save(tmp_path / "x.npy", x)
    code, out, err = _invoke("run", str(zoo[MODEL]), "--board", "host", "--input",
                             str(tmp_path / "x.npy"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["output"] == np.asarray(tflm_run(model, x)).reshape(-1).tolist()
    assert data["cycles"] is None and data["latency_ms"] is None  # no cycle counter on host
    assert data["output_shape"] == [1, 12]
    for key in ("board", "cycles_per_run", "energy_mj", "energy_source", "arena_bytes",
                "plan_bytes", "ops", "macs", "layers"):
        assert key in data


def test_bad_inputs_get_clear_errors(zoo: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"hello world, not a model")
    code, _, err = _invoke("analyze", str(junk))
    assert code == 2 and "not a TensorFlow Lite flatbuffer" in err

    code, _, err = _invoke("compile", str(zoo[MODEL]), "-o", str(tmp_path / "p"), "--board",
                           "nucleo-f999")
    assert code == 2 and "unknown board 'nucleo-f999'" in err

    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 3), dtype=np.int8))
    code, _, err = _invoke("run", str(zoo[MODEL]), "--board", "host", "--input", str(wrong))
    assert code == 2 and "shape [3, 3]" in err
