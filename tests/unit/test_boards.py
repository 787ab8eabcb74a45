"""The board catalogue (bench_firmware/boards.py) is the truth; the firmware's linker scripts and
board C files must agree with it. Pure parsing, no compiler."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bench_firmware import build
from bench_firmware.boards import (
    BOARDS,
    FIRMWARE_FLASH_BUDGET,
    FIRMWARE_FLASH_MARGIN,
    FIRMWARE_RAM_RESERVE,
    HOST,
    STACK_RESERVE,
    Board,
    flash_layout,
    get_board,
)
from bench_firmware.errors import McuprofError

BOARD_NAMES = sorted(BOARDS)


# --- parsing helpers ---------------------------------------------------------------------------


def _strip_c_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


_C_INT_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Constant,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.FloorDiv,
    ast.LShift,
    ast.RShift,
    ast.USub,
)


def _c_int(expr: str) -> int:
    """Evaluate a simple C integer constant expression such as ``(64u * 1024u * 1024u)``."""
    expr = re.sub(r"(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr.strip()).replace("/", "//")
    tree = ast.parse(expr, mode="eval")
    if not all(isinstance(node, _C_INT_NODES) for node in ast.walk(tree)):
        raise ValueError(f"not a simple integer expression: {expr!r}")
    return int(eval(compile(tree, "<c-int>", "eval")))


def _ld_int(text: str) -> int:
    """A linker-script number: 0x40000, 262144, 256K, 1M."""
    m = re.fullmatch(r"(0[xX][0-9a-fA-F]+|\d+)\s*([KM]?)", text.strip())
    assert m, f"cannot read linker number {text!r}"
    value = int(m.group(1), 0)
    return value * {"": 1, "K": 1024, "M": 1024 * 1024}[m.group(2)]


def _memory_regions(linker_ld: Path) -> dict[str, tuple[int, int]]:
    """MEMORY { NAME (attrs) : ORIGIN = x, LENGTH = y } → {NAME: (origin, length)}."""
    text = _strip_c_comments(linker_ld.read_text())
    block = re.search(r"MEMORY\s*\{(.*?)\}", text, flags=re.S)
    assert block, f"{linker_ld} has no MEMORY block"
    regions = {}
    for m in re.finditer(
        r"(\w+)\s*\([^)]*\)\s*:\s*ORIGIN\s*=\s*([^,]+),\s*LENGTH\s*=\s*([^\s,]+)", block.group(1)
    ):
        regions[m.group(1)] = (_ld_int(m.group(2)), _ld_int(m.group(3)))
    return regions


def _ld_symbol(name: str) -> int:
    text = _strip_c_comments((build.COMMON_BOARD_DIR / "sections.ld").read_text())
    m = re.search(rf"^\s*{re.escape(name)}\s*=\s*([^;]+);", text, flags=re.M)
    assert m, f"sections.ld does not define {name}"
    return _ld_int(m.group(1))


def _defines(*paths: Path) -> dict[str, str]:
    """#define NAME value → {NAME: value} over several C files (later files win)."""
    out: dict[str, str] = {}
    for path in paths:
        text = _strip_c_comments(path.read_text())
        for m in re.finditer(r"^\s*#define\s+(\w+)\s+(.+?)\s*$", text, flags=re.M):
            out[m.group(1)] = m.group(2)
    return out


def _identity(board_c: Path) -> tuple[str, int, str]:
    """board_name, board_code and the board_clock_hz initializer from a board C file."""
    text = _strip_c_comments(board_c.read_text())
    name = re.search(r'const\s+char\s+board_name\[\]\s*=\s*"([^"]*)"\s*;', text)
    code = re.search(r"const\s+uint16_t\s+board_code\s*=\s*(\w+)\s*;", text)
    clock = re.search(r"const\s+uint32_t\s+board_clock_hz\s*=\s*(\w+)\s*;", text)
    assert name and code and clock, f"{board_c} lacks board_name / board_code / board_clock_hz"
    return name.group(1), _c_int(code.group(1)), clock.group(1)


def _board_defines(board: Board) -> dict[str, str]:
    """The #defines of every C file of a board's support (common, family, board)."""
    files = [p for d in build.board_source_dirs(board) for p in sorted(d.glob("*.[ch]"))]
    # The board's own folder last, so its values win over family defaults.
    files.sort(key=lambda p: p.parent == build.BOARDS_DIR / board.name)
    return _defines(*files)


# --- every board has board support, and nothing else does ------------------------------------


def test_every_catalogue_board_has_board_support() -> None:
    for name in BOARD_NAMES:
        assert (build.BOARDS_DIR / name / "board.c").is_file(), name
        assert (build.BOARDS_DIR / name / "linker.ld").is_file(), name


