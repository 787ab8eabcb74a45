"""``mcuprof calibrate --device pyocd:<board>:<probe>`` end to end.

The twin is the real one (``virtual:<board>``, the firmware image on the cycle model); the
physical board is the scripted stand-in the agent tests use (``fake_board.FakeBoard``: plans
run on the host build, cycles made up and scaled by its script), put where pyOCD's back end
would be opened; the server is real (uvicorn over a seeded SQLite database, loopback HTTP).
What is checked is the calibration's arithmetic and what it changes: the upload, the twins'
calibrated cycles in the API, the fits and predictions, and the device page. A real board is
the ``hardware`` test at the end, skipped without one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

import bench_firmware.backends.registry as registry
from bench_firmware.backends.base import BoardBackend
from bench_firmware.calibration import (
    MICROBENCHMARK,
    NetworkResult,
    default_models,
    manifest,
    summarise,
)
from profiler_client.cli import main
from profiler_client.client import Client
from tests.dashboard import seed
from tests.dashboard.conftest import PER_BACKBONE, seeded_server
from tests.dashboard.test_labels import text
from tests.service_agent.conftest import ThreadServer
from tests.service_agent.fake_board import Farm

PROBE = "066DFF535155878281123456"
BOARD = "nucleo-f446re"
DEVICE = f"pyocd:{BOARD}:{PROBE}"
TWIN_CLASS = f"virtual:{BOARD}"
needs_gcc = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                               reason="arm-none-eabi-gcc is not installed (the twin's firmware)")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- what a calibration states (pure) -------------------------------------------------------


def net(name: str, silicon: int, twin: int, kind: str = "network",
        **ops: tuple[int, int]) -> NetworkResult:
    return NetworkResult(name=name, macs=1000, silicon_cycles=silicon, twin_cycles=twin,
                         silicon_by_op={k: v[0] for k, v in ops.items()},
                         twin_by_op={k: v[1] for k, v in ops.items()}, kind=kind,
                         exercises="a class" if kind == MICROBENCHMARK else None)


def test_the_factor_is_the_median_and_the_error_is_held_out() -> None:
    nets = [net("a", 1000, 800, CONV_2D=(600, 500)), net("b", 2000, 1700, CONV_2D=(900, 700)),
            net("c", 1500, 1400, FULLY_CONNECTED=(300, 330))]
    s = summarise(nets)
    ratios = [1000 / 800, 2000 / 1700, 1500 / 1400]
    assert s.factor == pytest.approx(sorted(ratios)[1])
    # leave-one-out: each network scaled by the median of the other two
    loo = [abs(800 * (ratios[1] + ratios[2]) / 2 / 1000 - 1),
           abs(1700 * (ratios[0] + ratios[2]) / 2 / 2000 - 1),
           abs(1400 * (ratios[0] + ratios[1]) / 2 / 1500 - 1)]
    assert s.held_out and max(loo) * 100 <= s.error_pct < max(loo) * 100 + 0.1
    assert s.raw_error_pct == pytest.approx(20.0)  # network a: 800 / 1000 − 1
    assert s.op_errors == pytest.approx({"CONV_2D": 1200 / 1500 - 1,
                                         "FULLY_CONNECTED": 330 / 300 - 1})


def test_one_network_claims_only_its_uncalibrated_error() -> None:
    s = summarise([net("a", 1000, 900)])
    assert s.factor == pytest.approx(1000 / 900)
    assert not s.held_out and s.error_pct == s.raw_error_pct == 10.0


def test_microbenchmarks_state_their_ratio_and_stay_out_of_the_factor() -> None:
    nets = [net("a", 1000, 800, CONV_2D=(600, 500)), net("b", 2000, 1700)]
    benches = [net("fc_flash", 100, 60, MICROBENCHMARK, FULLY_CONNECTED=(90, 55)),
               net("softmax", 100, 130, MICROBENCHMARK, SOFTMAX=(95, 120))]
    s = summarise(benches + nets)
    plain = summarise(nets)
    assert (s.factor, s.error_pct, s.raw_error_pct, s.held_out, s.op_errors) == (
        plain.factor, plain.error_pct, plain.raw_error_pct, plain.held_out, plain.op_errors)
    assert s.bench_ratios == pytest.approx({"fc_flash": 0.6, "softmax": 1.3})
    assert list(s.bench_ratios) == ["fc_flash", "softmax"] and plain.bench_ratios == {}
    # microbenchmarks alone: judged on them, as networks would be
    alone = summarise(benches)
    assert alone.factor == pytest.approx((100 / 60 + 100 / 130) / 2)
    assert alone.raw_error_pct == 40.0 and alone.held_out
    # an upload from before microbenchmarks (no kind) reads as a network
    old = NetworkResult.from_dict({"name": "kws", "macs": 1, "silicon_cycles": 10,
                                   "twin_cycles": 9})
    assert old.kind == "network" and old.exercises is None
    assert NetworkResult.from_dict(benches[0].as_dict()) == benches[0]


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> list[seed.SyntheticModel]:
    """The dashboard tests' sample: models of three backbones, measured on two twins."""
    return seed.sample_models(PER_BACKBONE, untagged=2)


