"""``mcuprof fits`` and ``mcuprof predict`` against a real server over loopback HTTP (uvicorn
on a seeded SQLite database), and the client library methods under them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from profiler_client.cli import main
from profiler_client.client import Client
from service.fitting import read_parquet
from tests.dashboard import seed
from tests.dashboard.conftest import DEVICES, PER_BACKBONE
from tests.service.helpers import SAMPLE_MODEL
from tests.service_agent.conftest import ThreadServer

F446, F746 = DEVICES


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCUPROF_SERVER", raising=False)
    monkeypatch.delenv("MCUPROF_TOKEN", raising=False)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_fits_table_json_and_exports(served: ThreadServer, tmp_path: Path) -> None:
    result = run("fits", "--server", served.url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["device", "kernels", "model", "backbone"]
    assert len([x for x in lines if " v2-" in x]) == 8
    assert len(lines) == 1 + 8 + 3  # and a note per twin's error band, and what it means
    assert any(F446 in line and "op-count line" in line and " kws " in line for line in lines)
    result = run("fits", "--server", served.url, "--device", F746, "--backbone", "kws",
                 "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(r["kind"], r["backbone"]) for r in records} == {("ops_line", "kws"),
                                                            ("per_layer", None)}
    line = next(r for r in records if r["kind"] == "ops_line")
    assert line["n"] == PER_BACKBONE and line["version"].startswith("v2-")
    assert set(line["metrics"]) == {"n", "r2", "mape", "acc10", "rmse_ms"}
    out = tmp_path / "fits.parquet"
    result = run("fits", "--server", served.url, "--parquet", str(out))
    assert result.exit_code == 0 and "wrote" in result.stderr
    assert len(read_parquet(out, kind="fits")) == 8
    result = run("fits", "--server", served.url, "--csv", "-", "--kind", "per_layer")
    assert result.stdout.startswith("kind,device_class,backbone,kernels,version,current")
    result = run("fits", "--server", served.url, "--json", "--csv", "-")
    assert result.exit_code == 2 and "--json, --csv" in result.output


def test_predict_ops_and_a_tflite(served: ThreadServer) -> None:
    result = run("predict", "--server", served.url, "--ops", "6000000", "--backbone", "vww",
                 "--device", F446, "--device", F746)
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    assert rows[0].startswith("model: 6,000,000 ops, backbone vww")
    assert any(r.startswith(F446) and "op-count line" in r and " mJ" not in r for r in rows)
    result = run("predict", "--server", served.url, str(SAMPLE_MODEL), "--backbone", "kws",
                 "--device", F446, "--json")
    assert result.exit_code == 0, result.output
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["name"] == "kws_tiny" and record["device"] == F446
    assert record["model"] == "per_layer" and len(record["estimates"]) == 2
    assert record["energy_mj"] == pytest.approx(160.0 * record["latency_ms"] / 1000)
    # a device without a latency model: reason printed, exit status 1
    result = run("predict", "--server", served.url, "--ops", "100", "--backbone", "kws",
                 "--device", "virtual:nucleo-l4r5zi")
    assert result.exit_code == 1 and "no op-count line for backbone kws" in result.stdout
    result = run("predict", "--server", served.url, "--ops", "100")
    assert result.exit_code == 2 and "--ops needs --backbone" in result.output
    result = run("predict", "--server", served.url)
    assert result.exit_code == 2 and "give MODEL.tflite or --ops" in result.output
    result = run("predict", "--server", served.url, "--ops", "1", "--backbone", "kws",
                 "--device", "virtual:nucleo-f999")
    assert result.exit_code == 2 and "unknown board" in result.stderr


def test_client_methods(served: ThreadServer) -> None:
    with Client(served.url) as api:
        fits = api.fits(device=F446, kind="ops_line")
        assert sorted(f.backbone or "" for f in fits) == ["ad", "kws", "vww"]
        one = api.fit(fits[0].version)
        assert one.measurement_ids is not None and len(one.measurement_ids) == PER_BACKBONE
        assert api.fits(history=True, kernels="ref") == []
        frame = seed.frame(api.measurements_parquet(device=F446), "measurements")
        assert len(frame) == 3 * PER_BACKBONE + 2
        assert api.fits_export("csv").startswith(b"kind,")
        out = api.predict([F446], model=SAMPLE_MODEL.read_bytes(), backbone="kws")
        assert out.predictions[0].model == "per_layer"
        model_out = api.predict([F746], model_id=1)
        assert {e.model for e in model_out.predictions[0].estimates} == {"ops_line",
                                                                        "per_layer"}
