"""The cycle model of the virtual boards against documented instruction timings.

Short Thumb-2 sequences (``tests/fixtures/microbench/*.S``) are assembled for the board's core,
run on a bare Unicorn core with the model attached
(``bench_firmware.backends.virtual.timing.harness``)
and their modelled cycles and instruction counts compared with the figure each case's source
documents. Sources, as named in the case ids:

* ``trm``: Arm Cortex-M4 TRM DDI 0439B, Table 3-1 (integer) / Table 7-1 (FPU) and §3.3.2.
* ``gcc-m4``: GCC ``gcc/config/arm/cortex-m4.md`` (branch 3 cycles, ALU -> address bypass 2).
* ``jnk0le``: jnk0le/random "pipeline cycle test" (measured, STM32F407 / STM32H743).
* ``llvm-m7``: LLVM ``ARMScheduleM7.td``; ``ref``: the published measurements (jnk0le/random
  ``doc/cortex_m3m4.md`` and ``doc/cortex_m7.md``, quinapalus.com/cm7cycles.html) together with
  the LLVM and GCC scheduling models where they agree.
* ``rm0390``: the ART's instruction/data caches and prefetch (RM0390 §3.4.2); ``rm0432``: the
  L4+ flash's 64-bit reads in dual-bank mode and its ART (RM0432 §3.2, §3.3.4); ``m7-l1``: the
  Cortex-M7 L1 caches (DDI 0489 §5.9, ST AN4839); ``boards``: wait states from the reference
  manuals' flash wait-state tables (RM0390, RM0385, RM0410, RM0432).
* ``model``: a rule the model documents where no source gives a number (divide formula).

Cases run from label NAME to NAME_end after NAME_setup (if any) ran in a separate emulation, on
a fresh core each, so the first instruction sees no pipeline state from earlier code.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
from unicorn.arm_const import UC_ARM_REG_R0, UC_ARM_REG_R2, UC_ARM_REG_R4

from bench_firmware.backends.virtual.timing import MemoryConfig, create_cycle_model
from bench_firmware.backends.virtual.timing import m4 as m4_timing
from bench_firmware.backends.virtual.timing.decode import Branch, Decoder, Op
from bench_firmware.backends.virtual.timing.harness import BareCore
from bench_firmware.backends.virtual.timing.memory import CacheGeometry, LruCache, flash_path
from bench_firmware.boards import BOARDS, HOST, Board
from bench_firmware.errors import BoardError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "microbench"
AS, LD = "arm-none-eabi-as", "arm-none-eabi-ld"
needs_arm_binutils = pytest.mark.skipif(
    shutil.which(AS) is None or shutil.which(LD) is None,
    reason="arm-none-eabi-as/ld are not installed (apt-get install gcc-arm-none-eabi)")

M4_BOARDS = ("nucleo-f446re", "nucleo-l4r5zi")
M7_BOARDS = ("nucleo-f746zg", "nucleo-f767zi")
AS_FLAGS = {
    "cortex-m4": ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mthumb"),
    "cortex-m7": ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mthumb"),
}
# Where the microbenchmarks are linked: code and data in SRAM (DTCM on the F7) unless the
# source puts them in flash.
LINK_FLAGS = ("-Ttext=0x20000000", "-Tdata=0x20008000", "--section-start=.flashcode=0x08000000",
              "--section-start=.flashdata=0x08004000", "-e", "0x20000000")


@pytest.fixture(scope="session")
def microbench(tmp_path_factory: pytest.TempPathFactory):
    """``build(source, core) -> ELF path``, assembling and linking once per pair."""
    if shutil.which(AS) is None or shutil.which(LD) is None:
        pytest.skip("arm-none-eabi-as/ld are not installed")
    out = tmp_path_factory.mktemp("microbench")
    built: dict[tuple[str, str], Path] = {}

    def build(source: str, core: str) -> Path:
        key = (source, core)
        if key not in built:
            obj = out / f"{Path(source).stem}-{core}.o"
            elf = obj.with_suffix(".elf")
            subprocess.run([AS, *AS_FLAGS[core], str(FIXTURES / source), "-o", str(obj)],
                           check=True, capture_output=True, text=True)
            subprocess.run([LD, *LINK_FLAGS, str(obj), "-o", str(elf)], check=True,
                           capture_output=True, text=True)
            built[key] = elf
        return built[key]

    return build


def measure(core: BareCore, case: str) -> tuple[int, int]:
    """(cycles, instructions) of ``case``, after its setup if it has one."""
    if f"{case}_setup" in core.symbols:
        core.run(f"{case}_setup", case)
    return core.run(case, f"{case}_end")


class Case(NamedTuple):
    name: str
    cycles: int
    instructions: int
    source: str


def _params(cases: list[Case], boards: tuple[str, ...]) -> list[object]:
    return [pytest.param(board, case, id=f"{board}-{case.source}-{case.name}")
            for board in boards for case in cases]


# ---- Cortex-M4 ------------------------------------------------------------------------------
M4_CASES = [
    Case("alu_chain", 8, 8, "trm"),  # data processing: 1
    Case("mul_mla", 4, 4, "trm"),  # MUL, MLA: 1
    *(Case(f"load_run_{n}", n + 1, n, "trm") for n in range(1, 9)),  # N loads: N + 1
    Case("ldrd", 3, 1, "trm"),  # LDRD: 3
    Case("ldm_2", 3, 1, "trm"),  # LDM: 1 + N
    Case("ldm_4", 5, 1, "trm"),
    Case("ldm_8", 9, 1, "trm"),
    Case("stm_4", 5, 1, "trm"),  # STM: 1 + N
    # PUSH/POP of 4: 1 + N each, and POP's base (SP) was just written by PUSH: +1 (ref)
    Case("push_pop", 11, 2, "trm"),
    Case("str_imm_run", 4, 4, "trm"),  # STR immediate offset: 1 (effectively)
    Case("str_reg", 2, 1, "gcc-m4"),  # STR register offset: 2 (cortex_m4_store1_2)
    Case("load_then_store", 3, 2, "trm"),  # §3.3.2: "LDR R0,[R1,R2]; STR R0,[R3,#20]": 3
    Case("store_then_load", 4, 2, "jnk0le"),  # a store before a load costs it one more
    Case("address_dependency", 4, 2, "gcc-m4"),  # MOV then LDR from it: 1 + 2 + 1
    Case("address_independent", 3, 2, "gcc-m4"),  # the same with an unrelated base: 1 + 2
    Case("branch_taken", 4, 2, "gcc-m4"),  # B: 1 + P (P = 2, cortex_m4_branch 3), NOP 1
    Case("branch_to_unaligned_wide", 5, 2, "ref"),  # + 1 for a 32-bit target at 2 mod 4
    Case("conditional_not_taken", 4, 4, "trm"),  # CMP 1, BNE not taken 1, NOP, NOP
    Case("conditional_taken", 5, 3, "trm"),  # CMP 1, BEQ taken 1 + P, NOP 1
    Case("cbz_taken", 4, 2, "trm"),  # CBZ taken 1 + P, NOP 1
    Case("loop_4", 14, 8, "trm"),  # 4 x SUBS + 3 x taken BNE (3) + 1 not taken
    Case("call_return", 7, 3, "trm"),  # BL 1 + P, BX LR 1 + P, NOP
    # BL 3, PUSH {lr} 2, POP {pc} 1 + N + P with P = 3 for a target loaded from memory and
    # +1 for its SP just written by PUSH, NOP 1
    Case("call_pop_pc", 12, 4, "trm"),
    Case("it_block", 3, 3, "trm"),  # CMP, IT, MOVEQ: 1 each (IT folding not modelled)
    Case("sdiv_quotient_0", 2, 1, "model"),  # 3 / 7: no quotient bit, 2
    Case("sdiv_quotient_1", 3, 1, "model"),  # 7 / 7: 2 + ceil(10 * 1 / 32)
    Case("sdiv_100_by_7", 4, 1, "model"),  # 5 quotient bits: 2 + ceil(50 / 32)
    Case("sdiv_minus_100_by_7", 4, 1, "model"),  # signed: magnitudes
    Case("sdiv_by_zero", 2, 1, "model"),
    Case("sdiv_31_bits", 12, 1, "model"),  # 0x7fffffff / 1: 2 + ceil(310 / 32) = 12 (TRM max)
    Case("udiv_32_bits", 12, 1, "model"),  # 0xffffffff / 1: 12
    Case("udiv_16_bits", 7, 1, "model"),  # 0x12345 / 3: 16 bits, 2 + 5
    # Operands computed in the divide's own block: the first execution is costed before they
    # exist, at the worst case 12; the second by its operands, 4 (100 / 7).
    Case("divide_in_loop", (1 + 1 + 12 + 1 + 3) + (1 + 1 + 4 + 1 + 1), 10, "model"),
    Case("smlad_chain", 4, 4, "trm"),  # DSP multiply-accumulate: 1
    Case("dsp_mix", 8, 8, "trm"),  # SADD16, QADD, SEL, USAD8, SXTB16, PKHBT, SMULBB, SSAT: 1
    Case("vmla_chain", 9, 3, "trm"),  # Table 7-1 VMLA: 3
    Case("fp_mix", 30, 4, "trm"),  # VADD 1, VMUL 1, VDIV 14, VSQRT 14
    Case("fp_loads", 6, 3, "trm"),  # VLDR.32 2, NOP, VLDR.64 3
    Case("vmov_core", 3, 2, "ref"),  # VMOV core <- S: 2, then 1 back-to-back (measured)
]


@needs_arm_binutils
@pytest.mark.parametrize(("board_name", "case"), _params(M4_CASES, M4_BOARDS))
def test_cortex_m4_core_timing(microbench, board_name: str, case: Case) -> None:
    board = BOARDS[board_name]
    core = BareCore(board, microbench("m4_core.S", board.core))
    assert measure(core, case.name) == (case.cycles, case.instructions)


# ---- Cortex-M7 ------------------------------------------------------------------------------
M7_CASES = [
    Case("alu_pairs", 4, 8, "ref"),  # two independent ALU instructions pair
    Case("alu_chain", 4, 4, "llvm-m7"),  # dependent ones do not (ALU latency 1)
    Case("loads_other_banks", 2, 4, "ref"),  # two loads pair on different banks (even/odd)
    Case("loads_same_bank", 4, 4, "ref"),  # not on the same bank
    Case("load_to_use", 3, 2, "ref"),  # load-to-use latency 2
    Case("load_independent", 1, 2, "ref"),  # load + unrelated ALU pair
    Case("load_and_store", 1, 2, "jnk0le"),  # a store pairs with a load
    Case("two_stores", 2, 2, "ref"),  # one store unit: two stores never pair
    Case("mul_to_use", 3, 2, "ref"),  # MUL result latency 2
    Case("smlad_chain", 4, 4, "ref"),  # MACs chain on the accumulator every cycle, 1 MAC unit
    Case("ldm_4", 2, 1, "jnk0le"),  # LDM: ceil(N / 2), not paired
    Case("ldm_5", 3, 1, "jnk0le"),
    Case("ldm_8", 4, 1, "jnk0le"),
    Case("ldrd_alone", 2, 2, "llvm-m7"),  # LDRD is single-issue
    Case("sdiv_alone", 8, 2, "llvm-m7"),  # ADD 1, SDIV 7 and never paired
    Case("simd_first_slot", 1, 2, "ref"),  # DSP SIMD in the first slot pairs
    Case("simd_second_slot", 2, 2, "ref"),  # ... and not in the second
    # Iteration 1: 3 cycles, the BNE alone in the third. Iterations 2-5: the predicted-taken
    # BNE pairs with the first ADD at its target, 2 cycles each. The exit is mispredicted
    # (2-bit counter strongly taken): the last ADD costs 1 + 8 (flags set less than 3 cycles
    # before the branch, so no flag forwarding; jnk0le).
    Case("loop_5", 3 + 4 * 2 + (1 + 8), 26, "ref"),
    Case("vmla_chain", 4, 2, "llvm-m7"),  # FMA latency 6, accumulator read 3 cycles late
    Case("vdiv_alone", 16, 1, "ref"),  # VDIV.F32 16
]


@needs_arm_binutils
@pytest.mark.parametrize(("board_name", "case"), _params(M7_CASES, M7_BOARDS))
def test_cortex_m7_dual_issue(microbench, board_name: str, case: Case) -> None:
    board = BOARDS[board_name]
    core = BareCore(board, microbench("m7_core.S", board.core))
    assert measure(core, case.name) == (case.cycles, case.instructions)


# ---- the flash path -------------------------------------------------------------------------
LOOP_ITERATIONS = 4
LOOP_INSTRUCTIONS = 24 * LOOP_ITERATIONS  # 22 ADDS, SUBS, BNE per iteration


def _m4_flash_loop(board: Board, *, icache: bool) -> int:
    """The Cortex-M4 cost of ``flash_loop``. Core: 22 ADDS + SUBS + BNE (taken: 1 + P, P = 2)
    per iteration, and the P of the setup's B into the loop. Flash (RM0390 §3.4.2, RM0432
    §3.3.4): the B's target misses (ws); the prefetcher streams the read units after it, each
    waiting ws + 1 less the cycles of the unit before. On the F4 a 16-byte unit of eight ADDS
    takes 8 cycles > ws + 1: no wait. On the L4+ a unit is one 64-bit read (dual-bank mode,
    RM0432 §3.2; changed from a 32-byte line, the documented reason for the new figure): four
    ADDS, 4 cycles, so each of the 5 units after the first waits 2. The units waited for are
    copied into the cache, so with the cache on only the first pass pays; with it off, all."""
    ws = board.flash_wait_states
    core = (LOOP_ITERATIONS - 1) * (22 + 1 + 3) + (22 + 1 + 1) + m4_timing.P_EARLY
    unit = flash_path(board).read_bytes
    units = 48 // unit
    per_pass = ws + (units - 1) * max(0, ws + 1 - unit // 2)
    return core + per_pass * (LOOP_ITERATIONS if not icache else 1)


def _m7_flash_loop(ws: int, *, icache: bool) -> int:
    """The Cortex-M7 cost of ``flash_loop``. Core: the 22 ADDS (alternating registers) pair,
    11 cycles; SUBS and BNE pair, 1 more; the BNE is predicted taken. Flash: every line goes
    through the L1 I-cache; the loop spans two 32-byte lines, both missing once (ws each), or
    on every iteration with the cache off."""
    core = LOOP_ITERATIONS * 12
    return core + 2 * ws * (LOOP_ITERATIONS if not icache else 1)


@needs_arm_binutils
@pytest.mark.parametrize("icache", [True, False], ids=["cache-on", "cache-off"])
@pytest.mark.parametrize("board_name", [*M4_BOARDS, *M7_BOARDS])
def test_loop_from_flash(microbench, board_name: str, icache: bool) -> None:
    """rm0390 / m7-l1 / boards: the first iteration misses, later ones hit (cache on)."""
    board = BOARDS[board_name]
    ws = board.flash_wait_states
    core = BareCore(board, microbench("flash.S", board.core), memory=MemoryConfig(icache=icache))
    expected = (_m7_flash_loop(ws, icache=icache) if board.core == "cortex-m7"
                else _m4_flash_loop(board, icache=icache))
    assert measure(core, "flash_loop") == (expected, LOOP_INSTRUCTIONS)


def _run_wide_loop(board: Board, elf: Path, passes: int, *,
                   icache: bool = True) -> tuple[int, int]:
    """(cycles, instructions) of ``passes`` passes of ``flash_loop_wide``."""
    core = BareCore(board, elf, memory=MemoryConfig(icache=icache))
    core.run("flash_loop_wide_setup", "flash_loop_wide")
    core.uc.reg_write(UC_ARM_REG_R2, passes)
    return core.run("flash_loop_wide", "flash_loop_wide_end")


@needs_arm_binutils
@pytest.mark.parametrize("icache", [True, False], ids=["cache-on", "cache-off"])
@pytest.mark.parametrize("board_name", M4_BOARDS)
def test_wide_loop_waits_only_on_its_first_pass(microbench, board_name: str,
                                                icache: bool) -> None:
    """rm0390 / rm0432: ``flash_loop_wide`` (32-bit instructions, 52 bytes). Core per pass:
    12 ADD.W + SUBS + BNE (taken 1 + P), the last pass's BNE not taken, and the setup's P.
    Flash: the B's target unit misses (ws); each later unit waits ws + 1 less the cycles of the
    unit before it (F4: 16-byte units of four ADD.W, 4 cycles; L4+: 8-byte units of two, 2
    cycles; the 4-byte tail unit waits too). Those units are copied into the cache: later
    passes wait for nothing. With the cache off every pass pays again."""
    board = BOARDS[board_name]
    elf = microbench("flash.S", board.core)
    ws, unit = board.flash_wait_states, flash_path(board).read_bytes
    passes = 8
    core = (passes - 1) * (12 + 1 + 3) + (12 + 1 + 1) + m4_timing.P_EARLY
    units = -(-52 // unit)
    per_pass = ws + (units - 1) * max(0, ws + 1 - unit // 4)
    expected = core + per_pass * (1 if icache else passes)
    assert _run_wide_loop(board, elf, passes, icache=icache) == (expected, 14 * passes)


@needs_arm_binutils
@pytest.mark.parametrize("board_name", M4_BOARDS)
def test_wait_states_cost_little_on_loops_that_fit_the_instruction_cache(
        microbench, board_name: str) -> None:
    """rm0390 / rm0432 ("Based on CoreMark benchmark, the performance achieved thanks to the ART
    accelerator is equivalent to 0 wait state program execution"): a loop that fits the ART's
    instruction cache pays its wait states on its first pass only, so 5 wait states cost a few
    percent over 0 once it runs for a while, even with 32-bit code the prefetcher cannot keep
    up with (the model before this rule charged ~20 % here, on every pass)."""
    board = BOARDS[board_name]
    elf = microbench("flash.S", board.core)
    zero = dataclasses.replace(board, flash_wait_states=0)
    slow, _ = _run_wide_loop(board, elf, 64)
    fast, _ = _run_wide_loop(zero, elf, 64)
    assert board.flash_wait_states == 5
    assert slow / fast <= 1.03


# 16 loads from a 64-byte table in flash, code in SRAM. Core: Cortex-M4 N + 1 = 17 (trm);
# Cortex-M7 8 (pairs on alternate banks). Misses: one per line, ws each (rm0390 / m7-l1).
FLASH_DATA_CORE = {"cortex-m4": 17, "cortex-m7": 8}


@needs_arm_binutils
@pytest.mark.parametrize("board_name", [*M4_BOARDS, *M7_BOARDS])
def test_data_from_flash(microbench, board_name: str) -> None:
    board = BOARDS[board_name]
    path = flash_path(board)
    ws, line = board.flash_wait_states, path.dcache.line_bytes
    base = FLASH_DATA_CORE[board.core]
    core = BareCore(board, microbench("flash.S", board.core))
    # cold: one refill per line, each stalling ws per flash read it takes
    assert measure(core, "flash_data") == (base + (64 // line) * path.dline_reads * ws, 16)
    assert measure(core, "flash_data") == (base, 16)  # every line resident
    uncached = BareCore(board, microbench("flash.S", board.core),
                        memory=MemoryConfig(dcache=False))
    assert measure(uncached, "flash_data") == (base + 16 * ws, 16)


@needs_arm_binutils
def test_l4_data_row_refill_costs_four_64_bit_reads(microbench) -> None:
    """rm0432: in dual-bank mode (DBANK = 1, the board's factory setting) a flash read returns
    64 bits (§3.2, §3.3.1); the ART data cache holds rows of 4 x 64 bits (§3.3.4) and nothing
    prefetches on DCode, so each row refill is four reads, each stalling the core for the wait
    states (§3.3.3: n WS = n + 1 cycles per read). ``flash_data`` reads two rows."""
    board = BOARDS["nucleo-l4r5zi"]
    path = flash_path(board)
    assert (path.read_bytes, path.dcache.line_bytes, path.dline_reads) == (8, 32, 4)
    core = BareCore(board, microbench("flash.S", board.core))
    cold, _ = measure(core, "flash_data")
    warm, _ = measure(core, "flash_data")
    assert cold - warm == 2 * 4 * board.flash_wait_states
    assert core.model is not None and core.model.data_misses == 2


@needs_arm_binutils
@pytest.mark.parametrize("board_name", M4_BOARDS)
def test_divide_in_flash_is_found_at_attach(microbench, board_name: str) -> None:
    """The divide's operands come from its own block, yet its first execution is exact: the
    model found it in flash when it attached. B into the block 1 + P (P counted here), the
    target line missing (ws), MOVS, MOVS, SDIV 100 / 7 = 4."""
    board = BOARDS[board_name]
    core = BareCore(board, microbench("flash.S", board.core))
    expected = m4_timing.P_EARLY + board.flash_wait_states + 1 + 1 + 4
    assert measure(core, "flash_divide") == (expected, 3)


@needs_arm_binutils
@pytest.mark.parametrize("board_name", [*M4_BOARDS, *M7_BOARDS])
def test_loads_inside_it_blocks_do_not_leak_the_it_state(microbench, board_name: str) -> None:
    """Regression: Unicorn 2.1 restores the IT state when a memory hook fires inside an IT
    block and never clears it, so the code after the block ran as conditional (the model
    clears it; ``model._it_state_clearer``)."""
    board = BOARDS[board_name]
    core = BareCore(board, microbench("flash.S", board.core))
    measure(core, "it_load")
    assert core.uc.reg_read(UC_ARM_REG_R4) == 0x72  # token_table[2]
    assert core.uc.reg_read(UC_ARM_REG_R0) == 0x1234_5678


# ---- determinism, interface, pure rules ---------------------------------------------------------
@needs_arm_binutils
@pytest.mark.parametrize("board_name", [*M4_BOARDS, *M7_BOARDS])
def test_same_code_same_cycles(microbench, board_name: str) -> None:
    board = BOARDS[board_name]
    runs = []
    for _ in range(2):
        core = BareCore(board, microbench("flash.S", board.core))
        runs.append((measure(core, "flash_loop"), measure(core, "flash_data"),
                     core.model.cycles if core.model else None))
    assert runs[0] == runs[1]


@needs_arm_binutils
def test_counters_are_monotonic_and_start_at_zero(microbench) -> None:
    board = BOARDS["nucleo-f446re"]
    core = BareCore(board, microbench("m4_core.S", board.core))
    assert core.model is not None
    assert (core.model.cycles, core.model.instructions) == (0, 0)
    measure(core, "alu_chain")
    first = core.model.cycles
    measure(core, "loop_4")
    assert core.model.cycles > first > 0


@needs_arm_binutils
def test_attaching_twice_is_refused(microbench) -> None:
    board = BOARDS["nucleo-f446re"]
    core = BareCore(board, microbench("m4_core.S", board.core))
    assert core.model is not None
    with pytest.raises(BoardError, match="already attached"):
        core.model.attach(core.uc)


def test_boards_without_a_model_are_refused() -> None:
    with pytest.raises(BoardError, match="no cycle model"):
        create_cycle_model(HOST)


@pytest.mark.parametrize(("dividend", "divisor", "signed", "cycles"), [
    (0, 5, False, 2), (5, 0, False, 2), (3, 7, True, 2), (7, 7, True, 3),
    (100, 7, True, 4), ((-100) & 0xFFFF_FFFF, 7, True, 4), (100, (-7) & 0xFFFF_FFFF, True, 4),
    (0x7FFF_FFFF, 1, True, 12), (0xFFFF_FFFF, 1, False, 12), (0x8000_0000, 1, True, 12),
    (0x0001_2345, 3, False, 7),
])
def test_divide_cycles(dividend: int, divisor: int, signed: bool, cycles: int) -> None:
    """model: 2 + ceil(10 q / 32) over the q quotient bits, within the TRM's 2..12."""
    assert m4_timing.divide_cycles(dividend, divisor, signed=signed) == cycles


def test_lru_cache_replaces_the_least_recently_used_line() -> None:
    cache = LruCache(CacheGeometry(line_bytes=16, sets=1, ways=2))
    assert not cache.touch(1) and not cache.touch(2)
    assert cache.touch(1)  # 1 is now the most recent
    assert not cache.touch(3)  # evicts 2
    assert 1 in cache and 3 in cache and 2 not in cache
    off = LruCache(CacheGeometry(line_bytes=16, sets=1, ways=2), enabled=False)
    assert not off.touch(1) and not off.touch(1)


@pytest.mark.parametrize(("name", "ways", "sets", "line"), [
    ("nucleo-f446re", 64, 1, 16), ("nucleo-l4r5zi", 32, 1, 32),
    ("nucleo-f746zg", 2, 64, 32), ("nucleo-f767zi", 2, 256, 32),
])
def test_instruction_cache_geometry(name: str, ways: int, sets: int, line: int) -> None:
    """rm0390 (64 x 128 bits), RM0351 (32 x 4 x 64 bits), m7-l1 (4 / 16 KB, 2-way, 32 B)."""
    geometry = flash_path(BOARDS[name]).icache
    assert (geometry.ways, geometry.sets, geometry.line_bytes) == (ways, sets, line)


def test_decoder_classifies_branches_and_memory_operations() -> None:
    # pop {r4, pc}; bne .-2 (to itself); ldr r0, [r1, #4]; sdiv r0, r1, r2
    code = bytes.fromhex("10bd" "fed1" "4868" "91fbf2f0")
    insns = Decoder().decode(code, 0x0800_0000)
    assert [i.op for i in insns] == [Op.LOAD_MULTI, Op.BRANCH, Op.LOAD, Op.DIV]
    assert insns[0].branch is Branch.LOADED and insns[0].n_regs == 2
    assert insns[1].branch is Branch.CONDITIONAL and insns[1].target == 0x0800_0002
    assert insns[2].addr_regs == {1} and insns[2].writes == {0}
    assert insns[3].operand_regs == (0, 1, 2) and insns[3].signed


def test_undecodable_bytes_still_count_as_instructions() -> None:
    # A 32-bit coprocessor encoding capstone has no M-profile meaning for, then a NOP.
    insns = Decoder().decode(bytes.fromhex("10ee100a" "00bf"), 0x2000_0000)
    assert [i.size for i in insns] == [4, 2]


@needs_arm_binutils
def test_detach_stops_counting_and_keeps_the_counts(microbench) -> None:
    board: Board = BOARDS["nucleo-f767zi"]
    core = BareCore(board, microbench("m7_core.S", board.core))
    assert core.model is not None
    measure(core, "alu_pairs")
    counts = (core.model.cycles, core.model.instructions)
    core.model.detach()
    core.uc.ctl_flush_tb()
    core.run("alu_pairs", "alu_pairs_end")
    assert (core.model.cycles, core.model.instructions) == counts == (4, 8)