@pytest.fixture
def server(tmp_path: Path, sample: list[seed.SyntheticModel]) -> Iterator[ThreadServer]:
    with seeded_server(tmp_path, sample) as s:
        yield s


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Farm:
    """The scripted board where pyOCD's back end would open; other devices open for real."""
    farm = Farm()
    farm.script(DEVICE).cycle_scale = 1.5  # the "silicon" is made-up cycles × 1.5
    real = registry.open_backend

    def open_backend(device: str) -> BoardBackend:
        if device.startswith("pyocd:"):
            return farm.factory(device)  # type: ignore[return-value]
        return real(device)

    monkeypatch.setattr(registry, "open_backend", open_backend)
    monkeypatch.delenv("MCUPROF_SERVER", raising=False)
    monkeypatch.delenv("MCUPROF_TOKEN", raising=False)
    return farm


@needs_gcc
def test_calibrate_end_to_end(server: ThreadServer, probe: Farm) -> None:
    url = server.url
    with Client(url) as api:
        before = {m.id: m for m in api.measurements(device=TWIN_CLASS)}
        fits_before = api.fits(device=TWIN_CLASS, kind="ops_line", backbone="kws")
        predicted_before = api.predict([TWIN_CLASS], ops=6_000_000, backbone="kws")
    assert before and all(m.calibrated_cycles is None for m in before.values())
    assert fits_before[0].calibration_id is None

    result = run("calibrate", "--device", DEVICE, "--runs", "1", "--warmup", "0",
                 "--server", url, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert probe.opened == [DEVICE] and probe.closed == [DEVICE]
    names = [n["name"] for n in out["networks"]]
    assert names == [m.name for m in default_models()]
    benches = {e["name"]: e for e in manifest()["models"]}
    for n in out["networks"]:
        assert n["silicon_cycles"] > 0 and n["twin_cycles"] > 0
        assert sum(n["silicon_by_op"].values()) <= n["silicon_cycles"]
        if n["kind"] == MICROBENCHMARK:  # one instruction class / memory path
            e = benches[n["name"]]
            assert set(n["silicon_by_op"]) == set(n["twin_by_op"]) == set(e["ops"])
            assert n["exercises"] == e["exercises"] and n["macs"] == e["macs"]
        else:
            assert n["kind"] == "network" and n["exercises"] is None
            assert set(n["silicon_by_op"]) == set(n["twin_by_op"]) >= {"CONV_2D"}
    results = [NetworkResult.from_dict(n) for n in out["networks"]]
    assert [r.name for r in results if r.kind == MICROBENCHMARK] == list(benches)
    networks = [r for r in results if r.kind != MICROBENCHMARK]
    assert len(networks) == 2
    stated = summarise(results)
    assert out["factor"] == pytest.approx(stated.factor)
    assert stated.factor == pytest.approx(summarise(networks).factor)  # networks only
    assert out["error_pct"] == stated.error_pct and out["held_out"] is True
    # per microbenchmark: the twin / silicon cycle ratio
    assert list(out["bench_ratios"]) == list(benches)
    for r in results:
        if r.kind == MICROBENCHMARK:
            assert out["bench_ratios"][r.name] == pytest.approx(r.twin_cycles / r.silicon_cycles)
    calibration_id = out["calibration_id"]

    with Client(url) as api:
        [stored] = api.calibrations(board=BOARD)
        after = {m.id: m for m in api.measurements(device=TWIN_CLASS)}
        [fit] = api.fits(device=TWIN_CLASS, kind="ops_line", backbone="kws")
        predicted = api.predict([TWIN_CLASS], ops=6_000_000, backbone="kws")
        other = api.measurements(device="virtual:nucleo-f746zg")
    assert stored.id == calibration_id and stored.device == DEVICE
    assert stored.factor == pytest.approx(stated.factor)
    assert stored.bench_ratios == pytest.approx(stated.bench_ratios)
    assert [(n.name, n.kind, n.exercises) for n in stored.networks] == [
        (r.name, r.kind, r.exercises) for r in results]
    # the server worked the figures out itself, from the networks
    assert (stored.error_pct, stored.raw_error_pct) == (stated.error_pct, stated.raw_error_pct)

    # the board's twin measurements: raw cycles unchanged with their suite band, calibrated
    # cycles beside them, marked, dated, with the calibration's error
    for mid, m in after.items():
        assert m.cycles == before[mid].cycles and m.error_band_pct == 28
        assert m.calibration_id == calibration_id
        assert m.cycles is not None and m.calibrated_cycles == round(m.cycles * stored.factor)
        assert m.calibrated_error_pct == stored.error_pct
        assert m.calibrated_label == f"calibrated cycle model, ±{stored.error_pct:g} % vs silicon"
        assert m.calibrated_at == stored.created_at
        assert m.calibrated_basis is not None and DEVICE in m.calibrated_basis
        assert stored.created_at.strftime("%Y-%m-%d") in m.calibrated_basis
    assert all(m.calibration_id is None for m in other)  # another board: not calibrated

    # fits and predictions use the calibration
    assert fit.calibration_id == calibration_id
    assert fit.calibration_factor == pytest.approx(stored.factor)
    [p0], [p] = predicted_before.predictions, predicted.predictions
    assert p0.error_band_pct == 28 and p0.calibration_id is None
    assert p.calibration_id == calibration_id
    assert p.latency_ms == pytest.approx(p0.latency_ms * stored.factor)  # type: ignore[operator]
    assert p.error_band_pct == stored.error_pct
    [e0], [e] = p0.estimates, p.estimates
    b = stored.error_pct / 100
    assert e0.fit_lo_ms is not None and e0.fit_hi_ms is not None
    assert e.fit_lo_ms == pytest.approx(e0.fit_lo_ms * stored.factor)
    assert e.fit_hi_ms == pytest.approx(e0.fit_hi_ms * stored.factor)
    assert p.latency_lo_ms == pytest.approx(e0.fit_lo_ms * stored.factor / (1 + b))
    assert p.latency_hi_ms == pytest.approx(e0.fit_hi_ms * stored.factor / (1 - b))

    # the text report (not stored again)
    report = run("calibrate", "--device", DEVICE, "--runs", "1", "--warmup", "0",
                 "--no-upload").stdout
    assert f"{DEVICE} (DWT CYCCNT) against its twin (cycle model)" in report
    assert f"calibration factor {stated.factor:.4f} (silicon / twin cycles, median); " \
           f"calibrated error ±{stated.error_pct:g} % (leave-one-out over the networks)" in report
    assert "  CONV_2D " in report and "stored as" not in report
    assert "microbenchmarks (one instruction class / memory path each):" in report
    for r in results:
        if r.kind == MICROBENCHMARK:
            assert any(line.startswith(f"{r.name} ") and f"{r.ratio:.3f}  {r.exercises}" in line
                       for line in report.splitlines()), r.name
    with Client(url) as api:
        assert len(api.calibrations()) == 1

    # the CLI says so
    calibrated = f"calibrated cycle model, ±{stored.error_pct:g} % vs silicon"
    lines = run("results", "1", "--server", url).stdout.splitlines()
    assert any(x.startswith("measurement ") and calibrated in x
               and f"calibration {calibration_id} of" in x for x in lines)
    assert f"{TWIN_CLASS}: {calibrated} (" in run("fits", "--server", url, "--device",
                                                  TWIN_CLASS).stdout
    assert f"interval includes the twin's error band: {calibrated}" in run(
        "predict", "--server", url, "--ops", "6000000", "--backbone", "kws", "--device",
        TWIN_CLASS).stdout

    # the device page shows twin vs silicon
    page = text(httpx.get(f"{url}/device/{TWIN_CLASS}").text)
    assert f"Latest calibration {calibration_id}" in page
    assert f"{DEVICE} (DWT CYCCNT) against its twin (cycle model)" in page
    for r in results:
        if r.kind == MICROBENCHMARK:  # the per-class table
            assert f"{r.name} {r.exercises} " in page and f"{r.ratio:.3f}" in page
        else:
            assert f"{r.name} " in page and f"{100 * r.error:+.1f} %" in page
    assert "instruction class / memory path" in page
    assert f"calibrated cycle model, ±{stored.error_pct:g} % vs silicon" in page
    model_page = text(httpx.get(f"{url}/model/1").text)
    assert (f"{calibrated}, calibration {calibration_id} of "
            f"{stored.created_at:%Y-%m-%d}") in model_page
    assert "cycle-model latency cycle model, ±28 % vs silicon" in model_page
    other_page = text(httpx.get(f"{url}/device/virtual:nucleo-f746zg").text)
    assert "No calibration against a real nucleo-f746zg yet" in other_page


def test_a_virtual_device_is_refused() -> None:
    result = CliRunner().invoke(main, ["calibrate", "--device", TWIN_CLASS, "--no-upload"])
    assert result.exit_code != 0
    assert "calibrate needs a physical board, pyocd:<board>:<probe>" in result.output


def test_the_server_refuses_a_calibration_from_a_twin(server: ThreadServer) -> None:
    r = httpx.post(f"{server.url}/api/v1/calibrations", json={
        "device": TWIN_CLASS, "networks": [{"name": "a", "macs": 1, "silicon_cycles": 10,
                                            "twin_cycles": 9}]})
    assert r.status_code == 422 and "is not pyocd:<board>:<probe id>" in r.json()["detail"]


def test_without_the_probe_the_real_backend_says_what_to_check() -> None:
    """pyOCD's real probe enumeration, no probe attached here (as in test_pyocd_backend)."""
    from tests.service_agent.test_pyocd_backend import ATTACHED

    if ATTACHED:
        pytest.skip("a probe is attached; this checks the error without")
    result = CliRunner().invoke(main, ["calibrate", "--device", DEVICE, "--no-upload"])
    assert result.exit_code != 0
    assert f"no debug probe with unique id {PROBE} is attached" in result.output


@pytest.mark.hardware
@pytest.mark.skipif(not os.environ.get("MCUPROF_TEST_PROBE"),
                    reason="needs a Nucleo board on its ST-LINK: set MCUPROF_TEST_PROBE=<unique "
                           "id> (and MCUPROF_TEST_BOARD) with the probe attached")
def test_calibrate_a_real_board() -> None:
    board = os.environ.get("MCUPROF_TEST_BOARD", BOARD)
    device = f"pyocd:{board}:{os.environ['MCUPROF_TEST_PROBE']}"
    result = CliRunner().invoke(main, ["calibrate", "--device", device, "--no-upload",
                                       "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # A twin that errs by more than the suite's stated band on these networks is a finding.
    from bench_firmware.backends.virtual.error_band import error_band

    band = error_band(board)
    assert band is not None and out["raw_error_pct"] <= band.pct
