"""/api/v1/measurements as JSON and CSV, filtered by device, model and tag."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from profiler_client.schemas import MeasurementOut
from tests.service.helpers import measurement, register, relu_model, upload

F446, F746 = "virtual:nucleo-f446re", "virtual:nucleo-f746zg"
BOARDS = {F446: f"{F446}:0", F746: f"{F746}:0"}


def run_all(client: TestClient) -> None:
    """Lease and finish every queued job on the registered boards."""
    for board in BOARDS.values():
        while True:
            r = client.post("/api/v1/leases", json={"device": board})
            if r.status_code == 204:
                break
            grant = r.json()
            body = measurement(board, cycles=1000 + grant["job"]["id"])
            assert client.post(f"/api/v1/leases/{grant['lease_id']}/result",
                               json=body).status_code == 200


def test_measurements_json_and_csv(client: TestClient, kws_bytes: bytes) -> None:
    register(client, "rack", list(BOARDS.values()))
    kws = upload(client, kws_bytes, tags=["backbone=kws"]).json()["id"]
    relu = upload(client, relu_model(8, 8, 4), name="relu.tflite",
                  tags=["backbone=relu"]).json()["id"]
    client.post("/api/v1/jobs", json={"model_id": kws, "devices": [F446, F746]})
    client.post("/api/v1/jobs", json={"model_id": relu, "devices": [F446]})
    run_all(client)

    def get(**params: object) -> list[dict]:
        r = client.get("/api/v1/measurements", params=params)
        assert r.status_code == 200, r.text
        return list(r.json())

    everything = get()
    assert len(everything) == 3
    MeasurementOut.model_validate(everything[0])
    assert {m["device_class"] for m in get(device=F446)} == {F446}
    assert len(get(device=BOARDS[F746])) == 1
    assert {m["model_id"] for m in get(tag="backbone=kws")} == {kws}
    assert {m["model_id"] for m in get(model_id=relu)} == {relu}
    assert len(get(limit=2)) == 2 and len(get(offset=2)) == 1
    assert get(tag="backbone=none") == []

    r = client.get("/api/v1/measurements", params={"format": "csv", "model_id": kws})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 2
    assert "layers" not in rows[0] and "output" not in rows[0]
    assert rows[0]["cycles_per_run"] == "1234567 1234570"
    assert {row["device_class"] for row in rows} == {F446, F746}
    assert int(rows[0]["cycles"]) == everything[0]["cycles"]


def test_empty_csv_has_a_header(client: TestClient) -> None:
    r = client.get("/api/v1/measurements", params={"format": "csv"})
    assert r.status_code == 200
    assert r.text.splitlines()[0].startswith("id,job_id,model_id,device")


def test_bad_query_is_422(client: TestClient) -> None:
    for params in ({"format": "xml"}, {"limit": -1}, {"model_id": "x"}, {"tag": "novalue"}):
        r = client.get("/api/v1/measurements", params=params)
        assert r.status_code == 422 and isinstance(r.json()["detail"], str)
