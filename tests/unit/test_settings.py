"""Settings of every role: defaults, the environment, invalid values, token files, and the
README's table of them."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bench_firmware.build import build_root
from bench_firmware.errors import McuprofError
from bench_firmware.settings import ConfigError, LocalSettings, local_settings
from profiler_client.client import Client
from profiler_client.settings import DEFAULT_SERVER, ClientSettings, client_settings
from service import settings_doc
from service.agent import default_cache_dir
from service.agent_settings import AgentSettings, agent_settings
from service.cli_agent import agent as agent_cmd
from service.config import Settings, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MCUPROF_* from the shell that runs the tests."""
    for key in list(os.environ):
        if key.startswith("MCUPROF_"):
            monkeypatch.delenv(key)


def token_file(tmp_path: Path, text: str = "mcp_agent_secret\n") -> Path:
    path = tmp_path / "agent.token"
    path.write_text(text)
    path.chmod(0o600)
    return path


# -- defaults and the environment ------------------------------------------------------------


def test_defaults() -> None:
    client = client_settings()
    assert client.server is None and client.server_url == DEFAULT_SERVER
    assert client.token is None and client.token_file is None
    local = local_settings()
    assert local.build_dir is None and local.renode is None
    agent = agent_settings()
    assert agent.agent_poll_s == 2.0 and agent.agent_grace_s == 30.0
    assert agent.models_dir == Path.home() / ".cache" / "mcuprof" / "models"
    assert default_cache_dir() == agent.models_dir


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MCUPROF_SERVER", "https://farm.example:9000/")
    monkeypatch.setenv("MCUPROF_TOKEN", " s3cret ")
    monkeypatch.setenv("MCUPROF_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("MCUPROF_RENODE", "/opt/renode")
    monkeypatch.setenv("MCUPROF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MCUPROF_AGENT_POLL_S", "0.5")
    client = client_settings()
    assert client.server == client.server_url == "https://farm.example:9000"
    assert client.token == "s3cret"
    assert build_root() == tmp_path / "build"
    assert local_settings().renode == "/opt/renode"
    agent = agent_settings()
    assert agent.server_url == "https://farm.example:9000"  # the client's, declared once
    assert agent.agent_poll_s == 0.5
    assert default_cache_dir() == tmp_path / "cache" / "models"
    assert agent_settings(agent_poll_s=3.0).agent_poll_s == 3.0  # an option beats the variable


def test_blank_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCUPROF_SERVER", "")
    monkeypatch.setenv("MCUPROF_TOKEN", "  ")
    monkeypatch.setenv("MCUPROF_BUILD_DIR", "")
    assert client_settings().server is None and client_settings().token is None
    assert local_settings().build_dir is None


def test_token_is_not_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCUPROF_TOKEN", "s3cret")
    assert "s3cret" not in repr(client_settings()) and "s3cret" not in repr(agent_settings())


def test_client_reads_its_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    monkeypatch.setenv("MCUPROF_SERVER", "http://farm.example:9000")
    monkeypatch.setenv("MCUPROF_TOKEN_FILE", str(token_file(tmp_path)))
    with Client(transport=httpx.MockTransport(handler)) as client:
        client.devices()
    assert str(seen[0].url) == "http://farm.example:9000/api/v1/devices"
    assert seen[0].headers["authorization"] == "Bearer mcp_agent_secret"
    # Explicit arguments need no (valid) environment.
    monkeypatch.setenv("MCUPROF_SERVER", "not a url")
    assert Client("http://x:1", "t", transport=httpx.MockTransport(handler)).url == "http://x:1"


# -- invalid values ------------------------------------------------------------------------


@pytest.mark.parametrize("variable, value, read, message", [
    ("MCUPROF_SERVER", "farm.example:9000", client_settings, "must start with http"),
    ("MCUPROF_AGENT_POLL_S", "soon", agent_settings, "valid number"),
    ("MCUPROF_AGENT_GRACE_S", "-1", agent_settings, "greater than or equal to 0"),
    ("MCUPROF_PORT", "70000", load_settings, "less than or equal to 65535"),
])
def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str,
                                          value: str, read: Callable[[], object],
                                          message: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        read()
    assert isinstance(info.value, McuprofError)
    text = str(info.value)
    assert text.startswith("invalid configuration: ") and f"{variable}: " in text
    assert "Value error" not in text  # pydantic's wording stays out of the message
    assert message in text


def test_client_with_an_invalid_server_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCUPROF_SERVER", "farm.example")
    with pytest.raises(McuprofError, match="MCUPROF_SERVER: server URL 'farm.example' must"):
        Client()


# -- tokens from files ---------------------------------------------------------------------


def test_token_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = token_file(tmp_path, "  mcp_from_file  \n# comment lines after the token are ignored\n")
    monkeypatch.setenv("MCUPROF_TOKEN_FILE", str(path))
    assert client_settings().token == "mcp_from_file"
    assert agent_settings().token == "mcp_from_file"


def test_token_file_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the token file .*missing"):
        client_settings(token_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match="is empty"):
        client_settings(token_file=token_file(tmp_path, "\n\n"))
    monkeypatch.setenv("MCUPROF_TOKEN", "user-token")
    monkeypatch.setenv("MCUPROF_TOKEN_FILE", str(token_file(tmp_path)))
    with pytest.raises(ConfigError, match="both MCUPROF_TOKEN and MCUPROF_TOKEN_FILE"):
        client_settings()


def test_an_option_replaces_both_token_variables(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    # A user token left in the shell must not stand in for, or clash with, the agent's file.
    monkeypatch.setenv("MCUPROF_TOKEN", "user-token")
    assert agent_settings(token_file=token_file(tmp_path)).token == "mcp_agent_secret"
    monkeypatch.delenv("MCUPROF_TOKEN")
    monkeypatch.setenv("MCUPROF_TOKEN_FILE", str(tmp_path / "missing"))
    assert agent_settings(token="explicit").token == "explicit"


def test_agent_command_checks_its_token_file_first(tmp_path: Path) -> None:
    result = CliRunner().invoke(agent_cmd, ["--token-file", str(tmp_path / "missing"),
                                            "--board", "virtual:nucleo-f446re"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "cannot read the token file" in str(result.exception)


def test_agent_help_shows_the_safer_token_ways() -> None:
    text = " ".join(CliRunner().invoke(agent_cmd, ["--help"]).output.split())
    assert "--token-file" in text and "MCUPROF_TOKEN_FILE" in text and "`ps`" in text
    assert "MCUPROF_AGENT_POLL_S" in text


# -- the README's table --------------------------------------------------------------------


def readme_settings_section() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Settings\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert match, "README.md has no '## Settings' section"
    return match.group(1)


def test_readme_lists_every_setting() -> None:
    listed = set(re.findall(r"^\| `(MCUPROF_\w+)` \|", readme_settings_section(), flags=re.M))
    declared = {row[0] for row in settings_doc.rows()}
    # Every role's class is in the generator's list, so a new field cannot hide from it.
    assert {c for c, _ in settings_doc.ROLES} == {LocalSettings, ClientSettings, AgentSettings,
                                                  Settings}
    missing = declared - listed
    assert not missing, (f"README.md's Settings table lacks {sorted(missing)}; regenerate it "
                         f"with `.venv/bin/python -m service.settings_doc`")
    assert not listed - declared, f"README.md lists settings nobody declares: {listed - declared}"


def test_readme_table_is_the_generated_one() -> None:
    assert settings_doc.table() in readme_settings_section(), (
        "README.md's Settings table differs from the settings classes' declarations; paste "
        "the output of `.venv/bin/python -m service.settings_doc` into it")
