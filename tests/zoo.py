"""A zoo of small int8 ``.tflite`` models built with the real TensorFlow Lite converter.

Every model is a tiny Keras network with seeded random weights (non-zero biases, BatchNorm
with random statistics where natural) converted to full-integer int8 with
``TFLiteConverter``: ``optimizations=[DEFAULT]``, a seeded representative dataset,
``supported_ops=[TFLITE_BUILTINS_INT8]`` and int8 input/output (except ``float_io``, which
keeps float32 I/O so the converter adds QUANTIZE/DEQUANTIZE). Inputs are declared with
``batch_size=1`` so the converter emits static shapes (no SHAPE/STRIDED_SLICE/PACK).

Usage from tests::

    from tests.zoo import ZOO_NAMES, ZOO_OPS, build_zoo, random_input

    @pytest.mark.parametrize("name", ZOO_NAMES)
    def test_something(zoo, name):          # ``zoo`` is the fixture in conftest.py
        model = zoo[name].read_bytes()
        x = random_input(model, seed=0)

``ZOO_NAMES``, ``ZOO_OPS`` (name -> the set of builtin ops the converted model contains,
checked against the real conversion by ``tests/integration/test_zoo_oracle.py``) and
``ZOO_SPECS`` are available at import time without importing TensorFlow; TensorFlow is
imported only when a model actually has to be built. Built models are cached under
``cache_dir/<key>/<name>.tflite`` (plus ``ops.json``, each model's op list in execution
order) where ``<key>`` hashes the zoo's sources and the TensorFlow/Keras/NumPy versions, so
a rerun with an unchanged zoo costs nothing. Conversion is byte-for-byte deterministic.

Inputs: ``random_input(model, seed)`` draws from the calibration distribution (``signal``)
and quantizes it with the model's input parameters; ``kind="uniform"`` gives i.i.d.
full-range int8 instead (saturates many layers: a clamping stress test).

The zoo's sources: ``tests/zoo_kit.py`` (layer factories, the registry), ``tests/zoo_models.py``
(the models), ``tests/zoo_inputs.py`` (reading models, inputs) and this file (building and
caching). Every name is importable from ``tests.zoo``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import io
import json
import os
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tests.tflite_convert import import_tf, to_int8_tflite
from tests.zoo_inputs import input_details, model_ops, random_input, signal
from tests.zoo_kit import REQUIRED_OPS, ZOO_SPECS, ZooSpec, _Kit
from tests.zoo_models import ZOO_NAMES, ZOO_OPS

__all__ = [
    "REQUIRED_OPS",
    "ZOO_NAMES",
    "ZOO_OPS",
    "ZOO_SPECS",
    "ZooSpec",
    "build_model",
    "build_zoo",
    "cache_key",
    "input_details",
    "model_ops",
    "random_input",
    "signal",
]

_REPRESENTATIVE_SAMPLES = 32

# Every file that defines the zoo: a change to any of them is a new cache directory.
_SOURCES = ("zoo.py", "zoo_kit.py", "zoo_models.py", "zoo_inputs.py", "tflite_convert.py",
            "../search/int4.py")

# --------------------------------------------------------------------------------------------
# Building and caching
# --------------------------------------------------------------------------------------------


def _seed_for(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def cache_key() -> str:
    """A hash of the zoo's sources and the TensorFlow/Keras versions (the cache directory)."""
    h = hashlib.sha256()
    for name in _SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    for dist in ("tensorflow", "keras", "numpy"):
        h.update(f"{dist}={_version(dist)};".encode())
    return h.hexdigest()[:16]


def build_model(name: str) -> bytes:
    """Build and convert one zoo model; returns the ``.tflite`` flatbuffer (deterministic)."""
    spec = ZOO_SPECS[name]
    _, keras = import_tf()
    seed = _seed_for(name)
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        inp = keras.Input(spec.input_shape, batch_size=1, name="input")
        out = spec.build(_Kit(keras), inp)
        model = keras.Model(inp, out, name=name)

        shape = (1, *spec.input_shape)

        def representative() -> Iterator[list[np.ndarray]]:
            rng = np.random.default_rng(seed)
            for _ in range(_REPRESENTATIVE_SAMPLES):
                yield [signal(rng, shape)]

        data = to_int8_tflite(model, representative, float_io=spec.float_io,
                              per_tensor=spec.per_tensor)
        keras.backend.clear_session()
    if spec.weight_bits == 4:
        from search.int4 import int4_weights

        data = int4_weights(data, name=name)
    return data


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_zoo(cache_dir: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Build (or reuse from ``cache_dir``) the zoo; returns name -> ``.tflite`` path.

    Models live in ``cache_dir/<cache_key()>/``; only missing ones are built. Writes are
    atomic and serialised with a file lock, so concurrent test processes are safe.
    """
    wanted = list(ZOO_NAMES if names is None else names)
    unknown = [n for n in wanted if n not in ZOO_SPECS]
    if unknown:
        raise KeyError(f"unknown zoo models: {unknown}")
    root = Path(cache_dir) / cache_key()
    root.mkdir(parents=True, exist_ok=True)
    paths = {n: root / f"{n}.tflite" for n in wanted}
    if all(p.is_file() for p in paths.values()):
        return paths
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for name, path in paths.items():
                if path.is_file():
                    continue
                _atomic_write(path, build_model(name))
            if names is None:
                ops = {n: model_ops(p) for n, p in paths.items()}
                _atomic_write(root / "ops.json", json.dumps(ops, indent=1).encode())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return paths

