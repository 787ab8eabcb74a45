"""The greedy memory planner (TFLM's algorithm) on hand-made lifetimes."""

from __future__ import annotations

import random

from bench_firmware.planner import BUFFER_ALIGN, Buffer, align_up, plan_memory


def _no_live_overlap(buffers: list[Buffer]) -> bool:
    for a in buffers:
        for b in buffers:
            if a is b or not a.overlaps_in_time(b):
                continue
            a_end = a.offset + align_up(a.size, BUFFER_ALIGN)
            b_end = b.offset + align_up(b.size, BUFFER_ALIGN)
            if a.offset < b_end and b.offset < a_end:
                return False
    return True


def test_chain_reuses_memory() -> None:
    # in(0..0) → t1(0..1) → t2(1..2) → out(2..3): only two buffers live at once.
    bufs = [Buffer(0, 1000, 0, 0), Buffer(1, 1000, 0, 1), Buffer(2, 1000, 1, 2),
            Buffer(3, 1000, 2, 3)]
    arena = plan_memory(bufs)
    assert arena == 2 * align_up(1000, BUFFER_ALIGN)
    assert _no_live_overlap(bufs)


def test_residual_branch_keeps_three_live() -> None:
    # x lives across the branch for the ADD at op 2.
    bufs = [Buffer(0, 512, 0, 2), Buffer(1, 512, 0, 1), Buffer(2, 512, 1, 2),
            Buffer(3, 512, 2, 3)]
    arena = plan_memory(bufs)
    assert arena == 3 * 512
    assert _no_live_overlap(bufs)


def test_random_lifetimes_never_overlap_and_are_bounded() -> None:
    rng = random.Random(7)
    for _ in range(200):
        bufs = []
        for k in range(rng.randint(1, 12)):
            first = rng.randint(0, 10)
            bufs.append(Buffer(k, rng.randint(1, 5000), first, first + rng.randint(0, 5)))
        arena = plan_memory(bufs)
        assert _no_live_overlap(bufs)
        assert arena <= sum(align_up(b.size, BUFFER_ALIGN) for b in bufs)
        peak = max(
            sum(align_up(b.size, BUFFER_ALIGN) for b in bufs if b.first <= t <= b.last)
            for t in range(16)
        )
        assert arena >= peak


def test_equal_plan_data_is_stored_once() -> None:
    """The plan's data section keeps one copy of equal arrays (the firmware only reads it),
    at an offset that meets every request's alignment."""
    import numpy as np

    from bench_firmware.compiler import _DataSection

    data = _DataSection(base=64)
    a = data.add_data(np.arange(12, dtype="<i4"))
    b = data.add_data(np.arange(5, dtype=np.int8))
    assert data.add_data(np.arange(12, dtype="<i4")) == a
    assert data.add_data(np.arange(5, dtype=np.int8).tobytes()) == b
    assert data.shared_bytes == 48 + 5
    size = len(data.buf)
    c = data.add_data(np.arange(6, dtype=np.int8))  # different bytes: stored
    assert c != b and len(data.buf) > size
    # An equal array that needs more alignment than the stored copy has is stored again.
    data.add_data(b"\x09", align=1)
    odd = data.add_data(b"\x01\x02\x03\x04", align=1)
    assert odd % 2 == 1
    again = data.add_data(b"\x01\x02\x03\x04", align=8)
    assert again != odd and again % 8 == 0
