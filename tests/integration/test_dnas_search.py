"""The DNAS search end to end, as a new user runs it, and its refusals.

``mcuprof search --local`` on a tiny synthetic KWS set (espeak-ng and flite speech made on
this machine): a local server and virtual board, a bootstrap campaign for the fits, a few
search epochs, final training with quantization-aware fine-tuning, int8 export, and the model
profiled on the board's twin, predicted against cycle-model latency. Then the properties a
user relies on: the same seed gives the same architecture (also across an interruption),
and every bad input stops the run with one message that says what to do.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from bench_firmware.boards import get_board
from bench_firmware.compiler import compile_model
from profiler_client.cli import main
from search.dnas.costs import CostModel, budget_for
from search.dnas.latency import LatencyModel
from search.dnas.relaxed import relax
from search.dnas.search import SearchConfig, restricted_choices, search_architecture

pytestmark = pytest.mark.slow
DEVICE = "virtual:nucleo-f446re"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorflow", reason="the search trains with tensorflow")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCUPROF_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("MCUPROF_SERVER", "MCUPROF_TOKEN", "MCUPROF_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)


def _speech_tools() -> None:
    if not (shutil.which("espeak-ng") and shutil.which("flite")):
        pytest.skip("synth:kws needs espeak-ng and flite (make setup installs them)")


def test_search_local_exports_a_model_that_fits_and_reports_predicted_vs_profiled(
        tmp_path: Path) -> None:
    _speech_tools()
    out = tmp_path / "run"
    args = ["search", "--space", "kws", "--data", "synth:kws", "--device", DEVICE,
            "--latency-ms", "12", "--max-width", "16", "--epochs", "2", "--final-epochs", "2",
            "--qat-epochs", "1", "--per-class", "10", "--local", "--bootstrap", "6",
            "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    # Progress on stderr: epochs with the temperature and the costs against the budgets.
    assert "epoch 2/2" in result.stderr and "tau" in result.stderr
    assert "/12 ms" in result.stderr and "KiB" in result.stderr
    assert "bootstrap: profiling 6 sampled kws models" in result.stderr
    # The report: predicted against the twin's cycle-model latency (never "measured").
    assert "predicted" in result.stdout and "cycle model" in result.stdout
    assert "measured" not in result.stdout
    summary = json.loads((out / "result.json").read_text())
    [cand] = summary["candidates"]
    measured = cand["measured"][DEVICE]
    predicted = cand["predicted"]
    assert measured["latency_ms"] > 0 and measured["cycle_source"]
    assert predicted["latency_ms"][DEVICE] > 0
    budget = summary["budgets"][0]
    board = get_board("nucleo-f446re")
    assert budget["sram_bytes"] == board.arena_capacity
    assert budget["flash_bytes"] == board.model_region_bytes
    assert measured["arena_bytes"] <= budget["sram_bytes"]
    assert measured["plan_bytes"] <= budget["flash_bytes"]
    # The prediction's arena and plan are the plan compiler's: equal to the profiled ones
    # up to the plan's sharing of equal arrays.
    assert predicted["sram_bytes"][DEVICE] == measured["arena_bytes"]
    assert abs(predicted["flash_bytes"][DEVICE] - measured["plan_bytes"]) <= 64
    # The exported model is an int8 .tflite the board takes, with its search sidecar.
    model = Path(cand["path"])
    plan = compile_model(model.read_bytes(), board)  # raises if it does not fit
    assert plan.input_dtype == "int8"
    sidecar = json.loads(model.with_suffix(".json").read_text())
    assert sidecar["id"] == cand["arch_id"]
    assert sidecar["dnas"]["fits"][DEVICE]["kind"] in ("per_layer", "ops_line")
    assert set(sidecar["dnas"]["accuracy"]) >= {"held-out synthesizer (flite)",
                                               "held-out voices"}
    assert len(sidecar["dnas"]["input_normalization"]["mean"]) == 10  # per MFCC coefficient
    # A rerun resumes: nothing is trained again, the same architecture comes out.
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "resuming after epoch 2" in again.stderr and "reusing" in again.stderr
    summary2 = json.loads((out / "result.json").read_text())
    assert summary2["candidates"][0]["arch_id"] == cand["arch_id"]


def _random_data(seed: int) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    return SimpleNamespace(
        x_train=rng.normal(size=(96, 49, 10, 1)).astype("float32"),
        y_train=rng.integers(0, 12, 96), x_val=rng.normal(size=(32, 49, 10, 1)).astype(
            "float32"), y_val=rng.integers(0, 12, 32), classes=list(range(12)))


def _search(out: Path, epochs: int, seed: int = 3, interrupt_after: int | None = None) -> str:
    cfg = SearchConfig(space="kws", data="x", devices=[DEVICE], latency_ms=6.0, max_width=12,
                       epochs=epochs, warmup=1, seed=seed, batch_size=32)
    rs = relax("kws", choices=restricted_choices("kws", 12))
    line = LatencyModel(device=DEVICE, kind="ops_line", version="test", a_ms_per_op=8e-6,
                        b_ms=0.4)
    model = CostModel(rs, [budget_for(DEVICE, 6.0)], {DEVICE: line})
    out.mkdir(parents=True, exist_ok=True)
    def on_epoch(record: dict) -> None:
        if record["epoch"] == interrupt_after:
            raise KeyboardInterrupt  # as Ctrl-C would, right after a checkpoint

    arch, records, _ = search_architecture(cfg, _random_data(seed), model, out,
                                           on_epoch=on_epoch)
    assert len(records) == epochs
    return arch.id


def test_same_seed_same_architecture_also_after_an_interruption(tmp_path: Path) -> None:
    first = _search(tmp_path / "a", 3)
    assert _search(tmp_path / "b", 3) == first
    # Interrupted after two of the three epochs, then run again: it resumes.
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path / "c", 3, interrupt_after=2)
    journal = (tmp_path / "c" / "journal.jsonl").read_text()
    assert journal.count('"event": "epoch"') == 2
    assert _search(tmp_path / "c", 3) == first


def _fail(args: list[str]) -> str:
    result = CliRunner().invoke(main, ["search", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.stderr


def test_bad_inputs_stop_with_one_clear_error(tmp_path: Path) -> None:
    from tests.service_agent.conftest import ThreadServer, settings_for

    base = ["--device", DEVICE, "--out", str(tmp_path / "x")]
    err = _fail(["--space", "cnn", "--data", "synth:kws", *base])
    assert "search space" in err and "kws" in err and "vww" in err
    err = _fail(["--space", "kws", "--data", "synth:kws", "--device", "virtual:nucleo-x1",
                 "--out", str(tmp_path / "y")])
    assert "nucleo-x1" in err and "nucleo-f446re" in err
    # A budget no architecture of the space can meet, named with what it would need.
    err = _fail(["--space", "kws", "--data", "synth:kws", "--sram-kib", "1", *base])
    assert "no architecture of the kws space meets the budget" in err and "arena" in err
    from service.db import migrate

    database = f"sqlite:///{tmp_path / 'empty.db'}"
    migrate.upgrade(database)
    with ThreadServer(settings_for(database)) as server:
        # A server without fits: the campaign that would make them.
        err = _fail(["--space", "kws", "--data", "synth:kws", "--server", server.url,
                     "--max-width", "16", *base])
        assert "no latency fit" in err
        assert f"mcuprof campaign --space kws --n 20 --device {DEVICE} --max-width 16" in err
        assert "--bootstrap" in err
    # A dataset directory in the wrong layout (checked before any server is asked).
    bad = tmp_path / "not_speech_commands"
    (bad / "stuff").mkdir(parents=True)
    (bad / "stuff" / "a.txt").write_text("x")
    err = _fail(["--space", "kws", "--data", str(bad), "--local", *base[:2], "--out",
                 str(tmp_path / "z")])
    assert "Speech Commands" in err
