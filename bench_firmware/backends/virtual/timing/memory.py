"""The flash path of each board: wait states, the flash accelerator or L1 caches, and prefetch.

Facts (wait states from each reference manual's flash wait-state table; the rest as each line
says):

* STM32F446 (RM0390 §3.4.2, "Adaptive real-time memory accelerator"; RM0090 §3.5.2 has the same
  text for the other F4 parts): each flash read returns a 128-bit line ("four instructions of 32
  bits or 8 instructions of 16 bits"); instruction cache 64 lines (1 KB), data cache 8 rows of
  128 bits, instruction prefetch; 5 wait states at 180 MHz. A data row is one read:
  ``dline_reads = 1``.
* STM32L4R5 (RM0432 §3.2 "FLASH main features", §3.3.1, §3.3.4 ART; the L4+ flash interface,
  whose text is the same as RM0440 §3.2-§3.3.4 for the STM32G4, the copy checked): flash reads
  are 64 bits wide in dual-bank mode (DBANK = 1, the NUCLEO-L4R5ZI's factory setting; 128 bits
  with DBANK = 0); instruction cache 32 lines of 4 x 64 bits (1 KB), data cache 8 rows of
  4 x 64 bits (256 B); prefetch on ICode only; 5 wait states at 120 MHz (range 1 boost), each
  read taking wait states + 1 cycles (§3.3.3 wait-state table, "n WS (n + 1 CPU cycles)").
  "Each DCode bus read access fetches 64 or 128 bits" (§3.3.4, data cache) and nothing
  prefetches on DCode, so refilling a 32-byte data row takes four 64-bit reads and stalls the
  core for the wait states on each: ``dline_reads = 4``. On the instruction side the prefetcher
  streams 64-bit units ("at least two CPU cycles are needed to execute the previous read
  instruction line", §3.3.4), so sequential code waits per 8 bytes, not per 32-byte line.
* STM32F746 / F767 (Cortex-M7 TRM DDI 0489 §5.9 "L1 caches"; ST AN4839 "Level 1 cache on STM32F7
  Series": 32-byte lines, instruction cache 2-way, data cache 4-way): 4 KB + 4 KB on the F746,
  16 KB + 16 KB on the F767; 7 wait states at 216 MHz. The firmware runs from the AXIM alias
  (0x08000000, ``bench_firmware/firmware/boards/*/linker.ld``), which the L1 caches serve; the
  ART serves only the ITCM alias, so it plays no part. Linefills are critical-word-first
  (DDI 0489 §5.9), so a miss costs the wait states once.

Replacement is least-recently-used: RM0390 §3.4.2 (as RM0090 for the other F4 parts) says the
ART replaces the LRU line once all lines are filled; the Cortex-M7 TRM does not state a policy,
and the model uses LRU there too. On the data side every flash read updates the recency (the
data hook sees them all). On the instruction side the lines of a fetch plan (one per edge into
a block on the ART, one per block on the Cortex-M7; ``model.py``) are looked up, and made most
recent, only when the plan is used for the first time after some line was refilled (the model
counts refills as an epoch): while nothing is refilled, nothing can be evicted.
Recency is therefore kept at the granularity of refill intervals: among lines first used in
the same interval, the one first used is evicted first, which differs from true LRU only when
a whole set's worth of lines is used within one refill interval.

Which fetches wait, and which reach the instruction cache (RM0390 §3.4.2, RM0432 §3.3.4): a
fetch is a miss when the "requested data [is] not present in the currently used instruction
line, in the prefetched instruction line or in the instruction cache memory"; on a miss "the
line read is copied into the instruction cache memory", and data in the cache "are provided
without inserting any delay", for sequential fetches as for branch targets. With prefetch on, a
sequential read unit that the prefetcher delivered in time (the previous unit's cycles cover
wait states + 1) is present in the prefetched line: no wait, no copy. One it did not deliver in
time is not present when requested: the core waits for the rest, and the model counts it as a
miss, copied into the cache, so the next pass of a loop finds it there. This is what makes the
ART's CoreMark figure hold (RM0390 §3.4.2: "Based on CoreMark benchmark, the performance
achieved thanks to the ART accelerator is equivalent to 0 wait state program execution from
flash memory"): a loop that fits the cache waits only on its first pass. A taken branch into
the current or the prefetched unit costs nothing; any other branch target is looked up and, on
a miss, costs the wait states ("at least equal to the number of wait states"). With prefetch
off, every unit not in the current buffer costs the wait states on a miss. The Cortex-M7 sends
every line through its L1 cache (critical word first, the wait states once per miss).
A cache that is off (``MemoryConfig``) holds nothing: every lookup misses.

Left out, each a bounded error: an L4+ instruction line is counted resident once its units that
waited were read, even if a branch entered it mid-line; a unit's "previous unit" cycles come
from the block before only one block back; D-Code priority over I-Code (RM0390 §3.4.2) is not
modelled as contention; with the data cache off every read stalls the wait states, though a read
from the 64-bit current buffer would not (RM0432 §3.3.4).
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
    read_bytes: int  # bytes one flash read returns: the prefetcher's unit
    dline_reads: int  # flash reads, each stalling the wait states, to refill a data line

    @property
    def read_shift(self) -> int:
        return self.read_bytes.bit_length() - 1


# RM0390 §3.4.2: 128-bit (16-byte) flash lines, 64-line instruction cache, 8-line data cache.
F4_ART_LINE_BYTES = 16
F4_FLASH_READ_BYTES = 16  # one read is one line
F4_ART_ICACHE_LINES = 64
F4_ART_DCACHE_LINES = 8
# RM0432 §3.2 / §3.3.4 (as RM0440 §3.2 / §3.3.4): dual-bank mode, 64-bit reads; cache lines
# of 4 x 64 bits, 32 instruction lines and 8 data rows.
L4_FLASH_READ_BYTES = 8
L4_ART_LINE_BYTES = 32
L4_ART_ICACHE_LINES = 32
L4_ART_DCACHE_LINES = 8
# Cortex-M7 TRM DDI 0489 §5.9 and ST AN4839 §1: 32-byte lines, I-cache 2-way, D-cache 4-way.
M7_LINE_BYTES = 32
M7_ICACHE_WAYS = 2
M7_DCACHE_WAYS = 4
# ST AN4839 §1 and the STM32F746xx / STM32F767xx datasheets: 4 KB I + 4 KB D on the F746,
# 16 KB + 16 KB on the F767.
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
            read_bytes=F4_FLASH_READ_BYTES,
            dline_reads=F4_ART_LINE_BYTES // F4_FLASH_READ_BYTES,
        )
    if board.mcu.startswith("STM32L4"):
        return FlashPath(
            wait_states=ws,
            icache=CacheGeometry(L4_ART_LINE_BYTES, 1, L4_ART_ICACHE_LINES),
            dcache=CacheGeometry(L4_ART_LINE_BYTES, 1, L4_ART_DCACHE_LINES),
            prefetch=True,
            read_bytes=L4_FLASH_READ_BYTES,
            dline_reads=L4_ART_LINE_BYTES // L4_FLASH_READ_BYTES,
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
            # DDI 0489 §5.9: critical word first, so a miss waits for one access; the
            # prefetcher's unit is not used on the Cortex-M7 (every line goes to the L1 cache).
            read_bytes=M7_LINE_BYTES,
            dline_reads=1,
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
