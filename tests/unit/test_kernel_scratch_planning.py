"""Kernel scratch buffers in the memory planner, and the depthwise DSP block's layout."""

from __future__ import annotations

import numpy as np

from bench_firmware.ops.conv import depthwise_dsp_block
from bench_firmware.planner import BUFFER_ALIGN, Buffer, align_up, plan_memory


def _overlap(a: Buffer, b: Buffer) -> bool:
    a_end = a.offset + align_up(a.size, BUFFER_ALIGN)
    b_end = b.offset + align_up(b.size, BUFFER_ALIGN)
    return a.offset < b_end and b.offset < a_end


def test_scratch_stays_apart_from_the_model_input() -> None:
    # in(0..0) -> t1(0..1) -> out(1..2); op 1's scratch would go where the input was.
    inp, t1, out = Buffer(0, 256, 0, 0), Buffer(1, 256, 0, 1), Buffer(2, 64, 1, 2)
    scratch = Buffer(-2, 256, 1, 1, apart=frozenset({0}))
    arena = plan_memory([inp, t1, out, scratch])
    assert not _overlap(scratch, inp)
    assert not _overlap(scratch, t1) and not _overlap(scratch, out)
    assert arena == 3 * 256  # the output (not the scratch) takes the input's place
    free = Buffer(-2, 256, 1, 1)
    assert plan_memory([Buffer(0, 256, 0, 0), Buffer(1, 256, 0, 1), Buffer(2, 64, 1, 2),
                        free]) == 2 * 256 + 64
    assert free.offset == 0  # without `apart` it reuses the input's bytes


def test_depthwise_block_groups_taps_then_bias() -> None:
    taps, channels = 9, 10  # two full groups of four; channels 8, 9 are left to plain loops
    weights = np.arange(taps * 12, dtype=np.int64).reshape(taps, 12).astype(np.int8)
    bias = np.arange(channels, dtype="<i4") + 1000
    block = depthwise_dsp_block(weights, bias, channels)
    assert block.shape == (2, taps * 4 + 16)
    for g in range(2):
        w = block[g, : taps * 4].view(np.int8).reshape(taps, 4)
        assert np.array_equal(w, weights[:, 4 * g: 4 * g + 4])
        assert np.array_equal(block[g, taps * 4:].view("<i4"), bias[4 * g: 4 * g + 4])
