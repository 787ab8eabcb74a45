"""``/api/v1/fits`` and ``/api/v1/predict`` on SQLite and PostgreSQL: fits stored with their
measurements, refitted when a measurement arrives (through the queue's report path) or a
backbone tag changes, not when nothing did; versions; exports; predictions from ops, stored
models and uploaded ``.tflite`` files."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

import service.fits_store
from bench_firmware.boards import get_board
from profiler_client.fitting.linear import MIN_POINTS
from service.db.engine import Database
from service.db.models import Fit, FitMeasurement, FitPartition, Measurement, ModelTag
from service.fitting import FitResult
from tests.dashboard import seed
from tests.dashboard.conftest import DEVICES, PER_BACKBONE
from tests.service.helpers import float_model

F446, F746 = DEVICES
L4R5 = "virtual:nucleo-l4r5zi"
N_MODELS = 3 * PER_BACKBONE + 2


@pytest.fixture
def fit_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts service.fitting.fit_all calls made by the store (one per partition refit)."""
    calls: list[int] = []
    real: Callable[..., list[FitResult]] = service.fits_store.fit_all

    def counting(*args: Any, **kwargs: Any) -> list[FitResult]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(service.fits_store, "fit_all", counting)
    return calls


def by_key(fits: list[dict[str, Any]]) -> dict[tuple[str, str, str | None], dict[str, Any]]:
    return {(f["device_class"], f["kind"], f["backbone"]): f for f in fits}


def test_fits_are_fitted_stored_with_their_measurements_and_versioned(
        client: TestClient, database: Database, seeded: seed.Seeded) -> None:
    r = client.get("/api/v1/fits")
    assert r.status_code == 200, r.text
    fits = by_key(r.json())
    assert set(fits) == {(d, "ops_line", b) for d in DEVICES for b in ("ad", "kws", "vww")} | {
        (d, "per_layer", None) for d in DEVICES}
    for (_device, kind, _backbone), fit in fits.items():
        assert fit["current"] and fit["version"].startswith("v2-") and fit["kernels"] == "dsp"
        assert fit["n"] == (PER_BACKBONE if kind == "ops_line" else N_MODELS)
        assert fit["k"] == 5 and fit["metrics"]["n"] == fit["n"]
        assert 0.0 <= fit["metrics"]["acc10"] <= 1.0 and fit["metrics"]["mape"] > 0
        if kind == "ops_line":
            assert fit["a_ms_per_op"] > 0 and fit["r2"] > 0.7
            assert fit["coefficients"]["a"] == fit["a_ms_per_op"]
        else:
            assert fit["a_ms_per_op"] is None and fit["metrics"]["acc10"] > 0.9
            assert "CONV_2D" in fit["coefficients"]["weights"]
    # the line of one group, with the measurements it came from
    kws = fits[(F446, "ops_line", "kws")]
    one = client.get(f"/api/v1/fits/{kws['version']}").json()
    with database.read() as s:
        expected = sorted(s.scalars(
            select(Measurement.id).join(ModelTag, ModelTag.model_id == Measurement.model_id)
            .where(ModelTag.key == "backbone", ModelTag.value == "kws",
                   Measurement.device_class == F446)))
        links = s.scalar(select(func.count()).select_from(FitMeasurement))
    assert one["measurement_ids"] == expected and one["id"] == kws["id"]
    assert links == sum(f["n"] for f in fits.values())
    assert client.get("/api/v1/fits/v1-0000000000000000").status_code == 404


def test_a_read_refits_nothing_when_nothing_changed(client: TestClient, database: Database,
                                                    seeded: seed.Seeded,
                                                    fit_calls: list[int]) -> None:
    first = client.get("/api/v1/fits").json()
    assert len(fit_calls) == 2  # one refit per partition (device class, kernels)
    with database.read() as s:
        refitted = {p.device_class: p.refitted_at for p in s.scalars(select(FitPartition))}
    for path in ("/api/v1/fits", f"/api/v1/fits?device={F446}", "/api/v1/fits?backbone=kws",
                 f"/device/{F446}", "/model/1"):
        assert client.get(path).status_code == 200
    r = client.post("/api/v1/predict", json={"ops": 5_000_000, "backbone": "kws"})
    assert r.status_code == 200, r.text
    assert len(fit_calls) == 2
    assert client.get("/api/v1/fits").json() == first
    with database.read() as s:
        assert {p.device_class: p.refitted_at for p in s.scalars(select(FitPartition))} == \
            refitted
        assert s.scalar(select(func.count()).select_from(Fit)) == len(first)


