"""The firmware's real footprint against the room the memory layout gives it (boards.py).

Flash: the built image of every board, with FIRMWARE_FLASH_MARGIN to spare, ends below the model
region, which starts on a sector boundary. RAM: .data + .bss from the ELF plus the stack reserve
fit FIRMWARE_RAM_RESERVE, and the deepest call chain GCC's call graph gives
(``-fcallgraph-info=su``: each function's frame and its callees) fits STACK_RESERVE. Indirect
calls (the kernel table, protocol handlers) are taken to reach the deepest function that is not
already on the chain, which over-estimates."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench_firmware import build
from bench_firmware.boards import (
    BOARDS,
    FIRMWARE_FLASH_MARGIN,
    FIRMWARE_RAM_RESERVE,
    STACK_RESERVE,
    Board,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(build.ARM_GCC) is None,
                       reason=f"{build.ARM_GCC} is not installed"),
]

BOARD_NAMES = sorted(BOARDS)
# What an exception taken on top of the deepest chain pushes: the FPU-extended frame (26 words,
# ARMv7-M ARM B1.5.7) plus alignment padding. The firmware measures with interrupts off, but a
# fault handler still needs its frame.
EXCEPTION_FRAME_BYTES = 26 * 4 + 4
# Library routines the call graph names without a frame (newlib-nano memcpy/memset/strlen,
# libgcc's 64-bit division): a generous bound on the deepest of them.
LIBRARY_CALL_BYTES = 128
INDIRECT = "__indirect_call"
ROOT = "reset_handler"


def _call_graph(ci_files: list[Path]) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Frame bytes per defined function and call edges, from GCC's ``.ci`` (VCG) files."""
    frames: dict[str, int] = {}
    calls: dict[str, set[str]] = {}
    for path in ci_files:
        text = path.read_text()
        for m in re.finditer(r'node: \{ title: "([^"]+)" label: "([^"]*)"', text):
            frame = re.search(r"\\n(\d+) bytes \((\w+)", m.group(2))
            if frame:
                assert frame.group(2) == "static", f"{m.group(1)} has a {frame.group(2)} frame"
                frames[m.group(1)] = int(frame.group(1))
        for m in re.finditer(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', text):
            calls.setdefault(m.group(1), set()).add(m.group(2))
    return frames, calls


def _deepest_stack(frames: dict[str, int], calls: dict[str, set[str]], root: str) -> int:
    """Bytes of the deepest call chain from ``root``; a call back into the chain adds nothing."""
    memo: dict[str, int] = {}

    def depth(fn: str, chain: frozenset[str]) -> int:
        if fn in chain:
            return 0
        if fn == INDIRECT:
            return max(depth(g, chain) for g in frames if g != root and g not in chain)
        if fn not in frames:  # a library routine
            return LIBRARY_CALL_BYTES
        if fn not in memo:
            inner = chain | {fn}
            memo[fn] = frames[fn] + max((depth(c, inner) for c in calls.get(fn, ())), default=0)
        return memo[fn]

    return depth(root, frozenset())


@pytest.fixture(scope="module", params=BOARD_NAMES)
def image(request: pytest.FixtureRequest) -> tuple[Board, build.FirmwareImage]:
    board = BOARDS[request.param]
    return board, build.build_firmware(board)


def test_image_leaves_the_margin_below_the_model_region(
    image: tuple[Board, build.FirmwareImage],
) -> None:
    board, built = image
    assert built.flash_bytes + FIRMWARE_FLASH_MARGIN <= board.firmware_flash_bytes, (
        f"{board.name}: the {built.flash_bytes:,}-byte image leaves less than "
        f"{FIRMWARE_FLASH_MARGIN:,} bytes below the model region at "
        f"{board.model_region_base:#010x}; raise FIRMWARE_FLASH_BUDGET in bench_firmware/boards.py "
        f"and the linker scripts' MEMORY blocks")
    assert (board.model_region_base, board.model_region_sectors[0][1]) in board.flash_sectors


def test_static_ram_and_stack_reserve_fit(image: tuple[Board, build.FirmwareImage]) -> None:
    board, built = image
    assert built.data_bytes + built.bss_bytes + STACK_RESERVE <= FIRMWARE_RAM_RESERVE
    assert board.arena_capacity == board.sram_bytes - FIRMWARE_RAM_RESERVE


@pytest.mark.parametrize("name", ["nucleo-f446re", "nucleo-f746zg"])  # one per core
def test_deepest_call_chain_fits_the_stack_reserve(name: str, tmp_path: Path) -> None:
    board = BOARDS[name]
    sources = build.firmware_sources(board)
    subprocess.run(
        [build.ARM_GCC, *build.firmware_flags(board), "-fstack-usage", "-fcallgraph-info=su",
         "-c", *map(str, sources)],
        cwd=tmp_path, check=True, capture_output=True)
    frames, calls = _call_graph(sorted(tmp_path.glob("*.ci")))
    assert ROOT in frames and "main" in calls[ROOT]
    need = _deepest_stack(frames, calls, ROOT) + EXCEPTION_FRAME_BYTES
    assert need <= STACK_RESERVE // 2, (
        f"{name}: the deepest call chain needs {need:,} bytes of stack; STACK_RESERVE "
        f"({STACK_RESERVE:,}) keeps twice that")


def test_deepest_stack_follows_indirect_calls() -> None:
    frames = {ROOT: 8, "main": 16, "dispatch": 32, "small": 8, "big": 200}
    calls = {ROOT: {"main"}, "main": {"dispatch"}, "dispatch": {INDIRECT, "memcpy"},
             "big": {"dispatch"}}
    # reset_handler → main → dispatch → (indirect) big → dispatch again adds nothing.
    assert _deepest_stack(frames, calls, ROOT) == 8 + 16 + 32 + 200
