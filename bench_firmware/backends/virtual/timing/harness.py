"""A bare Unicorn core for exercising the cycle model without the virtual board's peripherals.

Maps the board's flash (at ``flash_base``) and SRAM (at ``sram_base``), loads an ELF's
``PT_LOAD`` segments, sets SP to the top of SRAM and runs from one symbol to another (Unicorn
2.1's Cortex-M4/M7 start with the FPU usable, so no CPACR write is needed). Used by the
microbenchmark tests and ``benchmarks/cycle_model_speed.py``.
"""

from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from unicorn import UC_ARCH_ARM, UC_MODE_THUMB, Uc, UcError
from unicorn import arm_const as uc_arm

from bench_firmware.backends.virtual.timing import CycleModel, MemoryConfig, create_cycle_model
from bench_firmware.boards import Board
from bench_firmware.errors import BoardError

_CPU = {"cortex-m4": uc_arm.UC_CPU_ARM_CORTEX_M4, "cortex-m7": uc_arm.UC_CPU_ARM_CORTEX_M7}
_PAGE = 0x1000  # Unicorn maps whole 4 KB pages


class BareCore:
    """One board's core, flash and SRAM, with a cycle model attached (``with_model=False``
    runs without hooks, for speed comparisons; ``implementation`` as ``CycleModel``)."""

    def __init__(self, board: Board, elf: Path, *, memory: MemoryConfig | None = None,
                 with_model: bool = True, implementation: str | None = None) -> None:
        if board.core not in _CPU:
            raise BoardError(f"{board.name} has no Unicorn CPU model ({board.core})")
        self.board = board
        # The binding's type stubs describe the Python 2 module, which has no ``cpu``.
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB, cpu=_CPU[board.core])  # type: ignore[call-arg]
        self.uc.mem_map(board.flash_base, _round_up(board.flash_bytes))
        self.uc.mem_map(board.sram_base, _round_up(board.sram_bytes))
        self.symbols = self._load(elf)
        self.uc.reg_write(uc_arm.UC_ARM_REG_SP, board.sram_base + board.sram_bytes)
        self.model: CycleModel | None = None
        if with_model:
            self.model = create_cycle_model(board, memory, implementation)
            self.model.attach(self.uc)

    def _load(self, elf: Path) -> dict[str, int]:
        with elf.open("rb") as f:
            image = ELFFile(f)
            for segment in image.iter_segments():
                if segment["p_type"] == "PT_LOAD" and segment["p_filesz"]:
                    self.uc.mem_write(segment["p_paddr"], segment.data())
            symbols: dict[str, int] = {}
            for section in image.iter_sections():
                if isinstance(section, SymbolTableSection):
                    for symbol in section.iter_symbols():
                        if symbol.name:
                            symbols[symbol.name] = int(symbol["st_value"]) & ~1
        return symbols

    def run(self, start: str, end: str) -> tuple[int, int]:
        """Run from symbol ``start`` until the PC reaches symbol ``end``; returns the (cycles,
        instructions) the model counted for that stretch."""
        before = (self.model.cycles, self.model.instructions) if self.model else (0, 0)
        try:
            self.uc.emu_start(self.symbols[start] | 1, self.symbols[end])
        except UcError as e:
            pc = self.uc.reg_read(uc_arm.UC_ARM_REG_PC)
            raise BoardError(f"emulation of {start}..{end} failed at 0x{pc:08x}: {e}") from e
        if self.model is None:
            return 0, 0
        return self.model.cycles - before[0], self.model.instructions - before[1]


def _round_up(size: int) -> int:
    return (size + _PAGE - 1) // _PAGE * _PAGE