def test_a_reported_measurement_refits_its_partition_with_new_versions(
        client: TestClient, database: Database, seeded: seed.Seeded,
        sample: list[seed.SyntheticModel], fit_calls: list[int]) -> None:
    before = by_key(client.get("/api/v1/fits").json())
    assert len(fit_calls) == 2
    kws_model = next(i for i, m in enumerate(sample) if m.backbone == "kws")
    new = seed.report_via_queue(database, seeded.model_ids[kws_model], sample[kws_model], F446,
                                seed=7)
    after = by_key(client.get("/api/v1/fits").json())
    assert len(fit_calls) == 3  # the f446re partition only
    old_kws, new_kws = before[(F446, "ops_line", "kws")], after[(F446, "ops_line", "kws")]
    assert new_kws["version"] != old_kws["version"] and new_kws["n"] == PER_BACKBONE + 1
    assert after[(F446, "per_layer", None)]["version"] != before[(F446, "per_layer",
                                                                  None)]["version"]
    for unchanged in ((F446, "ops_line", "ad"), (F446, "ops_line", "vww"),
                      (F746, "ops_line", "kws"), (F746, "per_layer", None)):
        assert after[unchanged]["version"] == before[unchanged]["version"]
        assert after[unchanged]["id"] == before[unchanged]["id"]  # the same row, kept
    # the old version stays, no longer current, with its own measurements
    old = client.get(f"/api/v1/fits/{old_kws['version']}").json()
    current = client.get(f"/api/v1/fits/{new_kws['version']}").json()
    assert not old["current"] and current["current"]
    assert set(current["measurement_ids"]) == set(old["measurement_ids"]) | {new}
    history = client.get(f"/api/v1/fits?device={F446}&backbone=kws&kind=ops_line"
                         f"&history=true").json()
    assert [f["version"] for f in history] == [new_kws["version"], old_kws["version"]]


def test_fits_use_the_newest_firmware_images_measurements_only(
        client: TestClient, database: Database, seeded: seed.Seeded,
        sample: list[seed.SyntheticModel]) -> None:
    """The cycles are the runtime's: once a board class reports from a new firmware image,
    its fits drop the older image's measurements (kept in the database) and say so, until
    enough models are profiled again; other board classes keep theirs."""
    before = by_key(client.get("/api/v1/fits").json())
    assert (F446, "ops_line", "kws") in before
    kws = [i for i, m in enumerate(sample) if m.backbone == "kws"]
    new = [seed.report_via_queue(database, seeded.model_ids[i], sample[i], F446, seed=i,
                                 firmware_id="f00dfeed00000001") for i in kws[:2]]
    after = by_key(client.get("/api/v1/fits").json())
    assert (F446, "ops_line", "kws") not in after  # 2 measurements: too few for a line
    assert after[(F746, "ops_line", "kws")]["version"] == before[(F746, "ops_line",
                                                                  "kws")]["version"]
    with database.read() as s:
        part = s.scalars(select(FitPartition).where(FitPartition.device_class == F446)).one()
        total = s.scalar(select(func.count()).select_from(Measurement)
                         .where(Measurement.device_class == F446))
    assert part.n_measurements == 2
    assert any(f"{total - 2} measurement(s) from earlier firmware images are left out" in n
               and "f00dfeed00000001" in n for n in part.notes), part.notes
    # Profiled again on the new image, the models make a line of their own.
    for i in kws[2:]:
        new.append(seed.report_via_queue(database, seeded.model_ids[i], sample[i], F446,
                                         seed=i, firmware_id="f00dfeed00000001"))
    line = by_key(client.get("/api/v1/fits").json())[(F446, "ops_line", "kws")]
    current = client.get(f"/api/v1/fits/{line['version']}").json()
    assert set(current["measurement_ids"]) == set(new)


def test_a_changed_backbone_tag_refits(client: TestClient, database: Database,
                                       seeded: seed.Seeded, fit_calls: list[int]) -> None:
    client.get("/api/v1/fits")
    with database.transaction() as s:
        s.execute(update(ModelTag).where(ModelTag.model_id == seeded.model_ids[0])
                  .values(value="ad"))  # a kws model retagged
    fits = by_key(client.get("/api/v1/fits").json())
    assert len(fit_calls) == 4  # both partitions: the model was measured on both devices
    assert fits[(F446, "ops_line", "kws")]["n"] == PER_BACKBONE - 1
    assert fits[(F446, "ops_line", "ad")]["n"] == PER_BACKBONE + 1


