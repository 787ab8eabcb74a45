"""The dashboard's pages in-process (SQLite and PostgreSQL): what they show, that their
figures are valid Plotly, that plotly.js comes from the service itself, that the per-row
work is SQL (the queries a page runs do not grow with the measurements), pagination, and
sign-in where tokens are required."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from typing import Any

import plotly
import plotly.graph_objects as go
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from service.auth import create_token
from service.dashboard.figures import SVG_POINTS, device_figures, figure_json
from service.dashboard.queries import JOBS_PAGE
from service.dashboard.render import PLOTLY_JS, PLOTLY_URL
from service.db.engine import Database
from tests.dashboard import seed
from tests.dashboard.conftest import DEVICES, PER_BACKBONE
from tests.service.conftest import MakeClient

F446, F746 = DEVICES
FIGURE_RE = re.compile(r'<script type="application/json" id="fig-([a-z_]+)-data">(.*?)</script>',
                       re.S)


def figures(html: str) -> dict[str, dict[str, Any]]:
    """The page's figures, checked by plotly's own validators."""
    found = {name: json.loads(text) for name, text in FIGURE_RE.findall(html)}
    for name, fig in found.items():
        go.Figure(fig)  # raises on any property plotly.js would not understand
        assert f'id="fig-{name}"' in html  # and the page has the div to draw it in
    return found


def scripts(html: str) -> list[str]:
    return re.findall(r'<script src="([^"]+)"', html)


@pytest.fixture
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements run on the test database while the test runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    yield seen
    event.remove(database.engine, "before_cursor_execute", record)


def test_overview(client: TestClient, seeded: seed.Seeded) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert f'href="/device/{F446}"' in html and f'href="/device/{F746}"' in html
    assert "76</div>measurements" in " ".join(html.split()).replace("> ", ">")
    assert 'href="/model/38"' in html  # recent models, newest first
    assert scripts(html) == [s for s in scripts(html) if s.startswith("/static/")]
    assert "cdn" not in html.lower()


def test_a_huge_health_detail_is_not_rendered_whole(client: TestClient,
                                                   database: Database) -> None:
    """A health detail stored before the schema capped it (1 MB) must not bloat every page."""
    from service.db.models import Device

    with database.transaction() as session:
        session.add(Device(name="virtual:nucleo-f446re:x", device_class=F446,
                           board="nucleo-f446re", backend="virtual", health="bad",
                           health_detail="fault " * 200_000))
    for page in ("/", f"/device/{F446}"):
        r = client.get(page)
        assert r.status_code == 200 and "bad" in r.text
        assert len(r.text) < 200_000, page


def test_device_page(client: TestClient, seeded: seed.Seeded) -> None:
    r = client.get(f"/device/{F446}")
    assert r.status_code == 200, r.text
    html = r.text
    assert PLOTLY_URL in scripts(html) and all(s.startswith("/static/") for s in scripts(html))
    figs = figures(html)
    assert set(figs) == {"scatter", "residuals"}
    traces = figs["scatter"]["data"]
    markers = [t for t in traces if t["mode"] == "markers"]
    lines = [t for t in traces if t["mode"] == "lines"]
    assert sorted(t["legendgroup"] for t in markers) == ["(no backbone tag)", "ad", "kws", "vww"]
    assert sum(len(t["x"]) for t in markers) == 3 * PER_BACKBONE + 2
    assert len(lines) == 3 and all(re.search(r"r² 0\.\d{3}, ±10% \d+%", t["name"])
                                   for t in lines)
    assert len(figs["residuals"]["data"]) == 3
    assert "STM32F446RE" in html and "op-count line" in html and "per-layer model" in html
    assert "2 measurement(s) of models without a backbone tag" in html
    assert 'href="/api/v1/fits?device=virtual%3Anucleo-f446re&amp;format=csv"' in html


def test_device_pages_without_data_and_unknown(client: TestClient) -> None:
    r = client.get("/device/virtual:nucleo-l4r5zi")
    assert r.status_code == 200 and "No measurements with a latency" in r.text
    assert figures(r.text) == {}
    r = client.get("/device/warp:drive")
    assert r.status_code == 404 and "unknown backend" in r.text
    assert client.get("/model/12345").status_code == 404
    assert client.get("/").status_code == 200 and "nothing yet" in client.get("/").text


def test_model_page(client: TestClient, seeded: seed.Seeded) -> None:
    r = client.get(f"/model/{seeded.model_ids[0]}")
    assert r.status_code == 200, r.text
    figs = figures(r.text)
    assert set(figs) == {"latency", "cycles", "mac_per_cycle", "memory"}
    assert [t["name"] for t in figs["cycles"]["data"]] == [f"{d} (cycle model)"
                                                           for d in DEVICES]
    assert "cycle model" in figs["cycles"]["layout"]["title"]["text"]
    n_layers = len(seed.sample_models(1)[0].analysis["layers"])
    assert all(len(t["y"]) == n_layers for t in figs["cycles"]["data"])
    latency = {t["name"]: t for t in figs["latency"]["data"]}
    assert set(latency) == {"cycle-model latency (median, min–max)",
                            "predicted: op-count line (95% interval)",
                            "predicted: per-layer model (95% interval)"}
    assert all(t["x"] == list(DEVICES) for t in latency.values())
    memory = figs["memory"]["data"]
    assert [t["name"] for t in memory] == ["arena / SRAM for the arena",
                                          "plan / model flash region"]
    assert len(memory[0]["y"]) == 4  # every board of the catalogue
    assert "kws-s0-0000" in r.text and "backbone=kws" in r.text


def test_a_model_without_measurements(client: TestClient, database: Database,
                                      sample: list[seed.SyntheticModel]) -> None:
    [model_id] = seed.store_models(database, sample[:1])
    r = client.get(f"/model/{model_id}")
    assert r.status_code == 200 and "No per-layer cycles yet" in r.text
    assert set(figures(r.text)) == {"latency", "memory"}


def test_plotly_js_is_served_by_the_service(client: TestClient) -> None:
    r = client.get(PLOTLY_URL, headers={"accept-encoding": "identity"})
    assert r.status_code == 200 and r.content == PLOTLY_JS.read_bytes()
    assert r.headers["content-type"].startswith("text/javascript")
    assert "max-age=31536000" in r.headers["cache-control"]
    assert PLOTLY_URL.endswith(f"plotly-{plotly.__version__}.min.js")
    zipped = client.get(PLOTLY_URL, headers={"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == r.content  # httpx decoded it
    again = client.get(PLOTLY_URL, headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content
    css = client.get("/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/nothing.js").status_code == 404
    assert len(gzip.compress(r.content)) < len(r.content) / 2


def test_pages_run_the_same_queries_with_three_times_the_measurements(
        client: TestClient, database: Database, sample: list[seed.SyntheticModel],
        statements: list[str]) -> None:
    ids = seed.store_models(database, sample)
    seed.seed(database, sample, [F446], model_ids=ids)
    pages = ("/", f"/device/{F446}", f"/model/{ids[0]}", "/jobs")
    for page in pages:
        client.get(page)  # refits once
    rounds: list[list[str]] = []
    for _round in range(2):
        before = len(statements)
        for page in pages:
            assert client.get(page).status_code == 200
        rounds.append(statements[before:])
        seed.seed(database, sample, [F446], model_ids=ids, repeats=2, seed=1)
        for page in pages:
            client.get(page)  # refit on the new data, outside the counted round
    assert len(rounds[0]) == len(rounds[1]), [len(r) for r in rounds]
    warm = rounds[1]
    # Only the model page reads per-layer records, and of one measurement per device.
    layer_reads = [s for s in warm if re.search(r"measurements\.layers\b", s)]
    assert len(layer_reads) == 1, layer_reads


def test_jobs_page_pages_and_filters(client: TestClient, seeded: seed.Seeded) -> None:
    r = client.get("/jobs")
    assert r.status_code == 200
    first = re.findall(r'<td class="num">(\d+)</td>\s*<td><a href="/model/', r.text)
    assert len(first) == JOBS_PAGE and first[0] == "76"
    older = re.search(r'href="(/jobs\?before=\d+)"', r.text)
    assert older is not None
    r2 = client.get(older.group(1))
    second = re.findall(r'<td class="num">(\d+)</td>\s*<td><a href="/model/', r2.text)
    assert len(second) == 76 - JOBS_PAGE and second[0] == str(76 - JOBS_PAGE)
    assert "older →" not in r2.text and "← newest" in r2.text
    only = client.get(f"/jobs?state=done&device={F746}")
    assert "38 job(s)" in only.text
    assert "0 job(s)" in client.get("/jobs?state=failed").text
    assert client.get("/jobs?state=bogus").status_code == 200  # ignored, not an error


def test_large_scatters_switch_to_webgl() -> None:
    import pandas as pd

    n = SVG_POINTS + 1
    frame = pd.DataFrame({"measurement_id": range(n), "model_id": range(n),
                          "model": ["m"] * n, "backbone": ["kws"] * n, "kernels": ["dsp"] * n,
                          "ops": [1_000_000 + i for i in range(n)],
                          "latency_ms": [1.0 + i / n for i in range(n)]})
    figs = device_figures(frame, [])
    assert figs["scatter"]["data"][0]["type"] == "scattergl"
    escaped = figure_json({"data": [{"name": "</script><!--"}]})
    assert "<" not in escaped and json.loads(escaped)["data"][0]["name"] == "</script><!--"
    assert json.loads(figure_json({"data": [{"y": [1.0, float("nan")]}]}))["data"][0]["y"] == \
        [1.0, None]


def test_sign_in_where_tokens_are_required(make_client: MakeClient, database: Database,
                                           seeded: seed.Seeded) -> None:
    secure = make_client(auth="on")
    with database.transaction() as s:
        _row, token = create_token(s, role="user", name="viewer")
    for page in ("/", f"/device/{F446}", "/jobs", "/model/1"):
        r = secure.get(page)
        assert r.status_code == 200 and 'name="token"' in r.text, page  # the sign-in form
        assert "kws-s0-0000" not in r.text
    assert secure.get("/static/dashboard.css").status_code == 200
    bad = secure.post("/login", data={"token": "mcp_wrong", "next": "/jobs"})
    assert bad.status_code == 401 and "unknown or revoked" in bad.text
    good = secure.post("/login", data={"token": token, "next": "/jobs"},
                       follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/jobs"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "76 job(s)" in secure.get("/jobs").text  # the client kept the cookie
    secure.cookies.clear()
    assert 'name="token"' in secure.get("/jobs").text
    headers = {"Authorization": f"Bearer {token}"}
    assert "76 job(s)" in secure.get("/jobs", headers=headers).text
    away = secure.post("/login", data={"token": token, "next": "//evil.example/"},
                       follow_redirects=False)
    assert away.headers["location"] == "/"
