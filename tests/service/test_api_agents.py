"""Agents and leases over HTTP: register, lease, heartbeat, results (idempotent), failures,
expiry back into the queue, health."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi.testclient import TestClient
from sqlalchemy import update

from service.db.engine import Database
from service.db.models import Job
from tests.service.helpers import measurement, register, upload

F446 = "virtual:nucleo-f446re"
BOARD = f"{F446}:host-0"
OTHER = f"{F446}:host-1"


def queue_one(client: TestClient, kws_bytes: bytes, **extra: object) -> int:
    model_id = upload(client, kws_bytes).json()["id"]
    r = client.post("/api/v1/jobs", json={"model_id": model_id, "devices": [F446], **extra})
    return int(r.json()[0]["id"])


def test_register_and_reregister(client: TestClient) -> None:
    r = register(client, "rack-1", [BOARD, OTHER])
    assert r.status_code == 200, r.text
    agent = r.json()
    assert [d["name"] for d in agent["devices"]] == [BOARD, OTHER]
    assert all(d["health"] == "unknown" and d["agent"] == "rack-1" for d in agent["devices"])
    again = register(client, "rack-1", [OTHER])
    assert again.json()["id"] == agent["id"]
    assert [d["name"] for d in again.json()["devices"]] == [OTHER]
    devices = {d["name"]: d for d in client.get("/api/v1/devices").json()}
    assert devices[BOARD]["agent"] is None  # detached, kept with its history


def test_register_refuses_bad_boards(client: TestClient) -> None:
    for boards, fragment in ((["virtual:nucleo-nope:x"], "unknown board"),
                             (["nowhere"], "backend")):
        r = register(client, "rack-1", boards)
        assert r.status_code == 422 and fragment in r.json()["detail"], r.text
    r = client.post("/api/v1/agents", json={"name": "", "boards": []})
    assert r.status_code == 422
    r = client.post("/api/v1/agents", json={"name": "x", "boards": [{"dev": BOARD}]})
    assert r.status_code == 422
    register(client, "rack-1", [BOARD])
    r = register(client, "rack-2", [BOARD])
    assert r.status_code == 409 and "rack-1" in r.json()["detail"]
    assert client.get("/api/v1/devices").json()[0]["agent"] == "rack-1"


def test_full_lease_cycle(client: TestClient, kws_bytes: bytes) -> None:
    agent_id = register(client, "rack-1", [BOARD]).json()["id"]
    r = client.post("/api/v1/leases", json={"device": BOARD})
    assert r.status_code == 204 and "no queued job" in r.headers["x-mcuprof-reason"]
    job_id = queue_one(client, kws_bytes, runs=7, warmup=2)
    r = client.post("/api/v1/leases", json={"device": BOARD})
    assert r.status_code == 200, r.text
    grant = r.json()
    assert grant["job"]["id"] == job_id and grant["job"]["state"] == "leased"
    assert grant["job"]["runs"] == 7 and grant["job"]["attempts"] == 1
    assert grant["job"]["history"][0]["device"] == BOARD
    assert grant["lease_seconds"] == 60.0
    model = client.get(grant["model_url"])
    assert model.status_code == 200 and model.content == kws_bytes
    assert grant["model_sha256"] == model.headers["etag"].strip('"')

    hb = client.post(f"/api/v1/agents/{agent_id}/heartbeat", json={"leases": [grant["lease_id"]]})
    assert hb.status_code == 200 and hb.json()["extended"] == [grant["lease_id"]]

    body = measurement(BOARD)
    done = client.post(f"/api/v1/leases/{grant['lease_id']}/result", json=body)
    assert done.status_code == 200, done.text
    job = done.json()
    assert job["state"] == "done" and job["lease_expires_at"] is None
    m = job["measurement"]
    assert (m["device"], m["device_class"], m["board"]) == (BOARD, F446, "nucleo-f446re")
    assert m["cycles"] == body["cycles"] and m["cycles_per_run"] == body["cycles_per_run"]
    assert m["layers"][0]["cycles"] == 300_000 and m["energy_source"] == "modeled"
    # the same report again (a retry after a lost response): 200, still one measurement
    again = client.post(f"/api/v1/leases/{grant['lease_id']}/result", json=body)
    assert again.status_code == 200 and again.json()["measurement"]["id"] == m["id"]
    # a different one: 409
    other = client.post(f"/api/v1/leases/{grant['lease_id']}/result",
                        json=measurement(BOARD, cycles=5))
    assert other.status_code == 409 and "different measurement" in other.json()["detail"]
    assert len(client.get(f"/api/v1/models/{job['model_id']}/measurements").json()) == 1
    hb = client.post(f"/api/v1/agents/{agent_id}/heartbeat", json={"leases": [grant["lease_id"]]})
    assert hb.json()["lost"] == [grant["lease_id"]]


def test_report_for_a_lease_not_held_is_409(client: TestClient, kws_bytes: bytes,
                                            database: Database) -> None:
    register(client, "rack-1", [BOARD, OTHER])
    job_id = queue_one(client, kws_bytes)
    stale = client.post("/api/v1/leases", json={"device": BOARD}).json()["lease_id"]
    with database.transaction() as s:  # the lease runs out
        s.execute(update(Job).where(Job.id == job_id).values(
            lease_expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    fresh = client.post("/api/v1/leases", json={"device": OTHER}).json()
    assert fresh["job"]["id"] == job_id and fresh["job"]["attempts"] == 2
    assert "lease expired" in fresh["job"]["history"][0]["error"]
    for path, body in ((f"/api/v1/leases/{stale}/result", measurement(BOARD)),
                       (f"/api/v1/leases/{stale}/failure", {"error": "timeout"})):
        r = client.post(path, json=body)
        assert r.status_code == 409 and "no longer holds" in r.json()["detail"], r.text
    r = client.post("/api/v1/leases/987654/result", json=measurement(BOARD))
    assert r.status_code == 404
    r = client.post(f"/api/v1/leases/{fresh['lease_id']}/result", json=measurement(BOARD))
    assert r.status_code == 422 and "granted to" in r.json()["detail"]
    ok = client.post(f"/api/v1/leases/{fresh['lease_id']}/result", json=measurement(OTHER))
    assert ok.status_code == 200
    assert len(client.get("/api/v1/measurements").json()) == 1


def test_result_rides_with_the_next_lease(client: TestClient, kws_bytes: bytes) -> None:
    register(client, "rack-1", [BOARD, OTHER])
    first, second = queue_one(client, kws_bytes), queue_one(client, kws_bytes)
    held = client.post("/api/v1/leases", json={"device": BOARD}).json()
    assert held["job"]["id"] == first
    r = client.post("/api/v1/leases", json={"device": BOARD, "finished": {
        "lease_id": held["lease_id"], "result": measurement(BOARD)}})
    assert r.status_code == 200, r.text
    assert r.json()["job"]["id"] == second
    done = client.get(f"/api/v1/jobs/{first}").json()
    assert done["state"] == "done" and done["measurement"]["device"] == BOARD
    # The last result, with no more work: stored, and 204.
    r = client.post("/api/v1/leases", json={"device": BOARD, "finished": {
        "lease_id": r.json()["lease_id"], "result": measurement(BOARD)}})
    assert r.status_code == 204
    assert client.get(f"/api/v1/jobs/{second}").json()["state"] == "done"


def test_refused_result_leases_nothing(client: TestClient, kws_bytes: bytes) -> None:
    register(client, "rack-1", [BOARD, OTHER])
    first = queue_one(client, kws_bytes)
    held = client.post("/api/v1/leases", json={"device": BOARD}).json()
    client.post(f"/api/v1/jobs/{first}/cancel")
    waiting = queue_one(client, kws_bytes)
    r = client.post("/api/v1/leases", json={"device": BOARD, "finished": {
        "lease_id": held["lease_id"], "result": measurement(BOARD)}})
    assert r.status_code == 409 and "cancelled" in r.json()["detail"], r.text
    assert client.get(f"/api/v1/jobs/{waiting}").json()["state"] == "queued"
    # A result from another board than the one asking for work: refused, nothing leased.
    r = client.post("/api/v1/leases", json={"device": OTHER, "finished": {
        "lease_id": held["lease_id"], "result": measurement(BOARD)}})
    assert r.status_code == 422 and "one board" in r.json()["detail"], r.text
    assert client.get(f"/api/v1/jobs/{waiting}").json()["state"] == "queued"


def test_lists_name_measurements_and_embed_on_request(client: TestClient,
                                                      kws_bytes: bytes) -> None:
    register(client, "rack-1", [BOARD])
    job_id = queue_one(client, kws_bytes)
    held = client.post("/api/v1/leases", json={"device": BOARD}).json()
    client.post(f"/api/v1/leases/{held['lease_id']}/result", json=measurement(BOARD))
    listed = client.get("/api/v1/jobs").json()[0]
    assert listed["id"] == job_id and listed["measurement"] is None
    measurement_id = listed["measurement_id"]
    assert client.get("/api/v1/measurements").json()[0]["id"] == measurement_id
    embedded = client.get("/api/v1/jobs", params={"embed": "true"}).json()[0]
    assert embedded["measurement"]["id"] == measurement_id
    assert client.get(f"/api/v1/jobs/{job_id}").json()["measurement"]["id"] == measurement_id


def test_failures_retry_then_fail(client: TestClient, kws_bytes: bytes) -> None:
    register(client, "rack-1", [BOARD])
    job_id = queue_one(client, kws_bytes)
    errors = ["serial timeout", "e-[plan crc]", "probe lost"]
    for i, error in enumerate(errors):
        grant = client.post("/api/v1/leases", json={"device": BOARD}).json()
        assert grant["job"]["attempts"] == i + 1
        r = client.post(f"/api/v1/leases/{grant['lease_id']}/failure",
                        json={"error": error, "serial_log": ["infer 5 1%"]})
        assert r.status_code == 200
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["state"] == "failed" and job["attempts"] == 3
    assert [h["error"] for h in job["history"]] == errors
    assert all(e in job["error"] for e in errors)
    assert client.post("/api/v1/leases", json={"device": BOARD}).status_code == 204


def test_not_retryable_failure(client: TestClient, kws_bytes: bytes) -> None:
    register(client, "rack-1", [BOARD])
    job_id = queue_one(client, kws_bytes)
    grant = client.post("/api/v1/leases", json={"device": BOARD}).json()
    r = client.post(f"/api/v1/leases/{grant['lease_id']}/failure",
                    json={"error": "plan too large", "retryable": False})
    assert r.json()["state"] == "failed" and r.json()["attempts"] == 1
    assert client.get(f"/api/v1/jobs/{job_id}").json()["state"] == "failed"


def test_bad_board_gets_no_work(client: TestClient, kws_bytes: bytes) -> None:
    register(client, "rack-1", [BOARD])
    queue_one(client, kws_bytes)
    client.post(f"/api/v1/devices/{BOARD}/health", json={"ok": False, "detail": "cycles off"})
    r = client.post("/api/v1/leases", json={"device": BOARD})
    assert r.status_code == 204 and "marked bad" in r.headers["x-mcuprof-reason"]
    client.post(f"/api/v1/devices/{BOARD}/health", json={"ok": True})
    assert client.post("/api/v1/leases", json={"device": BOARD}).status_code == 200


def test_cancel_while_running_loses_the_lease(client: TestClient, kws_bytes: bytes) -> None:
    agent_id = register(client, "rack-1", [BOARD]).json()["id"]
    job_id = queue_one(client, kws_bytes)
    lease_id = client.post("/api/v1/leases", json={"device": BOARD}).json()["lease_id"]
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").json()["state"] == "cancelled"
    hb = client.post(f"/api/v1/agents/{agent_id}/heartbeat", json={"leases": [lease_id]})
    assert hb.json() == {"extended": [], "lost": [lease_id], "lease_seconds": 60.0}
    r = client.post(f"/api/v1/leases/{lease_id}/result", json=measurement(BOARD))
    assert r.status_code == 409 and "cancelled" in r.json()["detail"]
    assert client.get("/api/v1/measurements").json() == []


def test_lease_errors(client: TestClient) -> None:
    r = client.post("/api/v1/leases", json={"device": BOARD})
    assert r.status_code == 404 and "not registered" in r.json()["detail"]
    assert client.post("/api/v1/leases", json={}).status_code == 422
    assert client.post("/api/v1/agents/55/heartbeat", json={"leases": []}).status_code == 404
    r = client.post("/api/v1/agents/1/heartbeat", json={"leases": ["x"]})
    assert r.status_code == 422
    r = client.post("/api/v1/leases/1/result", json={"device": BOARD})
    assert r.status_code == 422 and "cycles_per_run" in r.json()["detail"]


def test_background_sweep_expires_leases(make_client, kws_bytes: bytes,  # type: ignore[no-untyped-def]
                                         database: Database) -> None:
    import time

    client = make_client(expire_interval_seconds=0.05, lease_seconds=0.05)
    register(client, "rack-1", [BOARD])
    job_id = queue_one(client, kws_bytes)
    assert client.post("/api/v1/leases", json={"device": BOARD}).status_code == 200
    deadline = time.monotonic() + 5
    while client.get(f"/api/v1/jobs/{job_id}").json()["state"] != "queued":
        assert time.monotonic() < deadline, "the sweep did not expire the lease"
        time.sleep(0.05)
