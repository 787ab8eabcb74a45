"""The twins' flash path against ST's published behaviour, on C workloads.

``tests/fixtures/microbench/fidelity.c`` (CoreMark-like scalar code, SMLAD dot products with
the weights in flash or in SRAM) is cross-compiled with -O2 and run on a bare core with each
board's cycle model (``timing/harness.py``), at the board's wait states and at 0. The checks are
ratios ST publishes (``benchmarks/twin_fidelity.py`` prints the whole table):

* RM0390 §3.4.2 (STM32F446) and RM0432 §3.3.4 (STM32L4+): "Based on CoreMark benchmark, the
  performance achieved thanks to the ART accelerator is equivalent to 0 wait state program
  execution from flash memory".
* DS10916 / DS11532 (STM32F746xx / STM32F767xx), features: the L1 cache allows "0-wait state
  execution from embedded Flash".
* RM0432 §3.2 / §3.3.4: 64-bit flash reads in dual-bank mode, data-cache rows of 4 x 64 bits,
  no prefetch on DCode: each row refill stalls four times the wait states.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from bench_firmware.backends.virtual.timing import MemoryConfig
from bench_firmware.backends.virtual.timing.harness import BareCore
from bench_firmware.boards import BOARDS, Board
from tests.fidelity_workloads import GCC, builder

pytestmark = pytest.mark.skipif(
    shutil.which(GCC) is None, reason=f"{GCC} is not installed (apt-get install gcc-arm-none-eabi)")


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory):
    """``build(board, name) -> ELF``, compiled once per (core, workload)."""
    return builder(tmp_path_factory.mktemp("fidelity"))


def run(board: Board, elf: Path, memory: MemoryConfig | None = None) -> tuple[int, int, int]:
    """(cycles, instructions, data-cache refills) of ``bench`` after ``setup``."""
    core = BareCore(board, elf, memory=memory)
    core.run("setup", "setup_done")
    assert core.model is not None
    d0 = core.model.data_misses
    cycles, instructions = core.run("bench", "end")
    return cycles, instructions, core.model.data_misses - d0


def zero_wait(board: Board) -> Board:
    return dataclasses.replace(board, flash_wait_states=0)


# The ratio each core may show over 0 wait states on code whose loops fit the instruction
# cache: the first pass's refills, a few percent at this run length.
LIMIT = {"cortex-m4": 1.03, "cortex-m7": 1.02}


@pytest.mark.parametrize("board_name", sorted(BOARDS))
@pytest.mark.parametrize("name", ["scalar", "mac_sram"])
def test_wait_states_cost_a_few_percent_on_code_that_fits_the_cache(workload, board_name: str,
                                                                    name: str) -> None:
    """RM0390 §3.4.2 / RM0432 §3.3.4 / DS10916 / DS11532: 0-wait-state-equivalent execution."""
    board = BOARDS[board_name]
    elf = workload(board, name)
    slow, n, _ = run(board, elf)
    fast, n0, _ = run(zero_wait(board), elf)
    assert n == n0
    assert 1.0 <= slow / fast <= LIMIT[board.core]


@pytest.mark.parametrize("board_name", ["nucleo-f446re", "nucleo-l4r5zi"])
def test_prefetch_never_makes_the_art_slower(workload, board_name: str) -> None:
    """RM0390 §3.4.2: prefetch "is useful if at least one wait state is needed"; with the
    instruction cache on, turning it off cannot save cycles (the model before this rule
    charged more with prefetch on than off, on every pass of a loop)."""
    board = BOARDS[board_name]
    elf = workload(board, "scalar")
    on, _, _ = run(board, elf)
    off, _, _ = run(board, elf, MemoryConfig(prefetch=False))
    assert on <= off


def test_l4_weights_from_flash_pay_four_reads_per_row(workload) -> None:
    """RM0432 §3.2 / §3.3.4: weights in flash cost four 64-bit reads x wait states per 32-byte
    row refill; the code's own loop fits the instruction cache, so that is nearly all the
    difference from 0 wait states."""
    board = BOARDS["nucleo-l4r5zi"]
    elf = workload(board, "mac_flash")
    slow, _, refills = run(board, elf)
    fast, _, refills0 = run(zero_wait(board), elf)
    assert refills == refills0 > 0
    data = refills * 4 * board.flash_wait_states
    assert data <= slow - fast <= data + 0.01 * fast


@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_fidelity_workloads_are_deterministic(workload, board_name: str) -> None:
    board = BOARDS[board_name]
    elf = workload(board, "scalar")
    assert run(board, elf) == run(board, elf)
