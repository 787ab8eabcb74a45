"""``/api/v1/calibrations``: a user stores a calibration (an agent may not, nor anyone without a
token); the server works out the factor and error from the networks; a device that is not a
physical board, or a calibration without networks, is refused saying what to give; reads list
newest first, by board, and one by id."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bench_firmware.calibration import NetworkResult, summarise
from tests.service.test_api_auth import secure, tokens  # noqa: F401  (fixtures)

PROBE_DEVICE = "pyocd:nucleo-f446re:066DFF535155878281123456"
NETWORKS = [
    {"name": "kws", "macs": 1000, "silicon_cycles": 1_000_000, "twin_cycles": 900_000,
     "silicon_by_op": {"CONV_2D": 800_000}, "twin_by_op": {"CONV_2D": 700_000}},
    {"name": "ic", "macs": 2000, "silicon_cycles": 3_000_000, "twin_cycles": 2_850_000},
]


def test_a_user_stores_a_calibration_and_the_server_states_it(
        secure: TestClient, tokens: dict[str, dict[str, str]]) -> None:  # noqa: F811
    body = {"device": PROBE_DEVICE, "networks": NETWORKS, "firmware_id": "fw-1"}
    assert secure.post("/api/v1/calibrations", json=body).status_code == 401
    r = secure.post("/api/v1/calibrations", json=body, headers=tokens["lab1"])
    assert r.status_code == 403 and "user token" in r.json()["detail"]
    # what the client claims is ignored: the server computes it
    r = secure.post("/api/v1/calibrations", json=body | {"factor": 99.0},
                    headers=tokens["user"])
    assert r.status_code == 201, r.text
    out = r.json()
    stated = summarise([NetworkResult.from_dict(n) for n in NETWORKS])
    assert out["board"] == "nucleo-f446re" and out["device"] == PROBE_DEVICE
    assert out["factor"] == stated.factor and out["error_pct"] == stated.error_pct
    assert out["raw_error_pct"] == 10.0 and out["held_out"] is True
    assert out["op_errors"] == {"CONV_2D": 700_000 / 800_000 - 1}

    second = secure.post("/api/v1/calibrations", json=body, headers=tokens["user"]).json()
    listed = secure.get("/api/v1/calibrations", params={"board": "nucleo-f446re"},
                        headers=tokens["lab1"]).json()
    assert [c["id"] for c in listed] == [second["id"], out["id"]]
    assert secure.get("/api/v1/calibrations", params={"board": "nucleo-f746zg"},
                      headers=tokens["user"]).json() == []
    one = secure.get(f"/api/v1/calibrations/{out['id']}", headers=tokens["user"])
    assert one.status_code == 200 and one.json()["networks"][0]["name"] == "kws"
    r = secure.get("/api/v1/calibrations/999", headers=tokens["user"])
    assert r.status_code == 404 and "GET /api/v1/calibrations" in r.json()["detail"]


def test_bad_calibrations_are_refused(client: TestClient) -> None:
    for device in ("virtual:nucleo-f446re", "pyocd:nucleo-f446re", "pyocd:nucleo-f999:X"):
        r = client.post("/api/v1/calibrations", json={"device": device, "networks": NETWORKS})
        assert r.status_code == 422, (device, r.text)
        assert "pyocd:" in r.json()["detail"]
    r = client.post("/api/v1/calibrations", json={"device": PROBE_DEVICE, "networks": []})
    assert r.status_code == 422 and "networks" in r.json()["detail"]
    bad = [NETWORKS[0] | {"twin_cycles": 0}]
    r = client.post("/api/v1/calibrations", json={"device": PROBE_DEVICE, "networks": bad})
    assert r.status_code == 422 and "twin_cycles" in r.json()["detail"]
