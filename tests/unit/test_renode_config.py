"""The Renode backend's configuration, without Renode: each board's platform description
(``bench_firmware/backends/renode/platforms/*.repl``) against the board catalogue and the
firmware's own register headers, the generated ``.resc``, and the errors a user without
Renode gets."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from pathlib import Path

import pytest

from bench_firmware import build
from bench_firmware.backends.base import RunResult
from bench_firmware.backends.renode import (
    CYCLE_SOURCE,
    RENODE_ENV,
    RenodeBoard,
    RenodeRunResult,
    find_renode,
    parse_device,
    platform_file,
    render_resc,
)
from bench_firmware.backends.renode.script import (
    ReplEntry,
    load_plan_commands,
    monitor_path,
    parse_repl,
    performance_mips,
    uart_peripheral,
)
from bench_firmware.boards import BOARDS, Board
from bench_firmware.errors import BoardError

BOARD_NAMES = sorted(BOARDS)

# The ST-LINK virtual COM port of each board: its name in the .repl, its base (RM0390 /
# RM0385 / RM0410 / RM0432 memory maps) and the Renode model with that register layout.
UARTS = {
    "nucleo-f446re": ("usart2", 0x4000_4400, "UART.STM32_UART"),
    "nucleo-f746zg": ("usart3", 0x4000_4800, "UART.STM32F7_USART"),
    "nucleo-f767zi": ("usart3", 0x4000_4800, "UART.STM32F7_USART"),
    "nucleo-l4r5zi": ("lpuart1", 0x4000_8000, "UART.STM32F7_USART"),
}
CPU_TYPES = {"cortex-m4": "cortex-m4", "cortex-m7": "cortex-m7"}
# Bus footprint of the Renode models that size themselves (IKnownSize in renode-infrastructure:
# NVIC.cs, Arm-M/DWT.cs, UART/STM32F7_USART.cs).
KNOWN_SIZES = {"IRQControllers.NVIC": 0x1000, "Miscellaneous.DWT": 0x1000,
               "UART.STM32F7_USART": 0x400}


def _platform(board: Board) -> dict[str, ReplEntry]:
    return parse_repl(platform_file(board).read_text())


def _span(entry: ReplEntry) -> tuple[int, int] | None:
    if entry.address is None:
        return None
    size = entry.size if entry.size is not None else KNOWN_SIZES.get(entry.type or "")
    assert size is not None, f"{entry.name}: no size"
    return entry.address, entry.address + size


def _entry_at(entries: dict[str, ReplEntry], address: int) -> ReplEntry | None:
    for entry in entries.values():
        span = _span(entry)
        if span and span[0] <= address < span[1]:
            return entry
    return None


def _reset_value(entries: dict[str, ReplEntry], address: int) -> int:
    """What the platform's register at ``address`` reads before the firmware writes it."""
    entry = _entry_at(entries, address)
    assert entry is not None and entry.address is not None, f"{address:#x} is not mapped"
    assert entry.type == "Memory.MappedMemory", f"{address:#x} is in {entry.name} ({entry.type})"
    return entry.init_writes().get(address - entry.address, 0)


# --- reading the firmware's C ------------------------------------------------------------------


def _strip_c_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", " ", re.sub(r"//[^\n]*", " ", text), flags=re.S)


def _board_sources(board: Board) -> list[Path]:
    return [p for d in build.board_source_dirs(board) for p in sorted(d.glob("*.[ch]"))]


def _defines(board: Board) -> dict[str, str]:
    """Object-like ``#define NAME value`` of the board's support code (board folder last)."""
    files = sorted(_board_sources(board), key=lambda p: p.parent == build.BOARDS_DIR / board.name)
    out: dict[str, str] = {}
    for path in files:
        for m in re.finditer(r"^[ \t]*#define[ \t]+(\w+)[ \t]+(.+?)[ \t]*$",
                             _strip_c_comments(path.read_text()), flags=re.M):
            out[m.group(1)] = m.group(2)
    return out


