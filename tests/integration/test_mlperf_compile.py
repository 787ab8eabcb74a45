"""The EEMBC model name a plan carries (``mcuprof compile --mlperf-name``, or from the model's
preset), which the firmware answers to ``profile%`` so the MLPerf Tiny runner picks its script."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench_firmware import plan_format as pf
from bench_firmware.boards import BOARDS
from bench_firmware.compiler import compile_model, default_mlperf_name, read_plan
from bench_firmware.errors import McuprofError
from profiler_client.cli import main

MODEL = "gap_mean"
BOARD = "nucleo-f446re"


@pytest.mark.parametrize(("preset", "tags", "name"), [
    ("mlperf-kws", None, "kws01"),
    ("micronet-kws-s", None, "kws01"),
    ("ds-cnn-m", None, "kws01"),
    ("mlperf-vww", None, "vww01"),
    ("mlperf-ic", None, "ic01"),
    ("micronet-ad-l", None, "ad01"),
    ("mlperf-ad", None, "ad01"),
    (None, {"backbone": "micronet-kws"}, "kws01"),
    (None, {"preset": "mlperf-ic", "backbone": "resnet"}, "ic01"),
    (None, {"backbone": "mbnetv2-like"}, None),
    (None, None, None),
])
def test_default_name_from_preset_or_tag(preset: str | None, tags: dict[str, str] | None,
                                         name: str | None) -> None:
    assert default_mlperf_name(preset, tags) == name


def test_name_round_trips_through_the_flags() -> None:
    for code, name in enumerate(pf.MLPERF_NAMES[1:], start=1):
        flags = pf.mlperf_flags(name)
        assert flags & pf.CONSTANTS["MP_FLAG_MLPERF_MASK"] == flags
        assert flags >> pf.CONSTANTS["MP_FLAG_MLPERF_SHIFT"] == code
        assert pf.mlperf_name(flags | 3) == name  # float I/O bits do not disturb it
    assert pf.mlperf_flags(None) == 0 and pf.mlperf_name(0) is None


def test_plan_carries_the_name(zoo: dict[str, Path]) -> None:
    data = zoo[MODEL].read_bytes()
    plan = compile_model(data, BOARDS[BOARD], mlperf_name="vww01")
    header = read_plan(plan.data).header
    assert pf.mlperf_name(int(header["flags"])) == "vww01"  # type: ignore[call-overload]
    assert plan.summary()["mlperf_name"] == "vww01"
    unnamed = compile_model(data, BOARDS[BOARD])
    assert unnamed.mlperf_name is None and unnamed.model_id == plan.model_id
    with pytest.raises(McuprofError, match="unknown MLPerf Tiny model name"):
        compile_model(data, BOARDS[BOARD], mlperf_name="kws02")


def test_cli_option_and_sidecar_default(zoo: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "net.tflite"
    shutil.copy(zoo[MODEL], model)

    def compiled(*extra: str) -> str | None:
        out = tmp_path / "net.plan"
        result = CliRunner().invoke(main, ["compile", str(model), "-o", str(out), "--board",
                                           BOARD, *extra])
        assert result.exit_code == 0, result.output
        return pf.mlperf_name(int(read_plan(out.read_bytes()).header["flags"]))  # type: ignore[call-overload]

    assert compiled() is None
    assert compiled("--mlperf-name", "ad01") == "ad01"
    model.with_suffix(".json").write_text(json.dumps(
        {"preset": "micronet-kws-s", "tags": {"backbone": "kws"}}))
    assert compiled() == "kws01"
    assert compiled("--mlperf-name", "none") is None
