"""Honest labels: the dashboard calls a latency measured only when a physical board's DWT
counter counted it (``cycle_source`` dwt-cyccnt on a pyocd board), cycle-model latency for
the virtual twins and Renode-estimated latency for Renode, in tables, figure titles, axes and
legends; figures that mix sources say so; energy says measured (energy monitor) or modeled
(power × time)."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.dashboard.labels import CYCLE_MODEL, MEASURED, RENODE, UNKNOWN, latency_kind
from service.db.engine import Database
from service.db.models import Measurement
from tests.dashboard import seed
from tests.dashboard.test_pages import figures

VIRTUAL = "virtual:nucleo-f446re"
PYOCD = "pyocd:nucleo-f446re"
RENODE_CLASS = "renode:nucleo-f446re"
N_MODELS = 6


def text(html: str) -> str:
    """The page's words, without markup or figure JSON, on one line."""
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def seeded(database: Database, sample: list[seed.SyntheticModel], *classes: str) -> list[int]:
    """The first models measured once on each class, with the cycle source each backend
    reports (bench_firmware.runner.CYCLE_SOURCES)."""
    stored = seed.seed(database, sample[:N_MODELS], list(classes))
    sources = {"virtual": "cycle-model", "pyocd": "dwt-cyccnt", "renode": "renode-estimate"}
    with database.transaction() as s:
        for cls in classes:
            s.execute(update(Measurement).where(Measurement.device_class == cls)
                      .values(cycle_source=sources[cls.split(":")[0]]))
    return stored.model_ids


def axis_titles(fig: dict[str, Any]) -> tuple[str, str]:
    layout = fig["layout"]
    return layout["title"]["text"], layout["yaxis"]["title"]["text"]


def test_the_latency_label_follows_the_cycle_source(
        client: TestClient, database: Database, sample: list[seed.SyntheticModel]) -> None:
    seeded(database, sample, VIRTUAL, PYOCD, RENODE_CLASS)

    virtual = client.get(f"/device/{VIRTUAL}").text
    assert axis_titles(figures(virtual)["scatter"]) == ("Cycle-model latency vs ops",
                                                        "cycle-model latency (ms)")
    assert "cycle-model latency" in figures(virtual)["residuals"]["layout"]["yaxis"][
        "title"]["text"]
    assert "measured latency" not in virtual.lower() and "mixed" not in virtual.lower()
    assert "measurements with a cycle-model latency" in text(virtual)
    assert "the virtual twin's cycle model, not silicon" in text(virtual)

    pyocd = client.get(f"/device/{PYOCD}").text
    assert axis_titles(figures(pyocd)["scatter"]) == ("Measured latency vs ops",
                                                      "measured latency (ms)")
    assert "DWT CYCCNT on the physical board" in text(pyocd)
    assert "cycle-model latency" not in pyocd

    renode = client.get(f"/device/{RENODE_CLASS}").text
    assert axis_titles(figures(renode)["scatter"])[1] == "Renode-estimated latency (ms)"

    # The jobs table tags every latency with its source.
    jobs = text(client.get("/jobs").text)
    assert "ms measured" in jobs and "ms cycle model" in jobs and "ms Renode estimate" in jobs


def test_a_model_measured_on_silicon_and_in_the_twin_says_mixed(
        client: TestClient, database: Database, sample: list[seed.SyntheticModel]) -> None:
    [model_id, *_] = seeded(database, sample, VIRTUAL, PYOCD)
    html = client.get(f"/model/{model_id}").text
    figs = figures(html)
    names = [t["name"] for t in figs["latency"]["data"]]
    assert "measured latency (median, min–max)" in names
    assert "cycle-model latency (median, min–max)" in names
    assert "mixed sources" in figs["latency"]["layout"]["title"]["text"]
    assert "mixed sources" in figs["cycles"]["layout"]["title"]["text"]
    assert sorted(t["name"] for t in figs["cycles"]["data"]) == [
        f"{PYOCD} (measured)", f"{VIRTUAL} (cycle model)"]
    words = text(html)
    assert "Mixed sources:" in words
    assert re.search(r"ms measured latency", words) and re.search(r"ms cycle-model latency",
                                                                    words)
    assert "modeled energy (power × time)" in words
    assert "measured energy" not in words


def test_a_device_class_with_mixed_sources_says_so(
        client: TestClient, database: Database, sample: list[seed.SyntheticModel]) -> None:
    seeded(database, sample, PYOCD)
    with database.transaction() as s:  # some rows from before cycle sources were reported
        first = s.scalars(select(Measurement.id).order_by(Measurement.id).limit(2)).all()
        s.execute(update(Measurement).where(Measurement.id.in_(first))
                  .values(cycle_source=None))
    html = client.get(f"/device/{PYOCD}").text
    title, axis = axis_titles(figures(html)["scatter"])
    assert title.startswith("Latency (mixed sources: measured, source unknown)")
    assert "mixed sources" in axis
    assert "Mixed sources:" in text(html)


def test_measured_energy_is_called_measured(client: TestClient, database: Database,
                                            sample: list[seed.SyntheticModel]) -> None:
    [model_id, *_] = seeded(database, sample, PYOCD)
    with database.transaction() as s:
        s.execute(update(Measurement).where(Measurement.model_id == model_id)
                  .values(energy_source="measured"))
    words = text(client.get(f"/model/{model_id}").text)
    assert "measured energy (energy monitor)" in words
    assert "modeled energy" not in words


def test_latency_kinds() -> None:
    assert latency_kind("dwt-cyccnt", "pyocd") is MEASURED
    assert latency_kind("cycle-model", "virtual") is CYCLE_MODEL
    assert latency_kind("renode-estimate", "renode") is RENODE
    # A simulated board is never called measured, whatever its report said.
    assert latency_kind("dwt-cyccnt", "virtual") is CYCLE_MODEL
    assert latency_kind("dwt-cyccnt", "renode") is RENODE
    assert latency_kind(None, "pyocd") is UNKNOWN
    assert latency_kind("measured", "pyocd") is UNKNOWN
    assert json.dumps(MEASURED.label) == '"measured latency"'
