"""A job's board time is estimated at submit and checked against the board's budget: a job
that would run out of it is refused with a 422 that gives the estimate, the budget and the
fix (fewer runs), and nothing is written. The estimate comes from the device's latency fit
when there is one, else from a floor of cycles per MAC at the board clock."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from profiler_client.fitting.linear import fit_ops_line
from service.db.engine import Database
from service.db.models import Fit, utcnow
from tests.service.conftest import MakeClient
from tests.service.helpers import upload

F446 = "virtual:nucleo-f446re"
PHYSICAL = "pyocd:nucleo-f446re"
RUN_MS = 50.0  # the latency the stored fit predicts for kws_tiny on the F446


def post(client: TestClient, model_id: int, devices: list[str], **extra: object) -> httpx.Response:
    return client.post("/api/v1/jobs", json={"model_id": model_id, "devices": devices, **extra})


def store_line_fit(database: Database, ops: int) -> None:
    """A current op-count line for backbone kws on the F446 that predicts ~RUN_MS at ``ops``."""
    xs = [ops * f for f in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)]
    ys = [RUN_MS * x / ops + (0.01 if i % 2 else -0.01) for i, x in enumerate(xs)]
    line = fit_ops_line(xs, ys)
    now = utcnow()
    with database.transaction() as s:
        s.add(Fit(kind="ops_line", device_class=F446, backbone="kws", kernels="dsp",
                  version="test-line-1", current=True, n=line.n, n_models=line.n, k=line.k,
                  a_ms_per_op=line.a, b_ms=line.b, r2=line.in_sample.r2, cv_r2=line.cv.r2,
                  cv_mape=line.cv.mape, cv_acc10=line.cv.acc10, cv_rmse_ms=line.cv.rmse_ms,
                  coefficients=line.to_dict(), created_at=now))


def test_a_job_longer_than_the_twins_budget_is_refused_from_the_fit(
        client: TestClient, database: Database, kws_bytes: bytes) -> None:
    model = upload(client, kws_bytes, tags=["backbone=kws"]).json()
    store_line_fit(database, int(model["analysis"]["ops"]))
    r = post(client, model["id"], [F446], runs=1000, warmup=1)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    # 1001 runs of ~50 ms: ~50 s, over the twin's 13.3 s (600 s of host time at 4 M cycles/s)
    assert "1000 runs + 1 warm-up" in detail and "latency fit" in detail, detail
    assert "13.3 s one job may take" in detail and "virtual board's budget" in detail, detail
    assert "--runs" in detail, detail
    assert client.get("/api/v1/jobs").json() == []  # nothing written
    most = int(detail.split("--runs ")[1].split(")")[0])
    assert 200 <= most <= 270  # ~13.3 s / ~50 ms, less the warm-up
    ok = post(client, model["id"], [F446], runs=most, warmup=1)
    assert ok.status_code == 201, ok.text


def test_without_a_fit_the_estimate_is_a_floor_per_mac(client: TestClient,
                                                       kws_bytes: bytes) -> None:
    model_id = upload(client, kws_bytes).json()["id"]
    # dsp: 2 cycles/MAC x 516,288 MACs at 180 MHz = 5.7 ms per run: 1000 runs fit 13.3 s.
    assert post(client, model_id, [F446], runs=1000, kernels="dsp").status_code == 201
    # ref: 10 cycles/MAC: 28.7 ms per run, 1001 runs = 28.7 s: refused.
    r = post(client, model_id, [F446], runs=1000, kernels="ref")
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "cycles per MAC" in detail and "no latency fit" in detail, detail
    assert "--runs" in detail
    assert len(client.get("/api/v1/jobs").json()) == 1  # only the dsp job


def test_physical_boards_use_the_setting(make_client: MakeClient, kws_bytes: bytes) -> None:
    client = make_client(physical_run_seconds=1.0)
    model_id = upload(client, kws_bytes).json()["id"]
    r = post(client, model_id, [PHYSICAL, F446], runs=1000)
    assert r.status_code == 422, r.text
    assert "MCUPROF_PHYSICAL_RUN_SECONDS=1" in r.json()["detail"]
    assert client.get("/api/v1/jobs").json() == []  # refused as a whole
    assert post(client, model_id, [PHYSICAL], runs=100).status_code == 201  # 0.6 s


def test_runs_stay_bounded_in_the_schema(client: TestClient, kws_bytes: bytes) -> None:
    model_id = upload(client, kws_bytes).json()["id"]
    r = post(client, model_id, [F446], runs=1001)
    assert r.status_code == 422 and "runs" in r.json()["detail"]
    r = post(client, model_id, [F446], warmup=101)
    assert r.status_code == 422 and "warmup" in r.json()["detail"]
