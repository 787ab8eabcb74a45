"""`mcuprof sample --weight-bits 4`: presets converted with 4-bit conv and FC weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("tensorflow", reason="converting presets needs tensorflow")


def test_sample_writes_4_bit_models(tmp_path: Path) -> None:
    from bench_firmware.tflite_model import read_tflite
    from search.cli import sample_cmd

    result = CliRunner().invoke(sample_cmd, ["--preset", "mlperf-ad", "--weight-bits", "4",
                                             "--out", str(tmp_path), "--jobs", "1", "--json"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "mlperf-ad.json").read_text())
    assert meta["weight_bits"] == 4
    graph = read_tflite((tmp_path / "mlperf-ad.tflite").read_bytes())
    fcs = [op for op in graph.operators if op.name == "FULLY_CONNECTED"]
    assert fcs and all(op.inputs[1] is not None and op.inputs[1].dtype == "int4" for op in fcs)
    # About half the flash of the 8-bit model (264,192 weights): packed two per byte.
    assert meta["param_bytes"] < 0.55 * 264_192 + 4 * 2_000
    # The same request again reuses the file; asking 8 bits converts anew.
    again = CliRunner().invoke(sample_cmd, ["--preset", "mlperf-ad", "--weight-bits", "4",
                                            "--out", str(tmp_path), "--jobs", "1", "--json"])
    assert json.loads(again.stdout.splitlines()[-1])["reused"] is True
    eight = CliRunner().invoke(sample_cmd, ["--preset", "mlperf-ad", "--out", str(tmp_path),
                                            "--jobs", "1", "--json"])
    assert json.loads(eight.stdout.splitlines()[-1])["weight_bits"] == 8
