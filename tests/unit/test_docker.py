"""The Dockerfile and docker-compose.yml, checked without a Docker daemon
(scripts/docker_check.py: hadolint, ShellCheck, the parsed Dockerfile, docker/constraints.txt
and Docker Compose's own `config`), and each check shown to catch what it is for.

The image build itself needs buildah and root: `make docker-build`, not part of the tests.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docker_check",
                                                  ROOT / "scripts" / "docker_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docker_check"] = module
    spec.loader.exec_module(module)
    return module


dc = _load()


def test_dockerfile_and_compose_pass_every_check() -> None:
    findings = dc.run_checks()
    assert not findings, "\n".join(map(str, findings))


def test_hadolint_flags_an_unpinned_pip_install(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm-slim\nRUN pip install requests\n")
    monkeypatch.setattr(dc, "DOCKERFILE", bad)
    rules = " ".join(str(f) for f in dc.check_hadolint())
    assert "DL3013" in rules  # pin versions in pip


def test_the_parsed_dockerfile_is_checked(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    text = dc.DOCKERFILE.read_text()
    text = text.replace("COPY migrations migrations", "COPY migration migrations")
    text = "\n".join(line for line in text.splitlines()
                     if not line.startswith(("USER ", "HEALTHCHECK ", "  CMD [")))
    bad = tmp_path / "Dockerfile"
    bad.write_text(text)
    monkeypatch.setattr(dc, "DOCKERFILE", bad)
    found = "\n".join(str(f) for f in dc.check_dockerfile())
    assert "COPY source migration does not exist" in found
    assert "migrations is never copied" in found
    assert "no HEALTHCHECK" in found
    assert "no USER" in found


def test_dockerignore_keeps_the_venv_out_and_the_sources_in() -> None:
    patterns = dc.dockerignore_patterns()
    for path in (".venv", ".venv/bin/python", "build/host/mp_host", ".git/HEAD",
                 "service/__pycache__/app.cpython-311.pyc"):
        assert dc.ignored(path, patterns), path
    for path in ("bench_firmware/build.py", "service/api/app.py", "migrations/env.py",
                 "docker/constraints.txt", "pyproject.toml", "README.md"):
        assert not dc.ignored(path, patterns), path


def test_constraints_drift_is_reported(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "constraints.txt"
    text = dc.CONSTRAINTS.read_text().replace("\nclick==", "\nclick==0.0.1+")
    stale.write_text("\n".join(line for line in text.splitlines()
                               if not line.startswith("fastapi==")) + "\n")
    monkeypatch.setattr(dc, "CONSTRAINTS", stale)
    found = "\n".join(str(f) for f in dc.check_constraints())
    assert "fastapi (pyproject.toml) is not pinned" in found
    assert "click==0.0.1" in found
    assert "--write-constraints" in found


def test_compose_checks_catch_a_token_in_the_environment_and_bad_options() -> None:
    config, findings = dc.compose_config()
    assert not findings and config is not None
    agent = config["services"]["agent"]
    agent["environment"]["MCUPROF_TOKEN"] = "mcp_" + "x" * 40
    agent["volumes"] = []
    agent["command"] = [*agent["command"], "--no-such-option"]
    config["services"]["api"]["ports"][0]["host_ip"] = "0.0.0.0"
    found = "\n".join(str(f) for f in [*dc.check_compose(config),
                                       *dc.check_compose_cli(config)])
    assert "MCUPROF_TOKEN in the environment" in found
    assert "is on no volume" in found
    assert "No such option '--no-such-option'" in found
    assert "on every interface" in found


def test_compose_rejects_an_invalid_file(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(dc.COMPOSE.read_text().replace("stop_grace_period: 40s",
                                                  "stop_grace_perod: 40s"))
    monkeypatch.setattr(dc, "COMPOSE", bad)
    config, findings = dc.compose_config()
    assert config is None
    assert "stop_grace_perod" in "\n".join(map(str, findings))


def test_the_provision_service_is_idempotent(tmp_path: Path) -> None:
    """docker/provision-tokens.sh, as the compose "provision" service runs it (SQLite here):
    tokens created once, in files only their owner reads; found in place on the next start;
    registered again from the files in a new database."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    env = {**os.environ, "MCUPROF_TOKEN_DIR": str(tokens),
           "MCUPROF_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MCUPROF_AGENT_NAME", None)

    def provision() -> str:
        proc = subprocess.run(["sh", str(ROOT / "docker" / "provision-tokens.sh")], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert provision().count("created in") == 2
    for name in ("agent", "user"):
        assert stat.S_IMODE((tokens / name).stat().st_mode) == 0o600
    first = {name: (tokens / name).read_text() for name in ("agent", "user")}
    assert provision().count("is in place") == 2
    env["MCUPROF_DATABASE_URL"] = f"sqlite:///{tmp_path / 'b.db'}"
    assert provision().count("registered from") == 2
    assert {name: (tokens / name).read_text() for name in ("agent", "user")} == first