_INT_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Add, ast.Sub,
              ast.Mult, ast.LShift, ast.RShift, ast.BitOr, ast.USub)


def _c_value(name: str, defines: dict[str, str], depth: int = 0) -> int:
    """The integer a define (or a literal such as ``3u``) stands for; ``MMIO32(addr)`` stands
    for its address."""
    assert depth < 10, f"{name}: defines nest too deep"
    expr = defines.get(name, name)
    m = re.fullmatch(r"MMIO32\((.*)\)", expr)
    if m:
        expr = m.group(1)
    expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr)
    expr = re.sub(r"\b[A-Za-z_]\w*\b",
                  lambda w: str(_c_value(w.group(0), defines, depth + 1)), expr)
    tree = ast.parse(expr, mode="eval")
    assert all(isinstance(n, _INT_NODES) for n in ast.walk(tree)), f"{name} = {expr!r}"
    return int(eval(compile(tree, name, "eval")))


def _registers(defines: dict[str, str]) -> dict[str, int]:
    """Every fixed-address register the board support names: ``NAME -> address``."""
    return {name: _c_value(name, defines) for name, value in defines.items()
            if value.startswith("MMIO32(")}


_WHILE_NOT_SET = re.compile(r"while\s*\(\s*!\s*\(\s*(\w+)\s*&\s*(\w+)\s*\)\s*\)")
_WHILE_SET = re.compile(r"while\s*\(\s*(\w+)\s*&\s*(\w+)\s*\)")
_WHILE_FIELD = re.compile(
    r"while\s*\(\s*\(\s*\(\s*(\w+)\s*>>\s*(\w+)\s*\)\s*&\s*(\w+)\s*\)\s*!=\s*(\w+)\s*\)")


def _polls(board: Board) -> tuple[list[tuple[str, str]], list[tuple[str, str]],
                                  list[tuple[str, str, str, str]]]:
    """The busy-waits on fixed registers in the board support: (register, bit) waited for to
    be set, (register, bit) waited for to clear, (register, shift, mask, value) fields."""
    text = "\n".join(_strip_c_comments(p.read_text()) for p in _board_sources(board))
    return (_WHILE_NOT_SET.findall(text), _WHILE_SET.findall(text), _WHILE_FIELD.findall(text))


# --- the platform descriptions against the catalogue --------------------------------------------


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_platform_core_clock_and_cycle_counter(name: str) -> None:
    board = BOARDS[name]
    entries = _platform(board)
    cpu = entries["cpu"]
    assert cpu.type == "CPU.CortexM"
    assert cpu.attributes["cpuType"] == CPU_TYPES[board.core]
    assert cpu.attributes["nvic"] == "nvic"
    assert entries["nvic"].address == 0xE000_E000
    assert entries["nvic"].int_attr("systickFrequency") == board.clock_hz
    dwt = entries["dwt"]
    assert (dwt.type, dwt.address) == ("Miscellaneous.DWT", 0xE000_1000)
    assert dwt.int_attr("frequency") == board.clock_hz  # CYCCNT counts at the core clock


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_platform_memory_matches_catalogue(name: str) -> None:
    board = BOARDS[name]
    entries = _platform(board)
    flash, model, sram = entries["flash"], entries["modelRegion"], entries["sram"]
    for entry in (flash, model, sram):
        assert entry.type == "Memory.MappedMemory"
    assert model.address == board.model_region_base
    assert model.size == board.model_region_bytes
    assert flash.address == board.flash_base
    assert flash.size == board.model_region_base - board.flash_base  # the firmware's part
    assert board.model_region_base + board.model_region_bytes <= board.flash_base + \
        board.flash_bytes
    assert (sram.address, sram.size) == (board.sram_base, board.sram_bytes)


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_platform_uart(name: str) -> None:
    board = BOARDS[name]
    entries = _platform(board)
    uart_name, base, model = UARTS[name]
    assert uart_peripheral(board) == uart_name
    uart = entries[uart_name]
    assert (uart.type, uart.address) == (model, base)
    # The firmware's own idea of where its UART is.
    defines = _defines(board)
    assert _c_value("UART", defines) == base
    low_power = uart.attributes.get("lowPowerMode") == "true"
    assert low_power == uart_name.startswith("lp")  # the 20-bit LPUART BRR


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_platform_entries_do_not_overlap(name: str) -> None:
    spans = sorted((s, e.name) for e in _platform(BOARDS[name]).values()
                   if (s := _span(e)) is not None)
    for (a, first), (b, second) in zip(spans, spans[1:], strict=False):
        assert a[1] <= b[0], f"{first} {a[0]:#x}..{a[1]:#x} overlaps {second} at {b[0]:#x}"


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_platform_is_self_contained(name: str) -> None:
    text = platform_file(BOARDS[name]).read_text()
    assert not re.search(r"^\s*using\b", text, flags=re.M)  # no Renode CPU platform to drift
    assert "http" not in text.replace("https://renode.io", "")  # nothing fetched at load time
    assert text.isascii()


