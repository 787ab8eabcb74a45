"""A twin's error band against silicon where fits, predictions and the dashboard show twin
latencies (issue #10): fits on a virtual device class carry the band; predictions widen the
fit's interval by it (``Prediction.widened``); the device and model pages say "cycle model,
±N % vs silicon" with the band's provenance; ``mcuprof results / fits / predict`` print it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from bench_firmware.backends.virtual.error_band import error_band
from profiler_client.cli import main
from profiler_client.fitting.linear import LineFit
from tests.dashboard import seed
from tests.dashboard.conftest import DEVICES
from tests.dashboard.test_labels import text
from tests.service_agent.conftest import ThreadServer

F446, F746 = DEVICES
BAND = {F446: error_band("nucleo-f446re"), F746: error_band("nucleo-f746zg")}


def test_twin_fits_carry_the_band_and_predictions_widen_by_it(
        client: TestClient, seeded: seed.Seeded) -> None:
    fits = client.get("/api/v1/fits").json()
    assert fits
    for fit in fits:
        band = BAND[fit["device_class"]]
        assert band is not None
        assert (fit["error_band_pct"], fit["error_band_label"], fit["error_band_basis"]) == (
            band.pct, band.label, band.basis)

    line = next(f for f in fits if f["device_class"] == F446 and f["kind"] == "ops_line"
                and f["backbone"] == "kws")
    ops = 8_000_000
    r = client.post("/api/v1/predict", json={"ops": ops, "backbone": "kws", "devices": [F446]})
    assert r.status_code == 200, r.text
    [p] = r.json()["predictions"]
    assert p["error_band_pct"] == 28 and p["error_band_label"] == "cycle model, ±28 % vs silicon"
    [e] = p["estimates"]
    fitted = LineFit.from_dict(line["coefficients"]).predict(float(ops))
    assert (e["fit_lo_ms"], e["fit_hi_ms"]) == pytest.approx((fitted.lo, fitted.hi))
    assert e["latency_lo_ms"] == pytest.approx(fitted.lo / 1.28)
    assert e["latency_hi_ms"] == pytest.approx(fitted.hi / 0.72)
    assert (p["latency_lo_ms"], p["latency_hi_ms"]) == (e["latency_lo_ms"], e["latency_hi_ms"])
    assert p["latency_ms"] == pytest.approx(fitted.value)  # the point is the twin's
    assert e["error_band_basis"] == BAND[F446].basis  # type: ignore[union-attr]


def test_the_pages_say_cycle_model_plus_minus_n_vs_silicon(
        client: TestClient, seeded: seed.Seeded) -> None:
    for device, pct in ((F446, 28), (F746, 13)):
        page = text(client.get(f"/device/{device}").text)
        band = BAND[device]
        assert band is not None
        assert f"cycle model, ±{pct} % vs silicon : {band.basis}" in page
        assert "widen the interval by this band" in page
    model = text(client.get(f"/model/{seeded.model_ids[0]}").text)
    assert "cycle-model latency cycle model, ±28 % vs silicon" in model
    assert "cycle-model latency cycle model, ±13 % vs silicon" in model
    jobs = client.get(f"/device/{F746}").text
    assert "±13 %</span>" in jobs  # the recent jobs' results and the fits table


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_cli_prints_the_band(served: ThreadServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCUPROF_SERVER", raising=False)
    monkeypatch.delenv("MCUPROF_TOKEN", raising=False)
    band446, band746 = BAND[F446], BAND[F746]
    assert band446 is not None and band746 is not None

    result = run("results", "1", "--server", served.url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "vs silicon" in lines[0]
    assert any(F446 in x and "±28 %" in x for x in lines)
    assert any(F746 in x and "±13 %" in x for x in lines)
    assert f"nucleo-f446re: {band446.label} ({band446.basis})" in lines

    result = run("fits", "--server", served.url, "--device", F746)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all("±13 %" in x for x in lines[1:4])
    assert f"{F746}: {band746.label} ({band746.basis})" in lines

    result = run("predict", "--server", served.url, "--ops", "6000000", "--backbone", "vww",
                 "--device", F446)
    assert result.exit_code == 0, result.output
    assert ("interval includes the twin's error band: cycle model, ±28 % vs silicon"
            in result.stdout)
