"""Shared pytest fixtures: the int8 model zoo (see ``tests/zoo.py``).

Test modules import the helpers from the ``tests`` package::

    from tests.oracle import tflm_run
    from tests.zoo import ZOO_NAMES, random_input

    @pytest.mark.slow
    @pytest.mark.parametrize("name", ZOO_NAMES)
    def test_matches_tflm(zoo, name):
        model = zoo[name].read_bytes()
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
ZOO_CACHE_DIR = REPO_ROOT / "build" / "zoo-cache"

@pytest.fixture(autouse=True)
def user_config_dir(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh XDG config folder for every test: the per-user token file that `mcuprof demo`
    writes and the client reads (``profiler_client.settings.user_token_file``) is the
    test's own, never the developer's (child processes inherit it)."""
    path = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def zoo() -> dict[str, Path]:
    """name -> path of every zoo ``.tflite`` (built once, cached in ``build/zoo-cache``).

    Skips when TensorFlow is not installed and the cache does not already hold the zoo.
    """
    from tests.zoo import ZOO_NAMES, build_zoo, cache_key

    cached = ZOO_CACHE_DIR / cache_key()
    if not all((cached / f"{n}.tflite").is_file() for n in ZOO_NAMES):
        pytest.importorskip("tensorflow", reason="building the model zoo needs tensorflow")
    ZOO_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return build_zoo(ZOO_CACHE_DIR)