def test_board_folders_are_catalogue_boards_or_shared() -> None:
    shared = {"common"} | {build.family_dir(b).name for b in BOARDS.values()}
    for d in build.BOARDS_DIR.iterdir():
        if d.is_dir():
            assert d.name in BOARDS or d.name in shared, f"{d} is not a catalogue board"


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_board_sources_include_common_family_and_board(name: str) -> None:
    board = BOARDS[name]
    dirs = build.board_source_dirs(board)
    assert dirs == [build.COMMON_BOARD_DIR, build.family_dir(board), build.BOARDS_DIR / name]


# --- linker scripts ↔ catalogue ----------------------------------------------------------------


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_linker_memory_regions_match_catalogue(name: str) -> None:
    board = BOARDS[name]
    regions = _memory_regions(build.linker_script(board))
    assert set(regions) == {"FLASH", "MODEL", "RAM"}
    assert regions["MODEL"] == (board.model_region_base, board.model_region_bytes)
    assert regions["RAM"] == (board.sram_base, board.sram_bytes)
    # FLASH holds the code: everything below the model region.
    assert regions["FLASH"] == (board.flash_base, board.model_region_base - board.flash_base)


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_model_region_is_whole_sectors_inside_flash(name: str) -> None:
    board = BOARDS[name]
    sectors = board.model_region_sectors
    assert sectors[0][0] == board.model_region_base
    assert sum(size for _, size in sectors) == board.model_region_bytes
    for (addr, size), (next_addr, _) in zip(sectors, sectors[1:], strict=False):
        assert addr + size == next_addr
    assert board.flash_base < board.model_region_base
    model_end = board.model_region_base + board.model_region_bytes
    assert model_end <= board.flash_base + board.flash_bytes


def test_linker_reserve_matches_catalogue() -> None:
    assert _ld_symbol("__firmware_ram_reserve") == FIRMWARE_RAM_RESERVE
    assert _ld_symbol("__stack_min_bytes") == STACK_RESERVE
    assert 0 < STACK_RESERVE < FIRMWARE_RAM_RESERVE


# The flash organisation tables, written out here from the reference manuals (not from boards.py):
# (sector bytes, count) runs from 0x08000000.
KIB = 1024
SECTOR_TABLES = {
    # RM0390 §3.3, Table 5: 4 x 16 KB, 64 KB, 3 x 128 KB.
    "nucleo-f446re": [(16 * KIB, 4), (64 * KIB, 1), (128 * KIB, 3)],
    # RM0385 §3.3.1, Table 4: 4 x 32 KB, 128 KB, 3 x 256 KB.
    "nucleo-f746zg": [(32 * KIB, 4), (128 * KIB, 1), (256 * KIB, 3)],
    # RM0410 §3.3.1, Table 4, single bank (nDBANK = 1): 4 x 32 KB, 128 KB, 7 x 256 KB.
    "nucleo-f767zi": [(32 * KIB, 4), (128 * KIB, 1), (256 * KIB, 7)],
    # RM0432 §3.3.1, 2 MB dual bank (DBANK = 1): 2 x 256 pages of 4 KB.
    "nucleo-l4r5zi": [(4 * KIB, 512)],
}


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_flash_sectors_are_the_reference_manual_table(name: str) -> None:
    board = BOARDS[name]
    expected = [size for size, count in SECTOR_TABLES[name] for _ in range(count)]
    assert [size for _, size in board.flash_sectors] == expected
    assert board.flash_sectors[0][0] == board.flash_base
    for (addr, size), (next_addr, _) in zip(board.flash_sectors, board.flash_sectors[1:],
                                            strict=False):
        assert addr + size == next_addr
    assert sum(expected) == board.flash_bytes


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_firmware_gets_the_fewest_sectors_that_hold_its_budget(name: str) -> None:
    board = BOARDS[name]
    firmware = [s for s in board.flash_sectors if s[0] < board.model_region_base]
    assert sum(size for _, size in firmware) == board.firmware_flash_bytes
    assert board.firmware_flash_bytes >= FIRMWARE_FLASH_BUDGET
    # One sector fewer would not hold the budget.
    assert board.firmware_flash_bytes - firmware[-1][1] < FIRMWARE_FLASH_BUDGET
    # The model region is every sector after the firmware's, to the end of flash.
    assert board.model_region_sectors == tuple(
        s for s in board.flash_sectors if s[0] >= board.model_region_base)
    assert board.model_region_base + board.model_region_bytes == board.flash_base + \
        board.flash_bytes
    assert FIRMWARE_FLASH_MARGIN < FIRMWARE_FLASH_BUDGET


def test_flash_layout_splits_on_a_sector_boundary() -> None:
    sectors = ((0x100, 16), (0x110, 16), (0x120, 64), (0x160, 128))
    layout = flash_layout(sectors, firmware_bytes=17)
    assert (layout["model_region_base"], layout["model_region_bytes"]) == (0x120, 192)
    assert layout["model_region_sectors"] == sectors[2:]
    assert flash_layout(sectors, firmware_bytes=32)["model_region_base"] == 0x120
    with pytest.raises(McuprofError, match="no flash sector for a model"):
        flash_layout(sectors, firmware_bytes=97)


