"""The agent against the real API over loopback HTTP (SQLite), with fake boards that run
plans on the host build of the runtime (real outputs, made-up cycles; ``fake_board.py``).
The real virtual boards are in ``test_topology.py``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench_firmware.errors import McuprofError
from profiler_client.client import Client
from profiler_client.schemas import JobOut
from service.agent import HEALTH_MODEL, HEARTBEAT_S, Agent, board_names
from tests.service_agent.conftest import LiveServer, MakeClient, ThreadServer, free_port
from tests.service_agent.fake_board import Farm

KWS = HEALTH_MODEL
F446 = "virtual:nucleo-f446re"
TIMEOUT_S = 30.0


class Running:
    """An agent running in a thread; stopped (and joined) at the end of the test."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.thread = threading.Thread(target=agent.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.agent.stop()
        self.thread.join(TIMEOUT_S)
        assert not self.thread.is_alive()


@dataclass
class Env:
    """A test's world: servers (``live_server``), fake boards, agents and clients."""

    server: LiveServer
    client: MakeClient
    farm: Farm
    cache: Path
    running: list[Running] = field(default_factory=list)

    def agent(self, server: ThreadServer, devices: list[str], **kwargs: object) -> Running:
        options: dict[str, object] = dict(name="rack1", cache_dir=self.cache,
                                          poll_interval_s=0.05, heartbeat_s=0.5,
                                          backend_factory=self.farm.factory,
                                          shutdown_grace_s=5.0)
        options.update(kwargs)
        client = self.client(server.url, retries=1, backoff_s=0.05)
        self.running.append(Running(Agent(client, devices, **options)))  # type: ignore[arg-type]
        return self.running[-1]


@pytest.fixture
def env(live_server: LiveServer, make_client: MakeClient, tmp_path: Path) -> Iterator[Env]:
    world = Env(live_server, make_client, Farm(), tmp_path / "cache")
    yield world
    for running in world.running:
        if running.thread.is_alive():
            running.stop()


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_jobs(client: Client, jobs: list[JobOut]) -> list[JobOut]:
    return client.wait(jobs, poll_s=0.05, timeout_s=TIMEOUT_S)


def test_board_names() -> None:
    assert board_names("rack1", [F446, F446, "virtual:nucleo-f746zg"]) == [
        "virtual:nucleo-f446re:rack1-0", "virtual:nucleo-f446re:rack1-1",
        "virtual:nucleo-f746zg:rack1-0"]
    assert board_names("rack1", ["pyocd:nucleo-f446re:066DFF"]) == ["pyocd:nucleo-f446re:066DFF"]
    with pytest.raises(McuprofError, match="named by its probe"):
        board_names("rack1", ["pyocd:nucleo-f446re"])
    with pytest.raises(McuprofError, match="host build has no board"):
        board_names("rack1", ["host"])
    with pytest.raises(McuprofError, match="given twice"):
        board_names("rack1", ["virtual:nucleo-f446re:a", "virtual:nucleo-f446re:a"])
    with pytest.raises(McuprofError, match="unknown board"):
        board_names("rack1", ["virtual:nucleo-f000"])


def test_a_job_is_leased_run_and_reported(env: Env) -> None:
    server = env.server()
    running = env.agent(server, [F446])
    user = env.client(server.url)
    wait_for(lambda: any(d.health == "ok" for d in user.devices()), "a healthy board")
    [job] = user.submit(KWS, [F446], runs=3, warmup=2, kernels="ref")
    [done] = wait_jobs(user, [job])
    assert done.state == "done" and done.attempts == 1
    m = done.measurement
    assert m is not None
    assert m.device == "virtual:nucleo-f446re:rack1-0" and m.device_class == F446
    assert m.cycles_per_run == [m.cycles_per_run[0] + i for i in range(3)]
    assert m.cycles == m.cycles_per_run[1]
    assert m.latency_ms == pytest.approx(m.cycles / 180e3)
    assert m.energy_source == "modeled" and m.kernels == "ref"
    assert m.firmware_id == "fa4efa4efa4efa4e" and m.flash_bytes == 25_000 + m.plan_bytes
    assert m.plan_id is not None and len(m.plan_id) == 16
    assert len(m.layers) == 12 and all(layer.cycles for layer in m.layers)
    assert len(m.output) == 12
    [device] = user.devices()
    assert device.health == "ok" and "cycles" in (device.health_detail or "")
    running.stop()
    assert env.farm.closed == ["virtual:nucleo-f446re:rack1-0"]


