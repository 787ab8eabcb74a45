"""Campaigns end to end: real conversion in worker processes, a real server over HTTP on
SQLite, real agents with virtual boards running the firmware, and the stored fits.

The models come from the KWS space restricted to widths <= 16 channels (``--max-width 16``,
``search.campaign.restrict_widths``): DS-CNN-shaped networks of 0.5-1.2 M ops that convert
in about half a second and run in under a second on a virtual board, so a 30-model
campaign on two boards fits in the test suite. One timed run and no warm-up per job: the
virtual boards' cycle model is deterministic.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from profiler_client.cli import main
from profiler_client.client import Client
from search.campaign import (
    RESULT_FILE,
    STATE_FILE,
    CampaignEvent,
    CampaignState,
    run_campaign,
)
from service.agent import Agent
from tests.service_agent.conftest import ThreadServer, settings_for

pytestmark = pytest.mark.slow

DEVICES = ["virtual:nucleo-f446re", "virtual:nucleo-f746zg"]
MAX_WIDTH = 16
N_MODELS = 30


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorflow", reason="campaigns convert models with tensorflow")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCUPROF_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("MCUPROF_SERVER", "MCUPROF_TOKEN", "MCUPROF_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)


def test_campaign_of_30_kws_models_on_two_boards_stores_fits(tmp_path: Path) -> None:
    """``mcuprof campaign ... --local`` as a new user runs it, then the fits read back from
    the database it left behind, through the fits API."""
    out = tmp_path / "kws"
    args = ["campaign", "--space", "kws", "--n", str(N_MODELS), "--max-width", str(MAX_WIDTH),
            *(a for d in DEVICES for a in ("--device", d)), "--local", "--out", str(out),
            "--runs", "1", "--warmup", "0", "--jobs", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    stdout = result.stdout
    assert (f"campaign kws-seed0-w16: {N_MODELS} models from kws (widths <= 16), seed 0"
            in stdout)
    assert f"{N_MODELS} converted, 0 reused, 0 failed to convert" in stdout
    assert f"{2 * N_MODELS} submitted, 0 reused; {2 * N_MODELS} done, 0 failed" in stdout
    for device in DEVICES:
        assert f"{device}: {N_MODELS} of {N_MODELS} jobs done" in stdout
        assert f"plot: http://127.0.0.1:8000/device/{device}" in stdout
    assert "+-10% accuracy" in stdout and "MAPE" in stdout
    assert "mcuprof serve" in stdout  # how to see the plots once the local server is gone
    assert f"{N_MODELS} models on {', '.join(DEVICES)}" in result.stderr

    summary = json.loads((out / RESULT_FILE).read_text())
    assert summary["complete"] and summary["fits_api"]
    assert len(summary["models"]) == N_MODELS
    assert len(list((out / "models").glob("*.tflite"))) == N_MODELS

    # The fits are stored in the campaign's database: serve it and ask the fits API.
    database = f"sqlite:///{out / 'mcuprof.db'}"
    with ThreadServer(settings_for(database)) as server, Client(server.url) as client:
        ops = {m["name"]: m["ops"] for m in summary["models"]}
        assert len(set(ops.values())) > N_MODELS // 2  # a spread of sizes to fit a line on
        for device in DEVICES:
            [fit] = client.fits(device=device, backbone="kws", kind="ops_line")
            assert fit.n == N_MODELS and fit.n_models == N_MODELS
            assert fit.a_ms_per_op is not None and fit.a_ms_per_op > 0
            # MicroNets RQ1: latency is close to linear in ops within one backbone. With the
            # blocked dsp kernels the per-output requantization and per-layer set-up are a
            # larger share of these width <= 16 models, so the line explains less than it did
            # with the old kernels (r2 0.88 on the F446 twin for this sample, 0.99 before);
            # the per-layer-type model is the one that covers it.
            assert fit.r2 > 0.8, fit
            assert 0.0 <= fit.metrics.acc10 <= 1.0 and fit.metrics.acc10 > 0.5, fit
            assert fit.metrics.mape < 0.15, fit
            stored = summary["device_results"][device]["fit"]
            assert stored["version"] == fit.version and stored["n"] == N_MODELS
            assert client.fit(fit.version).measurement_ids is not None
            measurements = client.measurements(device=device, tag="campaign=kws-seed0-w16")
            assert sorted(m.ops for m in measurements) == sorted(ops.values())
        assert client.request("GET", f"{server.url}/device/{DEVICES[0]}").status_code == 200

    # Run again: everything is reused, nothing is converted or submitted.
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert f"0 converted, {N_MODELS} reused" in again.stdout
    assert f"0 submitted, 0 reused; {2 * N_MODELS} done" in again.stdout


class Boards:
    """A server on SQLite and one in-process agent per device class, over real HTTP."""

    def __init__(self, tmp_path: Path) -> None:
        from service.db import migrate

        database = f"sqlite:///{tmp_path / 'server.db'}"
        migrate.upgrade(database)
        self.server = ThreadServer(settings_for(database)).__enter__()
        self.url = self.server.url
        self.agents: list[Agent] = []
        self.threads: list[threading.Thread] = []
        self.clients: list[Client] = []
        for device in DEVICES:
            client = Client(self.url)
            self.clients.append(client)
            agent = Agent(client, [device], name=device.split("-")[-1], poll_interval_s=0.2,
                          cache_dir=tmp_path / "cache")
            thread = threading.Thread(target=agent.run, daemon=True)
            thread.start()
            self.agents.append(agent)
            self.threads.append(thread)

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()
        for thread in self.threads:
            thread.join(30)
        for client in self.clients:
            client.close()
        self.server.__exit__()


@pytest.fixture
def boards(tmp_path: Path) -> Iterator[Boards]:
    b = Boards(tmp_path)
    yield b
    b.close()


def test_an_interrupted_campaign_resumes_without_submitting_twice(tmp_path: Path,
                                                                  boards: Boards) -> None:
    """Ctrl-C in the middle of submitting (after the server created a model's jobs but
    before the journal recorded the second one), plus a torn journal line; the rerun
    completes the campaign and no model has two jobs on one device."""
    n = 10
    out = tmp_path / "interrupted"
    options: dict[str, Any] = dict(seed=1, out=out, jobs=2, runs=1, warmup=0,
                                   max_width=MAX_WIDTH, poll_s=0.2, timeout_s=240)
    seen: list[CampaignEvent] = []

    def interrupt(event: CampaignEvent) -> None:
        seen.append(event)
        if event.kind == "submitted" and sum(e.kind == "submitted" for e in seen) == 7:
            raise KeyboardInterrupt  # as Ctrl-C would, between the two jobs of model 4

    with Client(boards.url) as client:
        with pytest.raises(KeyboardInterrupt):
            run_campaign("kws", n, DEVICES, client=client, on_event=interrupt, **options)
        first = {j.id: j for j in client.jobs(limit=1000)}
        assert len(first) == 8  # four models, both devices: one POST made both jobs
        journal = out / STATE_FILE
        recorded = [json.loads(line) for line in journal.read_text().splitlines()]
        assert sum(e["e"] == "submitted" for e in recorded) == 7
        with journal.open("a") as f:
            f.write('{"e":"submitted","name":"kws-')  # and the crash tore a line

        result = run_campaign("kws", n, DEVICES, client=client, **options)
        assert result.complete and not result.failed, result.report()
        assert result.reused_jobs == 1  # found on the server, not submitted again
        assert result.submitted == 2 * n - 8
        assert result.reused_conversions >= 4
        jobs = client.jobs(limit=1000)
        assert len(jobs) == 2 * n
        assert set(first) <= {j.id for j in jobs}
        assert Counter((j.model_id, j.device) for j in jobs).most_common(1)[0][1] == 1
        assert all(j.state == "done" for j in jobs)
        for device in DEVICES:
            fit = result.fits[device]
            assert fit is not None and fit.n == n
            assert result.device_results[device].measured == n  # the fit is all ours
            line = result.device_results[device].line
            assert line is not None and line.n == n and line.r2 == pytest.approx(fit.r2)
            assert result.device_results[device].done == n
        frame = result.frame()
        assert len(frame) == 2 * n and (frame["latency_ms"] > 0).all()

        # The journal now knows every job: a third run submits nothing and waits for nothing.
        identity = json.loads(journal.read_text().splitlines()[0])
        with CampaignState.open(out, {k: v for k, v in identity.items()
                                      if k not in ("e", "version")}) as state:
            assert sum(len(m.jobs) for m in state.models.values()) == 2 * n
        third = run_campaign("kws", n, DEVICES, client=client, **options)
        assert third.submitted == 0 and third.reused_jobs == 0 and third.converted == 0
        assert third.complete and len(client.jobs(limit=1000)) == 2 * n