# --- ... and against the firmware ---------------------------------------------------------------


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_every_register_the_firmware_names_is_mapped(name: str) -> None:
    board = BOARDS[name]
    entries = _platform(board)
    registers = _registers(_defines(board))
    assert len(registers) > 15  # the scan found the register headers
    unmapped = {reg: f"{addr:#x}" for reg, addr in registers.items()
                if _entry_at(entries, addr) is None}
    assert not unmapped, f"{name}: registers outside every .repl entry: {unmapped}"


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_gpio_ports_the_firmware_drives_are_mapped(name: str) -> None:
    board = BOARDS[name]
    entries = _platform(board)
    defines = _defines(board)
    for port in ("UART_PORT", "TIMESTAMP_PORT"):
        base = _c_value(port, defines)
        for offset in (0x00, 0x04, 0x18, 0x20, 0x24):  # MODER OTYPER BSRR AFRL AFRH
            entry = _entry_at(entries, base + offset)
            assert entry is not None, f"{name}: {port} + {offset:#x} is not mapped"


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_every_busy_wait_of_the_firmware_ends(name: str) -> None:
    """clock_init() waits for ready flags; Renode models no RCC or PWR for these parts, so the
    .repl gives those registers reset values under which every wait in the board support
    ends at once (and the firmware only sets bits, so they stay)."""
    board = BOARDS[name]
    entries = _platform(board)
    defines = _defines(board)
    registers = _registers(defines)
    wait_set, wait_clear, wait_field = _polls(board)
    assert len(wait_set) >= 2 and wait_field, f"{name}: the scan found no clock waits"
    for reg, bit in wait_set:
        if reg in registers:
            value = _reset_value(entries, registers[reg])
            assert value & _c_value(bit, defines), f"{name}: {reg} & {bit} reads 0: hangs"
    for reg, bit in wait_clear:
        if reg in registers:
            value = _reset_value(entries, registers[reg])
            assert not value & _c_value(bit, defines), f"{name}: {reg} & {bit} stays set"
    for reg, shift, mask, want in wait_field:
        value = _reset_value(entries, registers[reg])
        got = (value >> _c_value(shift, defines)) & _c_value(mask, defines)
        assert got == _c_value(want, defines), f"{name}: {reg} field {shift} is {got}"


