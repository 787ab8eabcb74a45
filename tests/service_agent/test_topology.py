"""The multi-host topology without Docker, as ``docker-compose.yml`` deploys it: PostgreSQL,
``mcuprof serve`` in a subprocess on a free loopback port (tokens required), and
``mcuprof agent`` subprocesses with virtual boards, talking over HTTP. Everything is real:
the server, the database, the agents, the emulated boards and their firmware.

- two agents, health checks on, ``mcuprof submit --wait --json`` gets measurements back;
- concurrency: 4 agent processes, 40 jobs: each done exactly once, one measurement each;
- a fault: an agent killed with SIGKILL mid-job; its lease expires, another agent finishes
  the job; no job lost, no duplicate measurement.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from profiler_client.client import Client
from service.agent import SAMPLES_DIR
from tests.service_agent.conftest import free_port

pytestmark = pytest.mark.slow

KWS = SAMPLES_DIR / "kws_tiny.tflite"
FAST_BOARD = "virtual:nucleo-f746zg"  # the quickest virtual board to emulate
SLOW_BOARD = "virtual:nucleo-f446re"
MCUPROF = [sys.executable, "-c", "from profiler_client.cli import main; main()"]
START_TIMEOUT_S = 30.0
JOB_TIMEOUT_S = 150.0
LONG_RUNS = 12  # timed runs of the job an agent is killed in the middle of
USER_TOKEN = "mcp_test_user_" + "u" * 24
STOP_TIMEOUT_S = 30.0


def base_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCUPROF_")}
    env.update(MCUPROF_DATABASE_URL=database_url, MCUPROF_CACHE_DIR=str(tmp_path / "cache"),
               MCUPROF_AUTH="on", PYTHONUNBUFFERED="1")
    if "MCUPROF_BUILD_DIR" in os.environ:
        env["MCUPROF_BUILD_DIR"] = os.environ["MCUPROF_BUILD_DIR"]
    env.update(extra)
    return env


def mcuprof(*args: str, env: dict[str, str], timeout_s: float = 60.0,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*MCUPROF, *args], env=env, capture_output=True, text=True,
                          timeout=timeout_s)
    if check and done.returncode != 0:
        raise AssertionError(f"mcuprof {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


class Topology:
    """A server subprocess and its agent subprocesses; logs under ``tmp_path``."""

    def __init__(self, tmp_path: Path, database_url: str, **server_env: str) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = base_env(tmp_path, database_url, **server_env)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        mcuprof("token", "create", "--role", "user", "--name", "tester", "--value", USER_TOKEN,
                env=self.env)
        self.server = self._spawn("server", "serve", "--host", "127.0.0.1", "--port",
                                  str(self.port))
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{self.url}/openapi.json", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mcuprof serve did not start:\n{self.log('server')}")
            time.sleep(0.1)
        self.user = Client(self.url, USER_TOKEN)

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None,
               ) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([*MCUPROF, *args], env=env or self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.tmp_path / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def agent(self, name: str, *boards: str, health: bool = False) -> subprocess.Popen[bytes]:
        """``mcuprof agent`` with its own agent token (bound to ``name``)."""
        token = mcuprof("token", "create", "--role", "agent", "--name", name,
                        env=self.env).stdout.strip()
        args = ["agent", "--server", self.url, "--name", name, "--poll", "0.2", "--grace", "5"]
        for board in boards:
            args += ["--board", board]
        if not health:
            args.append("--no-health-check")
        return self._spawn(name, *args, env={**self.env, "MCUPROF_TOKEN": token})

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{name} did not stop within {STOP_TIMEOUT_S:.0f} s:\n"
                                 f"{self.log(name)}") from None

    def close(self) -> None:
        self.user.close()
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)}" for name in self.procs)


@pytest.fixture
def topology(tmp_path: Path, pg_url: str) -> Iterator[Callable[..., Topology]]:
    """``topology(**server_env)``: a server on a fresh PostgreSQL database."""
    worlds: list[Topology] = []

    def make(**server_env: str) -> Topology:
        worlds.append(Topology(tmp_path, pg_url, **server_env))
        return worlds[-1]

    yield make
    for world in worlds:
        world.close()


def wait_all(world: Topology, job_ids: list[int]) -> None:
    try:
        world.user.wait(job_ids, poll_s=0.5, timeout_s=JOB_TIMEOUT_S)
    except Exception as e:
        raise AssertionError(f"{e}\n{world.logs()}") from e


def test_two_agents_serve_submit_over_http(topology: Callable[..., Topology]) -> None:
    world = topology()
    world.agent("bench-a", SLOW_BOARD, health=True)
    world.agent("bench-b", FAST_BOARD, health=True)
    env = {**world.env, "MCUPROF_SERVER": world.url, "MCUPROF_TOKEN": USER_TOKEN}
    done = mcuprof("submit", str(KWS), "--device", SLOW_BOARD, "--device", FAST_BOARD,
                   "--tag", "backbone=kws", "--runs", "2", "--wait", "--json", env=env,
                   timeout_s=JOB_TIMEOUT_S, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{world.logs()}"
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["device"] for r in lines) == [SLOW_BOARD, FAST_BOARD]
    for record in lines:
        assert record["state"] == "done"
        assert record["cycles"] > 0 and record["latency_ms"] > 0
        assert record["energy_source"] == "modeled" and record["energy_mj"] > 0
        assert len(record["cycles_per_run"]) == 2 and len(record["layers"]) == 12
        assert record["measured_on"].startswith(record["device"] + ":bench-")
        assert record["firmware_id"] and record["plan_id"]
    # Both boards passed their health check before taking work.
    assert {d.name: d.health for d in world.user.devices()} == {
        f"{SLOW_BOARD}:bench-a-0": "ok", f"{FAST_BOARD}:bench-b-0": "ok"}
    # The other client commands see the same measurements.
    csv = mcuprof("results", str(KWS), "--csv", env=env).stdout.splitlines()
    assert len(csv) == 3 and "latency_ms" in csv[0]
    jobs = [json.loads(line) for line in mcuprof("jobs", "--json", env=env).stdout.splitlines()]
    assert {j["state"] for j in jobs} == {"done"}
    # Without the token, the server refuses with a message that says what to do.
    denied = mcuprof("jobs", env={**env, "MCUPROF_TOKEN": ""}, check=False)
    assert denied.returncode == 2 and "token" in denied.stderr
    # SIGTERM: the agents stop cleanly.
    assert world.stop("bench-a") == 0 and world.stop("bench-b") == 0
    assert "stopped" in world.log("bench-a")


def test_four_agents_forty_jobs_each_done_exactly_once(topology: Callable[..., Topology],
                                                       ) -> None:
    world = topology()
    names = [f"worker-{i}" for i in range(4)]
    for name in names:
        world.agent(name, FAST_BOARD)
    model = world.user.upload_model(KWS)
    job_ids = [job.id for _ in range(40)
               for job in world.user.submit(model.id, [FAST_BOARD], runs=1, warmup=0)]
    wait_all(world, job_ids)
    jobs = [world.user.job(i) for i in job_ids]
    assert Counter(j.state for j in jobs) == {"done": 40}, world.logs()
    assert all(j.attempts == 1 and len(j.history) == 1 for j in jobs)
    measurements = world.user.measurements(model_id=model.id, limit=1000)
    assert sorted(m.job_id for m in measurements) == sorted(job_ids)  # one each, no duplicate
    by_agent = Counter(m.device.rsplit(":", 1)[1].rsplit("-", 1)[0] for m in measurements)
    assert len(by_agent) >= 2, f"only {by_agent} did work"
    for name in names:
        assert world.stop(name) == 0


def test_a_killed_agents_job_is_finished_by_another(topology: Callable[..., Topology]) -> None:
    world = topology(MCUPROF_LEASE_SECONDS="3", MCUPROF_EXPIRE_INTERVAL_SECONDS="0.5")
    world.agent("doomed", SLOW_BOARD)
    model = world.user.upload_model(KWS)
    # Long enough to be killed in the middle of, also on the C cycle model: about 0.4 s of
    # host time per reference-kernel run.
    [long_job] = world.user.submit(model.id, [SLOW_BOARD], runs=LONG_RUNS, warmup=0,
                                   kernels="ref")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while world.user.job(long_job.id).state != "leased":
        assert time.monotonic() < deadline, world.logs()
        time.sleep(0.1)
    more = world.user.submit(model.id, [SLOW_BOARD], runs=1, warmup=0)
    time.sleep(1.0)  # well inside the long job
    assert world.stop("doomed", signal.SIGKILL) == -signal.SIGKILL
    assert world.user.job(long_job.id).state == "leased"  # nobody told the server
    world.agent("rescuer", SLOW_BOARD)
    job_ids = [long_job.id, *(j.id for j in more)]
    wait_all(world, job_ids)
    rescued = world.user.job(long_job.id)
    assert rescued.state == "done" and rescued.attempts == 2, world.logs()
    assert rescued.history[0].device == f"{SLOW_BOARD}:doomed-0"
    assert rescued.history[0].error and "expire" in rescued.history[0].error
    assert rescued.measurement is not None
    assert rescued.measurement.device == f"{SLOW_BOARD}:rescuer-0"
    assert len(rescued.measurement.cycles_per_run) == LONG_RUNS
    measurements = world.user.measurements(model_id=model.id)
    assert sorted(m.job_id for m in measurements) == sorted(job_ids)
    assert all(world.user.job(i).state == "done" for i in job_ids)
    assert world.stop("rescuer") == 0
