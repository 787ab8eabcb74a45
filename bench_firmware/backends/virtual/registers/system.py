"""The Cortex-M system registers the firmware touches: the System Control Space (ACTLR, VTOR,
CCR, CPACR, DEMCR; on the Cortex-M7 the cache identification and maintenance registers) and
the DWT cycle counter with its software lock.
"""

from __future__ import annotations

from collections.abc import Callable

from bench_firmware.backends.virtual.registers.base import MMIO_PAGE, WORD_MASK, RegisterBlock
from bench_firmware.boards import Board

# ARMv7-M ARM §C1.6.5 / §C1.8.7; Cortex-M7 TRM "DWT programmers' model" (LAR key).
DEMCR_TRCENA = 1 << 24
DWT_CTRL_CYCCNTENA = 1 << 0
DWT_CTRL_RESET = 0x4000_0000  # NUMCOMP = 4 comparators
DWT_LAR_KEY = 0xC5AC_CE55
DWT_LSR_IMPLEMENTED = 1 << 0
DWT_LSR_LOCKED = 1 << 1

# L1 cache geometry of the Cortex-M7 parts (I bytes, D bytes): ST AN4839 §1 and the
# STM32F746xx / STM32F767xx datasheets; the Cortex-M7 TRM fixes 2-way I / 4-way D, 32-byte
# lines.
M7_L1_CACHE_BYTES = {"nucleo-f746zg": (4096, 4096), "nucleo-f767zi": (16384, 16384)}
M7_CACHE_LINE_BYTES = 32
M7_ICACHE_WAYS, M7_DCACHE_WAYS = 2, 4


class Dwt(RegisterBlock):
    """The data watchpoint and trace unit's cycle counter (ARMv7-M ARM §C1.8)."""

    def __init__(self, *, lock_implemented: bool, cycles: Callable[[], int]) -> None:
        super().__init__("DWT", 0xE000_1000, {
            "CTRL": (0x000, DWT_CTRL_RESET),
            "CYCCNT": (0x004, 0),
            "LAR": (0xFB0, 0),
            "LSR": (0xFB4, 0),
        }, size=MMIO_PAGE)
        self.lock_implemented = lock_implemented
        self.locked = lock_implemented
        self._cycles = cycles
        self._ctrl, self._cyccnt = self.offsets["CTRL"], self.offsets["CYCCNT"]
        self._lar, self._lsr = self.offsets["LAR"], self.offsets["LSR"]
        self.data_offsets = frozenset((self._cyccnt,))
        self.trcena = False
        self._counting = False
        self._base_value = 0  # CYCCNT when counting last started or it was written
        self._base_cycles = 0  # the cycle model's count at that moment

    def cyccnt(self) -> int:
        if self._counting:
            return (self._base_value + self._cycles() - self._base_cycles) & WORD_MASK
        return self._base_value

    def _rebase(self, value: int | None = None) -> None:
        current = self.cyccnt() if value is None else value
        self._base_value, self._base_cycles = current & WORD_MASK, self._cycles()
        self._counting = self.trcena and bool(self.values[self._ctrl] & DWT_CTRL_CYCCNTENA)

    def set_trcena(self, on: bool) -> None:
        """DEMCR.TRCENA (in the SCS) powers the DWT."""
        self._rebase()
        self.trcena = on
        self._rebase()

    def read(self, offset: int) -> int:
        if offset == self._cyccnt:
            return self.cyccnt()
        if offset == self._lsr:
            if not self.lock_implemented:
                return 0
            return DWT_LSR_IMPLEMENTED | (DWT_LSR_LOCKED if self.locked else 0)
        if offset == self._lar:
            return 0  # write-only
        return self.values[offset]

    def write(self, offset: int, value: int) -> None:
        if offset == self._lar:
            if self.lock_implemented:
                self.locked = value != DWT_LAR_KEY
            return
        if offset == self._lsr or self.locked:
            return  # read-only; or the software lock ignores the write (CoreSight LAR)
        if offset == self._cyccnt:
            self._rebase(value)
            return
        self._rebase()
        self.values[offset] = value
        self._rebase()


class SystemControl(RegisterBlock):
    """The System Control Space registers the firmware touches (ARMv7-M ARM §B3.2, §C1.6)."""

    def __init__(self, board: Board, dwt: Dwt) -> None:
        registers = {
            "ACTLR": (0x008, 0),
            "VTOR": (0xD08, 0),
            "CCR": (0xD14, 0x0000_0200),  # STKALIGN
            "CPACR": (0xD88, 0),
            "DEMCR": (0xDFC, 0),
        }
        self.m7 = board.core == "cortex-m7"
        if self.m7:
            registers |= {"CCSIDR": (0xD80, 0), "CSSELR": (0xD84, 0),
                          "ICIALLU": (0xF50, 0), "DCISW": (0xF60, 0)}
        super().__init__("SCS", 0xE000_E000, registers, size=MMIO_PAGE)
        self._dwt = dwt
        self._demcr = self.offsets["DEMCR"]
        self._ccsidr = self.offsets.get("CCSIDR")
        self._write_only = {self.offsets[r] for r in ("ICIALLU", "DCISW") if r in self.offsets}
        self.cache_maintenance_ops = 0
        icache, dcache = M7_L1_CACHE_BYTES.get(board.name, (0, 0))
        self._ccsidr_values = {
            0: _ccsidr(dcache, M7_DCACHE_WAYS, write_back=True),
            1: _ccsidr(icache, M7_ICACHE_WAYS, write_back=False),
        }

    def read(self, offset: int) -> int:
        if offset == self._ccsidr:
            return self._ccsidr_values.get(self.reg("CSSELR") & 1, 0)
        if offset in self._write_only:
            return 0
        return self.values[offset]

    def write(self, offset: int, value: int) -> None:
        if offset == self._ccsidr:
            return  # read-only
        if offset in self._write_only:
            self.cache_maintenance_ops += 1
            return
        self.values[offset] = value
        if offset == self._demcr:
            self._dwt.set_trcena(bool(value & DEMCR_TRCENA))

    @property
    def caches_enabled(self) -> tuple[bool, bool]:
        """(I-cache, D-cache) enables from CCR (Cortex-M7)."""
        ccr = self.reg("CCR")
        return bool(ccr & (1 << 17)), bool(ccr & (1 << 16))


def _ccsidr(size: int, ways: int, *, write_back: bool) -> int:
    """CCSIDR for an L1 cache (ARMv7-M ARM "CCSIDR"): WT/WB/RA/WA flags, sets-1, ways-1,
    log2(words per line) - 2."""
    if not size:
        return 0
    sets = size // (ways * M7_CACHE_LINE_BYTES)
    flags = (0b0111 if write_back else 0b1010) << 28  # WB, RA, WA | WT, RA
    line = (M7_CACHE_LINE_BYTES // 4).bit_length() - 1 - 2
    return flags | ((sets - 1) << 13) | ((ways - 1) << 3) | line