def test_the_clock_waits_found_are_the_expected_ones() -> None:
    """The scan above sees the ready flags the RMs' clock set-up sequences wait for."""
    f446 = _polls(BOARDS["nucleo-f446re"])
    assert {("RCC_CR", "RCC_CR_HSIRDY"), ("RCC_CR", "RCC_CR_PLLRDY"),
            ("PWR_CSR", "PWR_CSR_ODRDY"), ("PWR_CSR", "PWR_CSR_ODSWRDY")} <= set(f446[0])
    l4 = _polls(BOARDS["nucleo-l4r5zi"])
    assert ("PWR_SR2", "PWR_SR2_VOSF") in l4[1]
    assert ("RCC_CFGR", "RCC_CFGR_SWS_SHIFT", "3u", "RCC_CFGR_SW_PLL") in l4[2]


# --- the session script ------------------------------------------------------------------------


def _resc(board: Board, plan: bool = True) -> list[str]:
    text = render_resc(board, platform=Path("/s/board.repl"), elf=Path("/s/fw.elf"),
                       uart_port=40123, plan=Path("/s/plan.bin") if plan else None)
    return [line.strip() for line in text.splitlines()]


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_resc_boots_the_board(name: str) -> None:
    board = BOARDS[name]
    lines = _resc(board)
    mips = board.clock_hz // 1_000_000
    assert performance_mips(board) == mips
    expected = [
        f'mach create "mcuprof-{name}"',
        "machine LoadPlatformDescription @/s/board.repl",
        f"cpu PerformanceInMips {mips}",  # 1 instruction = 1 cycle at the core clock
        "emulation SetGlobalAdvanceImmediately true",
        "sysbus LoadELF @/s/fw.elf",
        f"cpu VectorTableOffset {board.flash_base:#010x}",
        f"sysbus LoadBinary @/s/plan.bin {board.model_region_base:#010x}",
        "runMacro $reset",
        'emulation CreateServerSocketTerminal 40123 "term" false',
        f"connector Connect sysbus.{UARTS[name][0]} term",
        "start",
    ]
    positions = [lines.index(line) for line in expected]
    assert positions == sorted(positions), "commands out of order"
    assert [line for line in lines if line and not line.startswith(("#", ":"))][-1] == "start"
    assert str(mips) in board.name or board.clock_mhz == mips


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_resc_without_a_plan_loads_none(name: str) -> None:
    lines = _resc(BOARDS[name], plan=False)
    assert not any("LoadBinary" in line for line in lines)
    assert "sysbus LoadELF @/s/fw.elf" in lines


def test_resc_uart_name_is_in_the_platform() -> None:
    for name in BOARD_NAMES:
        board = BOARDS[name]
        assert uart_peripheral(board) in _platform(board)


def test_monitor_paths_must_not_split() -> None:
    assert monitor_path(Path("/tmp/a/plan.bin")) == "@/tmp/a/plan.bin"
    for bad in ("/tmp/my dir/plan.bin", '/tmp/a"b/plan.bin', "/tmp/a;b"):
        with pytest.raises(BoardError, match="splits paths"):
            monitor_path(Path(bad))
    with pytest.raises(BoardError):
        render_resc(BOARDS["nucleo-f446re"], platform=Path("/x y/b.repl"), elf=Path("/e.elf"),
                    uart_port=1234)


def test_plan_reload_commands() -> None:
    board = BOARDS["nucleo-f767zi"]
    assert load_plan_commands(board, Path("/s/plan.bin")) == [
        "pause", "sysbus LoadBinary @/s/plan.bin 0x08010000", "start"]


def test_mips_must_be_whole_megahertz() -> None:
    odd = dataclasses.replace(BOARDS["nucleo-f446re"], clock_hz=168_500_000)
    with pytest.raises(BoardError, match="whole number of MHz"):
        performance_mips(odd)


def test_bad_port_is_refused() -> None:
    with pytest.raises(BoardError, match="TCP port"):
        render_resc(BOARDS["nucleo-f446re"], platform=Path("/b.repl"), elf=Path("/e.elf"),
                    uart_port=0)


