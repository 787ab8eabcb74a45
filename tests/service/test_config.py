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
    assert (s.lease_seconds, s.max_attempts, s.auth) == (60.0, 3, "auto")
    assert not s.auth_required


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
    assert Settings(host="127.0.0.1").serve_problem(user_tokens=0) is None
    assert Settings(host="127.0.0.1", auth="on").serve_problem(user_tokens=0) is not None
    assert Settings(host="0.0.0.0").serve_problem(user_tokens=1) is None
    assert "no user token" in (Settings(host="0.0.0.0").serve_problem(user_tokens=0) or "")
    assert "MCUPROF_AUTH=off" in (Settings(host="0.0.0.0", auth="off")
                                  .serve_problem(user_tokens=5) or "")


def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCUPROF_PORT", "99999")
    with pytest.raises(ConfigError, match="MCUPROF_PORT"):
        load_settings()
    with pytest.raises(ConfigError, match="MCUPROF_AUTH"):
        load_settings(port=1, auth="maybe")
