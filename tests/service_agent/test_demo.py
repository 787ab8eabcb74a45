"""``mcuprof demo`` in-process: SQLite in the working directory, the server on a loopback
port, a real virtual board, the sample models' jobs done; then a client submits to it as a
second terminal would."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bench_firmware.errors import McuprofError
from profiler_client.client import Client
from service.agent import HEALTH_MODEL
from service.demo import follow, start_demo, submit_samples
from tests.service_agent.conftest import free_port

pytestmark = pytest.mark.slow


def test_demo_profiles_the_samples_and_serves(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MCUPROF_DATABASE_URL", raising=False)
    lines: list[str] = []
    demo = start_demo(port=free_port(), boards=["nucleo-f746zg"], echo=lines.append,
                      save_token=True)
    try:
        jobs = submit_samples(demo, echo=lines.append)
        finished = follow(demo, jobs, echo=lines.append, timeout_s=120)
        assert [j.state for j in finished] == ["done", "done"]
        assert (tmp_path / "mcuprof.db").is_file()
        assert any("done: " in line and "cycles on virtual:nucleo-f746zg:demo-f746zg-0" in line
                   for line in lines)
        assert lines[-1] == "2 of 2 jobs done"
        # A second terminal: the client against the demo's server, with the token the
        # demo saved for it (nobody types one).
        with Client(demo.url) as client:
            [again] = client.wait(client.submit(HEALTH_MODEL, ["virtual:nucleo-f746zg"],
                                                runs=1), poll_s=0.2, timeout_s=60)
        assert again.state == "done" and again.measurement is not None
    finally:
        demo.stop()


def test_a_taken_port_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(McuprofError, match=f"port {port} on 127.0.0.1 is taken"):
            start_demo(port=port, boards=["nucleo-f746zg"], echo=lambda _: None)
