"""Presets rebuild their reference networks exactly, layer by layer, in the converted model.

The expected tables are written out here from the sources, independently of
``search/presets.py``: MicroNets Table 5 (arXiv 2010.11267), the DS-CNN
``--model_size_info`` lines of ARM-software/ML-KWS-for-MCU ``train_commands.txt``, and the
MLPerf Tiny v0.5 Keras definitions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from search.convert import ConvertedModel
from search.presets import PRESETS
from tests.search.helpers import assert_bit_exact, layer_table

pytestmark = pytest.mark.slow

# MicroNets Table 5: first Conv2D (kernel, channels); DS blocks (channels, stride); AvgPool;
# FC. The first conv has stride 1: the table's AvgPool 25x5 (KWS, input 49x10) and 4x4 (AD,
# input 32x32) are reached by the DS blocks' strides alone.
TABLE5: dict[str, tuple[tuple[int, int], int, list[tuple[int, int]], tuple[int, int], int]] = {
    "micronet-kws-l": ((10, 4), 276, [(248, 2), (276, 1), (276, 1), (248, 1), (248, 1),
                                      (248, 1), (248, 1)], (25, 5), 12),
    "micronet-kws-m": ((10, 4), 140, [(140, 2), (140, 1), (140, 1), (112, 1), (196, 1)],
                       (25, 5), 12),
    "micronet-kws-s": ((10, 4), 84, [(112, 2), (84, 1), (84, 1), (84, 1), (196, 1)],
                       (25, 5), 12),
    "micronet-ad-l": ((3, 3), 276, [(248, 2), (276, 1), (276, 1), (248, 2), (248, 2)],
                      (4, 4), 4),
    "micronet-ad-m": ((3, 3), 192, [(276, 2), (276, 1), (276, 1), (276, 2), (276, 2)],
                      (4, 4), 4),
    "micronet-ad-s": ((3, 3), 72, [(164, 2), (220, 1), (276, 2), (276, 2)], (4, 4), 4),
}


def _table5_rows(name: str) -> list[tuple[Any, ...]]:
    kernel, stem, blocks, pool, classes = TABLE5[name]
    rows: list[tuple[Any, ...]] = [("CONV_2D", kernel, stem, (1, 1), "RELU6")]
    channels = stem
    for width, stride in blocks:  # "DS blocks are 3x3 depthwise + 1x1 pointwise"
        rows.append(("DEPTHWISE_CONV_2D", (3, 3), channels, (stride, stride), "RELU6"))
        rows.append(("CONV_2D", (1, 1), width, (1, 1), "RELU6"))
        channels = width
    rows.append(("AVERAGE_POOL_2D", pool, pool))
    rows.append(("FULLY_CONNECTED", classes, "NONE"))
    return rows


@pytest.mark.parametrize("name", sorted(TABLE5))
def test_micronet_presets_match_table5(converted_preset: Callable[[str], ConvertedModel],
                                       name: str) -> None:
    model = converted_preset(name)
    assert layer_table(model.tflite) == _table5_rows(name)
    assert model.meta["input_shape"] == ([1, 49, 10, 1] if "kws" in name else [1, 32, 32, 1])
    space = "kws" if "kws" in name else "ad"
    assert model.meta["space"] == space and model.meta["preset"] == name
    assert model.tags == {"backbone": space, "arch": model.meta["id"], "preset": name}


# ML-KWS-for-MCU train_commands.txt, DS-CNN lines: --model_size_info, read by
# models.py create_ds_cnn_model as (features, kt, kf, st, sf) per layer; layer 0 is a plain
# conv, the others depthwise + pointwise; ReLU after every batch norm; avg_pool over
# [ceil(49 / st...), ceil(10 / sf...)]; fully connected 12; freeze.py adds the softmax.
DS_CNN: dict[str, str] = {
    "ds-cnn-s": "5 64 10 4 2 2 64 3 3 1 1 64 3 3 1 1 64 3 3 1 1 64 3 3 1 1",
    "ds-cnn-m": "5 172 10 4 2 1 172 3 3 2 2 172 3 3 1 1 172 3 3 1 1 172 3 3 1 1",
    "ds-cnn-l": "6 276 10 4 2 1 276 3 3 2 2 276 3 3 1 1 276 3 3 1 1 276 3 3 1 1 276 3 3 1 1",
}
DS_CNN_POOL = {"ds-cnn-s": (25, 5), "ds-cnn-m": (13, 5), "ds-cnn-l": (13, 5)}


@pytest.mark.parametrize("name", sorted(DS_CNN))
def test_ds_cnn_presets_match_ml_kws_for_mcu(converted_preset: Callable[[str], ConvertedModel],
                                             name: str) -> None:
    v = [int(x) for x in DS_CNN[name].split()]
    layers = [v[1 + 5 * i: 6 + 5 * i] for i in range(v[0])]
    feat, kt, kf, st, sf = layers[0]
    rows: list[tuple[Any, ...]] = [("CONV_2D", (kt, kf), feat, (st, sf), "RELU")]
    channels = feat
    for feat, kt, kf, st, sf in layers[1:]:
        rows.append(("DEPTHWISE_CONV_2D", (kt, kf), channels, (st, sf), "RELU"))
        rows.append(("CONV_2D", (1, 1), feat, (1, 1), "RELU"))
        channels = feat
    pool = DS_CNN_POOL[name]
    rows += [("AVERAGE_POOL_2D", pool, pool), ("FULLY_CONNECTED", 12, "NONE"), ("SOFTMAX",)]
    model = converted_preset(name)
    assert layer_table(model.tflite) == rows
    assert model.meta["input_shape"] == [1, 49, 10, 1]


def test_mlperf_kws_is_the_tiny_ds_cnn(converted_preset: Callable[[str], ConvertedModel]) -> None:
    rows = layer_table(converted_preset("mlperf-kws").tflite)
    assert rows[0] == ("CONV_2D", (10, 4), 64, (2, 2), "RELU")
    assert rows[1:9] == [("DEPTHWISE_CONV_2D", (3, 3), 64, (1, 1), "RELU"),
                         ("CONV_2D", (1, 1), 64, (1, 1), "RELU")] * 4
    assert rows[9:] == [("AVERAGE_POOL_2D", (25, 5), (25, 5)), ("FULLY_CONNECTED", 12, "NONE"),
                        ("SOFTMAX",)]


def test_mlperf_vww_is_mobilenet_v1_quarter(
        converted_preset: Callable[[str], ConvertedModel]) -> None:
    model = converted_preset("mlperf-vww")
    rows = layer_table(model.tflite)
    assert model.meta["input_shape"] == [1, 96, 96, 3]
    assert rows[0] == ("CONV_2D", (3, 3), 8, (2, 2), "RELU")
    widths = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1),
              (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)]
    channels, expected = 8, []
    for width, stride in widths:
        expected += [("DEPTHWISE_CONV_2D", (3, 3), channels, (stride, stride), "RELU"),
                     ("CONV_2D", (1, 1), width, (1, 1), "RELU")]
        channels = width
    assert rows[1:27] == expected
    assert rows[27:] == [("AVERAGE_POOL_2D", (3, 3), (3, 3)), ("FULLY_CONNECTED", 2, "NONE"),
                         ("SOFTMAX",)]


def test_mlperf_ic_is_resnet8(converted_preset: Callable[[str], ConvertedModel]) -> None:
    model = converted_preset("mlperf-ic")
    rows = layer_table(model.tflite)
    assert model.meta["input_shape"] == [1, 32, 32, 3]
    assert [r for r in rows if r[0] == "ADD"] == [("ADD", "RELU")] * 3
    convs = sorted((r[1], r[2], r[3]) for r in rows if r[0] == "CONV_2D")
    assert convs == sorted([((3, 3), 16, (1, 1))] * 3 + [
        ((3, 3), 32, (2, 2)), ((3, 3), 32, (1, 1)), ((1, 1), 32, (2, 2)),
        ((3, 3), 64, (2, 2)), ((3, 3), 64, (1, 1)), ((1, 1), 64, (2, 2))])
    assert rows[-3:] == [("AVERAGE_POOL_2D", (8, 8), (8, 8)), ("FULLY_CONNECTED", 10, "NONE"),
                         ("SOFTMAX",)]


def test_mlperf_ad_is_the_fc_autoencoder(
        converted_preset: Callable[[str], ConvertedModel]) -> None:
    model = converted_preset("mlperf-ad")
    assert model.meta["input_shape"] == [1, 640] and model.meta["output_shape"] == [1, 640]
    assert layer_table(model.tflite) == (
        [("FULLY_CONNECTED", w, "RELU") for w in (128, 128, 128, 128, 8, 128, 128, 128, 128)]
        + [("FULLY_CONNECTED", 640, "NONE")])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_runs_bit_exact_on_the_host_build(
        converted_preset: Callable[[str], ConvertedModel], name: str) -> None:
    model = converted_preset(name)
    assert model.meta["macs"] == PRESETS[name].network().macs()
    assert_bit_exact(model.tflite, name, seeds=(0,))
