"""The DSP convolution's pixel blocks at their edges, and the planar 3x3 depthwise rows at
stride 1 and 2, on a Cortex-M4 and a Cortex-M7 twin (whose kernels take their Cortex-M7
forms): bit for bit equal to TFLite Micro on both kernel paths.

The widened loop runs four output pixels a block (``firmware/kernels/conv.c``); these layers
end on a block of one, two or three pixels (5, 6, 9, 25, 42, 81 pixels), have an odd output
channel count (the last channel runs outside the pair loop), or gather a first layer's
windows (3 input channels, stride 1 and 2), so that every form of the block's edge runs: the
repeated last pixel, the Cortex-M7's lone last pixels (conv_wide_pixel), the 8-bit copy the
Cortex-M4 boards get for 5, 6, 9 or 10 pixels (QUAD_SHORT_PIXELS), the Cortex-M7's four
gathered windows widened in one pass, and a 1x1 layer's four pixels widened at once. The
depthwise cases include rows of six pixels, which both cores run as one block of six, along
the width and, transposed, along the height; the fully connected ones the four-row loop's first
and last input words (the Cortex-M7's form loads each next word ahead, except in the last) and,
with several input rows, the records of the weights' SRAM copy (biases, words and
requantization words per four rows; fc_quad_record) followed by rows outside them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bench_firmware.backends.virtual.backend import VirtualBoard
from bench_firmware.boards import BOARDS
from bench_firmware.compiler import compile_model
from tests.oracle import tflm_run
from tests.tflite_convert import import_tf, to_int8_tflite
from tests.zoo_inputs import random_input

pytestmark = pytest.mark.slow

BOARD_NAMES = ("nucleo-l4r5zi", "nucleo-f746zg")

# name -> (input shape, the layer on it)
LAYERS: dict[str, tuple[tuple[int, ...], Callable[[Any], Any]]] = {
    "first_9x9_odd": ((9, 9, 3), lambda k: k.layers.Conv2D(7, 3, padding="same")),
    "first_s2_odd": ((18, 17, 3), lambda k: k.layers.Conv2D(9, 3, strides=2, padding="same")),
    "pointwise_25_odd": ((5, 5, 8), lambda k: k.layers.Conv2D(13, 1)),
    "pointwise_42": ((6, 7, 16), lambda k: k.layers.Conv2D(32, 1)),
    "pointwise_9_odd": ((3, 3, 128), lambda k: k.layers.Conv2D(67, 1)),
    "pointwise_6_odd": ((2, 3, 64), lambda k: k.layers.Conv2D(65, 1)),
    "pointwise_81_one_word": ((9, 9, 4), lambda k: k.layers.Conv2D(6, 1)),
    "kxk_9_odd": ((3, 3, 32), lambda k: k.layers.Conv2D(33, 3, padding="same")),
    "depthwise_6x6": ((6, 6, 32), lambda k: k.layers.DepthwiseConv2D(3, padding="same")),
    # six-pixel rows (the block of six): transposed (6 tall, 5 wide) and unpadded
    "depthwise_6x5": ((6, 5, 16), lambda k: k.layers.DepthwiseConv2D(3, padding="same")),
    "depthwise_8x8_valid": ((8, 8, 8), lambda k: k.layers.DepthwiseConv2D(3)),
    # fully connected rows in fours over one input word, an odd count with a tail, many, and
    # three input rows through the SRAM copy's records with two rows past the last four
    "fc_one_word": ((4,), lambda k: k.layers.Dense(8)),
    "fc_odd_tail": ((13,), lambda k: k.layers.Dense(12)),
    "fc_long": ((96,), lambda k: k.layers.Dense(20)),
    "fc_rows_records": ((3, 16), lambda k: k.layers.Dense(10, activation="relu")),
    "depthwise_s2": ((12, 12, 16),
                     lambda k: k.layers.DepthwiseConv2D(3, strides=2, padding="same")),
    "depthwise_s2_odd": ((13, 11, 8),
                         lambda k: k.layers.DepthwiseConv2D(3, strides=2, padding="same")),
}


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    _, keras = import_tf()
    out: dict[str, bytes] = {}
    rng = np.random.default_rng(0)
    for name, (shape, layer) in LAYERS.items():
        # A fixed batch of one: with a free batch, Dense on several rows converts to shape
        # arithmetic around a reshape instead of one FULLY_CONNECTED with keep_num_dims.
        inp = keras.Input(shape, batch_size=1)
        model = keras.Model(inp, layer(keras)(inp))
        samples = [rng.uniform(-1, 1, (1, *shape)).astype("float32") for _ in range(8)]
        out[name] = to_int8_tflite(model, lambda s=samples: ([x] for x in s))
    return out


@pytest.mark.parametrize("board_name", BOARD_NAMES)
def test_block_edges_are_bit_exact(models: dict[str, bytes], board_name: str) -> None:
    failures: list[str] = []
    with VirtualBoard(f"virtual:{board_name}") as vb:
        for name, data in models.items():
            x = random_input(data, 0)
            expected = np.asarray(tflm_run(data, x)).reshape(-1).astype(np.int8)
            vb.load_plan(compile_model(data, BOARDS[board_name], name=name).data)
            for kernels in ("dsp", "ref"):
                run = vb.run(x.tobytes(), runs=1, warmup=0, kernels=kernels)
                if not np.array_equal(np.frombuffer(run.output, dtype=np.int8), expected):
                    failures.append(f"{name}/{kernels}: output differs from TFLM")
    assert not failures, "\n".join(failures)
