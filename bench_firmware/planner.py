"""The memory planner: arena offsets for every activation tensor.

The algorithm is TFLite Micro's ``GreedyMemoryPlanner``: a tensor lives from the operator that
writes it (model inputs: from operator 0) to the last operator that reads it (model outputs:
to the end); buffers are placed in order of decreasing size, each at the lowest offset where it
overlaps no already-placed buffer that is alive at the same time. Sizes are rounded up to
TFLM's 16-byte buffer alignment so our figure is comparable to its report.

A buffer may also name keys it must never share bytes with, whatever their lifetimes
(``apart``): kernel scratch buffers stay clear of the model input, which the firmware restores
from a copy before every run only when an operator's *output* overwrites it.
"""

from __future__ import annotations

from dataclasses import dataclass

BUFFER_ALIGN = 16  # bytes; TFLM MicroArenaBufferAlignment()


def align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclass
class Buffer:
    key: int  # caller's id (tensor index)
    size: int
    first: int  # first operator index using it
    last: int  # last operator index using it
    offset: int = -1
    apart: frozenset[int] = frozenset()  # keys never to overlap, at any time

    def overlaps_in_time(self, other: Buffer) -> bool:
        if other.key in self.apart or self.key in other.apart:
            return True
        return not (self.last < other.first or other.last < self.first)


def plan_memory(buffers: list[Buffer], placed: list[Buffer] | None = None) -> int:
    """Assign ``offset`` to every buffer, around the ``placed`` ones (offsets kept); returns
    the arena size in bytes."""
    order = sorted(buffers, key=lambda b: (-align_up(b.size, BUFFER_ALIGN), b.first, b.key))
    fixed = list(placed or [])
    placed = list(fixed)
    for buf in order:
        size = align_up(buf.size, BUFFER_ALIGN)
        candidate = 0
        for other in sorted((p for p in placed if p.overlaps_in_time(buf)),
                            key=lambda p: p.offset):
            if candidate + size <= other.offset:
                break
            candidate = max(candidate, other.offset + align_up(other.size, BUFFER_ALIGN))
        buf.offset = candidate
        placed.append(buf)
    return max((b.offset + align_up(b.size, BUFFER_ALIGN) for b in placed), default=0)


def plan_with_scratch(activations: list[Buffer], scratch: list[Buffer]) -> int:
    """Offsets for activations and kernel scratch buffers together; returns the arena size.
    Two plans, the smaller kept: all buffers greedily at once (scratch may fill holes the
    activations leave), and the activations first with each scratch buffer placed around the
    activations alive during its operator, which never needs more than the activations' own
    arena plus the largest scratch buffer. The greedy joint plan alone can exceed that bound
    when a large scratch buffer placed early fragments the activations."""
    every = [*activations, *scratch]
    joint = plan_memory(every)
    joint_offsets = [b.offset for b in every]
    plan_memory(activations)
    apart = plan_memory(scratch, placed=activations)
    if apart < joint:
        return apart
    for b, offset in zip(every, joint_offsets, strict=True):
        b.offset = offset
    return joint
