"""The cycle model's C hot paths (``timing/_fast.c``) count exactly what the Python reference
counts: bare-core workloads under every flash-path setting, and every zoo model through the
whole firmware, both kernel paths, on all four twins (per-run and per-layer cycles of two
timed runs each: the cold first run and a warm one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_firmware.backends.virtual.backend import VirtualBoard
from bench_firmware.backends.virtual.timing import MemoryConfig, _fast, create_cycle_model
from bench_firmware.backends.virtual.timing.harness import BareCore
from bench_firmware.boards import BOARDS, Board
from bench_firmware.errors import BoardError
from bench_firmware.settings import ConfigError
from tests.fidelity_workloads import GCC, builder
from tests.zoo import ZOO_NAMES, random_input
from tests.zoo_plans import zoo_plans

TWINS = ("nucleo-f446re", "nucleo-l4r5zi", "nucleo-f746zg", "nucleo-f767zi")
WORKLOADS = ("scalar", "mem_flash", "mac_flash", "mac_sram")
MEMORY = {
    "default": MemoryConfig(),
    "no_prefetch": MemoryConfig(prefetch=False),
    "no_dcache": MemoryConfig(dcache=False),
    "all_off": MemoryConfig(icache=False, dcache=False, prefetch=False),
}

pytestmark = pytest.mark.skipif(not _fast.available(),
                                reason="no host C compiler for the fast cycle model")


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory):
    """``build(board, workload) -> ELF``; skips without the cross compiler."""
    import shutil

    if shutil.which(GCC) is None:
        pytest.skip(f"{GCC} is not on PATH")
    build = builder(tmp_path_factory.mktemp("fast_model"))
    return lambda board, name: build(board, name)


def _bare(board: Board, elf: Path, memory: MemoryConfig,
          implementation: str) -> tuple[int, ...]:
    core = BareCore(board, elf, memory=memory, implementation=implementation)
    assert core.model is not None and core.model.implementation == implementation
    setup, setup_instructions = core.run("setup", "setup_done")
    cycles, instructions = core.run("bench", "end")
    return (setup, setup_instructions, cycles, instructions, core.model.instruction_misses,
            core.model.data_misses, core.model.divides)


@pytest.mark.parametrize("board_name", TWINS)
def test_bare_core_counts_are_identical(workload, board_name: str) -> None:
    board = BOARDS[board_name]
    differ = []
    for name in WORKLOADS:
        elf = workload(board, name)
        for setting, memory in MEMORY.items():
            python = _bare(board, elf, memory, "python")
            c = _bare(board, elf, memory, "c")
            if python != c:
                differ.append(f"{name}/{setting}: python {python}, c {c}")
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("board_name", TWINS)
def test_zoo_cycles_are_identical(zoo: dict[str, Path], board_name: str) -> None:
    """Per-run and per-layer cycles of the firmware's timed inferences (the host-facing
    figures). Whole-session counters are not compared: how long the firmware idles while the
    host talks depends on host timing."""
    board = BOARDS[board_name]
    runs: dict[str, dict[str, tuple[list[int], list[int]]]] = {}
    for implementation in ("python", "c"):
        got = runs.setdefault(implementation, {})
        with VirtualBoard(f"virtual:{board_name}", cycle_model=lambda b, i=implementation:
                          create_cycle_model(b, implementation=i)) as vb:
            for name, model, plan in zoo_plans(zoo, board):
                vb.load_plan(plan.data)
                x = random_input(model, 0).tobytes()
                for kernels in ("ref", "dsp"):
                    run = vb.run(x, runs=2, warmup=0, kernels=kernels)
                    got[f"{name}/{kernels}"] = (list(run.cycles_per_run),
                                                list(run.layer_cycles))
    assert len(runs["c"]) >= 2 * (len(ZOO_NAMES) - 2)  # F446RE: a model may not fit
    differ = [f"{key}: python {runs['python'][key]}, c {runs['c'][key]}"
              for key in runs["python"] if runs["python"][key] != runs["c"].get(key)]
    assert not differ, "\n".join(differ)
    assert runs["c"].keys() == runs["python"].keys()


def test_the_implementation_is_chosen_by_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    board = BOARDS["nucleo-f446re"]
    monkeypatch.setenv("MCUPROF_TWIN_MODEL", "python")
    assert _fast.requested() == "python"
    assert _fast.requested("c") == "c"
    with pytest.raises(BoardError, match="fortran"):
        create_cycle_model(board, implementation="fortran")
    monkeypatch.setenv("MCUPROF_TWIN_MODEL", "fortran")
    with pytest.raises(ConfigError, match="MCUPROF_TWIN_MODEL"):
        create_cycle_model(board)
