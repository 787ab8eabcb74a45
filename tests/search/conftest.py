"""Fixtures of the search tests: converted models, built once per session."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from search.convert import ConvertedModel


@pytest.fixture(scope="session")
def converted_preset() -> Callable[[str], ConvertedModel]:
    """name -> the preset converted to int8 (memoised; skips without TensorFlow)."""
    pytest.importorskip("tensorflow", reason="converting presets needs tensorflow")
    from search.convert import convert_preset

    cache: dict[str, ConvertedModel] = {}

    def get(name: str) -> ConvertedModel:
        if name not in cache:
            cache[name] = convert_preset(name)
        return cache[name]

    return get
