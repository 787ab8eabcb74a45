"""The search pages in-process (SQLite and PostgreSQL): ``/searches`` lists the runs with their
best candidate, ``/searches/{id}`` draws the run over its epochs against its budgets, the
Pareto front, predicted vs measured latency of the verified candidates and the candidates'
table, with a twin's latency labelled cycle-model (not silicon); an empty run renders, an
unknown one is a 404, and the pages ask for a token where tokens are required."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from service.dashboard.search_figures import pareto_front
from service.dashboard.search_queries import SEARCHES_PAGE
from tests.dashboard.test_pages import figures
from tests.service.test_api_auth import secure, tokens  # noqa: F401  (fixtures)

TWIN = "virtual:nucleo-f446re"
BOARD = "pyocd:nucleo-f746zg"
BUDGETS = {TWIN: {"sram_bytes": 100_000, "flash_bytes": 300_000, "latency_ms": 50.0},
           BOARD: {"latency_ms": 20.0}}
# (arch id, accuracy, predicted latency on the twin, predicted SRAM there)
CANDIDATES = [("a", 0.80, 30.0, 90_000), ("b", 0.85, 45.0, 95_000), ("c", 0.82, 48.0, 96_000),
              ("d", 0.90, 60.0, 120_000)]
EPOCHS = [(0, 0.50, 35.0), (1, 0.60, 40.0), (2, 0.70, 44.0)]  # epoch, accuracy, twin latency


def seed_run(client: TestClient, name: str = "kws-dnas") -> int:
    r = client.post("/api/v1/searches", json={
        "name": name, "space": "kws", "devices": [TWIN, BOARD], "budgets": BUDGETS,
        "fit_versions": {TWIN: "ops_line-twin-1"}, "config": {"epochs": 3}})
    assert r.status_code == 201, r.text
    rid: int = r.json()["id"]
    body = [{"epoch": e, "accuracy": acc, "temperature": 1.0,
             "costs": {TWIN: {"latency_ms": lat, "sram_bytes": 80_000.0 + e,
                              "flash_bytes": 200_000.0},
                       BOARD: {"latency_ms": lat / 3}},
             "candidate": {"arch_id": f"e{e}"}} for e, acc, lat in EPOCHS]
    assert client.post(f"/api/v1/searches/{rid}/epochs", json=body).status_code == 201
    for arch, acc, lat, sram in CANDIDATES:
        r = client.post(f"/api/v1/searches/{rid}/candidates", json={
            "arch_id": arch, "accuracy": acc,
            "predicted": {TWIN: {"latency_ms": lat, "latency_lo_ms": lat - 2,
                                 "latency_hi_ms": lat + 3, "sram_bytes": sram,
                                 "flash_bytes": 250_000},
                          BOARD: {"latency_ms": lat / 3, "latency_lo_ms": lat / 3 - 1,
                                  "latency_hi_ms": lat / 3 + 1}}})
        assert r.status_code == 201, r.text
    # candidate "b" verified on both: the twin's figure is the cycle model's, the board's
    # is silicon's
    cid = rid_candidate(client, rid, "b")
    r = client.patch(f"/api/v1/searches/{rid}/candidates/{cid}", json={
        "verified": True, "measured": {TWIN: {"latency_ms": 47.25, "sram_bytes": 96_000,
                                              "flash_bytes": 240_000},
                                       BOARD: {"latency_ms": 16.0}}})
    assert r.status_code == 200, r.text
    return rid


def rid_candidate(client: TestClient, rid: int, arch: str) -> int:
    run = client.get(f"/api/v1/searches/{rid}").json()
    return int(next(c["id"] for c in run["candidates"] if c["arch_id"] == arch))


def trace(fig: dict[str, Any], name: str) -> dict[str, Any]:
    found = [t for t in fig["data"] if t["name"] == name]
    assert len(found) == 1, [t["name"] for t in fig["data"]]
    return found[0]


def test_the_page_of_a_run(client: TestClient) -> None:
    rid = seed_run(client)
    r = client.get(f"/searches/{rid}")
    assert r.status_code == 200, r.text
    html = r.text
    figs = figures(html)
    assert set(figs) == {"epochs_latency", "epochs_memory", "pareto", "verified"}

    # (a) the epochs: predicted latency per device (named for what it is), budgets, accuracy
    lat = figs["epochs_latency"]
    twin = trace(lat, f"{TWIN}: predicted cycle-model latency")
    assert twin["x"] == [0, 1, 2] and twin["y"] == [35.0, 40.0, 44.0]
    assert trace(lat, f"{BOARD}: predicted latency (silicon)")["y"] == [35 / 3, 40 / 3, 44 / 3]
    assert trace(lat, f"{TWIN}: latency budget")["y"] == [50.0, 50.0]
    assert trace(lat, f"{BOARD}: latency budget")["y"] == [20.0, 20.0]
    accuracy = trace(lat, "validation accuracy")
    assert accuracy["yaxis"] == "y2" and accuracy["y"] == [0.5, 0.6, 0.7]
    assert "mixed sources" in lat["layout"]["title"]["text"]
    mem = figs["epochs_memory"]
    assert trace(mem, f"{TWIN}: SRAM (arena) budget")["y"] == [100_000 / 1024] * 2
    assert trace(mem, f"{TWIN}: flash (plan)")["yaxis"] == "y2"
    assert not [t for t in mem["data"] if t["name"] == f"{BOARD}: SRAM (arena) budget"]

    # (b) the Pareto front on the twin over candidates and epoch argmaxes
    front = trace(figs["pareto"], f"{TWIN}: Pareto front (3)")
    assert list(zip(front["x"], front["y"], strict=True)) == [
        (30.0, 0.80), (45.0, 0.85), (60.0, 0.90)]
    points = trace(figs["pareto"], f"{TWIN}: candidates")
    assert sorted(points["x"]) == [30.0, 45.0, 48.0, 60.0]
    assert trace(figs["pareto"], f"{TWIN}: epoch argmax")["y"] == [0.5, 0.6, 0.7]

    # (c) predicted vs measured, the interval as whiskers, labelled by what was measured
    ver = figs["verified"]
    twin_v = trace(ver, f"{TWIN} (cycle-model latency)")
    assert twin_v["x"] == [45.0] and twin_v["y"] == [47.25]
    assert twin_v["error_x"]["array"] == [3.0] and twin_v["error_x"]["arrayminus"] == [2.0]
    assert trace(ver, f"{BOARD} (measured latency)")["y"] == [16.0]
    diagonal = trace(ver, "y = x (prediction exact)")
    assert diagonal["x"] == diagonal["y"] and diagonal["x"][1] >= 48.0
    assert "mixed sources" in ver["layout"]["yaxis"]["title"]["text"]

    # (d) the table, and the twin labelled as a twin
    text = " ".join(html.split())
    assert "cycle-model latency" in text and "vs silicon" in text
    assert "neither is silicon" in text and "<strong>Mixed sources:</strong>" in text
    assert "47.250 ms <span class=\"kind cycle-model\"" in text
    assert "16.000 ms <span class=\"kind measured\"" in text
    assert "+0.0 %" not in text and "-4.8 %" in text  # (45 − 47.25) / 47.25
    # "d" is over the SRAM budget (predicted), "b" within it (measured)
    d_row = text.split("<code>d</code></td>")[1].split("</tr>")[0]  # its row on the twin
    assert "117.2 KiB <span class=\"muted\">pred.</span> / 97.7 KiB <span class=\"verdict fail\">" \
        in d_row
    b_row = text.split("<code>b</code></td>")[1].split("</tr>")[0]
    assert "93.8 KiB / 97.7 KiB <span class=\"verdict pass\">" in b_row
    # best within every budget: "b" (0.85), not the more accurate "d" (over budget)
    assert "Best candidate: <code>b</code>, accuracy 85.0 %" in text
    assert 'href="/api/v1/fits/ops_line-twin-1"' in html
    assert '<a href="/searches" class="here">Searches</a>' in html


def test_the_list_of_runs(client: TestClient) -> None:
    first = seed_run(client, name="first")
    second = client.post("/api/v1/searches", json={
        "name": "second", "space": "vww", "devices": [TWIN]}).json()["id"]
    client.patch(f"/api/v1/searches/{second}", json={"state": "failed", "error": "diverged"})
    html = client.get("/searches").text
    text = " ".join(html.split())
    assert text.index(f'href="/searches/{second}"') < text.index(f'href="/searches/{first}"')
    first_row = text.split(f'<a href="/searches/{first}">first</a>')[1].split("</tr>")[0]
    assert "<code>b</code> 85.0 %" in first_row and "within budgets" in first_row
    assert '<td class="num">3</td>' in first_row and "4 (1)" in first_row
    assert f'href="/device/{BOARD}"' in first_row and "running" in first_row
    second_row = text.split(f'<a href="/searches/{second}">second</a>')[1].split("</tr>")[0]
    assert 'class="state failed"' in second_row and "–" in second_row
    # what a run says it found is its best candidate
    client.patch(f"/api/v1/searches/{first}", json={"state": "done",
                                                    "result": {"arch_id": "d"}})
    text = " ".join(client.get("/searches").text.split())
    assert "<code>d</code> 90.0 % <span class=\"muted\">found</span>" in text
    assert 'older →' not in text


def test_the_list_pages(client: TestClient) -> None:
    for i in range(SEARCHES_PAGE + 1):
        client.post("/api/v1/searches", json={"name": f"run-{i}", "space": "kws",
                                              "devices": [TWIN]})
    html = client.get("/searches").text
    assert 'href="/searches/1"' not in html and f'href="/searches/{SEARCHES_PAGE + 1}"' in html
    assert 'href="/searches?before=2"' in html
    older = client.get("/searches", params={"before": 2}).text
    assert 'href="/searches/1"' in older and 'href="/searches/2"' not in older
    assert '← newest' in older


def test_an_empty_run_renders(client: TestClient) -> None:
    rid = client.post("/api/v1/searches", json={"name": "<b>fresh</b>", "space": "kws",
                                                "devices": [TWIN]}).json()["id"]
    r = client.get(f"/searches/{rid}")
    assert r.status_code == 200, r.text
    assert figures(r.text) == {}
    assert "No epochs recorded yet" in r.text and "no candidates yet" in r.text
    assert "No verified candidate yet" in r.text and "<b>fresh</b>" not in r.text
    assert "&lt;b&gt;fresh&lt;/b&gt;" in r.text and "cycle-model latency" in r.text
    assert "no search runs yet" not in client.get("/searches").text


def test_unknown_runs_and_no_runs(client: TestClient) -> None:
    assert "no search runs yet" in client.get("/searches").text
    for path in ("/searches/999", "/searches/0", f"/searches/{2**40}"):
        r = client.get(path)
        assert r.status_code == 404 and "There is no search run" in r.text, path


def test_the_pages_ask_for_a_token(secure: TestClient,  # noqa: F811
                                   tokens: dict[str, dict[str, str]]) -> None:  # noqa: F811
    rid = secure.post("/api/v1/searches", json={"name": "x", "space": "kws",
                                                "devices": [TWIN]},
                      headers=tokens["user"]).json()["id"]
    for path, shows in (("/searches", f'href="/searches/{rid}"'),
                        (f"/searches/{rid}", f"search run {rid}")):
        r = secure.get(path)
        assert r.status_code == 200 and 'name="token"' in r.text and shows not in r.text
        r = secure.get(path, headers=tokens["lab1"])  # any token reads
        assert r.status_code == 200 and 'name="token"' not in r.text and shows in r.text


def test_the_api_is_in_the_schema_and_the_pages_are_not(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/searches", "/api/v1/searches/{run_id}", "/api/v1/searches/{run_id}/epochs",
            "/api/v1/searches/{run_id}/candidates",
            "/api/v1/searches/{run_id}/candidates/{candidate_id}"} <= set(paths)
    assert not any(p.startswith("/searches") for p in paths)


def test_pareto_front() -> None:
    latency = [10.0, 20.0, 20.0, 30.0, 15.0, 40.0, 10.0]
    accuracy = [0.50, 0.70, 0.60, 0.65, 0.70, 0.90, 0.50]
    # 20/0.70 is dominated by the faster 15/0.70; of the two equal 10/0.50 one is on it
    assert pareto_front(latency, accuracy).tolist() == [True, False, False, False, True, True,
                                                        False]
    assert pareto_front([], []).tolist() == []
    assert pareto_front(np.array([5.0]), np.array([0.1])).tolist() == [True]