def test_models_are_downloaded_once(env: Env) -> None:
    server = env.server()
    running = env.agent(server, [F446], health_checks=False)
    downloads: list[str] = []
    fetch = running.agent.client.model_file

    def counting(model: int | str) -> bytes:
        downloads.append(str(model))
        return fetch(model)

    running.agent.client.model_file = counting  # type: ignore[method-assign]
    user = env.client(server.url)
    first = wait_jobs(user, user.submit(KWS, [F446]))
    second = wait_jobs(user, user.submit(KWS, [F446], runs=2))
    assert [j.state for j in first + second] == ["done", "done"]
    assert len(downloads) == 1
    assert [p.name for p in env.cache.iterdir()] == [f"{user.models()[0].sha256}.tflite"]


def test_board_errors_are_retried_and_the_board_reopened(env: Env) -> None:
    server = env.server()
    env.farm.script("virtual:nucleo-f446re:rack1-0").fail_runs = {1}
    env.agent(server, [F446], health_checks=False)
    user = env.client(server.url)
    [done] = wait_jobs(user, user.submit(KWS, [F446]))
    assert done.state == "done" and done.attempts == 2
    assert "board error" in (done.history[0].error or "")
    assert "scripted" in (done.history[0].error or "")
    assert env.farm.opened == ["virtual:nucleo-f446re:rack1-0"] * 2  # reopened after the error


def test_a_board_that_does_not_open_takes_no_work(env: Env) -> None:
    server = env.server()
    script = env.farm.script("virtual:nucleo-f446re:rack1-0")
    script.open_fails = True
    env.agent(server, [F446], health_checks=False, health_retry_s=0.3)
    user = env.client(server.url)
    [job] = user.submit(KWS, [F446])
    wait_for(lambda: any(d.health == "bad" for d in user.devices()), "a bad health report")
    assert "does not open" in (user.devices()[0].health_detail or "")
    time.sleep(0.5)
    assert user.job(job.id).attempts == 0  # never leased: no attempt burned
    script.open_fails = False  # repaired: the next check passes, the job runs
    [done] = wait_jobs(user, [job])
    assert done.state == "done" and done.attempts == 1
    assert user.devices()[0].health == "ok"


def test_repeated_board_errors_take_the_board_out_of_service(env: Env) -> None:
    server = env.server(max_attempts=10)
    script = env.farm.script("virtual:nucleo-f446re:rack1-0")
    script.fail_runs = {1, 2, 3}
    env.agent(server, [F446], health_checks=False, health_retry_s=0.5)
    user = env.client(server.url)
    jobs = [j for _ in range(4) for j in user.submit(KWS, [F446])]
    wait_for(lambda: any(d.health == "bad" for d in user.devices()), "a bad health report")
    assert "3 jobs in a row failed" in (user.devices()[0].health_detail or "")
    done = wait_jobs(user, jobs)
    assert [j.state for j in done] == ["done"] * 4
    assert sum(j.attempts for j in done) == 4 + 3  # three failed attempts, then all fine


def test_a_job_failing_every_attempt_keeps_every_error(env: Env) -> None:
    server = env.server(max_attempts=2)
    env.farm.script("virtual:nucleo-f446re:rack1-0").fail_runs = {1, 2, 3}
    env.agent(server, [F446], health_checks=False)
    user = env.client(server.url)
    [failed] = wait_jobs(user, user.submit(KWS, [F446]))
    assert failed.state == "failed" and failed.attempts == 2
    assert [bool(a.error and "scripted" in a.error) for a in failed.history] == [True, True]


