"""Cortex-M4 instruction timing: one instruction at a time, with the documented pipelining rules.

Sources:

* Arm Cortex-M4 TRM, DDI 0439B, Table 3-1 (integer) and Table 7-1 (FPU): the base cycle counts.
* DDI 0439B §3.3.2 "Load/store timings": a single LDR followed by an LDR or a register-offset STR
  saves the second one a cycle unless the second one's address uses the first one's result;
  nothing pipelines after a store.
* GCC ``gcc/config/arm/cortex-m4.md``: the +1 when a load/store address comes from the
  previous ALU instruction (``arm_early_load_addr_dep`` bypass of 2), a branch reserving the
  pipeline for 3 cycles, ``str rx, [ry, #imm]`` 1 cycle and other stores 2.
* jnk0le/random "pipeline cycle test", ``doc/cortex_m3m4.md`` (measured on an STM32F407): a
  store followed by a load costs the store an extra cycle; post/pre-indexed loads on the same
  base do not chain back to back.

The rules, in the order ``block_cycles`` applies them to each instruction:

1. base cost (``base_cycles``; divides at their minimum, the divide hook adds the rest);
2. load pipelining: a single load/store after a single load costs one cycle less (a
   register-offset STR goes 2 -> 1, an LDR 2 -> 1; an immediate STR is already 1), unless its
   address registers were written by that load (pointer chasing, or the load's writeback);
3. address dependency: +1 for any load/store whose address register was written by the
   previous instruction, when that instruction is not a single load (rule 2 covers that case).
   GCC states it for ALU producers; the model generalises it to any producer, so it also
   applies to a base written back by a store or LDM/STM (PUSH then POP: +1), as jnk0le
   measures for back-to-back writeback stores on one base;
4. store then load: +1 for a load right after an immediate-offset store (the store's data
   phase cannot overlap the load's address phase);
5. VMOV core <-> S: 2 cycles, 1 right after another one (jnk0le's measurement on an
   STM32F407).

Branches cost 1 in the block; the edge to the next block adds the refill P when the branch was
taken (``taken_penalty``), +1 when the target is a 32-bit instruction at a halfword boundary.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench_firmware.backends.virtual.timing.decode import Branch, Insn, Op

# --- DDI 0439B Table 3-1 -------------------------------------------------------------------
ALU_CYCLES = 1  # data processing, MOV/MOVW/MOVT, shifts, CMP/TST, ADR, bitfield, extend
MUL_CYCLES = 1  # MUL, MLA, MLS, SMULL/UMULL/SMLAL/UMLAL and every DSP multiply
SIMD_CYCLES = 1  # SSAT/USAT and the DSP extension (SADD16, QADD, SEL, USAD8, SXTB16, PKHBT)
DIV_MIN_CYCLES = 2  # SDIV/UDIV, "2..12 (early termination)"
DIV_MAX_CYCLES = 12
LOAD_CYCLES = 2  # LDR/LDRB/LDRH/LDRSx, single
STORE_IMM_CYCLES = 1  # STR with immediate offset, "1 (effectively)"; GCC cortex_m4_store1_1
STORE_REG_CYCLES = 2  # STR with register offset; GCC cortex_m4_store1_2
DUAL_CYCLES = 3  # LDRD, STRD (1 + N with N = 2)
MULTI_BASE_CYCLES = 1  # LDM/STM/PUSH/POP: 1 + N
IT_CYCLES = 1  # IT folding (LLVM ARMScheduleM4.td: "only IT can be dual-issued") not modelled
TABLE_BRANCH_CYCLES = 3  # TBB/TBH before the refill (table load 2 + branch 1); 6 with P_LATE
BARRIER_CYCLES = 1  # DMB/DSB "1 + B", B (outstanding transfers) taken as 0
ISB_EXTRA_CYCLES = 2  # ISB refills the pipeline: 1 + P_EARLY
# Branch refill P is "1..3 depending on the alignment and width of the target instruction, and
# whether the processor manages to speculate the address early" (Table 3-1 note). GCC's
# cortex-m4.md reserves the pipeline for 3 cycles per taken branch (P = 2); LLVM's
# ARMScheduleM4.td uses 2 and calls it the best case. We follow GCC for branches whose target
# is known at decode (B, BL, BX, BLX, MOV/ADD PC) and use the maximum for targets that come
# from memory (LDR PC, POP {pc}, LDM with PC, TBB/TBH), which cannot be speculated early: that
# gives LDR PC = 2 + P_LATE = 5 cycles.
P_EARLY = 2
P_LATE = 3
UNALIGNED_WIDE_TARGET_CYCLES = 1  # jnk0le (STM32F407): branch to an unaligned 32-bit insn
ADDRESS_DEPENDENCY_CYCLES = 1  # GCC cortex-m4.md bypass 2 (ALU -> load/store address)
STORE_THEN_LOAD_CYCLES = 1  # jnk0le cortex_m3m4.md: stores cannot pipeline with a following load
# --- DDI 0439B Table 7-1 (FPU, single precision) -------------------------------------------
FP_ALU_CYCLES = 1  # VADD/VSUB/VMUL/VNMUL/VABS/VNEG/VCMP/VCVT, VMOV immediate and register
FP_MAC_CYCLES = 3  # VMLA/VMLS/VNMLA/VNMLS, VFMA family
FP_DIV_CYCLES = 14  # VDIV.F32
FP_SQRT_CYCLES = 14  # VSQRT.F32
FP_LOAD32_CYCLES = 2  # VLDR.32, VSTR.32
FP_LOAD64_CYCLES = 3  # VLDR.64, VSTR.64
FP_MOV_CORE_CYCLES = 2  # VMOV core <-> S
FP_MOV_CORE_BACK_TO_BACK_CYCLES = 1  # jnk0le (STM32F407): 1 back-to-back
FP_MOV_CORE2_CYCLES = 3  # VMOV two core registers <-> D or two S (1 + N, N = 2)
FP_SYSTEM_CYCLES = 1  # VMRS/VMSR

_FIXED: dict[Op, int] = {
    Op.ALU: ALU_CYCLES,
    Op.SHIFTED_ALU: ALU_CYCLES,
    Op.MUL: MUL_CYCLES,
    Op.MAC: MUL_CYCLES,
    Op.SIMD: SIMD_CYCLES,
    Op.EXTEND: ALU_CYCLES,
    Op.DIV: DIV_MIN_CYCLES,
    Op.LOAD: LOAD_CYCLES,
    Op.LOAD_DUAL: DUAL_CYCLES,
    Op.STORE_DUAL: DUAL_CYCLES,
    Op.BRANCH: 1,  # not taken; taken adds P on the edge
    Op.TABLE_BRANCH: TABLE_BRANCH_CYCLES,
    Op.IT: IT_CYCLES,
    Op.NOP: ALU_CYCLES,
    Op.BARRIER: BARRIER_CYCLES,
    Op.SYSTEM: ALU_CYCLES,
    Op.FP_ALU: FP_ALU_CYCLES,
    Op.FP_MAC: FP_MAC_CYCLES,
    Op.FP_DIV: FP_DIV_CYCLES,
    Op.FP_SQRT: FP_SQRT_CYCLES,
    Op.FP_MOV_CORE: FP_MOV_CORE_CYCLES,
    Op.FP_MOV_CORE2: FP_MOV_CORE2_CYCLES,
    Op.FP_SYSTEM: FP_SYSTEM_CYCLES,
}
_SINGLE_MEMORY = frozenset({Op.LOAD, Op.STORE})
_MEMORY = frozenset({Op.LOAD, Op.STORE, Op.LOAD_DUAL, Op.STORE_DUAL, Op.LOAD_MULTI,
                     Op.STORE_MULTI, Op.TABLE_BRANCH, Op.FP_LOAD, Op.FP_STORE,
                     Op.FP_LOAD_MULTI, Op.FP_STORE_MULTI})
_LOADS = frozenset({Op.LOAD, Op.LOAD_DUAL, Op.LOAD_MULTI, Op.FP_LOAD, Op.FP_LOAD_MULTI,
                    Op.TABLE_BRANCH})


def base_cycles(insn: Insn) -> int:
    """Table 3-1 / 7-1 cost of ``insn`` alone, not taken if it is a branch."""
    op = insn.op
    if op is Op.STORE:
        return STORE_IMM_CYCLES if insn.imm_offset else STORE_REG_CYCLES
    if op in (Op.LOAD_MULTI, Op.STORE_MULTI, Op.FP_LOAD_MULTI, Op.FP_STORE_MULTI):
        return MULTI_BASE_CYCLES + insn.n_regs
    if op in (Op.FP_LOAD, Op.FP_STORE):
        return FP_LOAD64_CYCLES if insn.double else FP_LOAD32_CYCLES
    if op is Op.BARRIER and insn.mnemonic.startswith("isb"):
        return BARRIER_CYCLES + ISB_EXTRA_CYCLES
    return _FIXED[op]


def instruction_cycles(insn: Insn, before: Insn | None) -> int:
    """Cost of ``insn`` when ``before`` was the instruction just before it (None: a branch
    target or the start of execution)."""
    cycles = base_cycles(insn)
    if before is None:
        return cycles
    op = insn.op
    if op in _MEMORY:
        address_written = bool(insn.addr_regs & before.writes)
        if before.op is Op.LOAD:
            if op in _SINGLE_MEMORY and not address_written and cycles > 1:
                cycles -= 1  # rule 2: address and data phases pipeline
        elif address_written:
            cycles += ADDRESS_DEPENDENCY_CYCLES  # rule 3
        if op in _LOADS and before.op is Op.STORE and before.imm_offset:
            cycles += STORE_THEN_LOAD_CYCLES  # rule 4
    elif op is Op.FP_MOV_CORE and before.op is Op.FP_MOV_CORE:
        cycles = FP_MOV_CORE_BACK_TO_BACK_CYCLES  # rule 5
    return cycles


def block_cycles(insns: Sequence[Insn], before: Insn | None) -> int:
    """Static cost of a block, branches not taken, divides at their minimum; ``before`` is the
    instruction executed just before the block when it was reached by falling through."""
    total = 0
    for insn in insns:
        total += instruction_cycles(insn, before)
        before = insn
    return total


def taken_penalty(branch: Insn) -> int:
    """The refill P a taken ``branch`` adds to its base cost (MOV/ADD PC: "1 + P")."""
    return P_LATE if branch.branch is Branch.LOADED else P_EARLY


def target_penalty(first: Insn) -> int:
    """Extra refill when a taken branch lands on ``first`` (measured on an STM32F407)."""
    return UNALIGNED_WIDE_TARGET_CYCLES if first.is_unaligned_wide else 0


# SDIV/UDIV early termination. Table 3-1 gives only the range 2..12 and says division
# terminates early "based on the number of leading ones and zeroes in the input operands"; Arm
# publishes no formula for the Cortex-M4. The Cortex-R4 TRM (DDI 0363G §C.8) does for its
# radix-4 divider: latency grows with q = clz(divisor) - clz(dividend) + 1 (operands negated
# first when negative), the number of quotient bits. We use the same q and spread the M4's
# documented range linearly over it: cycles = 2 + ceil(10 * q / 32), q clamped to [0, 32];
# 2 for a zero divisor or a quotient of 0 (|dividend| < |divisor| by a bit or more), 12 for a
# 32-bit quotient.
DIV_QUOTIENT_BITS = 32
_WORD = 0xFFFF_FFFF


def _magnitude(value: int, signed: bool) -> int:
    value &= _WORD
    if signed and value & 0x8000_0000:
        value = (-value) & _WORD
    return value


def divide_cycles(dividend: int, divisor: int, *, signed: bool) -> int:
    """Cycles of one SDIV/UDIV with these register values (raw 32-bit register contents)."""
    n = _magnitude(dividend, signed)
    d = _magnitude(divisor, signed)
    if d == 0 or n == 0:
        return DIV_MIN_CYCLES
    clz_n = DIV_QUOTIENT_BITS - n.bit_length()
    clz_d = DIV_QUOTIENT_BITS - d.bit_length()
    q = min(max(clz_d - clz_n + 1, 0), DIV_QUOTIENT_BITS)
    span = DIV_MAX_CYCLES - DIV_MIN_CYCLES
    return DIV_MIN_CYCLES + -(-span * q // DIV_QUOTIENT_BITS)
