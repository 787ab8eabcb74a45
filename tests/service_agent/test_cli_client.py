"""The client commands (submit, jobs, results) against the in-memory fake API of
``fake_api.py`` (their HTTP client gets its transport). ``test_topology.py`` runs the same
commands as subprocesses against the real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import profiler_client.commands as commands
from profiler_client.cli import main
from profiler_client.client import Client
from tests.service_agent.fake_api import FakeApi

SAMPLES = Path(__file__).resolve().parents[2] / "bench_firmware" / "samples"
KWS = str(SAMPLES / "kws_tiny.tflite")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()

    def client(url: str | None = None, token: str | None = None, **kwargs: Any) -> Client:
        return Client(url, token, transport=fake.transport(), sleep=lambda _: None, **kwargs)

    monkeypatch.setattr(commands, "Client", client)
    monkeypatch.delenv("MCUPROF_SERVER", raising=False)
    monkeypatch.delenv("MCUPROF_TOKEN", raising=False)
    return fake


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_submit_prints_the_jobs(api: FakeApi) -> None:
    result = run("submit", KWS, "--device", "virtual:nucleo-f446re", "--device",
                 "virtual:nucleo-f746zg", "--tag", "backbone=kws", "--runs", "3")
    assert result.exit_code == 0, result.output
    assert "model 1 kws_tiny.tflite" in result.stdout
    assert "job 1: virtual:nucleo-f446re queued" in result.stdout
    assert "job 2: virtual:nucleo-f746zg queued" in result.stdout
    assert api.models[1].tags == {"backbone": "kws"}
    assert api.jobs[1].runs == 3


def test_submit_wait_json_prints_one_object_per_job(api: FakeApi) -> None:
    api.fail_job_devices = {"virtual:nucleo-l4r5zi"}
    result = run("submit", KWS, "--device", "virtual:nucleo-f446re", "--device",
                 "virtual:nucleo-l4r5zi", "--wait", "--json", "--poll", "0")
    assert result.exit_code == 1  # one job did not finish done
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["job_id"], r["state"], r["device"]) for r in sorted(
        lines, key=lambda r: r["job_id"])] == [(1, "done", "virtual:nucleo-f446re"),
                                               (2, "failed", "virtual:nucleo-l4r5zi")]
    done = next(r for r in lines if r["state"] == "done")
    for field in ("latency_ms", "cycles", "cycles_per_run", "layers", "energy_mj",
                  "energy_source", "arena_bytes", "plan_bytes", "ops", "macs", "output",
                  "board", "measured_on", "firmware_id", "plan_id"):
        assert field in done
    assert done["mac_per_cycle"] == pytest.approx(500 / 180_000)
    failed = next(r for r in lines if r["state"] == "failed")
    assert failed["error"] == "board on fire" and "latency_ms" not in failed
    # Progress goes to stderr (just its label: the runner is not a terminal).
    assert "waiting for jobs" in result.stderr


def test_submit_wait_prints_a_table(api: FakeApi) -> None:
    result = run("submit", KWS, "--device", "virtual:nucleo-f446re", "--wait", "--poll", "0")
    assert result.exit_code == 0, result.output
    assert "1.000 ms, 180,000 cycles, 0.1600 mJ (modeled) on virtual:nucleo-f446re:host-0" \
        in result.stdout


def test_submit_rejects_bad_tags_and_missing_devices(api: FakeApi) -> None:
    result = run("submit", KWS, "--device", "virtual:nucleo-f446re", "--tag", "kws")
    assert result.exit_code == 2 and "not key=value" in result.output
    result = run("submit", KWS)
    assert result.exit_code == 2 and "--device" in result.output


def test_a_refused_model_is_one_line_and_exit_2(api: FakeApi, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"not a model at all")
    result = run("submit", str(bogus), "--device", "virtual:nucleo-f446re")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the file is not a .tflite flatbuffer")
    assert len(result.stderr.strip().splitlines()) == 1


def test_jobs_table_and_json(api: FakeApi) -> None:
    assert "no jobs yet" in run("jobs").stdout
    run("submit", KWS, "--device", "virtual:nucleo-f446re", "--wait", "--poll", "0")
    run("submit", KWS, "--device", "virtual:nucleo-f746zg")
    table = run("jobs").stdout.splitlines()
    assert table[0].split()[:4] == ["job", "model", "device", "state"]
    assert any("done" in line and "1.000 ms" in line for line in table[1:])
    assert any("queued" in line for line in table[1:])
    records = [json.loads(line) for line in run("jobs", "--json").stdout.splitlines()]
    assert [r["state"] for r in records] == ["done", "queued"]
    assert [json.loads(x)["job_id"] for x in
            run("jobs", "--state", "queued", "--json").stdout.splitlines()] == [2]


def test_results_by_path_model_and_job(api: FakeApi) -> None:
    run("submit", KWS, "--device", "virtual:nucleo-f446re", "--device",
        "virtual:nucleo-f746zg", "--wait", "--poll", "0")
    table = run("results", KWS)
    assert table.exit_code == 0
    assert "virtual:nucleo-f446re:host-0" in table.stdout and "modeled" in table.stdout
    csv_lines = run("results", "1", "--csv").stdout.splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("id,job_id,model_id")
    records = [json.loads(x) for x in run("results", "job:2", "--json").stdout.splitlines()]
    assert [(r["job_id"], r["device"]) for r in records] == [(2, "virtual:nucleo-f746zg")]
    missing = run("results", str(SAMPLES / "mobilenet_tiny.tflite"))
    assert missing.exit_code == 2 and "no model with SHA-256" in missing.stderr
    assert run("results", "1", "--csv", "--json").exit_code == 2


def test_an_unreachable_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    def client(url: str | None = None, token: str | None = None, **kwargs: Any) -> Client:
        return Client(url, token, transport=httpx.MockTransport(refuse), sleep=lambda _: None)

    monkeypatch.setattr(commands, "Client", client)
    result = run("jobs", "--server", "http://farm.example:9000")
    assert result.exit_code == 2
    assert "http://farm.example:9000 is not reachable" in result.stderr
    assert "mcuprof serve" in result.stderr