def test_model_errors_are_not_retried(env: Env) -> None:
    server = env.server()
    env.farm.script("virtual:nucleo-f446re:rack1-0").does_not_fit = True
    env.agent(server, [F446], health_checks=False)
    user = env.client(server.url)
    [failed] = wait_jobs(user, user.submit(KWS, [F446]))
    assert failed.state == "failed" and failed.attempts == 1
    assert "model error" in (failed.error or "") and "does not fit" in (failed.error or "")


@pytest.mark.parametrize(("fault", "message"), [
    ("flip_output", "output differs from the host build's in 1 of 12 bytes"),
    ("cycle_scale", "off the first check's"),
])
def test_an_unhealthy_board_gets_no_work(env: Env, fault: str, message: str) -> None:
    server = env.server()
    script = env.farm.script("virtual:nucleo-f446re:rack1-0")
    script.flip_output = fault == "flip_output"
    env.agent(server, [F446], health_interval_s=0.2, health_retry_s=0.2)
    user = env.client(server.url)
    if fault == "cycle_scale":
        wait_for(lambda: any(d.health == "ok" for d in user.devices()), "a first good check")
        script.cycle_scale = 1.02  # 2 % slower than the first check: over the 1 % allowed
    wait_for(lambda: any(d.health == "bad" for d in user.devices()), "a bad health report")
    [bad] = user.devices()
    assert message in (bad.health_detail or "")
    [job] = user.submit(KWS, [F446])
    time.sleep(0.5)
    assert user.job(job.id).state == "queued"
    # Repaired: the next check passes and the board takes work again.
    script.flip_output, script.cycle_scale = False, 1.0
    [done] = wait_jobs(user, [job])
    assert done.state == "done"


def test_heartbeats_keep_a_job_longer_than_the_lease(env: Env) -> None:
    """The heartbeat period follows the server's lease time (here 1 s, far below the
    agent's default period), so a 2.5 s run keeps its lease."""
    server = env.server(lease_seconds=1.0, expire_interval_seconds=0.2)
    env.farm.script("virtual:nucleo-f446re:rack1-0").run_delay_s = 2.5
    env.agent(server, [F446], health_checks=False, heartbeat_s=HEARTBEAT_S)
    user = env.client(server.url)
    [done] = wait_jobs(user, user.submit(KWS, [F446]))
    assert done.state == "done" and done.attempts == 1


