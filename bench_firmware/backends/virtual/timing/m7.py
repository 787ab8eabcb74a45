"""Cortex-M7 instruction timing: an in-order dual-issue scheduler run once per block.

Arm publishes no cycle table for the Cortex-M7. Sources:

* LLVM ``llvm/lib/Target/ARM/ARMScheduleM7.td`` (Arm's scheduling model): units (2 ALU, 2 load,
  1 store, 1 MAC, 1 branch, 1 FPU), latencies, ``SingleIssue`` (never paired) and
  ``BeginGroup`` (first slot only) per instruction class.
* GCC ``gcc/config/arm/cortex-m7.md``: the same units; where it differs (SDIV 4 cycles against
  LLVM's 7) we follow LLVM.
* jnk0le/random "pipeline cycle test", ``doc/cortex_m7.md`` (measured, STM32H743): LDM/STM take
  ceil(N/2) cycles and never pair; two loads pair only on different banks (even/odd word);
  multiplies/MACs cannot pair with stores; MACs chain on the accumulator every cycle; a
  mispredicted branch costs 8 cycles, 6 when the flags were set at least 3 cycles earlier; a
  not-taken branch pairs with the next instruction and a correctly predicted taken branch with
  the first instruction at its target; VDIV/VSQRT hold the pipeline for 16/14 cycles.
* quinapalus.com/cm7cycles.html (measured pairing, STM32H730) agrees on the pairing classes.

Where the sources disagree on load-to-use: LLVM gives a word load latency 1 to the late ALU
(jnk0le measures the same) but 2 as the machine's ``LoadLatency`` and for every early-ALU or
MAC consumer (jnk0le: "all multiplications and multiply accumulates can't consume ldr result
from previous cycle"). The int8 kernels consume loads in SXTB16/SXTAB16/SMLAD, so the model uses
2 for every consumer, as LLVM's ``LoadLatency`` does.

The scheduler issues each instruction at the first cycle where its operands are ready and, if
the cycle already holds one instruction, the pair is allowed. Everything is static per block
(and per edge between blocks, for the state the previous block leaves behind); only branch
prediction is decided at run time, from the table each edge precomputes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntFlag
from functools import lru_cache

from bench_firmware.backends.virtual.timing.decode import FLAGS, PC, Branch, Insn, Op

# --- latencies (cycles until a consumer may issue) -----------------------------------------
ALU_LATENCY = 1  # LLVM WriteALU / WriteALUsi
SIMD_LATENCY = 1  # LLVM M7WriteSIMD1: extend, SADD16, SEL, bitfield, REV
SIMD_SATURATING_LATENCY = 2  # LLVM M7WriteSIMD2 / M7WriteShSIMD2: QADD*, USAD8, SSAT/USAT
MUL_LATENCY = 2  # LLVM WriteMUL*/WriteMAC* Latency 2; reference "MUL/MAC result latency 2"
MAC_ACCUMULATOR_ADVANCE = 1  # LLVM ReadAdvance<ReadMAC, 1>: accumulator read a cycle late
LOAD_LATENCY = 2  # reference "load-to-use latency 2"; LLVM LoadLatency = 2 (see module doc)
BASE_UPDATE_LATENCY = 1  # LLVM M7BaseUpdate: writeback usable the next cycle, not the same one
STORE_DATA_ADVANCE = 1  # LLVM M7Read_EX2: store data is read a stage late
DIV_CYCLES = 7  # LLVM WriteDIV Latency 7, SingleIssue; reference "about 7, never paired"
TABLE_BRANCH_ISSUE_CYCLES = 2  # LLVM M7TableLoad: NumMicroOps 2, SingleIssue
SYSTEM_LATENCY = 3  # LLVM M7NonGeneralPurpose: Latency 3, SingleIssue (MRS, MSR, barriers)
FP_LATENCY = 3  # LLVM WriteFPALU32 / WriteFPMUL32 / WriteFPMOV; reference "FP add/mul 3"
FP_MAC_LATENCY = 6  # LLVM WriteFPMAC32; reference "FMA 6"
FP_MAC_ACCUMULATOR_ADVANCE = 3  # LLVM ReadAdvance<ReadFPMAC, 3>
FP_DIV_CYCLES = 16  # reference VDIV.F32 16; jnk0le: holds the pipeline for its duration
FP_SQRT_CYCLES = 14  # reference VSQRT.F32 14 (jnk0le 14; LLVM 16)
# --- branches ------------------------------------------------------------------------------
MISPREDICT_CYCLES = 8  # jnk0le cortex_m7.md; reference "6..8" (LLVM's 4 is a heuristic)
MISPREDICT_FORWARDED_CYCLES = 6  # jnk0le: flags set >= 3 cycles before the branch
FLAG_FORWARD_DISTANCE = 3  # cycles


class Unit(IntFlag):
    """Execution resources one instruction needs in its issue cycle."""

    NONE = 0
    ALU = 1
    SHIFT = 2  # the one early shifter for inline-shifted operands (LLVM M7UnitShift1)
    LOAD = 4
    STORE = 8
    MAC = 16
    BRANCH = 32
    FPU = 64
    FP_MAC = 128  # marks VMLA/VFMA for _EXCLUSIVE
    FP_MOVE = 256  # VLDR, VSTR, VMOV


# Pairs of units that cannot share a cycle (besides two of the same single unit), jnk0le:
# multiplies/MACs with stores; VMLA/VFMA with VLDR, VSTR or VMOV.
_EXCLUSIVE = (Unit.MAC | Unit.STORE, Unit.FP_MAC | Unit.FP_MOVE)
_SINGLE_UNITS = Unit.SHIFT | Unit.STORE | Unit.MAC | Unit.BRANCH | Unit.FPU


@dataclass(frozen=True)
class Timing:
    """How the Cortex-M7 issues one instruction."""

    units: Unit
    latency: int
    first_slot_only: bool = False  # LLVM BeginGroup
    single: bool = False  # LLVM SingleIssue: alone in its cycle(s)
    issue_cycles: int = 1  # cycles a single-issue instruction holds the pipeline


_SATURATING = ("qadd", "qsub", "qdadd", "qdsub", "qasx", "qsax", "uqadd", "uqsub", "uqasx",
               "uqsax", "usad8", "usada8", "ssat", "usat")


@lru_cache(maxsize=65536)
def timing(insn: Insn) -> Timing:  # noqa: C901 - one branch per class
    """The issue rules of ``insn``."""
    op = insn.op
    if op is Op.ALU or op is Op.IT or op is Op.NOP:
        units = Unit.ALU if op is Op.ALU else Unit.NONE
        return Timing(units, ALU_LATENCY)
    if op is Op.SHIFTED_ALU:
        return Timing(Unit.ALU | Unit.SHIFT, ALU_LATENCY)
    if op in (Op.SIMD, Op.EXTEND):
        slow = insn.mnemonic.startswith(_SATURATING)
        return Timing(Unit.ALU, SIMD_SATURATING_LATENCY if slow else SIMD_LATENCY,
                      first_slot_only=True)
    if op in (Op.MUL, Op.MAC):
        return Timing(Unit.MAC, MUL_LATENCY)
    if op is Op.DIV:
        # Holds the pipeline for its whole latency; the result is ready as it lets go.
        return Timing(Unit.ALU, ALU_LATENCY, single=True, issue_cycles=DIV_CYCLES)
    if op is Op.LOAD:
        return Timing(Unit.LOAD, LOAD_LATENCY)
    if op is Op.STORE:
        return Timing(Unit.STORE, ALU_LATENCY)
    if op in (Op.LOAD_DUAL, Op.STORE_DUAL):
        return Timing(Unit.LOAD if op is Op.LOAD_DUAL else Unit.STORE, LOAD_LATENCY, single=True)
    if op in (Op.LOAD_MULTI, Op.STORE_MULTI, Op.FP_LOAD_MULTI, Op.FP_STORE_MULTI):
        unit = Unit.LOAD if op in (Op.LOAD_MULTI, Op.FP_LOAD_MULTI) else Unit.STORE
        return Timing(unit, LOAD_LATENCY, single=True, issue_cycles=max(1, -(-insn.n_regs // 2)))
    if op is Op.BRANCH:
        return Timing(Unit.BRANCH, ALU_LATENCY)
    if op is Op.TABLE_BRANCH:
        return Timing(Unit.LOAD | Unit.BRANCH, LOAD_LATENCY, single=True,
                      issue_cycles=TABLE_BRANCH_ISSUE_CYCLES)
    if op in (Op.BARRIER, Op.SYSTEM, Op.FP_SYSTEM):
        return Timing(Unit.ALU, SYSTEM_LATENCY, single=True)
    if op is Op.FP_ALU:
        return Timing(Unit.FPU, FP_LATENCY)
    if op is Op.FP_MAC:
        return Timing(Unit.FPU | Unit.FP_MAC, FP_MAC_LATENCY)
    if op is Op.FP_DIV:
        return Timing(Unit.FPU, ALU_LATENCY, single=True, issue_cycles=FP_DIV_CYCLES)
    if op is Op.FP_SQRT:
        return Timing(Unit.FPU, ALU_LATENCY, single=True, issue_cycles=FP_SQRT_CYCLES)
    if op in (Op.FP_LOAD, Op.FP_STORE):
        unit = Unit.LOAD if op is Op.FP_LOAD else Unit.STORE
        # LLVM M7LoadDP / M7StoreDP: 64-bit transfers are single-issue.
        return Timing(unit | Unit.FP_MOVE, LOAD_LATENCY, single=insn.double)
    if op is Op.FP_MOV_CORE:
        return Timing(Unit.FP_MOVE, FP_LATENCY)
    if op is Op.FP_MOV_CORE2:
        return Timing(Unit.FP_MOVE, FP_LATENCY, single=True)
    raise AssertionError(f"no Cortex-M7 timing for {op!r}")


def _banks_differ(a: Insn, b: Insn) -> bool:
    """Whether two loads in one cycle hit different 32-bit banks (even/odd word). Known when
    both use the same base register (or are PC-relative literals) with immediate offsets;
    otherwise the addresses are only known at run time and the model lets them pair."""
    if a.mem_base is None or b.mem_base != a.mem_base:
        return True
    if a.mem_index is not None or b.mem_index is not None:
        return a.mem_index != b.mem_index
    if a.mem_base == PC:
        word_a = (((a.address + 4) & ~3) + a.mem_disp) >> 2
        word_b = (((b.address + 4) & ~3) + b.mem_disp) >> 2
    else:
        word_a, word_b = a.mem_disp >> 2, b.mem_disp >> 2
    return (word_a & 1) != (word_b & 1)


def can_pair(first: Insn, second: Insn) -> bool:
    """Whether ``second`` may issue in the same cycle as ``first`` (operands permitting)."""
    t1, t2 = timing(first), timing(second)
    if t1.single or t2.single or t2.first_slot_only:
        return False
    both = t1.units | t2.units
    if t1.units & t2.units & _SINGLE_UNITS:
        return False
    for exclusive in _EXCLUSIVE:
        if both & exclusive == exclusive:
            return False
    if t1.units & t2.units & Unit.LOAD:
        return _banks_differ(first, second)
    return True


@dataclass
class Tail:
    """The pipeline state a block leaves behind, relative to its last issue cycle (cycle -1 for
    the block that follows)."""

    last: Insn | None = None  # the instruction alone in the last cycle, if the cycle has room
    ready: dict[int, int] = field(default_factory=dict)  # register -> first cycle it is usable
    flags_cycle: int = -(10**9)  # issue cycle of the last flag-setting instruction
    branch_cycle: int = -1  # issue cycle of the block's final branch


def schedule(insns: Sequence[Insn], before: Tail | None) -> tuple[int, Tail]:
    """Issue ``insns`` after the state ``before`` (None: an empty pipeline, as after a
    mispredicted branch). Returns the cycles from the end of the previous block to the last
    issue cycle of this one, and this block's tail."""
    cycle = -1
    room = before.last if before is not None else None  # slot-0 occupant of ``cycle``
    ready: dict[int, int] = dict(before.ready) if before is not None else {}
    flags_cycle = before.flags_cycle if before is not None else -(10**9)
    branch_cycle = -1
    for insn in insns:
        t = timing(insn)
        earliest = cycle
        for reg in insn.reads:
            when = ready.get(reg)
            if when is None:
                continue
            if reg == FLAGS and insn.op is Op.BRANCH:
                continue  # predicted: the flags are checked when the branch resolves
            if reg in insn.acc_regs:
                when -= FP_MAC_ACCUMULATOR_ADVANCE if insn.op is Op.FP_MAC else \
                    MAC_ACCUMULATOR_ADVANCE
            elif reg in insn.data_regs:
                when -= STORE_DATA_ADVANCE
            if when > earliest:
                earliest = when
        if (room is not None and earliest == cycle and not t.single
                and can_pair(room, insn)):
            issue = cycle
            room = None
        else:
            issue = max(earliest, cycle + 1)
            if t.single:
                cycle = issue + t.issue_cycles - 1
                room = None
            else:
                cycle = issue
                room = insn
        done = cycle if t.single else issue  # the last cycle the instruction holds
        for reg in insn.writes:
            if reg == FLAGS:
                ready[reg] = issue + ALU_LATENCY
                flags_cycle = issue
            elif insn.writeback and reg == insn.mem_base:
                ready[reg] = issue + BASE_UPDATE_LATENCY
            else:
                ready[reg] = done + t.latency
        if insn.branch is not Branch.NONE:
            branch_cycle = issue
    shift = cycle + 1
    tail = Tail(
        last=room,
        ready={reg: when - shift for reg, when in ready.items() if when - shift > -1},
        flags_cycle=flags_cycle - shift,
        branch_cycle=branch_cycle - shift,
    )
    return cycle + 1, tail


def mispredict_penalty(branch: Insn, tail: Tail) -> int:
    """Cycles a mispredicted ``branch`` (the last instruction of the block ``tail`` describes)
    costs on top of the target's own issue."""
    if branch.op is Op.BRANCH and branch.branch is Branch.CONDITIONAL and FLAGS in branch.reads:
        if tail.branch_cycle - tail.flags_cycle >= FLAG_FORWARD_DISTANCE:
            return MISPREDICT_FORWARDED_CYCLES
    return MISPREDICT_CYCLES
