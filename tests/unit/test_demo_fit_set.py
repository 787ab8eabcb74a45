"""The demo's fit set (``service/demo_fits``) is what its manifest says: the files, their
SHA-256, their ops and MACs as mcuprof's own compiler counts them, one backbone, a spread
of op counts a line can be fitted to, and plans that fit every board; and ``mcuprof demo``
wires ``--no-fits`` / ``--no-samples`` as ``mcuprof campaign --local`` relies on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench_firmware.boards import BOARDS, get_board
from bench_firmware.compiler import compile_model
from profiler_client.fitting.linear import MIN_POINTS
from service import cli_demo
from service.demo import FIT_SET_DIR, FIT_SET_MANIFEST, load_fit_set

MAX_TOTAL_BYTES = 1_000_000  # the fit set ships in the package: keep it small


def _manifest() -> dict[str, Any]:
    return dict(json.loads((FIT_SET_DIR / FIT_SET_MANIFEST).read_text()))


def test_the_shipped_models_match_their_manifest() -> None:
    manifest = _manifest()
    entries = manifest["models"]
    files = sorted(p.name for p in FIT_SET_DIR.glob("*.tflite"))
    assert files == sorted(m["file"] for m in entries)  # no file more, none missing
    assert len(entries) >= MIN_POINTS
    total = 0
    for m in entries:
        data = (FIT_SET_DIR / m["file"]).read_bytes()
        total += len(data)
        assert hashlib.sha256(data).hexdigest() == m["sha256"], m["file"]
        assert len(data) == m["tflite_bytes"]
        assert m["tags"]["backbone"] == manifest["space"] == "kws"
        assert m["file"] == f"kws-{m['tags']['arch']}.tflite"
        for board in sorted(BOARDS):
            plan = compile_model(data, get_board(board), name=m["file"], check_fit=True)
            assert (plan.ops, plan.macs) == (m["ops"], m["macs"]), (m["file"], board)
    assert total <= MAX_TOTAL_BYTES
    ops = [m["ops"] for m in entries]
    assert len(set(ops)) == len(ops) and max(ops) >= 2 * min(ops)  # a line, not a point
    # How to regenerate them is written down.
    assert manifest["command"].startswith(".venv/bin/python benchmarks/make_demo_fitset.py")
    assert f"--seed {manifest['seed']}" in manifest["command"]
    assert (FIT_SET_DIR / "README.md").read_text().count(manifest["command"]) == 1


def test_load_fit_set_reads_the_manifest() -> None:
    models = load_fit_set()
    assert [m.path.name for m in models] == [m["file"] for m in _manifest()["models"]]
    assert all(m.tags["backbone"] == "kws" and m.ops > 0 for m in models)


def test_a_broken_fit_set_is_a_clear_error(tmp_path: Path) -> None:
    from bench_firmware.errors import McuprofError

    with pytest.raises(McuprofError, match="cannot read the demo's fit set.*--no-fits"):
        load_fit_set(tmp_path)
    (tmp_path / FIT_SET_MANIFEST).write_text(json.dumps({"models": [
        {"file": "gone.tflite", "sha256": "0", "ops": 1, "tags": {"backbone": "kws"}}]}))
    with pytest.raises(McuprofError, match="lacks gone.tflite"):
        load_fit_set(tmp_path)


@pytest.mark.parametrize(("args", "samples", "fit_set"), [
    ([], True, True),
    (["--no-fits"], True, False),
    # What `mcuprof campaign --local` runs: no model at all (run_demo skips the fit set
    # whenever it skips the samples).
    (["--no-samples", "--agent-processes", "--ready-file", "r.json", "--stop-with-stdin"],
     False, True),
])
def test_the_cli_passes_the_fit_set_options(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                            samples: bool, fit_set: bool) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(cli_demo, "run_demo", lambda **kw: seen.update(kw))
    result = CliRunner().invoke(cli_demo.demo, args)
    assert result.exit_code == 0, result.output
    assert (seen["samples"], seen["fit_set"]) == (samples, fit_set)
