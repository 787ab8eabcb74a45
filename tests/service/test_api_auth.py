"""Tokens: missing or bad → 401, wrong role, someone else's board or lease → 403; an agent
token is its agent's identity (no impersonation, no taking over boards, the agent takes its
name from its token); with auth off everything is allowed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.auth import AuthError, create_token, revoke_token
from service.db.engine import Database
from service.db.models import Agent, utcnow
from tests.service.conftest import MakeClient
from tests.service.helpers import measurement, register, upload

F446 = "virtual:nucleo-f446re"
BOARD_1, BOARD_2 = f"{F446}:lab1", f"{F446}:lab2"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(database: Database) -> dict[str, dict[str, str]]:
    """Headers for a user token, two agent tokens bound by name and one unbound."""
    out = {}
    with database.transaction() as s:
        for key, role, name in (("user", "user", "alice"), ("lab1", "agent", "lab1"),
                                ("lab2", "agent", "lab2"), ("unbound", "agent", None)):
            _, secret = create_token(s, role=role, name=name)  # type: ignore[arg-type]
            out[key] = bearer(secret)
    return out


@pytest.fixture
def secure(make_client: MakeClient) -> TestClient:
    return make_client(auth="on")


def test_missing_and_bad_tokens_are_401(secure: TestClient) -> None:
    for headers in ({}, bearer("mcp_nope"), {"Authorization": "Basic dXNlcjpwdw=="},
                    {"Authorization": "Bearer "}):
        for method, path in (("GET", "/api/v1/models"), ("GET", "/api/v1/jobs"),
                             ("POST", "/api/v1/jobs"), ("POST", "/api/v1/leases"),
                             ("GET", "/api/v1/measurements"), ("GET", "/api/v1/devices")):
            r = secure.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (headers, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert "token" in r.json()["detail"]


def test_open_pages_need_no_token(secure: TestClient) -> None:
    for path in ("/", "/openapi.json", "/docs"):
        assert secure.get(path).status_code == 200


def test_roles(secure: TestClient, tokens: dict[str, dict[str, str]],
               kws_bytes: bytes) -> None:
    user, lab1 = tokens["user"], tokens["lab1"]
    # agents may not upload or submit
    r = upload(secure, kws_bytes, headers=lab1)
    assert r.status_code == 403 and "user token" in r.json()["detail"]
    model_id = upload(secure, kws_bytes, headers=user).json()["id"]
    r = secure.post("/api/v1/jobs", json={"model_id": model_id, "devices": [F446]}, headers=lab1)
    assert r.status_code == 403
    job = secure.post("/api/v1/jobs", json={"model_id": model_id, "devices": [F446]},
                      headers=user).json()[0]
    assert secure.post(f"/api/v1/jobs/{job['id']}/cancel", headers=lab1).status_code == 403
    # users may not act as agents
    r = register(secure, "lab1", [BOARD_1], headers=user)
    assert r.status_code == 403 and "agent token" in r.json()["detail"]
    assert secure.post("/api/v1/leases", json={"device": BOARD_1},
                       headers=user).status_code == 403
    # both read
    for headers in (user, lab1):
        assert secure.get("/api/v1/jobs", headers=headers).status_code == 200
        assert secure.get(f"/api/v1/models/{model_id}/file", headers=headers).status_code == 200


def test_agents_only_touch_their_own_boards(secure: TestClient,
                                            tokens: dict[str, dict[str, str]],
                                            kws_bytes: bytes) -> None:
    user, lab1, lab2 = tokens["user"], tokens["lab1"], tokens["lab2"]
    r = register(secure, "lab2", [BOARD_1], headers=lab1)
    assert r.status_code == 403 and "belongs to agent 'lab1'" in r.json()["detail"]
    agent1 = register(secure, "lab1", [BOARD_1], headers=lab1).json()["id"]
    agent2 = register(secure, "lab2", [BOARD_2], headers=lab2).json()["id"]
    model_id = upload(secure, kws_bytes, headers=user).json()["id"]
    secure.post("/api/v1/jobs", json={"model_id": model_id, "devices": [F446]}, headers=user)

    r = secure.post("/api/v1/leases", json={"device": BOARD_1}, headers=lab2)
    assert r.status_code == 403 and "lab1" in r.json()["detail"]
    r = secure.post(f"/api/v1/devices/{BOARD_1}/health", json={"ok": False}, headers=lab2)
    assert r.status_code == 403
    r = secure.post(f"/api/v1/agents/{agent1}/heartbeat", json={"leases": []}, headers=lab2)
    assert r.status_code == 403
    grant = secure.post("/api/v1/leases", json={"device": BOARD_1}, headers=lab1).json()
    lease_id = grant["lease_id"]
    # lab2 reporting for lab1's lease: it does not hold it
    r = secure.post(f"/api/v1/leases/{lease_id}/result", json=measurement(BOARD_1),
                    headers=lab2)
    assert r.status_code == 403 and "held by agent 'lab1'" in r.json()["detail"]
    r = secure.post(f"/api/v1/leases/{lease_id}/failure", json={"error": "x"}, headers=lab2)
    assert r.status_code == 403
    hb = secure.post(f"/api/v1/agents/{agent2}/heartbeat", json={"leases": [lease_id]},
                     headers=lab2)
    assert hb.json()["lost"] == [lease_id]
    r = secure.post(f"/api/v1/leases/{lease_id}/result", json=measurement(BOARD_1),
                    headers=lab1)
    assert r.status_code == 200 and r.json()["state"] == "done"


def test_unbound_agent_token_binds_on_first_registration(
        secure: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    unbound = tokens["unbound"]
    r = secure.post("/api/v1/leases", json={"device": BOARD_1}, headers=unbound)
    assert r.status_code == 403 and "not bound" in r.json()["detail"]
    assert register(secure, "lab9", [f"{F446}:lab9"], headers=unbound).status_code == 200
    assert register(secure, "lab8", [f"{F446}:lab8"], headers=unbound).status_code == 403
    r = secure.post("/api/v1/leases", json={"device": f"{F446}:lab9"}, headers=unbound)
    assert r.status_code == 204


def test_auth_off_allows_everything_and_ignores_headers(client: TestClient,
                                                        kws_bytes: bytes) -> None:
    assert client.get("/api/v1/jobs", headers=bearer("garbage")).status_code == 200
    assert upload(client, kws_bytes, headers=bearer("garbage")).status_code == 201
    assert register(client, "lab1", [BOARD_1]).status_code == 200


def test_tokens_are_required_by_default_on_loopback_too(make_client: MakeClient) -> None:
    settings = {"auth": None}  # None: the setting's default
    for host in ("127.0.0.1", "0.0.0.0"):
        r = make_client(**settings, host=host).get("/api/v1/jobs")
        assert r.status_code == 401, (host, r.text)


def test_an_unbound_token_cannot_impersonate_a_live_agent(
        secure: TestClient, tokens: dict[str, dict[str, str]], kws_bytes: bytes) -> None:
    """The reported attack: an agent token made without --name registers under a running
    agent's name, reports a forged result for its job and detaches its board."""
    user, lab1, unbound = tokens["user"], tokens["lab1"], tokens["unbound"]
    assert register(secure, "lab1", [BOARD_1], headers=lab1).status_code == 200
    model_id = upload(secure, kws_bytes, headers=user).json()["id"]
    secure.post("/api/v1/jobs", json={"model_id": model_id, "devices": [F446]}, headers=user)
    lease_id = secure.post("/api/v1/leases", json={"device": BOARD_1},
                           headers=lab1).json()["lease_id"]

    r = register(secure, "lab1", [BOARD_1], headers=unbound)
    assert r.status_code == 403, r.text
    assert "belongs to another agent token" in r.json()["detail"]
    r = register(secure, "lab1", [], headers=unbound)  # would detach lab1's board
    assert r.status_code == 403
    forged = measurement(BOARD_1, cycles=1, latency_ms=0.001)
    r = secure.post(f"/api/v1/leases/{lease_id}/result", json=forged, headers=unbound)
    assert r.status_code == 403 and "not bound" in r.json()["detail"]
    # Under a name of its own it is an agent, but still not lab1.
    assert register(secure, "evil", [f"{F446}:evil"], headers=unbound).status_code == 200
    r = secure.post(f"/api/v1/leases/{lease_id}/result", json=forged, headers=unbound)
    assert r.status_code == 403 and "held by agent 'lab1'" in r.json()["detail"]
    r = register(secure, "lab1", [], headers=unbound)
    assert r.status_code == 403 and "belongs to agent 'evil'" in r.json()["detail"]

    devices = {d["name"]: d for d in secure.get("/api/v1/devices", headers=user).json()}
    assert devices[BOARD_1]["agent"] == "lab1"
    job = secure.get("/api/v1/jobs", headers=user).json()[0]
    assert job["state"] == "leased" and job["measurement"] is None
    r = secure.post(f"/api/v1/leases/{lease_id}/result", json=measurement(BOARD_1),
                    headers=lab1)
    assert r.status_code == 200 and r.json()["measurement"]["cycles"] == 1_234_567


