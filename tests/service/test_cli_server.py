"""`mcuprof token ...` and `mcuprof serve`: tokens written straight to the database, the
refusal to serve off loopback without auth, and a real server over loopback HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from profiler_client.cli import main
from service.db.engine import Database, make_engine
from service.db.models import Token

SERVER_START_TIMEOUT = 90.0  # seconds (importing the app is slow on a loaded machine)
MCUPROF = Path(sys.executable).with_name("mcuprof")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh deployment: SQLite in tmp_path, no other MCUPROF_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MCUPROF_")}
    return clean | {"MCUPROF_DATABASE_URL": f"sqlite:///{tmp_path / 'server.db'}"}


def run(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """``mcuprof ARGS`` in-process (the real entry point, with its error handling)."""
    result = CliRunner(env=env).invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


def test_token_create_list_revoke(env: dict[str, str]) -> None:
    code, out, err = run(["token", "create", "--role", "agent", "--name", "lab1"], env)
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("mcp_") and len(secret) > 40 and "not shown again" in err
    db = Database(make_engine(env["MCUPROF_DATABASE_URL"]))
    try:
        with db.transaction(write=False) as s:
            row = s.scalars(select(Token)).one()
            assert (row.role, row.name, row.agent_name) == ("agent", "lab1", "lab1")
            assert secret not in row.token_sha256  # only the hash is stored
    finally:
        db.dispose()
    code, out, _ = run(["token", "list"], env)
    assert code == 0 and "lab1" in out and secret not in out
    code, _, err = run(["token", "create", "--role", "user", "--name", "lab1"], env)
    assert code == 2 and "exists" in err
    code, _, err = run(["token", "create", "--role", "root"], env)
    assert code == 2
    assert run(["token", "revoke", "lab1"], env)[0] == 0
    code, _, err = run(["token", "revoke", "lab1"], env)
    assert code == 2 and "no token named" in err


def test_serve_refuses_public_address_without_auth(env: dict[str, str]) -> None:
    code, _, err = run(["serve", "--host", "0.0.0.0"], env)
    assert code == 2 and "no user token" in err and "mcuprof token create" in err
    code, _, err = run(["serve", "--host", "0.0.0.0"], env | {"MCUPROF_AUTH": "off"})
    assert code == 2 and "MCUPROF_AUTH=off" in err
    code, _, err = run(["serve"], env | {"MCUPROF_MAX_ATTEMPTS": "zero"})
    assert code == 2 and "MCUPROF_MAX_ATTEMPTS" in err


def test_serve_on_loopback_needs_a_user_token_and_says_how(env: dict[str, str]) -> None:
    """Tokens are required on 127.0.0.1 too; the refusal says how to make one, and does not
    suggest binding 127.0.0.1 (that is where it is)."""
    code, _, err = run(["serve", "--host", "127.0.0.1"], env)
    assert code == 2 and "no user token" in err
    assert "mcuprof token create --role user --save" in err and "bind 127.0.0.1" not in err
    code, _, err = run(["serve"], env | {"MCUPROF_AUTH": "on"})
    assert code == 2 and "bind 127.0.0.1" not in err


def test_token_create_save_writes_the_users_token_file(env: dict[str, str],
                                                       user_config_dir: Path) -> None:
    code, out, err = run(["token", "create", "--role", "user", "--save"], env)
    assert code == 0, err
    path = user_config_dir / "mcuprof" / "token"
    assert out == "" and str(path) in err  # not printed: it is in the file
    assert path.read_text().startswith("mcp_") and path.stat().st_mode & 0o077 == 0
    code, _, err = run(["token", "create", "--role", "agent", "--save"], env)
    assert code == 2 and "--save" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`mcuprof serve` with its default settings (auth on), over loopback: (base URL, a
    user token)."""
    yield from _serve(env, tmp_path, [])


@pytest.fixture
def two_workers(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """As ``server``, with ``--workers 2``."""
    yield from _serve(env, tmp_path, ["--workers", "2"])


def _serve(env: dict[str, str], tmp_path: Path, options: list[str]
           ) -> Iterator[tuple[str, str]]:
    if not MCUPROF.exists():
        pytest.skip(f"{MCUPROF} is not installed")
    code, out, err = run(["token", "create", "--role", "user", "--name", "alice"], env)
    assert code == 0, err
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([str(MCUPROF), "serve", "--port", str(port), *options],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{url}/openapi.json").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "mcuprof serve did not start"
            time.sleep(0.2)
        yield url, out.strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


def test_real_server_over_http(server: tuple[str, str], kws_bytes: bytes) -> None:
    url, secret = server
    with httpx.Client(base_url=url) as anonymous:
        assert anonymous.get("/api/v1/models").status_code == 401
        assert anonymous.get("/").status_code == 200
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client:
        r = client.post("/api/v1/models", files={"file": ("kws.tflite", kws_bytes)},
                        data={"tag": "backbone=kws"})
        assert r.status_code == 201, r.text
        jobs = client.post("/api/v1/jobs", json={"model_id": r.json()["id"],
                                                 "devices": ["virtual:nucleo-f446re"]})
        assert jobs.status_code == 201 and jobs.json()[0]["state"] == "queued"
        spec = client.get("/openapi.json").json()
        assert "/api/v1/leases/{lease_id}/result" in spec["paths"]
        # A page of another site cannot write, even with the token; a rebinding name
        # cannot read.
        r = client.post("/api/v1/models", files={"file": ("kws.tflite", kws_bytes)},
                        headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
        r = client.get("/api/v1/models", headers={"Host": f"evil.example:{url.split(':')[-1]}"})
        assert r.status_code == 400


def test_several_worker_processes_share_the_port(two_workers: tuple[str, str],
                                                 tmp_path: Path, kws_bytes: bytes) -> None:
    url, secret = two_workers
    log = (tmp_path / "serve.log").read_text()
    assert "2 API worker processes" in log, log
    headers = {"Authorization": f"Bearer {secret}"}
    for _ in range(8):  # a new connection each time: the kernel hands them to either worker
        with httpx.Client(base_url=url, headers=headers) as client:
            r = client.post("/api/v1/models", files={"file": ("kws.tflite", kws_bytes)})
            assert r.status_code in (200, 201), r.text
            assert client.get("/api/v1/models").status_code == 200
            assert httpx.get(f"{url}/api/v1/models").status_code == 401
    # Each worker process logs its own start (uvicorn: "Started server process [pid]").
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        log = (tmp_path / "serve.log").read_text()
        pids = set(re.findall(r"Started server process \[(\d+)\]", log))
        if len(pids) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(pids) == 2, log


def test_serve_prints_a_login_link_for_the_browser(server: tuple[str, str],
                                                   tmp_path: Path) -> None:
    url, _ = server
    log = (tmp_path / "serve.log").read_text()
    [link] = [word for line in log.splitlines() for word in line.split()
              if word.startswith(f"{url}/login?code=")]
    with httpx.Client() as browser:
        r = browser.get(link)
        assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
        assert "samesite=strict" in r.headers["set-cookie"].lower()
        assert browser.get(f"{url}/api/v1/models").status_code == 200  # the cookie
        assert "Sign in" not in browser.get(f"{url}/").text
    assert httpx.get(link).status_code == 401  # once only
