"""The package layers (``[tool.importlinter]`` in pyproject.toml) hold, and the check catches a
reverse import: a copy of the source tree with one upward import planted fails it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bench_firmware", "profiler_client", "service", "search")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev extras (make setup)")
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", "pyproject.toml"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _copy_tree(dest: Path) -> None:
    """The Python sources of the four packages and pyproject.toml: all lint-imports reads."""
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package,
                        ignore=shutil.ignore_patterns("firmware", "samples", "__pycache__",
                                                      "*.repl", "templates", "static"))


def test_the_tree_keeps_its_layers() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(("module", "statement", "contract"), [
    # the lowest layer reaching up into the server (what bench_firmware.runner once did)
    ("bench_firmware/runner.py", "import service.queue", "no package imports one above it"),
    # the client importing the server's modules
    ("profiler_client/errors.py", "import service.api.app", "no package imports one above it"),
    # search reaching past the client into the server
    ("search/sampler.py", "import service.fitting", "never imports service"),
])
def test_a_reverse_import_fails_the_check(tmp_path: Path, module: str, statement: str,
                                          contract: str) -> None:
    _copy_tree(tmp_path)
    planted = tmp_path / module
    planted.write_text(planted.read_text() + f"\n{statement}  # planted by the test\n")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    # the report wraps long contract names: compare with whitespace collapsed
    broken = " ".join(result.stdout.split("Broken contracts", 1)[-1].split())
    assert contract in broken, result.stdout
    assert f"{module[:-3].replace('/', '.')} -> {statement.split()[1]}" in broken, result.stdout
