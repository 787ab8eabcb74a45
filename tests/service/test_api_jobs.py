"""/api/v1/jobs and /api/v1/devices: submit (fit checked at once), list, get, cancel."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.service.helpers import register, relu_model, upload

F446 = "virtual:nucleo-f446re"
F746 = "virtual:nucleo-f746zg"


def submit(client: TestClient, model_id: int, devices: list[str], **extra: object) -> list[dict]:
    r = client.post("/api/v1/jobs", json={"model_id": model_id, "devices": devices, **extra})
    assert r.status_code == 201, r.text
    return list(r.json())


def test_submit_one_job_per_device_class(client: TestClient, kws_bytes: bytes) -> None:
    model_id = upload(client, kws_bytes).json()["id"]
    jobs = submit(client, model_id, [F446, F746, F446], runs=10, warmup=2, kernels="ref",
                  priority=3)
    assert [j["device"] for j in jobs] == [F446, F746]  # duplicates collapse
    for j in jobs:
        assert (j["state"], j["runs"], j["warmup"], j["kernels"]) == ("queued", 10, 2, "ref")
        assert (j["attempts"], j["max_attempts"], j["error"]) == (0, 3, None)
        assert j["history"] == [] and j["measurement"] is None
    got = client.get(f"/api/v1/jobs/{jobs[0]['id']}").json()
    assert got == jobs[0]


def test_model_that_does_not_fit_fails_at_once_with_numbers(client: TestClient) -> None:
    model_id = upload(client, relu_model(64, 64, 16), name="relu.tflite").json()["id"]
    small, big = submit(client, model_id, [F446, F746])
    assert small["state"] == "failed" and small["attempts"] == 0
    assert "131072" in small["error"] and "122880" in small["error"]
    assert "arena" in small["error"]
    assert big["state"] == "queued"


def test_bad_job_requests_are_422_and_write_nothing(client: TestClient,
                                                    kws_bytes: bytes) -> None:
    model_id = upload(client, kws_bytes).json()["id"]
    cases = [
        ({"model_id": model_id, "devices": [F446, "virtual:nucleo-f999"]}, "boards: nucleo-f446re"),
        ({"model_id": model_id, "devices": ["quantum:nucleo-f446re"]}, "virtual"),
        ({"model_id": model_id, "devices": [f"{F446}:board7"]}, "device class"),
        ({"model_id": model_id, "devices": [""]}, "device class"),
        ({"model_id": model_id, "devices": []}, "devices"),
        ({"model_id": 4242, "devices": [F446]}, "no model 4242"),
        ({"model_id": model_id, "devices": [F446], "runs": 0}, "runs"),
        ({"model_id": model_id, "devices": [F446], "kernels": "fast"}, "kernels"),
        ({"model_id": model_id, "devices": [F446], "priority": 2**40}, "priority"),
        ({"model_id": 2**40, "devices": [F446]}, "model_id: Input should be less than"),
        ({"devices": [F446]}, "model_id"),
    ]
    for body, fragment in cases:
        r = client.post("/api/v1/jobs", json=body)
        assert r.status_code == 422, (body, r.text)
        assert isinstance(r.json()["detail"], str) and fragment in r.json()["detail"], r.json()
    assert client.get("/api/v1/jobs").json() == []


def test_malformed_json_is_a_422(client: TestClient) -> None:
    for content, ctype in ((b'{"model_id": 1,', "application/json"),
                           (b"model_id=1", "application/json"),
                           (b"[1, 2]", "application/json")):
        r = client.post("/api/v1/jobs", content=content, headers={"content-type": ctype})
        assert r.status_code == 422, r.text
        assert isinstance(r.json()["detail"], str)
    r = client.post("/api/v1/jobs", content=b'{"model_id": 1,',
                    headers={"content-type": "application/json"})
    assert "not valid JSON" in r.json()["detail"]


def test_list_filters_and_pages(client: TestClient, kws_bytes: bytes) -> None:
    kws = upload(client, kws_bytes).json()["id"]
    relu = upload(client, relu_model(8, 8, 4), name="relu.tflite").json()["id"]
    a, b = submit(client, kws, [F446, F746])
    c = submit(client, relu, [F446])[0]
    client.post(f"/api/v1/jobs/{b['id']}/cancel")

    def ids(**params: object) -> list[int]:
        r = client.get("/api/v1/jobs", params=params)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()]

    assert ids() == [c["id"], b["id"], a["id"]]  # newest first
    assert ids(state="queued") == [c["id"], a["id"]]
    assert ids(state="cancelled") == [b["id"]]
    assert ids(device=F446) == [c["id"], a["id"]]
    assert ids(model_id=relu) == [c["id"]]
    assert ids(limit=1, offset=1) == [b["id"]]
    assert client.get("/api/v1/jobs", params={"state": "sleeping"}).status_code == 422
    assert client.get("/api/v1/jobs", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/jobs/31337").status_code == 404


def test_cancel_route(client: TestClient, kws_bytes: bytes) -> None:
    model_id = upload(client, kws_bytes).json()["id"]
    job = submit(client, model_id, [F446])[0]
    r = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 200
    assert client.post("/api/v1/jobs/777/cancel").status_code == 404
    failed = submit(client, upload(client, relu_model(64, 64, 16), name="r.tflite")
                    .json()["id"], [F446])[0]
    r = client.post(f"/api/v1/jobs/{failed['id']}/cancel")
    assert r.status_code == 409 and "already failed" in r.json()["detail"]


def test_devices_list_with_health_and_busy(client: TestClient, kws_bytes: bytes) -> None:
    register(client, "bench-1", [f"{F446}:a", f"{F746}:b"])
    model_id = upload(client, kws_bytes).json()["id"]
    submit(client, model_id, [F446])
    assert client.post("/api/v1/leases", json={"device": f"{F446}:a"}).status_code == 200
    r = client.post(f"/api/v1/devices/{F746}:b/health",
                    json={"ok": False, "detail": "output mismatch"})
    assert r.status_code == 200 and r.json()["health"] == "bad"
    devices = {d["name"]: d for d in client.get("/api/v1/devices").json()}
    a, b = devices[f"{F446}:a"], devices[f"{F746}:b"]
    assert (a["busy"], a["health"], a["agent"], a["board"]) == (True, "unknown", "bench-1",
                                                                 "nucleo-f446re")
    assert (b["busy"], b["health"], b["health_detail"]) == (False, "bad", "output mismatch")
    assert a["device_class"] == F446 and a["backend"] == "virtual" and a["last_seen"]
    r = client.post("/api/v1/devices/virtual:nucleo-f446re:zz/health", json={"ok": True})
    assert r.status_code == 404
    r = client.post(f"/api/v1/devices/{F446}:a/health", json={"ok": "perhaps"})
    assert r.status_code == 422
