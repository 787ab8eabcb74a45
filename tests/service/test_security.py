"""A server with default settings on loopback, as `mcuprof serve` and `mcuprof demo` run it,
against what a web page in the user's browser can send: a cross-origin form upload, a
bodiless cancel, a DNS-rebinding read (Host: evil.example). And the order of the checks: no
body is validated (400/422) for a caller without a valid token (401)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.auth import create_token
from service.config import ConfigError
from service.db.engine import Database
from tests.service.conftest import MakeClient
from tests.service.helpers import settings_for, upload

F446 = "virtual:nucleo-f446re"
EVIL = "http://evil.example"
CROSS_SITE = {"Origin": EVIL}


@pytest.fixture
def default(make_client: MakeClient) -> TestClient:
    """The app with the default auth (what `mcuprof serve` on 127.0.0.1 runs)."""
    return make_client(auth=None)


@pytest.fixture
def user(database: Database) -> dict[str, str]:
    with database.transaction() as s:
        _, secret = create_token(s, role="user", name="alice")
    return {"Authorization": f"Bearer {secret}"}


def test_cross_origin_multipart_upload_is_refused(default: TestClient, kws_bytes: bytes,
                                                  user: dict[str, str]) -> None:
    # What an <form enctype=multipart/form-data action=http://127.0.0.1:8000/api/v1/models>
    # on another site sends: no token, the page's Origin.
    r = upload(default, kws_bytes, headers=CROSS_SITE)
    assert r.status_code == 403 and "another site" in r.json()["detail"]
    r = upload(default, kws_bytes, headers={"Referer": f"{EVIL}/page.html"})
    assert r.status_code == 403
    r = upload(default, kws_bytes)  # no Origin either: still no token
    assert r.status_code == 401 and "token" in r.json()["detail"]
    # Even a request that carries credentials is refused from another origin.
    assert upload(default, kws_bytes, headers=user | CROSS_SITE).status_code == 403
    assert default.get("/api/v1/models", headers=user).json() == []


def test_bodiless_cancel_without_a_token_is_refused(default: TestClient, kws_bytes: bytes,
                                                    user: dict[str, str]) -> None:
    model_id = upload(default, kws_bytes, headers=user).json()["id"]
    [job] = default.post("/api/v1/jobs", json={"model_id": model_id, "devices": [F446]},
                         headers=user).json()
    r = default.post(f"/api/v1/jobs/{job['id']}/cancel")  # a bodiless cross-site POST
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = default.post(f"/api/v1/jobs/{job['id']}/cancel", headers=CROSS_SITE)
    assert r.status_code == 403
    assert default.get(f"/api/v1/jobs/{job['id']}", headers=user).json()["state"] == "queued"
    # The same request from an API client with the token works.
    r = default.post(f"/api/v1/jobs/{job['id']}/cancel", headers=user)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"


@pytest.mark.parametrize("auth", [None, "off"])
def test_a_foreign_host_is_refused(make_client: MakeClient, auth: str | None,
                                   user: dict[str, str]) -> None:
    """DNS rebinding: evil.example resolves to 127.0.0.1, the page reads what it gets."""
    client = make_client(auth=auth)
    for path in ("/api/v1/jobs", "/", "/openapi.json", "/docs", "/login"):
        r = client.get(path, headers=user | {"Host": "evil.example"})
        assert r.status_code == 400, (path, r.text)
        assert "evil.example" in r.json()["detail"]
        assert "MCUPROF_ALLOWED_HOSTS" in r.json()["detail"]
    r = client.get("/api/v1/jobs", headers=user | {"Host": "evil.example:8000"})
    assert r.status_code == 400
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "testserver"):
        assert client.get("/api/v1/jobs", headers=user | {"Host": host}).status_code == 200


def test_allowed_hosts(make_client: MakeClient, user: dict[str, str]) -> None:
    client = make_client(auth=None, allowed_hosts=["testserver", "mcuprof.lab.example"])
    headers = user | {"Host": "mcuprof.lab.example"}
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    assert client.get("/api/v1/jobs", headers=user | {"Host": "lab.example"}).status_code == 400


def test_unauthenticated_requests_get_401_before_validation(default: TestClient) -> None:
    cases = [
        ("POST", "/api/v1/jobs", {"content": b"{not json",
                                  "headers": {"Content-Type": "application/json"}}),
        ("POST", "/api/v1/jobs", {"json": {"devices": "nope"}}),
        ("POST", "/api/v1/models", {"data": {"name": "no file"}}),
        ("POST", "/api/v1/jobs/not-a-number/cancel", {}),
        ("GET", "/api/v1/models", {"params": {"limit": "-5"}}),
        ("POST", "/api/v1/leases", {"content": b"\xff\xfe",
                                    "headers": {"Content-Type": "application/json"}}),
        ("POST", "/api/v1/predict", {"json": []}),
    ]
    for method, path, kwargs in cases:
        r = default.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert "token" in r.json()["detail"]


def test_with_a_token_validation_errors_are_still_422(default: TestClient,
                                                      user: dict[str, str]) -> None:
    r = default.post("/api/v1/jobs", content=b"{not json",
                     headers=user | {"Content-Type": "application/json"})
    assert r.status_code == 422
    assert default.post("/api/v1/jobs/x/cancel", headers=user).status_code == 422


def test_same_origin_writes_and_api_clients_pass(default: TestClient, kws_bytes: bytes,
                                                 user: dict[str, str]) -> None:
    # The dashboard's own page (same origin), and an API client (no Origin at all).
    assert upload(default, kws_bytes, headers=user | {"Origin": "http://testserver"}
                  ).status_code == 201
    assert upload(default, kws_bytes, headers=user).status_code == 200
    # Origin "null" (a sandboxed frame, a file:// page) is another origin.
    assert upload(default, kws_bytes, headers=user | {"Origin": "null"}).status_code == 403
    # Another port of the same host is another origin.
    r = upload(default, kws_bytes, headers=user | {"Origin": "http://testserver:9999"})
    assert r.status_code == 403


def test_auth_off_is_refused_off_loopback(db_url: str, database: Database) -> None:
    with pytest.raises(ConfigError, match="MCUPROF_AUTH=off"):
        create_app(settings_for(db_url, auth="off", host="0.0.0.0"), database=database)


def test_auth_off_on_loopback_is_logged_as_unsafe(db_url: str, database: Database,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="mcuprof.api"):
        create_app(settings_for(db_url, auth="off"), database=database)
    assert any("UNSAFE" in r.getMessage() for r in caplog.records)
