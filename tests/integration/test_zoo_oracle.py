"""Self-tests of the model zoo (``tests/zoo.py``) and the TFLM oracle (``tests/oracle.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.oracle import tflm_arena, tflm_run, tflm_run_all
from tests.zoo import (
    REQUIRED_OPS,
    ZOO_NAMES,
    ZOO_OPS,
    ZOO_SPECS,
    input_details,
    model_ops,
    random_input,
)

pytestmark = pytest.mark.slow


def test_zoo_builds_every_model(zoo: dict[str, Path]) -> None:
    assert list(zoo) == ZOO_NAMES
    for name, path in zoo.items():
        assert path.is_file() and path.stat().st_size > 0, name
        assert path.read_bytes()[4:8] == b"TFL3", name


def test_zoo_names_are_unique_and_static() -> None:
    assert len(set(ZOO_NAMES)) == len(ZOO_NAMES)
    assert set(ZOO_NAMES) == set(ZOO_SPECS) == set(ZOO_OPS)
    for required in ("ds_cnn_kws", "mobilenetv2_block", "resnet_small", "float_io"):
        assert required in ZOO_NAMES


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_converted_ops_match_declared(zoo: dict[str, Path], name: str) -> None:
    ops = set(model_ops(zoo[name]))
    assert ops == ZOO_OPS[name], f"{name}: converter emitted {sorted(ops)}"


def test_zoo_op_coverage(zoo: dict[str, Path]) -> None:
    union: set[str] = set()
    for name, path in zoo.items():
        ops = set(model_ops(path))
        assert ops <= REQUIRED_OPS, (
            f"{name} has ops outside the supported set: {ops - REQUIRED_OPS}"
        )
        union |= ops
    assert union == REQUIRED_OPS, f"missing: {sorted(REQUIRED_OPS - union)}"


def test_zoo_io_types(zoo: dict[str, Path]) -> None:
    for name, path in zoo.items():
        shape, dtype = input_details(path)
        assert shape[0] == 1, name
        assert dtype == (np.float32 if ZOO_SPECS[name].float_io else np.int8), name


def test_build_model_is_deterministic() -> None:
    from tests.zoo import build_model

    assert build_model("conv_bn_stack") == build_model("conv_bn_stack")


def test_random_input_is_seeded(zoo: dict[str, Path]) -> None:
    a = random_input(zoo["conv_same_s1"], seed=3)
    assert a.dtype == np.int8 and a.shape == (1, 8, 8, 3)
    assert np.array_equal(a, random_input(zoo["conv_same_s1"], seed=3))
    assert not np.array_equal(a, random_input(zoo["conv_same_s1"], seed=4))
    assert int(a.max()) - int(a.min()) > 100  # uses much of the calibrated int8 range
    u = random_input(zoo["conv_same_s1"], seed=3, kind="uniform")
    assert u.dtype == np.int8 and u.min() < -120 and u.max() > 120
    f = random_input(zoo["float_io"], seed=0)
    assert f.dtype == np.float32 and f.shape == (1, 6, 6, 3)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_oracle_runs_and_is_deterministic(zoo: dict[str, Path], name: str) -> None:
    model = zoo[name].read_bytes()
    xs = [random_input(model, seed) for seed in range(3)]
    first = [tflm_run(model, x) for x in xs]
    again = tflm_run_all(model, xs)
    for a, b in zip(first, again, strict=True):
        assert a.dtype == (np.float32 if ZOO_SPECS[name].float_io else np.int8)
        assert np.array_equal(a, b)
    # Different inputs give different outputs: the model is not degenerate.
    assert any(not np.array_equal(first[0], o) for o in first[1:]), name


def test_oracle_rejects_wrong_dtype(zoo: dict[str, Path]) -> None:
    x = random_input(zoo["conv_same_s1"], 0).astype(np.float32)
    with pytest.raises(TypeError):
        tflm_run(zoo["conv_same_s1"], x)


def test_softmax_output_quantization(zoo: dict[str, Path]) -> None:
    out = tflm_run(zoo["softmax_head"], random_input(zoo["softmax_head"], 0))
    # int8 softmax output has scale 1/256, zero point -128: probabilities sum to ~1.
    assert abs(float(((out.astype(np.int32) + 128) / 256.0).sum()) - 1.0) < 0.05


@pytest.mark.parametrize("name", ["conv_same_s1", "ds_cnn_kws", "float_io"])
def test_arena_parsing(zoo: dict[str, Path], name: str) -> None:
    arena = tflm_arena(zoo[name])
    assert set(arena) == {"head", "tail", "total"}
    assert arena["head"] > 0 and arena["tail"] > 0
    assert arena["total"] == arena["head"] + arena["tail"]
    assert tflm_arena(zoo[name]) == arena


def test_arena_head_covers_largest_activation_pair(zoo: dict[str, Path]) -> None:
    # ds_cnn_kws: two live [1, 25, 5, 24] int8 maps at once.
    assert tflm_arena(zoo["ds_cnn_kws"])["head"] >= 2 * 25 * 5 * 24
