"""The flash path of each board: wait states, the flash accelerator or L1 caches, and prefetch.

Facts (``shared/reference/boards.md`` and ``cortex-m-timing.md`` unless a line says otherwise):

* STM32F446 (RM0390 §3.4, "Adaptive real-time memory accelerator"): 128-bit flash lines;
  instruction cache 64 lines (1 KB), data cache 8 lines (128 B), instruction prefetch; 5 wait
  states at 180 MHz.
* STM32L4R5 (RM0432 §3.3, ART; sizes as given for the STM32L4 family in RM0351 §3.3.4 and
  assumed equal on the L4+, not re-checked in this repository): instruction cache 32 lines of
  4 x 64 bits (1 KB), data cache 8 lines of 4 x 64 bits (256 B), prefetch; 5 wait states at
  120 MHz (range 1 boost). Flash reads are 64 bits wide there; a line refill is charged the wait
  states once (critical double-word first, the rest streams in behind it), which under-counts
  a refill by at most 3 x (wait states + 1) cycles when a kernel consumes a line faster than the
  flash delivers it.
* STM32F746 / F767 (Cortex-M7 TRM DDI 0489 §5.9 "L1 caches"; ST AN4839 "Level 1 cache on STM32F7
  Series": 32-byte lines, instruction cache 2-way, data cache 4-way): 4 KB + 4 KB on the F746,
  16 KB + 16 KB on the F767; 7 wait states at 216 MHz. The firmware runs from the AXIM alias
  (0x08000000, ``bench_firmware/firmware/boards/*/linker.ld``), which the L1 caches serve; the
  ART serves only the ITCM alias, so it plays no part. Linefills are critical-word-first
  (DDI 0489 §5.9), so a miss costs the wait states once.

Replacement is least-recently-used: RM0390 §3.4.2 (as RM0090 for the other F4 parts) says the
ART replaces the LRU line once all lines are filled; the Cortex-M7 TRM does not state a policy,
and the model uses LRU there too. On the data side every flash read updates the recency (the
data hook sees them all). On the instruction side a block's cached lines are looked up, and
made most recent, only when the block runs for the first time after some line was refilled
(the model counts refills as an epoch): while nothing is refilled, nothing can be evicted.
Recency is therefore kept at the granularity of refill intervals: among lines first used in
the same interval, the one first used is evicted first, which differs from true LRU only when
a whole set's worth of lines is used within one refill interval.

Which fetches reach the instruction cache (RM0390 §3.4.2): with the ART's prefetch on, a line is
copied into the instruction cache only on a miss, "requested data not present in the currently
used instruction line, in the prefetched instruction line or in the instruction cache memory".
Sequential code therefore streams through the prefetcher (waiting only for what the previous
line's cycles do not cover) and only the targets of taken branches are cached; ``model.py``
applies that. The Cortex-M7 (and the ART with prefetch off) sends every line through the cache.
A cache that is off (``MemoryConfig``) holds nothing: every lookup costs the wait states.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from bench_firmware.boards import Board
from bench_firmware.errors import BoardError


@dataclass(frozen=True)
class CacheGeometry:
    """``sets`` x ``ways`` lines of ``line_bytes``; ``sets == 1`` is fully associative."""

    line_bytes: int
    sets: int
    ways: int

    @property
    def size_bytes(self) -> int:
        return self.line_bytes * self.sets * self.ways

    @property
    def line_shift(self) -> int:
        return self.line_bytes.bit_length() - 1


@dataclass(frozen=True)
class FlashPath:
    """How instruction fetches and data reads reach a board's flash."""

    wait_states: int  # cycles a flash access adds over a zero-wait one
    icache: CacheGeometry
    dcache: CacheGeometry
    prefetch: bool  # sequential instruction prefetch (F4/L4 ART PRFTEN)


# RM0390 §3.4.2: 128-bit (16-byte) flash lines, 64-line instruction cache, 8-line data cache.
F4_ART_LINE_BYTES = 16
F4_ART_ICACHE_LINES = 64
F4_ART_DCACHE_LINES = 8
# RM0351 §3.3.4 (STM32L4 family; assumed for the L4+ RM0432): lines of 4 x 64 bits.
L4_ART_LINE_BYTES = 32
L4_ART_ICACHE_LINES = 32
L4_ART_DCACHE_LINES = 8
# Cortex-M7 TRM DDI 0489 §5.9 and ST AN4839 §1: 32-byte lines, I-cache 2-way, D-cache 4-way.
M7_LINE_BYTES = 32
M7_ICACHE_WAYS = 2
M7_DCACHE_WAYS = 4
# boards.md: 4 KB I + 4 KB D on the F746, 16 KB + 16 KB on the F767.
M7_CACHE_BYTES = {"STM32F746ZG": 4 * 1024, "STM32F767ZI": 16 * 1024}


def flash_path(board: Board) -> FlashPath:
    """The flash path of ``board`` with the caches the firmware enables at boot."""
    ws = board.flash_wait_states
    if board.mcu.startswith("STM32F4"):
        return FlashPath(
            wait_states=ws,
            icache=CacheGeometry(F4_ART_LINE_BYTES, 1, F4_ART_ICACHE_LINES),
            dcache=CacheGeometry(F4_ART_LINE_BYTES, 1, F4_ART_DCACHE_LINES),
            prefetch=True,
        )
    if board.mcu.startswith("STM32L4"):
        return FlashPath(
            wait_states=ws,
            icache=CacheGeometry(L4_ART_LINE_BYTES, 1, L4_ART_ICACHE_LINES),
            dcache=CacheGeometry(L4_ART_LINE_BYTES, 1, L4_ART_DCACHE_LINES),
            prefetch=True,
        )
    if board.mcu in M7_CACHE_BYTES:
        size = M7_CACHE_BYTES[board.mcu]
        return FlashPath(
            wait_states=ws,
            icache=CacheGeometry(M7_LINE_BYTES, size // M7_LINE_BYTES // M7_ICACHE_WAYS,
                                 M7_ICACHE_WAYS),
            dcache=CacheGeometry(M7_LINE_BYTES, size // M7_LINE_BYTES // M7_DCACHE_WAYS,
                                 M7_DCACHE_WAYS),
            prefetch=False,
        )
    raise BoardError(f"no cycle model for {board.mcu} ({board.name}); "
                       "the virtual boards model the STM32F446, F746, F767 and L4R5")


class LruCache:
    """Set-associative cache of line numbers with least-recently-used replacement: one
    OrderedDict per set, least recent first. ``touch`` is the reference operation; the model's
    instruction fetch inlines it on the sets it gets from ``set_of``."""

    __slots__ = ("sets", "ways", "misses", "_mask")

    def __init__(self, geometry: CacheGeometry, *, enabled: bool = True) -> None:
        sets, ways = (geometry.sets, geometry.ways) if enabled else (1, 0)
        if sets & (sets - 1):
            raise BoardError(f"cache sets must be a power of two, got {sets}")
        self.sets: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(sets)]
        self.ways = ways  # 0: the cache is off and holds nothing
        self.misses = 0  # refills counted by the model
        self._mask = sets - 1

    def set_of(self, line: int) -> OrderedDict[int, None]:
        return self.sets[line & self._mask]

    def __contains__(self, line: int) -> bool:
        return line in self.sets[line & self._mask]

    def touch(self, line: int) -> bool:
        """Use ``line``; True on a hit, False when it had to be refilled."""
        lines = self.sets[line & self._mask]
        if line in lines:
            lines.move_to_end(line)
            return True
        if self.ways:
            if len(lines) >= self.ways:
                lines.popitem(last=False)
            lines[line] = None
        return False
