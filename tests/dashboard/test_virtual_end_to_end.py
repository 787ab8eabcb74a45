"""End to end on a virtual board: models uploaded and submitted over HTTP, run by an agent
on the virtual nucleo-f446re (the real firmware image on its emulator), their measurements
reported through the queue, fitted on the next read, served by the fits API, predicted,
and drawn on the device page."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import httpx
import pytest

from profiler_client.client import Client
from service.agent import Agent
from service.db import migrate
from tests.service.helpers import relu_model
from tests.service_agent.conftest import ThreadServer, settings_for

pytestmark = pytest.mark.slow

F446 = "virtual:nucleo-f446re"
# One-operator models of different sizes. At most 768 outputs: the host's serial reader takes
# lines of up to bench_firmware.protocol.RX_LINE_MAX (4096) bytes, and m-results is one line.
SHAPES = ((2, 2, 8), (4, 4, 4), (4, 4, 8), (8, 8, 4), (6, 6, 8), (8, 8, 8), (8, 8, 12))
JOBS_TIMEOUT_S = 180.0


def test_virtual_board_measurements_are_fitted_served_and_drawn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mcuprof.db'}"
    migrate.upgrade(url)
    with ThreadServer(settings_for(url)) as server, Client(server.url) as client:
        jobs = []
        for h, w, c in SHAPES:
            jobs += client.submit(relu_model(h, w, c), [F446], tags={"backbone": "relu"},
                                  runs=2, warmup=1, name=f"relu-{h}x{w}x{c}")
        agent = Agent(client, [F446], name="e2e", cache_dir=tmp_path / "cache",
                      poll_interval_s=0.1, health_checks=False, shutdown_grace_s=1.0)
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        try:
            done = client.wait(jobs, poll_s=0.2, timeout_s=JOBS_TIMEOUT_S)
        finally:
            agent.stop()
            agent.stop()
            thread.join(30)
        assert [j.state for j in done] == ["done"] * len(SHAPES), [j.error for j in done]

        fits = {f.kind: f for f in client.fits(device=F446, backbone="relu")}
        line = fits["ops_line"]
        assert line.n == len(SHAPES) and line.backbone == "relu"
        assert line.r2 > 0.95 and 0.0 <= line.metrics.acc10 <= 1.0
        assert line.a_ms_per_op is not None and line.a_ms_per_op > 0
        assert fits["per_layer"].n == len(SHAPES)
        measured = {m.id for j in done if (m := j.measurement) is not None}
        assert set(client.fit(line.version).measurement_ids or []) == measured

        prediction = client.predict([F446], model=relu_model(6, 6, 12), backbone="relu")
        [p] = prediction.predictions
        assert {e.model for e in p.estimates} == {"ops_line", "per_layer"}
        assert p.latency_ms is not None and p.energy_mj is not None

        page = httpx.get(f"{server.url}/device/{F446}", timeout=30.0)
        assert page.status_code == 200
        [scatter] = [json.loads(text) for name, text in re.findall(
            r'id="fig-([a-z_]+)-data">(.*?)</script>', page.text, re.S) if name == "scatter"]
        markers = [t for t in scatter["data"] if t["mode"] == "markers"]
        assert [len(t["x"]) for t in markers] == [len(SHAPES)]
        [fitted] = [t for t in scatter["data"] if t["mode"] == "lines"]
        assert fitted["name"] == (f"relu fit: r² {line.r2:.3f}, ±10% {line.metrics.acc10:.0%} "
                                  f"(n={len(SHAPES)})")
