"""The API states a twin measurement's error band against silicon (issue #10): worked out when
read, from the board and the cycle source, so an agent cannot state its own; silicon (DWT
cycles on a pyocd board) and sources without a band carry none."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from bench_firmware.backends.virtual.error_band import error_band
from tests.service.helpers import measurement
from tests.service.test_provenance import PYOCD, VIRTUAL, leased


def test_a_twin_measurement_carries_its_band(client: TestClient, kws_bytes: bytes) -> None:
    band = error_band("nucleo-f446re")
    assert band is not None
    lease_id = leased(client, kws_bytes, VIRTUAL)
    r = client.post(f"/api/v1/leases/{lease_id}/result",
                    json=measurement(VIRTUAL, cycle_source="cycle-model"))
    assert r.status_code == 200, r.text
    stored = r.json()["measurement"]
    assert stored["error_band_pct"] == band.pct == 28
    assert stored["error_band_label"] == "cycle model, ±28 % vs silicon"
    assert stored["error_band_basis"] == band.basis

    listed = client.get("/api/v1/measurements", params={"device": VIRTUAL}).json()
    assert [m["error_band_pct"] for m in listed] == [28]
    job = client.get(f"/api/v1/jobs/{r.json()['id']}").json()
    assert job["measurement"]["error_band_label"] == band.label
    rows = list(csv.DictReader(io.StringIO(client.get(
        "/api/v1/measurements", params={"format": "csv"}).text)))
    assert rows[0]["error_band_pct"] == "28.0"
    assert rows[0]["error_band_label"] == band.label


def test_silicon_carries_no_band(client: TestClient, kws_bytes: bytes) -> None:
    lease_id = leased(client, kws_bytes, PYOCD)
    r = client.post(f"/api/v1/leases/{lease_id}/result",
                    json=measurement(PYOCD, cycle_source="dwt-cyccnt"))
    assert r.status_code == 200, r.text
    stored = r.json()["measurement"]
    assert stored["error_band_pct"] is None and stored["error_band_label"] is None


def test_an_unstated_cycle_source_carries_no_band(client: TestClient, kws_bytes: bytes) -> None:
    """A twin report whose cycles are not the cycle model's (here the helper's 'virtual'
    source, which no backend sends) gets no band: the band describes the cycle model."""
    lease_id = leased(client, kws_bytes, VIRTUAL)
    r = client.post(f"/api/v1/leases/{lease_id}/result", json=measurement(VIRTUAL))
    assert r.status_code == 200, r.text
    assert r.json()["measurement"]["error_band_pct"] is None