def test_the_boards_hold_micronet_kws_l() -> None:
    # MicroNets (arXiv 2010.11267) deployed MicroNet-KWS-L on a NUCLEO-F746ZG; its plan is
    # about 546-570 KB, so the F746ZG model region must take it (the old 512 KB one did not).
    assert BOARDS["nucleo-f746zg"].model_region_bytes >= 900 * KIB


def test_linker_places_the_arena_after_the_reserve() -> None:
    text = _strip_c_comments((build.COMMON_BOARD_DIR / "sections.ld").read_text())
    assert re.search(r"__arena_start\s*=\s*ORIGIN\(RAM\)\s*\+\s*__firmware_ram_reserve;", text)
    assert re.search(r"__arena_end\s*=\s*ORIGIN\(RAM\)\s*\+\s*LENGTH\(RAM\);", text)
    assert re.search(r"__stack_top\s*=\s*ORIGIN\(RAM\)\s*\+\s*__firmware_ram_reserve;", text)
    for name in ("__model_region_start", "__model_region_end", "_sidata", "_sbss", "_ebss"):
        assert name in text


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_arena_equals_catalogue_capacity(name: str) -> None:
    board = BOARDS[name]
    ram_origin, ram_length = _memory_regions(build.linker_script(board))["RAM"]
    arena_start = ram_origin + _ld_symbol("__firmware_ram_reserve")
    assert arena_start % 16 == 0
    assert ram_origin + ram_length - arena_start == board.arena_capacity


# --- board C files ↔ catalogue -----------------------------------------------------------------


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_board_identity_matches_catalogue(name: str) -> None:
    board = BOARDS[name]
    board_c = build.BOARDS_DIR / name / "board.c"
    c_name, c_code, clock_init = _identity(board_c)
    defines = _defines(board_c)
    assert c_name == board.name
    assert c_code == board.code
    clock = _c_int(defines.get(clock_init, clock_init))
    assert clock == board.clock_hz
    assert _c_int(defines["BOARD_FLASH_WAIT_STATES"]) == board.flash_wait_states


def _pin(spec: str) -> tuple[str, int]:
    """'PA8' → ('A', 8)."""
    m = re.fullmatch(r"P([A-K])(\d+)", spec)
    assert m, spec
    return m.group(1), int(m.group(2))


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_uart_and_timestamp_pins_match_catalogue(name: str) -> None:
    board = BOARDS[name]
    defines = _board_defines(board)
    # "USART2 PA2/PA3 AF7": peripheral, TX / RX pins, alternate function.
    periph, pins, af = board.uart.split()
    tx, rx = (_pin(p) for p in pins.split("/"))
    assert defines["UART"] == f"{periph}_BASE"
    assert defines["UART_PORT"] == f"GPIO{tx[0]}_BASE" and tx[0] == rx[0]
    assert _c_int(defines["UART_TX_PIN"]) == tx[1]
    assert _c_int(defines["UART_RX_PIN"]) == rx[1]
    assert _c_int(defines["UART_AF"]) == int(af.removeprefix("AF"))
    # "PA8 (D7)"
    port, pin = _pin(board.timestamp_pin.split()[0])
    assert defines["TIMESTAMP_PORT"] == f"GPIO{port}_BASE"
    assert _c_int(defines["TIMESTAMP_PIN"]) == pin


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_cycle_counter_unlocked_on_cortex_m7_only(name: str) -> None:
    board = BOARDS[name]
    text = "".join(
        _strip_c_comments(p.read_text())
        for d in build.board_source_dirs(board)[1:]
        for p in d.glob("*.c")
    )
    calls = re.findall(r"cortex_m_cycle_counter_start\((\d)\)", text)
    assert calls == ["1" if board.core == "cortex-m7" else "0"]


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_firmware_flags_come_from_catalogue(name: str) -> None:
    board = BOARDS[name]
    flags = build.firmware_flags(board)
    for flag in board.gcc_cpu_flags:
        assert flag in flags
    assert f"-DMP_BOARD_CODE={board.code}" in flags
    assert f"-T{build.linker_script(board)}" in flags
    assert "-mfloat-abi=hard" in flags


def test_host_board_matches_catalogue() -> None:
    board_c = build.HOST_DIR / "board_host.c"
    c_name, c_code, clock_init = _identity(board_c)
    defines = _defines(board_c)
    assert (c_name, c_code, _c_int(clock_init)) == (HOST.name, HOST.code, HOST.clock_hz)
    assert _c_int(defines["HOST_SRAM_BYTES"]) == HOST.sram_bytes
    assert _c_int(defines["HOST_FIRMWARE_RAM_RESERVE"]) == FIRMWARE_RAM_RESERVE
    arena = _c_int(defines["HOST_SRAM_BYTES"]) - _c_int(defines["HOST_FIRMWARE_RAM_RESERVE"])
    assert arena == HOST.arena_capacity


def test_host_is_not_a_cross_target() -> None:
    with pytest.raises(build.BuildError, match="build_host"):
        build.firmware_flags(get_board("host"))