def test_a_cancelled_job_is_abandoned(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    server = env.server()
    script = env.farm.script("virtual:nucleo-f446re:rack1-0")
    script.run_delay_s = 2.0
    env.agent(server, [F446], health_checks=False, heartbeat_s=0.2)
    user = env.client(server.url)
    [job] = user.submit(KWS, [F446])
    with caplog.at_level(logging.INFO, logger="mcuprof.agent"):
        assert script.started.wait(TIMEOUT_S)
        user.cancel(job.id)
        wait_for(lambda: any("result dropped" in r.message for r in caplog.records),
                 "the agent to drop the result")
    assert any("lease" in r.message and "lost" in r.message for r in caplog.records)
    final = user.job(job.id)
    assert final.state == "cancelled" and final.measurement is None
    assert user.measurements() == []


def test_shutdown_releases_leases_it_cannot_finish(env: Env) -> None:
    server = env.server()
    script = env.farm.script("virtual:nucleo-f446re:rack1-0")
    script.run_delay_s = 3.0
    running = env.agent(server, [F446], health_checks=False, shutdown_grace_s=0.2)
    user = env.client(server.url)
    [job] = user.submit(KWS, [F446])
    assert script.started.wait(TIMEOUT_S)
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 2.5  # did not wait for the run
    back = user.job(job.id)
    assert back.state == "queued" and back.attempts == 1
    assert back.history[0].error == "agent shutting down"
    # The worker closes its board once the run it was stuck in returns.
    wait_for(lambda: env.farm.closed == ["virtual:nucleo-f446re:rack1-0"], "the board closed")


def test_shutdown_lets_a_short_job_finish(env: Env) -> None:
    server = env.server()
    script = env.farm.script("virtual:nucleo-f446re:rack1-0")
    script.run_delay_s = 0.5
    running = env.agent(server, [F446], health_checks=False, shutdown_grace_s=10.0)
    user = env.client(server.url)
    [job] = user.submit(KWS, [F446])
    assert script.started.wait(TIMEOUT_S)
    running.stop()
    assert user.job(job.id).state == "done"


def test_the_agent_waits_for_the_server(env: Env) -> None:
    """Started before any server listens: it keeps trying to register, and stops when told."""
    agent = Agent(env.client(f"http://127.0.0.1:{free_port()}", retries=0), [F446],
                  name="early", backend_factory=env.farm.factory, cache_dir=env.cache)
    running = Running(agent)
    time.sleep(0.3)
    assert agent.agent_id is None and running.thread.is_alive()
    running.stop()
    assert env.farm.opened == []


@pytest.mark.parametrize("auth", ["off", "on"])
def test_a_detached_board_is_registered_again(env: Env, sqlite_url: str, auth: str) -> None:
    """The agent's board is detached behind its back (its agent name re-registered without
    it): leases are refused (409 with auth off, 403 with auth on), and the agent registers
    again by itself instead of failing every poll until it is restarted."""
    from service.auth import create_token
    from service.db.engine import Database, make_engine

    tokens: dict[str, str] = {}
    if auth == "on":
        db = Database(make_engine(sqlite_url))
        try:
            with db.transaction() as s:
                tokens = {"user": create_token(s, role="user", name="u")[1],
                          "agent": create_token(s, role="agent", name="rack1")[1]}
        finally:
            db.dispose()
    server = env.server(auth=auth)
    user = env.client(server.url, token=tokens.get("user"))
    options: dict[str, object] = dict(name="rack1", cache_dir=env.cache, poll_interval_s=0.05,
                                      heartbeat_s=0.5, backend_factory=env.farm.factory,
                                      health_checks=False)
    agent = Agent(env.client(server.url, retries=1, backoff_s=0.05,
                             token=tokens.get("agent")), [F446], **options)  # type: ignore[arg-type]
    env.running.append(Running(agent))
    wait_for(lambda: any(d.agent == "rack1" for d in user.devices()), "the board registered")
    detacher = env.client(server.url, token=tokens.get("agent"))
    detacher.register_agent("rack1", [])  # the same agent name, now without the board
    assert all(d.agent is None for d in user.devices())
    [done] = wait_jobs(user, user.submit(KWS, [F446]))
    assert done.state == "done" and done.attempts == 1
    assert [d.agent for d in user.devices()] == ["rack1"]


def test_a_run_over_the_twins_budget_fails_the_job_not_the_board(env: Env) -> None:
    """A job whose runs exceed the virtual board's budget fails at once (a job error, not
    retried) and leaves the board in service: the next job runs on it."""
    from bench_firmware.backends.virtual.backend import VirtualBoard

    server = env.server(max_attempts=3)
    # kws_tiny takes ~14 ms of board time per run on the F446: 20 runs exceed 0.1 s, one does not.
    env.agent(server, [F446], health_checks=False, health_retry_s=60.0,
              backend_factory=lambda device: VirtualBoard(device, budget_s=0.1))
    user = env.client(server.url)
    [failed] = wait_jobs(user, user.submit(KWS, [F446], runs=20, warmup=0))
    assert failed.state == "failed" and failed.attempts == 1
    assert "job error" in (failed.error or "") and "fewer runs" in (failed.error or "")
    [device] = user.devices()
    assert device.health != "bad"
    [done] = wait_jobs(user, user.submit(KWS, [F446], runs=1, warmup=0))
    assert done.state == "done" and done.attempts == 1
