"""Settings: defaults, environment, loopback detection and the serve refusal rules."""

from __future__ import annotations

import pytest

from service.config import ConfigError, Settings, is_loopback, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("MCUPROF_"):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    s = Settings()
    assert s.database_url == "sqlite:///./mcuprof.db" and s.is_sqlite
    assert (s.host, s.port, s.max_upload_bytes) == ("127.0.0.1", 8000, 16 * 1024 * 1024)
    assert (s.lease_seconds, s.max_attempts, s.auth) == (60.0, 3, "on")
    assert s.auth_required  # on loopback too: any web page can reach 127.0.0.1
    assert s.allowed_hosts == []


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCUPROF_DATABASE_URL", "postgresql://u@db/mcuprof")
    monkeypatch.setenv("MCUPROF_LEASE_SECONDS", "15")
    monkeypatch.setenv("MCUPROF_HOST", "0.0.0.0")
    s = Settings()
    assert s.database_url == "postgresql+psycopg://u@db/mcuprof" and not s.is_sqlite
    assert s.lease_seconds == 15 and s.auth_required


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False),
    ("example.org", False),
])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_rules() -> None:
    assert Settings(host="127.0.0.1").serve_problem(user_tokens=1) is None
    assert Settings(host="127.0.0.1", auth="off").serve_problem(user_tokens=0) is None
    assert Settings(host="0.0.0.0").serve_problem(user_tokens=1) is None
    assert "no user token" in (Settings(host="0.0.0.0").serve_problem(user_tokens=0) or "")
    assert "MCUPROF_AUTH=off" in (Settings(host="0.0.0.0", auth="off")
                                  .serve_problem(user_tokens=5) or "")


def test_serve_without_a_user_token_says_how_to_make_one() -> None:
    """On loopback: how to create and save one, not "bind 127.0.0.1" (it is bound there)."""
    problem = Settings(host="127.0.0.1").serve_problem(user_tokens=0) or ""
    assert "no user token" in problem
    assert "mcuprof token create --role user --save" in problem
    assert "bind 127.0.0.1" not in problem
    problem = Settings(host="0.0.0.0").serve_problem(user_tokens=0) or ""
    assert "mcuprof token create --role user" in problem and "bind" not in problem


def test_auto_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` (no tokens on loopback) was the hole; a leftover value is a clear error."""
    monkeypatch.setenv("MCUPROF_AUTH", "auto")
    with pytest.raises(ConfigError, match="MCUPROF_AUTH"):
        load_settings()


@pytest.mark.parametrize(("bound", "host", "allowed"), [
    ("127.0.0.1", "127.0.0.1", True), ("127.0.0.1", "localhost", True),
    ("127.0.0.1", "[::1]", True), ("127.0.0.1", "evil.example", False),
    ("127.0.0.1", "192.168.1.5", False), ("0.0.0.0", "192.168.1.5", True),
    ("0.0.0.0", "evil.example", False), ("lab.example", "lab.example", True),
])
def test_host_allowed(bound: str, host: str, allowed: bool) -> None:
    assert Settings(host=bound).host_allowed(host) is allowed


def test_allowed_hosts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCUPROF_ALLOWED_HOSTS", "mcuprof.lab.example, Server")
    s = load_settings()
    assert s.allowed_hosts == ["mcuprof.lab.example", "server"]
    assert s.host_allowed("server") and s.host_allowed("MCUPROF.lab.example")
    assert not s.host_allowed("evil.example")
    monkeypatch.setenv("MCUPROF_ALLOWED_HOSTS", "*")
    assert load_settings().host_allowed("evil.example")


def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCUPROF_PORT", "99999")
    with pytest.raises(ConfigError, match="MCUPROF_PORT"):
        load_settings()
    with pytest.raises(ConfigError, match="MCUPROF_AUTH"):
        load_settings(port=1, auth="maybe")


def test_the_client_reads_the_users_token_file_for_local_servers_only(
        monkeypatch: pytest.MonkeyPatch, user_config_dir: object, tmp_path: object) -> None:
    from pathlib import Path

    from profiler_client.settings import client_settings, user_token_file, write_user_token
    from service.agent_settings import agent_settings

    assert client_settings().token is None  # no file yet
    path = write_user_token("mcp_saved_by_the_demo_0123456789")
    assert path == user_token_file() == Path(str(user_config_dir)) / "mcuprof" / "token"
    assert client_settings().token == "mcp_saved_by_the_demo_0123456789"
    assert client_settings(server="http://localhost:9000").token is not None
    assert client_settings(server="http://192.0.2.1:8000").token is None  # never sent away
    assert client_settings(token="mcp_explicit_0123456789abcdef").token == \
        "mcp_explicit_0123456789abcdef"
    monkeypatch.setenv("MCUPROF_TOKEN", "mcp_from_env_0123456789abcdef")
    assert client_settings().token == "mcp_from_env_0123456789abcdef"
    monkeypatch.delenv("MCUPROF_TOKEN")
    assert agent_settings().token is None  # an agent needs its own agent token
