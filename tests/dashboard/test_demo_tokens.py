"""`mcuprof demo` makes its own tokens, so nobody types one: the CLI on the same machine
finds the user token in the per-user token file, the printed dashboard link signs the
browser in, and the ready file (for `mcuprof campaign --local`) carries the token. Server
only (no boards): fast."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from profiler_client.cli import main
from profiler_client.client import Client
from service.demo import start_demo, write_ready_file
from tests.service.helpers import SAMPLE_MODEL
from tests.service_agent.conftest import free_port


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MCUPROF_SERVER", "MCUPROF_TOKEN", "MCUPROF_TOKEN_FILE", "MCUPROF_AUTH",
                 "MCUPROF_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_cli_uses_the_demos_token_without_being_told(tmp_path: Path,
                                                         user_config_dir: Path) -> None:
    demo = start_demo(port=free_port(), boards=[], echo=lambda _: None, save_token=True)
    try:
        saved = (user_config_dir / "mcuprof" / "token").read_text().strip()
        assert saved == demo.token
        # A second terminal: no MCUPROF_TOKEN, no --token.
        result = CliRunner().invoke(main, ["submit", str(SAMPLE_MODEL), "--server", demo.url,
                                           "--device", "virtual:nucleo-f446re"])
        assert result.exit_code == 0, result.output
        result = CliRunner().invoke(main, ["jobs", "--server", demo.url])
        assert result.exit_code == 0 and "virtual:nucleo-f446re" in result.output
        with Client(demo.url) as client:
            assert client.whoami().token == "demo-user"
        # Without the token a request is refused: the demo is not open to web pages.
        assert httpx.post(f"{demo.url}/api/v1/jobs/1/cancel").status_code == 401
        # The token file is never sent to a server elsewhere.
        with Client("http://192.0.2.1:8000") as elsewhere:
            assert elsewhere.token is None
    finally:
        demo.stop()


def test_the_printed_link_signs_the_browser_in(tmp_path: Path) -> None:
    lines: list[str] = []
    demo = start_demo(port=free_port(), boards=[], echo=lines.append)
    try:
        assert demo.login_url.startswith(f"{demo.url}/login?code=")
        with httpx.Client() as browser:
            assert "Sign in" in browser.get(f"{demo.url}/").text
            r = browser.get(demo.login_url)
            assert r.status_code == 303 and "samesite=strict" in r.headers["set-cookie"].lower()
            page = browser.get(f"{demo.url}/")
            assert page.status_code == 200 and "Sign in" not in page.text
        # save_token=False (a program that reads the ready file): the file is left alone.
        assert not any("saved in" in line for line in lines)
        ready = tmp_path / "ready.json"
        write_ready_file(ready, demo)
        info = json.loads(ready.read_text())
        assert info["token"] == demo.token and ready.stat().st_mode & 0o077 == 0
        with Client(info["url"], token=info["token"]) as client:
            assert client.jobs() == []
    finally:
        demo.stop()


def test_a_second_start_replaces_the_tokens(tmp_path: Path) -> None:
    first = start_demo(port=free_port(), boards=["nucleo-f446re"], echo=lambda _: None)
    first.stop()
    second = start_demo(port=free_port(), boards=["nucleo-f446re"], echo=lambda _: None)
    try:
        r = httpx.get(f"{second.url}/api/v1/jobs",
                      headers={"Authorization": f"Bearer {first.token}"})
        assert r.status_code == 401
        with Client(second.url, token=second.token) as client:
            assert client.jobs() == []
    finally:
        second.stop()
