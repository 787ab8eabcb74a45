"""``mcuprof run`` on a virtual twin states the twin's error band against silicon (issue #10):
in the text output with the silicon latency range it implies, and in ``--json`` as
``error_band_pct`` / ``error_band_basis`` / ``error_band_label``; a host run states none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench_firmware.backends.virtual.error_band import error_band
from profiler_client.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="arm-none-eabi-gcc is not installed (apt-get install gcc-arm-none-eabi)")]

SAMPLE = Path(__file__).resolve().parents[2] / "bench_firmware" / "samples" / "kws_tiny.tflite"


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, ["run", str(SAMPLE), "--runs", "1", "--warmup", "0",
                                       *args])
    assert result.exit_code == 0, result.stderr or result.output
    return result.stdout


def test_run_on_a_twin_shows_its_band() -> None:
    board = "nucleo-f746zg"
    band = error_band(board)
    assert band is not None
    data = json.loads(_run("--board", f"virtual:{board}", "--json"))
    assert data["cycle_source"] == "cycle-model"
    assert (data["error_band_pct"], data["error_band_basis"], data["error_band_label"]) == (
        band.pct, band.basis, "cycle model, ±13 % vs silicon")

    text = _run("--board", f"virtual:{board}")
    lo, hi = band.interval(data["latency_ms"])
    assert f"cycle model, ±13 % vs silicon: silicon latency within {lo:.3f}-{hi:.3f} ms" in text
    assert band.basis in text


def test_a_host_run_states_no_band() -> None:
    data = json.loads(_run("--board", "host", "--json"))
    assert data["cycles"] is None
    assert data["error_band_pct"] is None and data["error_band_label"] is None