def test_a_silent_agents_boards_stay_its_own_while_it_has_a_token(
        secure: TestClient, tokens: dict[str, dict[str, str]], database: Database) -> None:
    lab1, lab2, unbound = tokens["lab1"], tokens["lab2"], tokens["unbound"]
    assert register(secure, "lab1", [BOARD_1], headers=lab1).status_code == 200
    with database.transaction() as s:  # lab1 went silent long ago
        s.execute(update(Agent).values(last_seen=utcnow() - timedelta(days=1)))
    r = register(secure, "lab2", [BOARD_1], headers=lab2)
    assert r.status_code == 403 and "never takes another agent's boards" in r.json()["detail"]
    r = register(secure, "lab1", [], headers=unbound)  # nor its name
    assert r.status_code == 403
    with database.transaction() as s:
        assert revoke_token(s, "lab1")
    assert register(secure, "lab2", [BOARD_1], headers=lab2).status_code == 200


def test_one_token_per_agent_name(secure: TestClient, database: Database,
                                  tokens: dict[str, dict[str, str]]) -> None:
    assert register(secure, "lab9", [f"{F446}:lab9"], headers=tokens["unbound"]
                    ).status_code == 200  # the unbound token is now agent lab9's
    with database.transaction() as s, pytest.raises(AuthError, match="already has a token"):
        create_token(s, role="agent", name="lab9")
    with database.transaction() as s:
        _row, other = create_token(s, role="agent")
    r = register(secure, "lab9", [], headers=bearer(other))
    assert r.status_code == 403 and "another agent token" in r.json()["detail"]


def test_whoami_says_which_agent_a_token_is(secure: TestClient,
                                            tokens: dict[str, dict[str, str]],
                                            client: TestClient) -> None:
    r = secure.get("/api/v1/whoami", headers=tokens["lab1"])
    assert r.status_code == 200 and r.json() == {"token": "lab1", "role": "agent",
                                                 "agent": "lab1"}
    assert secure.get("/api/v1/whoami", headers=tokens["user"]).json()["agent"] is None
    unbound = secure.get("/api/v1/whoami", headers=tokens["unbound"]).json()
    assert unbound["role"] == "agent" and unbound["agent"] is None
    assert register(secure, "lab9", [f"{F446}:lab9"], headers=tokens["unbound"]
                    ).status_code == 200
    assert secure.get("/api/v1/whoami", headers=tokens["unbound"]).json()["agent"] == "lab9"
    assert secure.get("/api/v1/whoami").status_code == 401
    assert client.get("/api/v1/whoami").json() == {"token": "anonymous", "role": "anonymous",
                                                   "agent": None}
