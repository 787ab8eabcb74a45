"""An agent takes its identity from its token: the README's ``mcuprof agent --server URL
--token T --board ...`` (no --name) registers as the agent the token is bound to, whatever
the host is called; an unbound token falls back to the host name; --name still wins."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.auth import create_token
from service.cli_agent import token_agent_name
from service.db.engine import Database, make_engine
from tests.service_agent.conftest import LiveServer, MakeClient

MCUPROF = [sys.executable, "-c", "from profiler_client.cli import main; main()"]
BOARD = "virtual:nucleo-f746zg"
TOKEN_NAME = "lab-rack-7"  # not this host's name
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def tokens(sqlite_url: str) -> dict[str, str]:
    """A user token, an agent token created with a name and one without."""
    db = Database(make_engine(sqlite_url))
    try:
        with db.transaction() as s:
            out = {"user": create_token(s, role="user", name="viewer")[1],
                   "named": create_token(s, role="agent", name=TOKEN_NAME)[1],
                   "unbound": create_token(s, role="agent")[1]}
    finally:
        db.dispose()
    return out


def test_the_agent_asks_which_agent_its_token_is(live_server: LiveServer,
                                                 make_client: MakeClient,
                                                 sqlite_url: str) -> None:
    secrets = tokens(sqlite_url)
    server = live_server(auth="on")
    assert token_agent_name(make_client(server.url, token=secrets["named"]), None) == TOKEN_NAME
    assert token_agent_name(make_client(server.url, token=secrets["unbound"]), None) is None
    assert token_agent_name(make_client(server.url, token=secrets["named"]), "x") == "x"
    assert token_agent_name(make_client(live_server().url), None) is None  # auth off


def test_readme_agent_command_with_a_named_token(live_server: LiveServer,
                                                 make_client: MakeClient, sqlite_url: str,
                                                 tmp_path: Path) -> None:
    assert socket.gethostname().split(".")[0] != TOKEN_NAME
    secrets = tokens(sqlite_url)
    server = live_server(auth="on")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCUPROF_")}
    env.update(MCUPROF_CACHE_DIR=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "agent.log"
    with open(log_path, "wb") as log:
        agent = subprocess.Popen([*MCUPROF, "agent", "--server", server.url, "--token",
                                  secrets["named"], "--board", BOARD, "--no-health-check"],
                                 env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    viewer = make_client(server.url, token=secrets["user"])
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(d.agent == TOKEN_NAME for d in viewer.devices()):
            if agent.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the agent did not register (exit {agent.returncode}):\n"
                            f"{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.2)
        [device] = viewer.devices()
        assert device.name == f"{BOARD}:{TOKEN_NAME}-0" and device.agent == TOKEN_NAME
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
        agent.wait(STOP_TIMEOUT_S)
    assert agent.returncode == 0, log_path.read_text(errors="replace")[-4000:]
