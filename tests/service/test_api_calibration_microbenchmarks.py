"""``/api/v1/calibrations`` with microbenchmarks (``mcuprof calibrate``'s default set): stored
beside the networks with their kind and instruction class, each stating its twin / silicon
ratio, kept out of the factor and the error; uploads without ``kind`` stay networks."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bench_firmware.calibration import NetworkResult, summarise

PROBE_DEVICE = "pyocd:nucleo-f446re:066DFF535155878281123456"
NETWORKS = [
    {"name": "kws", "macs": 1000, "silicon_cycles": 1_000_000, "twin_cycles": 900_000},
    {"name": "ic", "macs": 2000, "silicon_cycles": 3_000_000, "twin_cycles": 2_850_000},
]
BENCHES = [
    {"name": "fc_flash", "kind": "microbenchmark", "macs": 65_536,
     "exercises": "fully connected, flash data-read path", "silicon_cycles": 200_000,
     "twin_cycles": 150_000, "silicon_by_op": {"FULLY_CONNECTED": 199_000},
     "twin_by_op": {"FULLY_CONNECTED": 149_000}},
    {"name": "softmax", "kind": "microbenchmark", "macs": 0,
     "exercises": "int8 softmax: scalar, branchy", "silicon_cycles": 400_000,
     "twin_cycles": 440_000},
]


def test_microbenchmarks_are_stored_with_their_ratio(client: TestClient) -> None:
    r = client.post("/api/v1/calibrations",
                    json={"device": PROBE_DEVICE, "networks": BENCHES + NETWORKS})
    assert r.status_code == 201, r.text
    out = r.json()
    networks_only = summarise([NetworkResult.from_dict(n) for n in NETWORKS])
    assert out["factor"] == networks_only.factor
    assert out["error_pct"] == networks_only.error_pct and out["held_out"] is True
    assert out["raw_error_pct"] == 10.0  # the microbenchmarks' 25 % is not a network's error
    assert out["bench_ratios"] == {"fc_flash": 0.75, "softmax": 1.1}
    assert [(n["name"], n["kind"], n["exercises"]) for n in out["networks"]] == [
        ("fc_flash", "microbenchmark", "fully connected, flash data-read path"),
        ("softmax", "microbenchmark", "int8 softmax: scalar, branchy"),
        ("kws", "network", None), ("ic", "network", None)]
    again = client.get(f"/api/v1/calibrations/{out['id']}").json()
    assert again["bench_ratios"] == out["bench_ratios"]

    old = client.post("/api/v1/calibrations", json={"device": PROBE_DEVICE,
                                                    "networks": NETWORKS}).json()
    assert old["bench_ratios"] == {} and old["factor"] == out["factor"]
    assert {n["kind"] for n in old["networks"]} == {"network"}


def test_an_unknown_kind_is_refused(client: TestClient) -> None:
    bad = [NETWORKS[0] | {"kind": "guess"}]
    r = client.post("/api/v1/calibrations", json={"device": PROBE_DEVICE, "networks": bad})
    assert r.status_code == 422 and "kind" in r.json()["detail"]
