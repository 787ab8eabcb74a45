"""``/api/v1/searches`` on SQLite and PostgreSQL: a user token records a search run (an agent
token may not, nor anyone without a token); the whole flow create → epochs → candidates →
verification → done through the REST API and through the client library; repeated writes
store nothing twice (and the client retries only those); unknown runs and candidates are 404,
writes to a finished run 409, bad bodies 422, each saying what to do."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from profiler_client.client import Client, ServerUnavailableError
from profiler_client.schemas import (
    MAX_SEARCH_EPOCHS_PER_POST,
    SearchCandidateIn,
    SearchCandidatePatch,
    SearchEpochIn,
    SearchMeasured,
    SearchPrediction,
    SearchRunIn,
    SearchRunPatch,
)
from tests.service.helpers import measurement, register, upload
from tests.service.test_api_auth import secure, tokens  # noqa: F401  (fixtures)

F446 = "virtual:nucleo-f446re"
F746 = "virtual:nucleo-f746zg"
BOARD = f"{F446}:lab1"
RUN = {
    "name": "kws-dnas", "space": "kws", "devices": [F446, F746],
    "config": {"epochs": 3, "lr": 0.01, "lambda": {"latency": 0.5}},
    "budgets": {F446: {"sram_bytes": 100_000, "flash_bytes": 300_000, "latency_ms": 50.0},
                F746: {"latency_ms": 20.0}},
    "fit_versions": {F446: "ops_line-virtual-nucleo-f446re-kws-1"},
}


def epoch(n: int, rnd: int = 0, **changes: Any) -> dict[str, Any]:
    body = {"round": rnd, "epoch": n, "temperature": 5.0 / (n + 1), "loss": 2.0 - n * 0.1,
            "accuracy": min(0.99, 0.5 + n * 0.01),
            "costs": {F446: {"latency_ms": 40.0 + n, "sram_bytes": 90_000.5, "flash_bytes": 2e5,
                             "ops": 1.5e7}},
            "candidate": {"arch_id": f"arch-{n}", "architecture": {"blocks": [n, 2]}}}
    return body | changes


def candidate(arch_id: str, **changes: Any) -> dict[str, Any]:
    body = {"arch_id": arch_id, "architecture": {"blocks": [3, 2]}, "accuracy": 0.91,
            "predicted": {F446: {"latency_ms": 41.0, "latency_lo_ms": 38.0,
                                 "latency_hi_ms": 45.0, "sram_bytes": 95_000,
                                 "flash_bytes": 250_000, "fit_version": "v1",
                                 "extrapolated": False}}}
    return body | changes


def create(client: TestClient, headers: dict[str, str] | None = None, **changes: Any) -> Any:
    r = client.post("/api/v1/searches", json=RUN | changes, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def measured_job(client: TestClient, kws_bytes: bytes) -> tuple[int, int, dict[str, Any]]:
    """A model measured through the real queue: (model id, job id, the measurement)."""
    model_id = upload(client, kws_bytes).json()["id"]
    register(client, "lab1", [BOARD])
    job = client.post("/api/v1/jobs", json={"model_id": model_id, "devices": [F446]}).json()[0]
    grant = client.post("/api/v1/leases", json={"device": BOARD}).json()
    done = client.post(f"/api/v1/leases/{grant['lease_id']}/result",
                       json=measurement(BOARD, cycle_source="cycle-model", latency_ms=43.5))
    assert done.status_code == 200, done.text
    return model_id, job["id"], client.get(f"/api/v1/jobs/{job['id']}").json()["measurement"]


def test_tokens(secure: TestClient, tokens: dict[str, dict[str, str]]) -> None:  # noqa: F811
    user, agent = tokens["user"], tokens["lab1"]
    writes = [("POST", "/api/v1/searches", RUN), ("PATCH", "/api/v1/searches/1", {}),
              ("POST", "/api/v1/searches/1/epochs", epoch(0)),
              ("POST", "/api/v1/searches/1/candidates", candidate("a")),
              ("PATCH", "/api/v1/searches/1/candidates/1", {"accuracy": 0.5})]
    for method, path, body in [*writes, ("GET", "/api/v1/searches", None),
                               ("GET", "/api/v1/searches/1", None)]:
        r = secure.request(method, path, json=body)
        assert r.status_code == 401 and "token" in r.json()["detail"], (method, path, r.text)
    run = create(secure, user)
    assert run["created_by"] == "alice" and run["state"] == "running"
    assert secure.post("/api/v1/searches/1/candidates", json=candidate("a"),
                       headers=user).status_code == 201
    for method, path, body in writes:
        r = secure.request(method, path, json=body, headers=agent)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["detail"] == ("recording a search run needs a user token; token "
                                      "'lab1' is a agent token")
    # agents and users read
    for headers in (user, agent):
        assert [r["id"] for r in secure.get("/api/v1/searches", headers=headers).json()] == [1]
        got = secure.get("/api/v1/searches/1", headers=headers).json()
        assert got["n_epochs"] == 0 and [c["arch_id"] for c in got["candidates"]] == ["a"]


def test_a_run_from_start_to_verification(client: TestClient, kws_bytes: bytes) -> None:
    run = create(client)
    rid = run["id"]
    assert run["budgets"][F746] == {"sram_bytes": None, "flash_bytes": None, "latency_ms": 20.0}
    assert run["config"] == RUN["config"] and run["fit_versions"] == RUN["fit_versions"]
    assert run["created_by"] == "anonymous" and run["epochs"] is None

    # one epoch as an object, then several as a list; a (round, epoch) sent again replaces it
    r = client.post(f"/api/v1/searches/{rid}/epochs", json=epoch(0))
    assert r.status_code == 201 and [e["epoch"] for e in r.json()] == [0]
    r = client.post(f"/api/v1/searches/{rid}/epochs",
                    json=[epoch(2), epoch(1), epoch(0, accuracy=0.42), epoch(0, 1)])
    assert r.status_code == 201, r.text
    assert [(e["round"], e["epoch"]) for e in r.json()] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert r.json()[0]["accuracy"] == 0.42 and r.json()[0]["id"] == 1  # replaced in place
    assert r.json()[1]["costs"][F446] == {"latency_ms": 41.0, "sram_bytes": 90_000.5,
                                           "flash_bytes": 2e5, "ops": 1.5e7}

    r = client.post(f"/api/v1/searches/{rid}/candidates", json=candidate("c-1"))
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["verified"] is False and first["measured"] is None
    assert first["predicted"][F446]["latency_hi_ms"] == 45.0
    r = client.post(f"/api/v1/searches/{rid}/candidates", json=candidate("c-1", accuracy=0.93))
    assert r.status_code == 200 and r.json()["id"] == first["id"]
    assert r.json()["accuracy"] == 0.93
    r = client.post(f"/api/v1/searches/{rid}/candidates", json=candidate("c-1", round=1))
    assert r.status_code == 201 and r.json()["id"] != first["id"]

    # verification: the found architecture measured through the real queue
    model_id, job_id, m = measured_job(client, kws_bytes)
    patch = {"model_id": model_id, "verified": True, "measured": {F446: {
        "latency_ms": m["latency_ms"], "sram_bytes": m["arena_bytes"],
        "flash_bytes": m["plan_bytes"], "job_id": job_id, "measurement_id": m["id"],
        "cycle_source": "dwt-cyccnt"}}}  # a claim of silicon: the server takes the truth
    r = client.patch(f"/api/v1/searches/{rid}/candidates/{first['id']}", json=patch)
    assert r.status_code == 200, r.text
    cand = r.json()
    assert cand["verified"] is True and cand["model_id"] == model_id
    assert cand["measured"][F446] == {"latency_ms": 43.5, "sram_bytes": 6016,
                                      "flash_bytes": 8504, "job_id": job_id,
                                      "measurement_id": m["id"], "cycle_source": "cycle-model"}
    assert cand["accuracy"] == 0.93  # left out of the patch: unchanged

    r = client.patch(f"/api/v1/searches/{rid}", json={
        "state": "done", "result": {"arch_id": "c-1", "accuracy": 0.93}})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "done" and r.json()["n_verified"] == 1

    got = client.get(f"/api/v1/searches/{rid}").json()
    assert got["result"] == {"arch_id": "c-1", "accuracy": 0.93} and got["error"] is None
    assert (got["n_epochs"], got["n_candidates"], got["n_verified"]) == (4, 2, 1)
    assert [(e["round"], e["epoch"]) for e in got["epochs"]] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert got["epochs"][0]["candidate"] == {"arch_id": "arch-0",
                                             "architecture": {"blocks": [0, 2]}}
    assert [c["id"] for c in got["candidates"]] == [first["id"], first["id"] + 1]
    assert got["updated_at"] > got["created_at"]

    # a finished run takes nothing more, but its candidates can still be verified
    r = client.post(f"/api/v1/searches/{rid}/epochs", json=[epoch(3)])
    assert r.status_code == 409
    assert r.json()["detail"] == (f"search run {rid} is done: cannot append epochs to a "
                                  f"finished run; start a new one with POST /api/v1/searches")
    r = client.post(f"/api/v1/searches/{rid}/candidates", json=candidate("c-9"))
    assert r.status_code == 409 and "cannot add candidates to a finished run" in r.text
    r = client.patch(f"/api/v1/searches/{rid}", json={"state": "running"})
    assert r.status_code == 409 and "keeps its state" in r.json()["detail"]
    assert client.patch(f"/api/v1/searches/{rid}", json={"state": "done"}).status_code == 200
    r = client.patch(f"/api/v1/searches/{rid}/candidates/{first['id'] + 1}",
                     json={"measured": {F746: {"latency_ms": 12.0}}, "verified": True})
    assert r.status_code == 200 and r.json()["measured"] == {F746: {
        "latency_ms": 12.0, "sram_bytes": None, "flash_bytes": None, "job_id": None,
        "measurement_id": None, "cycle_source": None}}
    # measured is merged by device class; null clears it (and verified needs it)
    r = client.patch(f"/api/v1/searches/{rid}/candidates/{first['id']}",
                     json={"measured": {F746: {"latency_ms": 15.0}}})
    assert set(r.json()["measured"]) == {F446, F746}
    r = client.patch(f"/api/v1/searches/{rid}/candidates/{first['id']}", json={"measured": None})
    assert r.status_code == 422 and "cannot be verified without measured" in r.json()["detail"]
    r = client.patch(f"/api/v1/searches/{rid}/candidates/{first['id']}",
                     json={"measured": None, "verified": False, "model_id": None})
    assert r.status_code == 200 and r.json()["measured"] is None and r.json()["model_id"] is None


def test_listing_is_newest_first_with_counts(client: TestClient) -> None:
    ids = [create(client, name=f"run-{i}")["id"] for i in range(3)]
    client.post(f"/api/v1/searches/{ids[1]}/epochs", json=[epoch(0), epoch(1)])
    client.patch(f"/api/v1/searches/{ids[2]}", json={"state": "failed", "error": "OOM"})
    listed = client.get("/api/v1/searches").json()
    assert [r["id"] for r in listed] == ids[::-1]
    assert [r["n_epochs"] for r in listed] == [0, 2, 0]
    assert all(r["epochs"] is None and r["candidates"] is None for r in listed)
    assert [r["id"] for r in client.get("/api/v1/searches", params={"limit": 2}).json()] == \
        ids[:0:-1]
    failed = client.get("/api/v1/searches", params={"state": "failed"}).json()
    assert [(r["id"], r["error"]) for r in failed] == [(ids[2], "OOM")]
    assert client.get("/api/v1/searches", params={"limit": 0}).status_code == 422


def test_unknown_runs_and_candidates_are_404(client: TestClient) -> None:
    for method, path, body in (("GET", "/api/v1/searches/7", None),
                               ("PATCH", "/api/v1/searches/7", {"state": "done"}),
                               ("POST", "/api/v1/searches/7/epochs", [epoch(0)]),
                               ("POST", "/api/v1/searches/7/candidates", candidate("a")),
                               ("PATCH", "/api/v1/searches/7/candidates/1", {})):
        r = client.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["detail"] == ("there is no search run 7; list them with "
                                      "GET /api/v1/searches")
    one, two = create(client)["id"], create(client)["id"]
    cid = client.post(f"/api/v1/searches/{one}/candidates", json=candidate("a")).json()["id"]
    r = client.patch(f"/api/v1/searches/{two}/candidates/{cid}", json={"accuracy": 0.1})
    assert r.status_code == 404
    assert r.json()["detail"] == (f"search run {two} has no candidate {cid}; GET "
                                  f"/api/v1/searches/{two} lists its candidates")
    assert client.get(f"/api/v1/searches/{10**20}").status_code == 422


def test_bad_bodies_are_422_and_say_what_to_do(client: TestClient, kws_bytes: bytes) -> None:
    def refused(method: str, path: str, body: Any, *words: str) -> None:
        r = client.request(method, path, json=body)
        assert r.status_code == 422, (body, r.text)
        detail = r.json()["detail"]
        assert all(w in detail for w in words), detail

    url = "/api/v1/searches"
    refused("POST", url, RUN | {"devices": ["warp:drive"], "budgets": {}, "fit_versions": {}},
            "devices: unknown device class 'warp:drive'", "virtual:nucleo-f446re")
    refused("POST", url, RUN | {"devices": [F446, F446]}, "names a device class twice")
    refused("POST", url, RUN | {"devices": []}, "devices")
    refused("POST", url, RUN | {"budgets": {"virtual:nucleo-l4r5zi": {"latency_ms": 1}}},
            "budgets names 'virtual:nucleo-l4r5zi'", "not one of the run's devices")
    refused("POST", url, RUN | {"budgets": {F446: {"sram_bytes": -1}}}, "sram_bytes")
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    refused("POST", url, RUN | {"config": {"deep": deep}},
            "nested deeper than 32 levels")
    refused("POST", url, RUN | {"config": {"x": "y" * 300_000}}, "at most 262144")
    r = client.post(url, content=b'{"name": "n", "space": "s", "devices": ["' + F446.encode()
                    + b'"], "config": {"lr": NaN}}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "NaN or infinite" in r.json()["detail"], r.text
    rid = create(client)["id"]
    refused("POST", f"{url}/{rid}/epochs", [], "at least 1")
    refused("POST", f"{url}/{rid}/epochs", [epoch(0)] * (MAX_SEARCH_EPOCHS_PER_POST + 1),
            "at most 1000")
    refused("POST", f"{url}/{rid}/epochs", {"round": 0}, "epoch: Field required")
    refused("POST", f"{url}/{rid}/epochs", epoch(0, accuracy=91.0), "accuracy",
            "less than or equal to 1")
    refused("POST", f"{url}/{rid}/epochs", epoch(0, costs={"virtual:nucleo-f767zi": {}}),
            "costs of round 0 epoch 0 names 'virtual:nucleo-f767zi'",
            f"not a device class of search run {rid}")
    bad = candidate("a")
    bad["predicted"][F446] |= {"latency_lo_ms": 42.0}
    refused("POST", f"{url}/{rid}/candidates", bad, "does not hold latency_ms",
            "latency_lo_ms <= latency_ms <= latency_hi_ms")
    refused("POST", f"{url}/{rid}/candidates", candidate("a", model_id=99),
            "there is no model 99", "POST /api/v1/models")
    refused("POST", f"{url}/{rid}/candidates", candidate(""), "arch_id")
    cid = client.post(f"{url}/{rid}/candidates", json=candidate("a")).json()["id"]
    refused("PATCH", f"{url}/{rid}/candidates/{cid}", {"verified": True},
            f"candidate {cid} cannot be verified without measured figures")
    refused("PATCH", f"{url}/{rid}/candidates/{cid}", {"verified": "yes"}, "verified")
    refused("PATCH", f"{url}/{rid}/candidates/{cid}",
            {"measured": {F446: {"latency_ms": 1.0, "measurement_id": 5}}},
            "measured['virtual:nucleo-f446re'].measurement_id: there is no measurement 5")
    _, job_id, m = measured_job(client, kws_bytes)
    refused("PATCH", f"{url}/{rid}/candidates/{cid}",
            {"measured": {F746: {"latency_ms": 1.0, "measurement_id": m["id"]}}},
            f"measurement {m['id']} was made on {F446}, not {F746}")
    refused("PATCH", f"{url}/{rid}", {"fit_versions": {"host": "v"}}, "fit_versions names 'host'")
    refused("PATCH", f"{url}/{rid}", {"state": "paused"}, "state")
    # nothing refused was stored
    got = client.get(f"{url}/{rid}").json()
    assert got["n_epochs"] == 0 and got["candidates"][0]["measured"] is None
    assert got["fit_versions"] == RUN["fit_versions"] and got["state"] == "running"


class LosingTransport(httpx.BaseTransport):
    """Hands every request to the app, but loses the answer of the first ``lose`` ones (as a
    connection that drops after the server acted): the client cannot tell it was stored."""

    def __init__(self, inner: httpx.BaseTransport, lose: int) -> None:
        self.inner, self.lose, self.sent = inner, lose, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.sent += 1
        if self.sent <= self.lose:
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


@pytest.fixture
def api(client: TestClient) -> Iterator[Client]:
    """The client library on the app in-process (the TestClient's transport)."""
    with Client("http://testserver", token="unused", transport=client._transport,
                sleep=lambda _: None) as c:
        yield c


def test_the_client_library(api: Client, client: TestClient) -> None:
    run = api.create_search(SearchRunIn.model_validate(RUN))
    assert run.id == 1 and run.state == "running" and run.budgets[F446].sram_bytes == 100_000
    stored = api.add_search_epochs(run.id, [SearchEpochIn.model_validate(epoch(i))
                                            for i in range(MAX_SEARCH_EPOCHS_PER_POST + 2)])
    assert len(stored) == MAX_SEARCH_EPOCHS_PER_POST + 2  # sent in two requests
    assert api.add_search_epochs(run.id, []) == []
    cand = api.add_search_candidate(run.id, SearchCandidateIn(
        arch_id="best", accuracy=0.9,
        predicted={F446: SearchPrediction(latency_ms=30.0, latency_lo_ms=28.0,
                                          latency_hi_ms=33.0)}))
    assert cand.predicted[F446].latency_lo_ms == 28.0
    cand = api.update_search_candidate(run.id, cand.id, SearchCandidatePatch(
        verified=True, measured={F446: SearchMeasured(latency_ms=31.0, sram_bytes=5000)}))
    assert cand.verified and cand.measured is not None and cand.accuracy == 0.9
    # a patch sends only the fields it was given: accuracy is not cleared by this one
    cand = api.update_search_candidate(run.id, cand.id, SearchCandidatePatch(verified=True))
    assert cand.accuracy == 0.9 and cand.measured is not None
    done = api.update_search(run.id, SearchRunPatch(state="done", result={"arch_id": "best"}))
    assert done.state == "done" and done.n_candidates == 1
    assert [r.id for r in api.searches(limit=5)] == [run.id]
    full = api.search(run.id)
    assert full.epochs is not None and len(full.epochs) == MAX_SEARCH_EPOCHS_PER_POST + 2
    assert full.candidates is not None and full.candidates[0].verified
    assert full.result == {"arch_id": "best"}


def test_client_retries_only_writes_that_are_safe_to_repeat(client: TestClient) -> None:
    transports: list[LosingTransport] = []

    def losing(lose: int) -> Client:
        transports.append(LosingTransport(client._transport, lose))
        return Client("http://testserver", token="unused", sleep=lambda _: None,
                      transport=transports[-1])

    # creating a run is not retried after a lost answer: the run exists once
    with losing(1) as api, pytest.raises(ServerUnavailableError):
        api.create_search(SearchRunIn.model_validate(RUN))
    assert transports[-1].sent == 1 and len(client.get("/api/v1/searches").json()) == 1
    # epochs and candidates are: the repeat replaces what the first attempt stored
    with losing(2) as api:
        out = api.add_search_epochs(1, [SearchEpochIn.model_validate(epoch(0)),
                                        SearchEpochIn.model_validate(epoch(1))])
        assert [e.epoch for e in out] == [0, 1] and transports[-1].sent == 3
    with losing(1) as api:
        api.add_search_candidate(1, SearchCandidateIn.model_validate(candidate("x")))
        assert transports[-1].sent == 2
    with losing(1) as api:
        api.update_search(1, SearchRunPatch(error="note"))
    got = client.get("/api/v1/searches/1").json()
    assert got["n_epochs"] == 2 and got["n_candidates"] == 1 and got["error"] == "note"
