"""Errors are JSON with a sentence, never a 500 for bad input, and nothing half-written."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.api.app import create_app
from service.db.engine import Database, make_engine
from service.db.models import Agent, Device
from tests.service.helpers import register, settings_for, upload

F446 = "virtual:nucleo-f446re"


def test_refused_registration_writes_nothing(client: TestClient, database: Database) -> None:
    register(client, "rack-1", [f"{F446}:a"])
    # rack-2 would be created and f446re:b added before f446re:a is found to be taken
    r = register(client, "rack-2", [f"{F446}:b", f"{F446}:a"])
    assert r.status_code == 409
    with database.transaction(write=False) as s:
        assert s.scalars(select(Agent.name)).all() == ["rack-1"]
        assert s.scalar(select(func.count()).select_from(Device)) == 1


def test_control_characters_are_refused_not_stored(client: TestClient,
                                                   kws_bytes: bytes) -> None:
    assert register(client, "rack\x00", [f"{F446}:a"]).status_code == 422
    assert register(client, "rack", [f"{F446}:a\x00"]).status_code == 422
    assert upload(client, kws_bytes, tags=["k=v\x00"]).status_code == 422
    r = client.post("/api/v1/models", files={"file": ("m.tflite", kws_bytes)},
                    data={"name": "kws\x00\x07"})
    assert r.status_code == 201 and r.json()["name"] == "kws"
    r = client.post("/api/v1/jobs", json={"model_id": r.json()["id"], "devices": ["\x00"]})
    assert r.status_code == 422


def test_database_down_is_a_503_with_a_message() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    db = Database(make_engine(url))
    try:
        with TestClient(create_app(settings_for(url), database=db)) as client:
            r = client.get("/api/v1/jobs")
            assert r.status_code == 503 and "database" in r.json()["detail"]
            assert r.headers["retry-after"]
    finally:
        db.dispose()


def test_unknown_routes_and_methods(client: TestClient) -> None:
    assert client.get("/api/v1/nothing").status_code == 404
    assert client.delete("/api/v1/jobs").status_code == 405
    assert client.get("/").headers["content-type"].startswith("text/html")
