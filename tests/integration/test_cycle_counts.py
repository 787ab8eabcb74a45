"""Exact cycle counts of the twins on C workloads: a guard for changes that should not move them.

The cycle model's hot paths are tuned for emulation speed (``benchmarks/cycle_model_speed.py``,
``benchmarks/virtual_board_speed.py``); such changes must leave every count as it was. Each
case runs one ``tests/fixtures/microbench/fidelity.c`` workload (the build of
``test_twin_fidelity.py``) on a bare core with one board's cycle model and one flash-path
configuration, and compares setup cycles, bench cycles and instructions, and instruction- and
data-cache refills with the figures recorded here. The workloads cover the ART fetch plans with
and without prefetch, the data caches' hits and refills, the Cortex-M7 branch
prediction and L1 caches, and the caches off. Every case runs on both implementations of the
model's hot paths (the Python reference and ``timing/_fast.c``).

The figures hold for the code arm-none-eabi-gcc 12.2.1 generates; with another compiler
the test is skipped. A deliberate change to the model's rules changes them: print the new ones
with ``measure`` and say in the commit why they moved.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench_firmware.backends.virtual.timing import MemoryConfig, _fast
from bench_firmware.backends.virtual.timing.harness import BareCore
from bench_firmware.boards import BOARDS
from tests.fidelity_workloads import GCC, builder

GCC_VERSION = "12.2.1"  # the compiler the figures were recorded with
MEMORY = {
    "default": MemoryConfig(),
    "no_prefetch": MemoryConfig(prefetch=False),
    "no_dcache": MemoryConfig(dcache=False),
    "all_off": MemoryConfig(icache=False, dcache=False, prefetch=False),
}
# (board, workload, memory) -> (setup cycles, bench cycles, bench instructions,
#                               instruction-cache refills, data-cache refills)
EXPECTED: dict[tuple[str, str, str], tuple[int, int, int, int, int]] = {
    ("nucleo-f446re", "scalar", "default"): (1089, 38596, 26564, 41, 31),
    ("nucleo-f446re", "scalar", "no_prefetch"): (1100, 38689, 26564, 50, 31),
    ("nucleo-f446re", "scalar", "no_dcache"): (1094, 40036, 26564, 41, 320),
    ("nucleo-f446re", "scalar", "all_off"): (2510, 73439, 26564, 6993, 320),
    ("nucleo-f446re", "mem_flash", "default"): (9, 135230, 65555, 4, 4101),
    ("nucleo-f446re", "mem_flash", "no_prefetch"): (9, 135235, 65555, 4, 4101),
    ("nucleo-f446re", "mem_flash", "no_dcache"): (9, 196675, 65555, 4, 16390),
    ("nucleo-f446re", "mem_flash", "all_off"): (9, 360510, 65555, 32770, 16390),
    ("nucleo-f446re", "mac_flash", "default"): (32786, 84182, 61505, 10, 2054),
    ("nucleo-f446re", "mac_flash", "no_prefetch"): (32793, 84195, 61505, 10, 2054),
    ("nucleo-f446re", "mac_flash", "no_dcache"): (32786, 114922, 61505, 10, 8202),
    ("nucleo-f446re", "mac_flash", "all_off"): (73743, 196900, 61505, 24593, 8202),
    ("nucleo-f446re", "mac_sram", "default"): (59933, 73923, 61505, 11, 516),
    ("nucleo-f446re", "mac_sram", "no_prefetch"): (59941, 73945, 61505, 12, 516),
    ("nucleo-f446re", "mac_sram", "no_dcache"): (98338, 73958, 61505, 11, 8204),
    ("nucleo-f446re", "mac_sram", "all_off"): (159771, 155945, 61505, 28690, 8204),
    ("nucleo-l4r5zi", "scalar", "default"): (1103, 38602, 26564, 25, 8),
    ("nucleo-l4r5zi", "scalar", "no_prefetch"): (1110, 38679, 26564, 25, 8),
    ("nucleo-l4r5zi", "scalar", "no_dcache"): (1093, 40052, 26564, 25, 320),
    ("nucleo-l4r5zi", "scalar", "all_off"): (2995, 98069, 26564, 6226, 320),
    ("nucleo-l4r5zi", "mem_flash", "default"): (11, 155776, 65555, 2, 2053),
    ("nucleo-l4r5zi", "mem_flash", "no_prefetch"): (14, 155780, 65555, 2, 2053),
    ("nucleo-l4r5zi", "mem_flash", "no_dcache"): (11, 196666, 65555, 2, 16390),
    ("nucleo-l4r5zi", "mem_flash", "all_off"): (14, 360535, 65555, 32774, 16390),
    ("nucleo-l4r5zi", "mac_flash", "default"): (32805, 94506, 61505, 5, 1030),
    ("nucleo-l4r5zi", "mac_flash", "no_prefetch"): (32813, 94525, 61505, 5, 1030),
    ("nucleo-l4r5zi", "mac_flash", "no_dcache"): (32790, 114931, 61505, 5, 8202),
    ("nucleo-l4r5zi", "mac_flash", "all_off"): (94223, 258405, 61505, 16397, 8202),
    ("nucleo-l4r5zi", "mac_sram", "default"): (62509, 73965, 61505, 6, 259),
    ("nucleo-l4r5zi", "mac_sram", "no_prefetch"): (62521, 73985, 61505, 6, 259),
    ("nucleo-l4r5zi", "mac_sram", "no_dcache"): (98344, 73970, 61505, 6, 8204),
    ("nucleo-l4r5zi", "mac_sram", "all_off"): (180261, 217450, 61505, 20496, 8204),
    ("nucleo-f746zg", "scalar", "default"): (565, 22189, 26640, 25, 8),
    ("nucleo-f746zg", "scalar", "no_prefetch"): (565, 22189, 26640, 25, 8),
    ("nucleo-f746zg", "scalar", "no_dcache"): (565, 24373, 26640, 25, 320),
    ("nucleo-f746zg", "scalar", "all_off"): (1895, 68830, 26640, 6566, 320),
    ("nucleo-f746zg", "mem_flash", "default"): (9, 63587, 65555, 2, 2053),
    ("nucleo-f746zg", "mem_flash", "no_prefetch"): (9, 63587, 65555, 2, 2053),
    ("nucleo-f746zg", "mem_flash", "no_dcache"): (9, 163946, 65555, 2, 16390),
    ("nucleo-f746zg", "mem_flash", "all_off"): (9, 393350, 65555, 32774, 16390),
    ("nucleo-f746zg", "mac_flash", "default"): (12314, 48315, 61505, 6, 1030),
    ("nucleo-f746zg", "mac_flash", "no_prefetch"): (12314, 48315, 61505, 6, 1030),
    ("nucleo-f746zg", "mac_flash", "no_dcache"): (12314, 98519, 61505, 6, 8202),
    ("nucleo-f746zg", "mac_flash", "all_off"): (40986, 184598, 61505, 16399, 8202),
    ("nucleo-f746zg", "mac_sram", "default"): (22306, 41126, 61505, 7, 259),
    ("nucleo-f746zg", "mac_sram", "no_prefetch"): (22306, 41126, 61505, 7, 259),
    ("nucleo-f746zg", "mac_sram", "no_dcache"): (77872, 41175, 61505, 7, 8204),
    ("nucleo-f746zg", "mac_sram", "all_off"): (135209, 127254, 61505, 20495, 8204),
    ("nucleo-f767zi", "scalar", "default"): (565, 22189, 26640, 25, 8),
    ("nucleo-f767zi", "scalar", "no_prefetch"): (565, 22189, 26640, 25, 8),
    ("nucleo-f767zi", "scalar", "no_dcache"): (565, 24373, 26640, 25, 320),
    ("nucleo-f767zi", "scalar", "all_off"): (1895, 68830, 26640, 6566, 320),
    ("nucleo-f767zi", "mem_flash", "default"): (9, 52919, 65555, 2, 529),
    ("nucleo-f767zi", "mem_flash", "no_prefetch"): (9, 52919, 65555, 2, 529),
    ("nucleo-f767zi", "mem_flash", "no_dcache"): (9, 163946, 65555, 2, 16390),
    ("nucleo-f767zi", "mem_flash", "all_off"): (9, 393350, 65555, 32774, 16390),
    ("nucleo-f767zi", "mac_flash", "default"): (12314, 42918, 61505, 6, 259),
    ("nucleo-f767zi", "mac_flash", "no_prefetch"): (12314, 42918, 61505, 6, 259),
    ("nucleo-f767zi", "mac_flash", "no_dcache"): (12314, 98519, 61505, 6, 8202),
    ("nucleo-f767zi", "mac_flash", "all_off"): (40986, 184598, 61505, 16399, 8202),
    ("nucleo-f767zi", "mac_sram", "default"): (22306, 41126, 61505, 7, 259),
    ("nucleo-f767zi", "mac_sram", "no_prefetch"): (22306, 41126, 61505, 7, 259),
    ("nucleo-f767zi", "mac_sram", "no_dcache"): (77872, 41175, 61505, 7, 8204),
    ("nucleo-f767zi", "mac_sram", "all_off"): (135209, 127254, 61505, 20495, 8204),
}


def _gcc_version() -> str | None:
    if shutil.which(GCC) is None:
        return None
    return subprocess.run([GCC, "-dumpversion"], check=True, capture_output=True,
                          text=True).stdout.strip()


pytestmark = pytest.mark.skipif(
    _gcc_version() != GCC_VERSION,
    reason=f"the figures are for {GCC} 12.2.1 (found {_gcc_version()})")


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory):
    """``build(board name, workload) -> ELF``, compiled once per (core, workload)."""
    build = builder(tmp_path_factory.mktemp("cycle_counts"))
    return lambda board_name, name: build(BOARDS[board_name], name)


IMPLEMENTATIONS = [
    "python",
    pytest.param("c", marks=pytest.mark.skipif(not _fast.available(),
                                               reason="no host C compiler for _fast.c")),
]


def measure(board_name: str, elf: Path, memory: str,
            implementation: str | None = None) -> tuple[int, int, int, int, int]:
    """The figures ``EXPECTED`` holds, for one case."""
    core = BareCore(BOARDS[board_name], elf, memory=MEMORY[memory],
                    implementation=implementation)
    setup, _ = core.run("setup", "setup_done")
    cycles, instructions = core.run("bench", "end")
    assert core.model is not None
    return (setup, cycles, instructions, core.model.instruction_misses,
            core.model.data_misses)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(("board_name", "name", "memory"), sorted(EXPECTED))
def test_cycle_counts_are_unchanged(workload, board_name: str, name: str, memory: str,
                                    implementation: str) -> None:
    got = measure(board_name, workload(board_name, name), memory, implementation)
    assert got == EXPECTED[(board_name, name, memory)]


@pytest.mark.parametrize("board_name", ["nucleo-f446re", "nucleo-f746zg"])
def test_the_bindings_hook_path_counts_the_same(workload, monkeypatch: pytest.MonkeyPatch,
                                                 board_name: str) -> None:
    """Without the binding internals ``_hooks`` registers raw callbacks with, the hooks go
    through ``Uc.hook_add`` (and the model falls back to its Python hot paths): slower, same
    counts."""
    from bench_firmware.backends.virtual.timing import _hooks

    monkeypatch.setattr(_hooks, "_UCLIB", None)
    got = measure(board_name, workload(board_name, "mem_flash"), "default")
    assert got == EXPECTED[(board_name, "mem_flash", "default")]