def test_filters_and_errors(client: TestClient, seeded: seed.Seeded) -> None:
    kws = client.get(f"/api/v1/fits?device={F446}&backbone=kws").json()
    assert {(f["kind"], f["backbone"]) for f in kws} == {("ops_line", "kws"), ("per_layer", None)}
    lines = client.get("/api/v1/fits?kind=ops_line").json()
    assert len(lines) == 6 and all(f["kind"] == "ops_line" for f in lines)
    assert client.get("/api/v1/fits?kernels=ref").json() == []
    assert client.get(f"/api/v1/fits?device={L4R5}").json() == []
    r = client.get("/api/v1/fits?device=virtual:nucleo-f446re:board-7")
    assert r.status_code == 422 and "device class" in r.json()["detail"]
    r = client.get("/api/v1/fits?device=bogus:thing")
    assert r.status_code == 422 and "unknown backend" in r.json()["detail"]
    assert client.get("/api/v1/fits?format=xml").status_code == 422


def test_exports_round_trip_through_pandas(client: TestClient, seeded: seed.Seeded) -> None:
    fits = client.get("/api/v1/fits").json()
    r = client.get("/api/v1/fits?format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "fits.csv" in r.headers["content-disposition"]
    frame = seed.frame(r.content, "fits", "csv")
    assert sorted(frame["version"]) == sorted(f["version"] for f in fits)
    r = client.get("/api/v1/fits?format=parquet")
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    raw = pd.read_parquet(io.BytesIO(r.content))
    assert raw["current"].all()
    parquet = seed.frame(r.content, "fits")
    pd.testing.assert_frame_equal(parquet, frame)
    row = parquet[(parquet["device_class"] == F446) & (parquet["backbone"] == "kws")].iloc[0]
    assert len(json.loads(row["measurement_ids"])) == PER_BACKBONE
    r = client.get("/api/v1/measurements?format=parquet&limit=100000")
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apache.parquet"
    m = seed.frame(r.content, "measurements")
    assert len(m) == 2 * N_MODELS
    assert (m["backbone"].value_counts().to_dict() == {"kws": 24, "ad": 24, "vww": 24})
    assert m["latency_ms"].gt(0).all() and (m["layer_cycles"] < m["cycles"]).all()
    only = client.get(f"/api/v1/measurements?format=parquet&device={F746}&tag=backbone=ad")
    assert len(seed.frame(only.content, "measurements")) == PER_BACKBONE


def test_predict_from_ops_on_many_devices(client: TestClient, seeded: seed.Seeded) -> None:
    fits = by_key(client.get("/api/v1/fits").json())
    ops = 8_000_000
    r = client.post("/api/v1/predict", json={"ops": ops, "backbone": "kws",
                                             "devices": [F446, F746, L4R5]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ops"] == ops and out["backbone"] == "kws"
    f446, f746, l4r5 = out["predictions"]
    for p, device in ((f446, F446), (f746, F746)):
        line = fits[(device, "ops_line", "kws")]
        assert p["model"] == "ops_line" and p["fit_version"] == line["version"]
        assert p["latency_ms"] == pytest.approx(line["a_ms_per_op"] * ops + line["b_ms"])
        assert p["latency_lo_ms"] < p["latency_ms"] < p["latency_hi_ms"]
        power = get_board(device).active_power_mw
        assert p["energy_mj"] == pytest.approx(power * p["latency_ms"] / 1000)
        assert p["energy_lo_mj"] == pytest.approx(power * p["latency_lo_ms"] / 1000)
        assert p["problems"] == [] and len(p["estimates"]) == 1
    assert f746["latency_ms"] < f446["latency_ms"]  # the M7 is faster
    assert l4r5["model"] is None and l4r5["estimates"] == []
    assert "no op-count line for backbone kws on virtual:nucleo-l4r5zi" in l4r5["problems"][0]
    # no devices named: every class with a fit
    r = client.post("/api/v1/predict", json={"ops": ops, "backbone": "ad"})
    assert [p["device"] for p in r.json()["predictions"]] == [F446, F746]


def test_predict_a_stored_model_with_both_models(client: TestClient,
                                                 seeded: seed.Seeded) -> None:
    r = client.post("/api/v1/predict", json={"model_id": seeded.model_ids[0],
                                             "devices": [F446]})
    assert r.status_code == 200, r.text
    [p] = r.json()["predictions"]
    kinds = {e["model"]: e for e in p["estimates"]}
    assert set(kinds) == {"ops_line", "per_layer"}
    best = min(kinds.values(), key=lambda e: e["cv_mape"])
    assert p["model"] == best["model"] == "per_layer"  # the synthetic data follow its form
    assert p["fits_board"] is True and p["arena_capacity"] == get_board(F446).arena_capacity
    # the per-layer model alone, from a layer list
    layers = seed.sample_models(1, seed=3, backbones=("vww",))[0].analysis["layers"]
    r = client.post("/api/v1/predict", json={"layers": layers, "devices": [F746]})
    [p] = r.json()["predictions"]
    assert p["model"] == "per_layer" and r.json()["ops"] == sum(x["ops"] for x in layers)


def test_predict_an_uploaded_tflite(client: TestClient, seeded: seed.Seeded,
                                    kws_bytes: bytes) -> None:
    r = client.post("/api/v1/predict", files={"file": ("kws_tiny.tflite", kws_bytes)},
                    data={"device": [F446, F746], "backbone": "kws"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["name"] == "kws_tiny" and out["ops"] == 1_035_588 and out["backbone"] == "kws"
    for p in out["predictions"]:
        kinds = {e["model"]: e for e in p["estimates"]}
        assert set(kinds) == {"ops_line", "per_layer"}
        assert kinds["ops_line"]["extrapolated"]  # 1 Mop: below every sampled kws model
        assert p["model"] == "per_layer" and p["fits_board"] is True
        # 6,016 B of activations (TFLM's own head) + 14,496 B of dsp-kernel scratch (with the
        # depthwise layers' planar int16 images)
        assert p["arena_bytes"] == 20512 and p["plan_bytes"] == 10400
    # not stored: predicting is not uploading
    assert len(client.get("/api/v1/models?limit=1000").json()) == N_MODELS
    r = client.post("/api/v1/predict", files={"file": ("f.tflite", float_model(kws_bytes))},
                    data={"device": [F446]})
    assert r.status_code == 422 and "int8" in r.json()["detail"]
    r = client.post("/api/v1/predict", files={"file": ("x.tflite", b"not a model")})
    assert r.status_code == 422
    r = client.post("/api/v1/predict", files={"file": ("k.tflite", kws_bytes)},
                    data={"kernels": "neon"})
    assert r.status_code == 422 and "dsp or ref" in r.json()["detail"]


def test_predict_errors(client: TestClient, seeded: seed.Seeded) -> None:
    r = client.post("/api/v1/predict", json={"devices": [F446]})
    assert r.status_code == 422 and "nothing to predict" in r.json()["detail"]
    r = client.post("/api/v1/predict", json={"ops": 10, "backbone": "kws",
                                             "devices": ["virtual:nucleo-f999"]})
    assert r.status_code == 422 and "unknown board" in r.json()["detail"]
    r = client.post("/api/v1/predict", json={"ops": -1})
    assert r.status_code == 422 and "ops" in r.json()["detail"]
    r = client.post("/api/v1/predict", content=b"{", headers={"content-type":
                                                                "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    r = client.post("/api/v1/predict", json={"ops": 10, "backbone": "kws", "kernels": "ref"})
    assert r.status_code == 404 and "no device class has a latency model" in r.json()["detail"]
    r = client.post("/api/v1/predict", json={"ops": 10, "devices": [F446]})
    [p] = r.json()["predictions"]
    assert p["model"] is None and "--backbone" in p["problems"][0]


def test_too_little_data_is_explained_and_not_refitted_again(
        client: TestClient, database: Database, sample: list[seed.SyntheticModel],
        fit_calls: list[int]) -> None:
    few = [m for m in sample if m.backbone == "kws"][:MIN_POINTS - 2]
    seed.seed(database, few, [F446])
    assert client.get("/api/v1/fits").json() == []
    assert client.get("/api/v1/fits").json() == []
    assert len(fit_calls) == 1  # tried once; the partition's fingerprint is stored
    with database.read() as s:
        [part] = s.scalars(select(FitPartition))
    assert any("backbone kws: 3 measurement(s)" in n for n in part.notes), part.notes
    assert any("per-layer model: 3 model(s)" in n for n in part.notes), part.notes
    r = client.post("/api/v1/predict", json={"ops": 10, "backbone": "kws", "devices": [F446]})
    [p] = r.json()["predictions"]
    assert p["model"] is None and "a line needs at least 5" in p["problems"][0]


def test_the_contract_is_in_the_openapi_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]) == {
        "application/json", "multipart/form-data"}
    assert "/api/v1/fits/{version}" in spec["paths"]
    assert {"FitOut", "PredictOut", "FitMetricsOut"} <= set(spec["components"]["schemas"])
    formats = spec["paths"]["/api/v1/measurements"]["get"]["parameters"]
    fmt = next(p for p in formats if p["name"] == "format")
    assert "parquet" in str(fmt["schema"])
    assert not any(p.startswith(("/device", "/model/", "/static")) for p in spec["paths"])
