"""Honest provenance of a reported measurement: ``energy_source: measured`` needs an energy
value and a physical board whose agent registered an energy monitor on it; DWT cycles need
silicon. Each refusal is a 422 whose ``detail`` says what was wrong and what to do, and
stores nothing (the job stays leased)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.helpers import measurement, upload

VIRTUAL = "virtual:nucleo-f446re:rack-0"
PYOCD = "pyocd:nucleo-f446re:066DFF000000000000000001"


def register(client: TestClient, boards: list[dict[str, Any]]) -> Any:
    return client.post("/api/v1/agents", json={"name": "rack", "boards": boards})


def leased(client: TestClient, kws_bytes: bytes, device: str,
           energy_monitor: bool = False) -> int:
    """A job for ``device``'s class, leased by ``device``; returns the lease id."""
    r = register(client, [{"device": device, "energy_monitor": energy_monitor}])
    assert r.status_code == 200, r.text
    assert r.json()["devices"][0]["energy_monitor"] is energy_monitor
    model_id = upload(client, kws_bytes).json()["id"]
    device_class = ":".join(device.split(":")[:2])
    assert client.post("/api/v1/jobs", json={"model_id": model_id,
                                             "devices": [device_class]}).status_code == 201
    grant = client.post("/api/v1/leases", json={"device": device})
    assert grant.status_code == 200, grant.text
    return int(grant.json()["lease_id"])


def refused(client: TestClient, lease_id: int, body: dict[str, Any], *words: str) -> None:
    r = client.post(f"/api/v1/leases/{lease_id}/result", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert all(w in detail for w in words), detail
    job = client.get("/api/v1/jobs").json()[0]
    assert job["state"] == "leased" and job["measurement"] is None


def test_measured_energy_needs_a_value(client: TestClient, kws_bytes: bytes) -> None:
    lease_id = leased(client, kws_bytes, PYOCD, energy_monitor=True)
    refused(client, lease_id, measurement(PYOCD, energy_source="measured", energy_mj=None,
                                          cycle_source="dwt-cyccnt"),
            "energy_mj is missing", "modeled")


def test_measured_energy_from_a_virtual_board_is_refused(client: TestClient,
                                                         kws_bytes: bytes) -> None:
    lease_id = leased(client, kws_bytes, VIRTUAL)
    refused(client, lease_id, measurement(VIRTUAL, energy_source="measured", energy_mj=0.5),
            "virtual board", "'modeled'")
    ok = client.post(f"/api/v1/leases/{lease_id}/result",
                     json=measurement(VIRTUAL, energy_source="modeled", energy_mj=0.5))
    assert ok.status_code == 200 and ok.json()["measurement"]["energy_source"] == "modeled"


def test_measured_energy_needs_a_registered_energy_monitor(client: TestClient,
                                                           kws_bytes: bytes) -> None:
    lease_id = leased(client, kws_bytes, PYOCD, energy_monitor=False)
    body = measurement(PYOCD, energy_source="measured", energy_mj=0.5,
                       cycle_source="dwt-cyccnt")
    refused(client, lease_id, body, "without an energy monitor", "--energy-monitor")
    # The same board registered with its monitor: the same report is stored.
    assert register(client, [{"device": PYOCD, "energy_monitor": True}]).status_code == 200
    ok = client.post(f"/api/v1/leases/{lease_id}/result", json=body)
    assert ok.status_code == 200, ok.text
    assert ok.json()["measurement"]["energy_source"] == "measured"


def test_dwt_cycles_from_a_virtual_board_are_refused(client: TestClient,
                                                     kws_bytes: bytes) -> None:
    lease_id = leased(client, kws_bytes, VIRTUAL)
    refused(client, lease_id, measurement(VIRTUAL, cycle_source="dwt-cyccnt"),
            "DWT", "cycle-model")


@pytest.mark.parametrize("board", [VIRTUAL, "renode:nucleo-f446re:rack-0"])
def test_an_energy_monitor_only_on_a_physical_board(client: TestClient, board: str) -> None:
    r = register(client, [{"device": board, "energy_monitor": True}])
    assert r.status_code == 422 and "only physical boards" in r.json()["detail"]
    assert client.get("/api/v1/devices").json() == []
