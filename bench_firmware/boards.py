"""The board catalogue: every fact about a board that the host side needs.

Facts come from the ST reference manuals RM0390 (F446), RM0385 (F746), RM0410 (F767) and
RM0432 (L4R5), ST's CMSIS device headers (``stm32f446xx.h``, ``stm32f746xx.h``,
``stm32f767xx.h``, ``stm32l4r5xx.h``), the Nucleo user manuals UM1724, UM1974 and UM2179, and
pyOCD's target and board-id tables (``pyocd/target/builtin/__init__.py``,
``pyocd/board/board_ids.py``); each power figure names its source. The firmware's own
per-board constants live in ``firmware/boards/<name>/`` and must agree with these;
``tests/unit/test_boards.py`` checks that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench_firmware.errors import McuprofError

# RAM the firmware keeps for itself, from ORIGIN(RAM): .data + .bss (1.7 KiB in the built
# images: protocol line buffer, session and runtime state) and the stack (STACK_RESERVE); the
# rest of the contiguous SRAM block is the tensor arena. The linker scripts reserve the same
# figures (common/sections.ld); tests/integration/test_firmware_build.py measures both from the
# built ELF and from GCC's call graph (-fcallgraph-info=su) against them.
FIRMWARE_RAM_RESERVE = 8 * 1024  # bytes
# The least stack the firmware gets: 4x the deepest call chain GCC's call graph gives (about
# 0.9 KiB: main -> protocol -> runtime -> kernel), plus an FPU exception frame.
STACK_RESERVE = 4 * 1024  # bytes

# Flash the layout gives the firmware image before the model region starts: the built image
# (about 34 KiB on every board, arm-none-eabi-size, December 2026) and room to grow, rounded up
# to the next sector boundary by flash_layout(). The model region is every sector after that, so
# the host (pyOCD) erases only whole sectors of the plan and never one the firmware lives in.
FIRMWARE_FLASH_BUDGET = 48 * 1024  # bytes
# What a built image must leave free below the model region; the firmware build test checks it.
# Past it, raise FIRMWARE_FLASH_BUDGET and the linker scripts' MEMORY blocks with it. An early
# warning, not room the firmware needs: 8 KiB is a quarter of the image (34 KiB, December 2026).
# Raising the budget instead would cost the F446RE a 16 KiB sector of its model region.
FIRMWARE_FLASH_MARGIN = 8 * 1024  # bytes


@dataclass(frozen=True)
class Board:
    """One board model. ``code`` is the id a plan carries so firmware can reject plans
    compiled for another board."""

    name: str
    code: int
    mcu: str
    core: str  # "cortex-m4" | "cortex-m7" | "host"
    clock_hz: int
    sram_base: int
    sram_bytes: int  # the contiguous SRAM block that holds data, stack and arena
    flash_base: int
    flash_bytes: int
    model_region_base: int
    model_region_bytes: int
    model_region_sectors: tuple[tuple[int, int], ...]  # (address, bytes) of each erasable unit
    flash_sectors: tuple[tuple[int, int], ...]  # the whole flash's erasable units, in order
    flash_wait_states: int
    uart: str
    timestamp_pin: str
    active_power_mw: float | None
    power_source: str
    gcc_cpu_flags: tuple[str, ...]
    pyocd_target: str | None

    @property
    def arena_capacity(self) -> int:
        """Bytes of SRAM left for the tensor arena once the firmware has its own."""
        return self.sram_bytes - FIRMWARE_RAM_RESERVE

    @property
    def firmware_flash_bytes(self) -> int:
        """Flash below the model region: the sectors the firmware image may occupy."""
        return self.model_region_base - self.flash_base

    @property
    def clock_mhz(self) -> float:
        return self.clock_hz / 1e6

    def cycles_to_ms(self, cycles: float) -> float:
        return cycles / self.clock_hz * 1e3


def _sectors(*spec: tuple[int, int, int]) -> tuple[tuple[int, int], ...]:
    """(first address, sector bytes, count) runs → list of (address, bytes)."""
    out: list[tuple[int, int]] = []
    for base, size, count in spec:
        out.extend((base + i * size, size) for i in range(count))
    return tuple(out)


def _sector_map(flash_base: int, *runs: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """(sector bytes, count) runs laid end to end from ``flash_base`` → (address, bytes)."""
    out: list[tuple[int, int]] = []
    address = flash_base
    for size, count in runs:
        out.extend(_sectors((address, size, count)))
        address += size * count
    return tuple(out)


def flash_layout(
    sectors: tuple[tuple[int, int], ...], firmware_bytes: int = FIRMWARE_FLASH_BUDGET
) -> dict[str, Any]:
    """Split a flash sector map into the firmware's sectors and the model region.

    The firmware takes the fewest leading sectors that hold ``firmware_bytes``; the model region
    is every sector after them (it starts on a sector boundary, so erasing the plan never erases
    firmware). Returns the ``model_region_*`` fields of a Board.
    """
    used = 0
    for i, (_, size) in enumerate(sectors):
        used += size
        if used >= firmware_bytes:
            model = sectors[i + 1:]
            break
    else:
        model = ()
    if not model:
        raise McuprofError(f"a {firmware_bytes:,}-byte firmware leaves no flash sector for a model")
    return {
        "model_region_base": model[0][0],
        "model_region_bytes": sum(size for _, size in model),
        "model_region_sectors": model,
        "flash_sectors": sectors,
    }


_M4F = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
_M7_SP = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard")
_M7_DP = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard")

BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board(
            name="nucleo-f446re", code=1, mcu="STM32F446RE", core="cortex-m4",
            clock_hz=180_000_000,
            sram_base=0x2000_0000, sram_bytes=128 * 1024,  # SRAM1 112 K + SRAM2 16 K, contiguous
            flash_base=0x0800_0000, flash_bytes=512 * 1024,
            # RM0390 §3.3 (Table 5, flash module organisation): sectors 0-3 of 16 KB, 4 of 64 KB,
            # 5-7 of 128 KB. The firmware gets sectors 0-2, the model sectors 3-7 (464 KB).
            **flash_layout(_sector_map(0x0800_0000, (16 * 1024, 4), (64 * 1024, 1),
                                       (128 * 1024, 3))),
            flash_wait_states=5, uart="USART2 PA2/PA3 AF7", timestamp_pin="PA8 (D7)",
            active_power_mw=160.0,
            power_source="MicroNets Table 4: energy / latency on the S board (150-168 mW)",
            gcc_cpu_flags=_M4F, pyocd_target="stm32f446retx",
        ),
        Board(
            name="nucleo-f746zg", code=2, mcu="STM32F746ZG", core="cortex-m7",
            clock_hz=216_000_000,
            sram_base=0x2000_0000, sram_bytes=320 * 1024,  # DTCM 64 K + SRAM1 240 K + SRAM2 16 K
            flash_base=0x0800_0000, flash_bytes=1024 * 1024,
            # RM0385 §3.3.1 (Table 4, STM32F74xxx/75xxx flash organisation): sectors 0-3 of 32 KB,
            # 4 of 128 KB, 5-7 of 256 KB. The firmware gets sectors 0-1, the model 2-7 (960 KB).
            **flash_layout(_sector_map(0x0800_0000, (32 * 1024, 4), (128 * 1024, 1),
                                       (256 * 1024, 3))),
            flash_wait_states=7, uart="USART3 PD8/PD9 AF7", timestamp_pin="PF13 (D7)",
            active_power_mw=445.0,
            power_source="MicroNets Table 4: energy / latency on the M board (420-460 mW)",
            gcc_cpu_flags=_M7_SP, pyocd_target="stm32f746zgtx",
        ),
        Board(
            name="nucleo-f767zi", code=3, mcu="STM32F767ZI", core="cortex-m7",
            clock_hz=216_000_000,
            sram_base=0x2000_0000, sram_bytes=512 * 1024,  # DTCM 128 K + SRAM1 368 K + SRAM2 16 K
            flash_base=0x0800_0000, flash_bytes=2048 * 1024,
            # RM0410 §3.3.1 (Table 4, single bank: nDBANK = 1, the factory setting): sectors 0-3 of
            # 32 KB, 4 of 128 KB, 5-11 of 256 KB. The firmware gets sectors 0-1, the model 2-11
            # (1984 KB).
            **flash_layout(_sector_map(0x0800_0000, (32 * 1024, 4), (128 * 1024, 1),
                                       (256 * 1024, 7))),
            flash_wait_states=7, uart="USART3 PD8/PD9 AF7", timestamp_pin="PF13 (D7)",
            active_power_mw=445.0,
            power_source="assumed equal to nucleo-f746zg; no published figure",
            gcc_cpu_flags=_M7_DP, pyocd_target="stm32f767zi",
        ),
        Board(
            name="nucleo-l4r5zi", code=4, mcu="STM32L4R5ZI", core="cortex-m4",
            clock_hz=120_000_000,
            sram_base=0x2000_0000, sram_bytes=640 * 1024,  # SRAM1 192 K + SRAM2 64 K + SRAM3 384 K
            flash_base=0x0800_0000, flash_bytes=2048 * 1024,
            # RM0432 §3.3.1 (2 MB devices, dual bank: DBANK = 1, the factory setting): two banks of
            # 256 pages of 4 KB, bank 2 from 0x08100000, one address range. The firmware gets
            # pages 0-11 of bank 1, the model the rest of both banks (2000 KB).
            **flash_layout(_sector_map(0x0800_0000, (4 * 1024, 512))),
            flash_wait_states=5, uart="LPUART1 PG7/PG8 AF8", timestamp_pin="PF13 (D7)",
            active_power_mw=40.0,
            power_source="MLPerf Tiny v0.5 reference submission: energy / latency at 1.8 V",
            gcc_cpu_flags=_M4F, pyocd_target="stm32l4r5zitx",
        ),
    )
}

# The host build: the same runtime compiled for this machine, for tests. No cycle figures.
HOST = Board(
    name="host", code=0, mcu="host", core="host", clock_hz=0,
    sram_base=0, sram_bytes=64 * 1024 * 1024, flash_base=0, flash_bytes=0,
    model_region_base=0, model_region_bytes=64 * 1024 * 1024, model_region_sectors=(),
    flash_sectors=(),
    flash_wait_states=0, uart="stdio", timestamp_pin="-", active_power_mw=None,
    power_source="-", gcc_cpu_flags=(), pyocd_target=None,
)


def get_board(name: str) -> Board:
    """The board called ``name``; accepts a device name like ``virtual:nucleo-f446re``."""
    board_name = name.split(":")[1] if ":" in name else name
    if board_name == "host":
        return HOST
    try:
        return BOARDS[board_name]
    except KeyError:
        known = ", ".join(sorted(BOARDS))
        raise McuprofError(f"unknown board {board_name!r}; known boards: {known}, host") from None


def board_by_code(code: int) -> Board:
    for board in (HOST, *BOARDS.values()):
        if board.code == code:
            return board
    raise McuprofError(f"no board has plan code {code}")
