"""Sampled architectures of every space build, convert to int8, compile with bench_firmware
and run on the host build bit for bit like TFLite Micro; sidecars rebuild them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench_firmware.boards import BOARDS
from bench_firmware.tflite_model import read_tflite
from search.convert import (
    convert_architecture,
    load_sidecar,
    random_representative,
    rebuild,
    to_int8_tflite,
)
from search.errors import SearchError
from search.keras_builders import BUILDERS, build_keras
from search.sampler import sample
from search.spaces import SKIP, Architecture, get_space
from tests.search.helpers import assert_bit_exact, layer_table

pytestmark = pytest.mark.slow

FIRMWARE_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "ADD",
                "PAD", "RESHAPE", "SOFTMAX", "RELU", "RELU6", "MEAN", "CONCATENATION"}


@pytest.fixture(scope="module", autouse=True)
def _tensorflow() -> None:
    pytest.importorskip("tensorflow", reason="building models needs tensorflow")


@pytest.mark.parametrize("space, shape", [("kws", None), ("ad", None), ("vww", None),
                                          ("vww", (32, 32, 1))])
def test_sampled_architectures_convert_and_run_bit_exact(space: str, shape: tuple | None) -> None:
    for arch in sample(space, 2, seed=11, input_shape=shape):
        model = convert_architecture(arch)
        graph = read_tflite(model.tflite)
        ops = {op.name for op in graph.operators}
        assert ops <= FIRMWARE_OPS, ops - FIRMWARE_OPS
        assert graph.inputs[0].dtype == "int8" and graph.outputs[0].dtype == "int8"
        assert list(graph.inputs[0].shape) == [1, *arch.input_shape]
        assert model.meta["macs"] == arch.network().macs()
        assert model.meta["ops"] >= 2 * model.meta["macs"]
        if space == "vww":
            assert "ADD" in ops  # MobileNetV2's residual blocks
        assert_bit_exact(model.tflite, arch.name)


def test_average_pool_skips_convert_and_run() -> None:
    choices = {n.name: (n.choices[len(n.choices) // 3] if n.kind == "width" else "block")
               for n in get_space("ad").nodes}
    choices.update({"ds1.depth": SKIP, "ds4.depth": SKIP, "ds2.depth": SKIP})
    arch = Architecture("ad", choices)
    model = convert_architecture(arch)
    pools = [r for r in layer_table(model.tflite) if r[0] == "AVERAGE_POOL_2D"]
    assert pools == [("AVERAGE_POOL_2D", (2, 2), (2, 2))] * 2 + [
        ("AVERAGE_POOL_2D", (4, 4), (4, 4))]
    assert_bit_exact(model.tflite, arch.name)


def test_sidecar_tags_and_rebuild(tmp_path: Path) -> None:
    arch = sample("kws", 1, seed=5)[0]
    model = convert_architecture(arch)
    model_path, side_path = model.write(tmp_path)
    assert model_path.name == f"kws-{arch.id}.tflite" and side_path.name == f"kws-{arch.id}.json"
    assert model_path.read_bytes() == model.tflite
    meta = load_sidecar(side_path)
    assert meta["space"] == "kws" and meta["id"] == arch.id
    assert meta["tags"] == {"backbone": "kws", "arch": arch.id}
    assert Architecture.from_dict(meta["arch"]) == arch == rebuild(meta)
    for key in ("macs", "ops", "param_bytes", "arena_bytes", "plan_bytes", "operators",
                "sha256", "network"):
        assert key in meta
    assert set(meta["boards"]) == set(BOARDS)
    for fit in meta["boards"].values():
        assert fit["fits"] == (fit["arena_fits"] and fit["plan_fits"])
    # Same description and seeds: the same bytes (the sidecar really rebuilds the model).
    assert convert_architecture(rebuild(meta)).tflite == model.tflite  # type: ignore[arg-type]
    json.dumps(meta)


def test_user_representative_data_and_its_errors() -> None:
    net = sample("ad", 1, seed=2)[0].network()
    model = build_keras(net, seed=1)
    data = random_representative(net.input_shape, samples=8, seed=4) * 3.0
    a = to_int8_tflite(model, data)
    b = to_int8_tflite(model)  # seeded random calibration by default
    assert read_tflite(a).inputs[0].scale != read_tflite(b).inputs[0].scale
    assert to_int8_tflite(model, list(data)) == a  # a list of samples works as well
    with pytest.raises(SearchError, match=r"sample 0 has shape \[8\].*\[N, 32, 32, 1\]"):
        to_int8_tflite(model, np.zeros((8, 8), np.float32))
    with pytest.raises(SearchError, match="empty"):
        to_int8_tflite(model, [])


def test_per_space_builders() -> None:
    for space, build in BUILDERS.items():
        arch = sample(space, 1, seed=0, input_shape=(32, 32, 1) if space == "vww" else None)[0]
        model = build(arch)
        assert tuple(model.inputs[0].shape) == (1, *arch.input_shape)
        assert tuple(model.outputs[0].shape) == (1, get_space(space).head.classes)
