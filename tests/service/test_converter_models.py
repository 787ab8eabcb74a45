"""Uploads of models made by the real TensorFlow converter (slow: imports TensorFlow): a
float model and one with an operator the firmware lacks are refused with 422; an int8 one is
stored."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.service.helpers import upload

pytestmark = pytest.mark.slow
REPRESENTATIVE_SAMPLES = 8


def _representative(shape: tuple[int, ...]) -> Iterator[list[np.ndarray]]:
    rng = np.random.default_rng(0)
    for _ in range(REPRESENTATIVE_SAMPLES):
        yield [rng.uniform(-1, 1, size=(1, *shape)).astype(np.float32)]


@pytest.fixture(scope="module")
def converted() -> dict[str, bytes]:
    pytest.importorskip("tensorflow")
    from tests.tflite_convert import import_tf, to_float_tflite, to_int8_tflite

    tf, keras = import_tf()
    tf.keras.utils.set_random_seed(0)
    conv = keras.Sequential([keras.Input((8, 8, 3), batch_size=1), keras.layers.Conv2D(4, 3)])
    tanh = keras.Sequential([keras.Input((16,), batch_size=1), keras.layers.Dense(8),
                             keras.layers.Activation("tanh")])
    return {
        "float": to_float_tflite(conv),
        "tanh": to_int8_tflite(tanh, lambda: _representative((16,))),
        "int8": to_int8_tflite(conv, lambda: _representative((8, 8, 3))),
    }


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_converter_models(client: TestClient, converted: dict[str, bytes]) -> None:
    r = upload(client, converted["float"], name="float.tflite")
    assert r.status_code == 422 and "float" in r.json()["detail"]
    r = upload(client, converted["tanh"], name="tanh.tflite")
    assert r.status_code == 422 and "TANH" in r.json()["detail"]
    r = upload(client, converted["int8"], name="conv.tflite")
    assert r.status_code == 201 and r.json()["analysis"]["macs"] > 0
    assert len(client.get("/api/v1/models").json()) == 1
