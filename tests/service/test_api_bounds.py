"""Everything a client or an agent sends is bounded and validated: out-of-range numbers,
NaN and infinity, oversized lists and text, non-booleans and JSON nested too deeply are a
422 (or a 413 for a body too large) that names the field, never a 500, and nothing of them
is stored. JSON bodies are parsed off the event loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from profiler_client.schemas import (
    MAX_DEVICES,
    MAX_ERROR_CHARS,
    MAX_HEALTH_DETAIL_CHARS,
    MAX_HEARTBEAT_LEASES,
    MAX_LAYERS,
    MAX_LOG_LINE_CHARS,
    MAX_LOG_LINES,
    MAX_OUTPUT_VALUES,
    MAX_TAGS,
    NAME_CHARS,
    TAG_CHARS,
    MeasurementIn,
    log_tail,
)
from service.api.json_body import MAX_JSON_BODY_BYTES
from service.api.routes.fits import MAX_PREDICT_JSON_BYTES
from service.db.models import NAME_LENGTH, TAG_LENGTH
from tests.service.conftest import MakeClient
from tests.service.helpers import measurement, register, upload

F446 = "virtual:nucleo-f446re"
BOARD = f"{F446}:a"
LAYER = {"index": 0, "op": "CONV_2D", "macs": 1, "ops": 2, "cycles": 3}


def _leased(client: TestClient, kws_bytes: bytes) -> tuple[int, int]:
    """(agent id, lease id) of a job leased to BOARD."""
    agent = register(client, "rack", [BOARD]).json()["id"]
    model_id = upload(client, kws_bytes).json()["id"]
    assert client.post("/api/v1/jobs", json={"model_id": model_id,
                                             "devices": [F446]}).status_code == 201
    lease = client.post("/api/v1/leases", json={"device": BOARD})
    assert lease.status_code == 200, lease.text
    return agent, lease.json()["lease_id"]


def _post_raw(client: TestClient, url: str, text: str) -> Any:
    return client.post(url, content=text.encode(),
                       headers={"content-type": "application/json"})


def test_out_of_bounds_results_are_refused_and_not_stored(client: TestClient,
                                                          kws_bytes: bytes) -> None:
    _agent, lease_id = _leased(client, kws_bytes)
    url = f"/api/v1/leases/{lease_id}/result"
    bad: dict[str, Any] = {
        "latency_ms": -5.0,
        "cycles": -1,
        "ops": 2**63,
        "arena_bytes": 2**40,
        "output": [0.0] * (MAX_OUTPUT_VALUES + 1),
        "output_shape": [1] * 9,
        "cycles_per_run": [2**64],
        "layers": [LAYER | {"index": i % MAX_LAYERS} for i in range(MAX_LAYERS + 1)],
        "serial_log": ["m-lap-us-1"] * (MAX_LOG_LINES + 1),
        "firmware_id": "f" * (NAME_CHARS + 1),
    }
    for field, value in bad.items():
        r = client.post(url, json=measurement(BOARD, **{field: value}))
        assert r.status_code == 422, (field, r.text[:300])
        assert field in r.json()["detail"], (field, r.json()["detail"][:300])
    r = client.post(url, json=measurement(BOARD, serial_log=["x" * (MAX_LOG_LINE_CHARS + 1)]))
    assert r.status_code == 422 and "serial_log" in r.json()["detail"]
    # NaN would be stored as NULL and 1e999 as infinity: both are refused by name.
    valid = json.dumps(measurement(BOARD, latency_ms=1.5))
    for text in (valid.replace("1.5", "NaN"), valid.replace("1.5", "1e999"),
                 valid.replace('"output": [0.0', '"output": [NaN')):
        r = _post_raw(client, url, text)
        assert r.status_code == 422, r.text[:300]
        assert "finite" in r.json()["detail"], r.json()["detail"]
    assert client.get("/api/v1/measurements").json() == []
    r = _post_raw(client, url, valid)
    assert r.status_code == 200, r.text[:300]
    assert client.get("/api/v1/measurements").json()[0]["latency_ms"] == 1.5


def test_agent_bodies_are_bounded_and_booleans_strict(client: TestClient,
                                                      kws_bytes: bytes) -> None:
    agent, lease_id = _leased(client, kws_bytes)
    health = f"/api/v1/devices/{BOARD}/health"
    for body in ({"ok": 0}, {"ok": "true"}, {"ok": 1},
                 {"ok": False, "detail": "x" * (MAX_HEALTH_DETAIL_CHARS + 1)}):
        r = client.post(health, json=body)
        assert r.status_code == 422, (body, r.text[:200])
    assert client.get("/api/v1/devices").json()[0]["health"] == "unknown"
    assert client.post(health, json={"ok": True, "detail": "fine"}).status_code == 200

    r = client.post("/api/v1/agents", json={"name": "rack", "boards": [
        {"device": BOARD, "energy_monitor": 1}]})
    assert r.status_code == 422 and "energy_monitor" in r.json()["detail"]
    r = client.post("/api/v1/agents", json={"name": "r" * (NAME_CHARS + 1), "boards": []})
    assert r.status_code == 422 and "name" in r.json()["detail"]

    beat = f"/api/v1/agents/{agent}/heartbeat"
    for leases in ([10**20], [0], [2**40], list(range(1, MAX_HEARTBEAT_LEASES + 2))):
        r = client.post(beat, json={"leases": leases})
        assert r.status_code == 422 and "leases" in r.json()["detail"], r.text[:200]
    assert client.post(beat, json={"leases": [lease_id]}).json()["extended"] == [lease_id]

    failure = f"/api/v1/leases/{lease_id}/failure"
    for body in ({"error": "x" * (MAX_ERROR_CHARS + 1)}, {"error": "e", "retryable": "no"},
                 {"error": "e", "serial_log": ["l"] * (MAX_LOG_LINES + 1)}):
        r = client.post(failure, json=body)
        assert r.status_code == 422, (list(body), r.text[:200])
    assert client.get("/api/v1/jobs").json()[0]["state"] == "leased"


def test_an_agents_long_serial_log_is_cut_to_its_tail() -> None:
    """The agent sends what the server accepts: the last lines of a long transcript."""
    transcript = [f"line {i}" for i in range(100_000)] + ["e-[" + "x" * 5000 + "]"]
    tail = log_tail(transcript)
    assert len(tail) == MAX_LOG_LINES and tail[-2] == "line 99999"
    assert len(tail[-1]) == MAX_LOG_LINE_CHARS and tail[-1].startswith("e-[")
    assert MeasurementIn(**measurement(BOARD, serial_log=tail)).serial_log == tail


@pytest.mark.parametrize("path", ["/api/v1/models", "/api/v1/jobs", "/api/v1/measurements"])
def test_list_queries_are_bounded(client: TestClient, path: str) -> None:
    # SQLite's INTEGER overflowed on these (a 500); PostgreSQL said 422.
    for params in ({"offset": 10**20}, {"offset": 2**63}, {"limit": 10**20}):
        r = client.get(path, params=params)
        assert r.status_code == 422, (params, r.text[:200])
    assert client.get(path, params={"offset": 2**31 - 1}).json() == []


def test_ids_beyond_the_columns_are_422(client: TestClient) -> None:
    assert client.get("/api/v1/jobs", params={"model_id": 10**20}).status_code == 422
    assert client.get(f"/api/v1/models/{10**20}").status_code == 422
    r = client.post("/api/v1/jobs", json={"model_id": 1e20, "devices": [F446]})
    assert r.status_code == 422 and "model_id" in r.json()["detail"]
    r = client.post("/api/v1/jobs", json={"model_id": 1, "devices": [F446] * (MAX_DEVICES + 1)})
    assert r.status_code == 422 and "devices" in r.json()["detail"]
    r = client.post(f"/api/v1/leases/{10**20}/result", json=measurement(BOARD))
    assert r.status_code == 422


def test_tag_filters_say_their_form_in_the_schema(client: TestClient) -> None:
    """The schema says what a tag filter is, so ``tag=`` is refused by it, not after it."""
    schema = client.get("/openapi.json").json()
    for path in ("/api/v1/models", "/api/v1/measurements"):
        (tag,) = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "tag"]
        items = tag["schema"]["anyOf"][0]["items"]
        assert items["pattern"] and items["maxLength"], items
        r = client.get(path, params={"tag": ""})
        assert r.status_code == 422 and "key=value" in r.json()["detail"]
        assert client.get(path, params={"tag": "backbone="}).status_code == 200
        assert client.get(path, params={"tag": ["k=v"] * (MAX_TAGS + 1)}).status_code == 422


def test_predict_requests_are_bounded(client: TestClient) -> None:
    url = "/api/v1/predict"
    for text in ('{"ops": 1e999, "backbone": "b"}', '{"ops": NaN, "backbone": "b"}',
                 '{"model_id": 1e20}', '{"ops": 1, "input_shape": [1,1,1,1,1,1,1,1,1]}',
                 json.dumps({"layers": [LAYER] * (MAX_LAYERS + 1)}),
                 json.dumps({"ops": 1, "devices": [F446] * (MAX_DEVICES + 1)})):
        r = _post_raw(client, url, text)
        assert r.status_code == 422, (text[:60], r.text[:200])
    big = json.dumps({"ops": 1, "backbone": "b" * MAX_PREDICT_JSON_BYTES})
    assert _post_raw(client, url, big).status_code == 413


@pytest.mark.parametrize("path", ["/api/v1/predict", "/api/v1/jobs", "/api/v1/agents"])
def test_json_nested_too_deeply_is_a_422(client: TestClient, path: str) -> None:
    depth = 100_000  # a RecursionError (500) in /predict, a bare 400 elsewhere
    r = _post_raw(client, path, "[" * depth + "]" * depth)
    assert r.status_code == 422 and "nested too deeply" in r.json()["detail"], r.text[:200]
    r = client.post(path, content=b'{"name": "\xff"}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not UTF-8" in r.json()["detail"], r.text[:200]


def test_json_bodies_are_parsed_off_the_event_loop(client: TestClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A large body parsed on the event loop froze every other request while it lasted."""
    marker = "parsed-where"
    where: list[str] = []
    loads = json.loads

    def spy(raw: Any, *args: Any, **kwargs: Any) -> Any:
        if marker in (raw.decode() if isinstance(raw, bytes) else str(raw)):
            try:
                asyncio.get_running_loop()
                where.append("event loop")
            except RuntimeError:
                where.append("worker thread")
        return loads(raw, *args, **kwargs)

    monkeypatch.setattr(json, "loads", spy)
    client.post("/api/v1/predict", json={"ops": 1, "backbone": marker})
    client.post("/api/v1/jobs", json={"model_id": 1, "devices": [marker]})
    client.post("/api/v1/agents", json={"name": marker, "boards": []})
    assert where and set(where) == {"worker thread"}, where


def test_the_wire_limits_are_the_columns() -> None:
    """profiler_client cannot import the database models: the same figures, checked here."""
    assert NAME_CHARS == NAME_LENGTH and TAG_CHARS == TAG_LENGTH


def test_json_bodies_past_the_limit_are_413(make_client: MakeClient) -> None:
    client = make_client(max_upload_bytes=2 * MAX_JSON_BODY_BYTES)
    body = '{"name": "' + "x" * MAX_JSON_BODY_BYTES + '", "boards": []}'
    r = _post_raw(client, "/api/v1/agents", body)
    assert r.status_code == 413 and str(MAX_JSON_BODY_BYTES) in r.json()["detail"], r.text[:200]
