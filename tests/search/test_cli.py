"""``mcuprof sample`` as a user runs it: files, sidecars, reuse, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from profiler_client.cli import main
from search.presets import PRESETS
from search.sampler import sample


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("args, message", [
    (["--space", "cifar"], "unknown search space 'cifar'; valid search spaces: ad, kws, vww"),
    (["--preset", "micronet-kws-xl"], "valid presets: micronet-kws-s, micronet-kws-m"),
    (["--space", "kws", "--n", "0"], "sample at least 1"),
    (["--space", "kws", "--jobs", "0"], "at least 1 worker"),
    (["--space", "kws", "--input-size", "64"], "only the vww space"),
    ([], "either --space"),
    (["--space", "kws", "--preset", "mlperf-kws"], "either --space"),
    (["--space", "vww", "--input-size", "16"], "H, W >= 32; got [16, 16, 1]"),
    (["--space", "kws", "--representative", "X.npy"],
     "samples of shape [32, 32, 1]; kws-"),
])
def test_bad_requests_say_what_is_valid(tmp_path: Path, args: list[str], message: str) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 32, 32, 1), np.float32))
    args = [str(tmp_path / "x.npy") if a == "X.npy" else a for a in args]
    code, out, err = _invoke("sample", "--out", str(tmp_path / "out"), *args)
    assert code == 2
    assert message in " ".join(err.split()), err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_sample_space_writes_models_and_sidecars(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="converting needs tensorflow")
    out = tmp_path / "kws"
    code, stdout, err = _invoke("sample", "--space", "kws", "--n", "3", "--seed", "4",
                                "--out", str(out), "--jobs", "2", "--json")
    assert code == 0, err
    expected = sample("kws", 3, seed=4)
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [m["name"] for m in lines] == [a.name for a in expected]  # in sample order
    for arch, meta in zip(expected, lines, strict=True):
        assert (out / f"{arch.name}.tflite").read_bytes()[4:8] == b"TFL3"
        side = json.loads((out / f"{arch.name}.json").read_text())
        assert side["arch"] == arch.to_dict() and side["id"] == arch.id
        assert side["tags"] == {"backbone": "kws", "arch": arch.id}
        assert side["macs"] == arch.network().macs() == meta["macs"]
        assert not meta["reused"]
    assert "3 converted, 0 reused" in err and "models/min" in err
    # A second run finds everything done and starts no converter.
    code, stdout, err = _invoke("sample", "--space", "kws", "--n", "3", "--seed", "4",
                                "--out", str(out))
    assert code == 0, err
    assert "0 converted, 3 reused" in err
    for arch in expected:
        assert arch.name in stdout


@pytest.mark.slow
def test_sample_presets_prints_the_summary_table(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="converting needs tensorflow")
    code, stdout, err = _invoke("sample", "--preset", "mlperf-ad", "--preset", "micronet-kws-s",
                                "--out", str(tmp_path), "--jobs", "1")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "micronet-kws-s.json", "micronet-kws-s.tflite", "mlperf-ad.json", "mlperf-ad.tflite"]
    header = stdout.splitlines()[0].split()
    assert header == ["name", "MACs", "params", "arena", "plan", "F446RE", "F746ZG", "F767ZI",
                      "L4R5ZI"]
    row = next(line for line in stdout.splitlines() if line.startswith("micronet-kws-s"))
    assert f"{PRESETS['micronet-kws-s'].network().macs():,}" in row
    assert row.split()[-4:] == ["yes", "yes", "yes", "yes"]  # KWS-S is MicroNets' S model
    side = json.loads((tmp_path / "mlperf-ad.json").read_text())
    assert side["preset"] == "mlperf-ad" and side["space"] is None and side["arch"] is None
    assert side["tags"]["backbone"] == "fc-autoencoder" and side["tags"]["preset"] == "mlperf-ad"