def test_parse_repl_rejects_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="not an entry"):
        parse_repl("cpu: CPU.CortexM @ gpio 3\n")
    with pytest.raises(ValueError, match="declared twice"):
        parse_repl("a: Memory.MappedMemory @ sysbus 0x0\n    size: 4\na: Memory.MappedMemory\n")


# --- devices, the executable, and what a user without Renode is told ---------------------------


def test_parse_device() -> None:
    board, instance = parse_device("renode:nucleo-f446re")
    assert board is BOARDS["nucleo-f446re"] and instance is None
    assert parse_device("renode:nucleo-l4r5zi:lab-2") == (BOARDS["nucleo-l4r5zi"], "lab-2")
    for bad in ("virtual:nucleo-f446re", "nucleo-f446re", "renode:", "renode:a:b:c"):
        with pytest.raises(BoardError, match="not a Renode device"):
            parse_device(bad)
    with pytest.raises(BoardError, match="unknown board"):
        parse_device("renode:nucleo-h743zi")
    with pytest.raises(BoardError, match="--board host"):
        parse_device("renode:host")


@pytest.fixture
def no_renode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(RENODE_ENV, raising=False)


def test_missing_renode_says_what_to_install(no_renode: None) -> None:
    with pytest.raises(BoardError) as err:
        find_renode()
    text = str(err.value)
    assert text.startswith("Renode is not installed")
    for needed in ("`renode` on PATH", RENODE_ENV, "https://github.com/renode/renode/releases",
                   "portable", ".deb", f"{RENODE_ENV}=/path/to/renode", "pip",
                   "docs/renode.md"):
        assert needed in text, needed


def test_open_without_renode_fails_before_doing_anything(no_renode: None,
                                                         tmp_path: Path) -> None:
    board = RenodeBoard("renode:nucleo-f746zg", workdir=tmp_path / "session")
    with pytest.raises(BoardError, match="Renode is not installed"):
        board.open()
    assert not (tmp_path / "session").exists()
    board.close()


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_find_renode_order(no_renode: None, monkeypatch: pytest.MonkeyPatch,
                           tmp_path: Path) -> None:
    on_path = _executable(tmp_path / "bin" / "renode")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_renode() == on_path
    portable = _executable(tmp_path / "renode_1.16.0_portable" / "renode")
    monkeypatch.setenv(RENODE_ENV, str(portable.parent))  # the unpacked folder will do
    assert find_renode() == portable
    explicit = _executable(tmp_path / "other" / "renode")
    assert find_renode(explicit) == explicit


def test_find_renode_bad_setting(no_renode: None, monkeypatch: pytest.MonkeyPatch,
                                 tmp_path: Path) -> None:
    monkeypatch.setenv(RENODE_ENV, str(tmp_path / "nowhere" / "renode"))
    with pytest.raises(BoardError, match=rf"{RENODE_ENV} .*no such file.*releases"):
        find_renode()
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    os.chmod(plain, 0o644)
    monkeypatch.setenv(RENODE_ENV, str(plain))
    with pytest.raises(BoardError, match="not executable"):
        find_renode()


# --- what the runner sees ----------------------------------------------------------------------


def test_results_are_marked_as_renode_estimates() -> None:
    result = RenodeRunResult(output=b"", cycles_per_run=[1], layer_cycles=[1], lap_us=(0, 1))
    assert isinstance(result, RunResult)
    assert result.cycle_source == CYCLE_SOURCE == "renode-estimate"
    assert RenodeBoard.cycle_source == CYCLE_SOURCE


def test_backend_shape() -> None:
    board = RenodeBoard("renode:nucleo-f446re")
    assert board.device == "renode:nucleo-f446re" and board.board is BOARDS["nucleo-f446re"]
    for method in ("open", "close", "load_plan", "run", "__enter__", "__exit__"):
        assert callable(getattr(board, method))
    with pytest.raises(BoardError, match="reload mode"):
        RenodeBoard("renode:nucleo-f446re", reload="sometimes")
