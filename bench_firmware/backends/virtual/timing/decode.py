"""Thumb-2 decoding for the cycle model: capstone's detail, reduced to what the timing rules use.

Each instruction becomes one immutable ``Insn``: its timing class (``Op``), the registers it reads
and writes (core registers 0-15, single-precision registers 16-47, the flags 48), its address
registers, and for branches how the target is found. Capstone's own register-access lists are
incomplete for some instructions (SXTAB16's second source, SSAT's source, SMLAL's accumulators,
VLDM's list), so the sets are built from the operands with the instruction class deciding the
direction; capstone's implicit registers (SP for PUSH/POP, LR for BL) are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import capstone
from capstone import arm as cs_arm


class Op(IntEnum):
    """Timing classes; the cost tables in ``m4.py`` and ``m7.py`` are keyed by these."""

    ALU = 0  # data processing, moves, shifts, compares, ADR, bitfield
    SHIFTED_ALU = 1  # data processing with an inline-shifted register operand
    MUL = 2  # MUL, SMULxy, SMULL, UMULL, SMMUL, SMUAD, ...
    MAC = 3  # MLA, MLS, SMLAxy, SMLAD, SMLAL, UMLAL, SMMLA, ...
    SIMD = 4  # DSP extension without a multiply: SADD16, QADD, SEL, USAD8, SXTB16, SSAT, ...
    EXTEND = 5  # SXTB/UXTB/SXTH/UXTH, bitfield, CLZ, REV, RBIT
    DIV = 6
    LOAD = 7  # LDR, LDRB, LDRH, LDRSB, LDRSH, LDREX*, PLD
    STORE = 8  # STR, STRB, STRH, STREX*
    LOAD_DUAL = 9  # LDRD
    STORE_DUAL = 10  # STRD
    LOAD_MULTI = 11  # LDM, POP
    STORE_MULTI = 12  # STM, PUSH
    BRANCH = 13  # B, BL, BX, BLX, CBZ, CBNZ
    TABLE_BRANCH = 14  # TBB, TBH
    IT = 15
    NOP = 16  # NOP and hints
    BARRIER = 17  # DMB, DSB, ISB
    SYSTEM = 18  # MRS, MSR, CPS, SVC, BKPT, WFI, ...
    FP_ALU = 19  # VADD, VSUB, VMUL, VNMUL, VABS, VNEG, VCMP, VCVT, VMOV (FP <- FP or immediate)
    FP_MAC = 20  # VMLA, VMLS, VNMLA, VNMLS, VFMA, VFMS, VFNMA, VFNMS
    FP_DIV = 21  # VDIV
    FP_SQRT = 22  # VSQRT
    FP_LOAD = 23  # VLDR
    FP_STORE = 24  # VSTR
    FP_LOAD_MULTI = 25  # VLDM, VPOP
    FP_STORE_MULTI = 26  # VSTM, VPUSH
    FP_MOV_CORE = 27  # VMOV between one core register and one FP register
    FP_MOV_CORE2 = 28  # VMOV between two core registers and a D / two S registers
    FP_SYSTEM = 29  # VMRS, VMSR


class Branch(IntEnum):
    """How an instruction changes the PC, which decides its refill and prediction."""

    NONE = 0
    DIRECT = 1  # B, BL: target in the encoding, always taken
    CONDITIONAL = 2  # B<cond>, CBZ, CBNZ: target in the encoding, taken or not
    INDIRECT = 3  # BX, BLX, MOV/ADD PC: target from a register
    LOADED = 4  # LDR PC, POP/LDM with PC, TBB/TBH: target from memory


PC = 15
SP = 13
LR = 14
FLAGS = 48  # APSR.NZCVQ / GE
_FIRST_S = 16  # s0 is register 16

_I = cs_arm  # shorthand for the ARM_INS_* constants


def _ids(*names: str) -> frozenset[int]:
    return frozenset(getattr(_I, f"ARM_INS_{n}") for n in names)


_CLASS_OF: dict[int, Op] = {}
for _op, _names in (
    (Op.MUL, ("MUL", "SMULBB", "SMULBT", "SMULTB", "SMULTT", "SMULWB", "SMULWT", "SMULL",
              "UMULL", "SMMUL", "SMMULR", "SMUAD", "SMUADX", "SMUSD", "SMUSDX")),
    (Op.MAC, ("MLA", "MLS", "SMLABB", "SMLABT", "SMLATB", "SMLATT", "SMLAWB", "SMLAWT",
              "SMLAD", "SMLADX", "SMLSD", "SMLSDX", "SMLAL", "UMLAL", "UMAAL", "SMLALBB",
              "SMLALBT", "SMLALTB", "SMLALTT", "SMLALD", "SMLALDX", "SMLSLD", "SMLSLDX",
              "SMMLA", "SMMLAR", "SMMLS", "SMMLSR")),
    (Op.SIMD, ("SADD16", "SADD8", "SASX", "SSAX", "SSUB16", "SSUB8", "SHADD16", "SHADD8",
               "SHASX", "SHSAX", "SHSUB16", "SHSUB8", "QADD", "QADD16", "QADD8", "QASX", "QSAX",
               "QSUB", "QSUB16", "QSUB8", "QDADD", "QDSUB", "UADD16", "UADD8", "UASX", "USAX",
               "USUB16", "USUB8", "UHADD16", "UHADD8", "UHASX", "UHSAX", "UHSUB16", "UHSUB8",
               "UQADD16", "UQADD8", "UQASX", "UQSAX", "UQSUB16", "UQSUB8", "SEL", "USAD8",
               "USADA8", "SSAT", "SSAT16", "USAT", "USAT16", "SXTB16", "UXTB16", "SXTAB16",
               "UXTAB16", "PKHBT", "PKHTB")),
    (Op.EXTEND, ("SXTB", "SXTH", "UXTB", "UXTH", "SXTAB", "SXTAH", "UXTAB", "UXTAH", "BFC",
                 "BFI", "SBFX", "UBFX", "CLZ", "REV", "REV16", "REVSH", "RBIT")),
    (Op.DIV, ("SDIV", "UDIV")),
    (Op.LOAD, ("LDR", "LDRB", "LDRH", "LDRSB", "LDRSH", "LDRT", "LDRBT", "LDRHT", "LDRSBT",
               "LDRSHT", "LDREX", "LDREXB", "LDREXH", "LDA", "LDAB", "LDAH", "PLD", "PLDW",
               "PLI")),
    (Op.STORE, ("STR", "STRB", "STRH", "STRT", "STRBT", "STRHT", "STREX", "STREXB", "STREXH",
                "STL", "STLB", "STLH")),
    (Op.LOAD_DUAL, ("LDRD", "LDREXD")),
    (Op.STORE_DUAL, ("STRD", "STREXD")),
    (Op.LOAD_MULTI, ("LDM", "LDMDB", "LDMDA", "LDMIB", "POP")),
    (Op.STORE_MULTI, ("STM", "STMDB", "STMDA", "STMIB", "PUSH")),
    (Op.BRANCH, ("B", "BL", "BX", "BLX", "CBZ", "CBNZ")),
    (Op.TABLE_BRANCH, ("TBB", "TBH")),
    (Op.IT, ("IT",)),
    (Op.NOP, ("NOP", "HINT", "YIELD", "SEV", "DBG")),
    (Op.BARRIER, ("DMB", "DSB", "ISB")),
    (Op.SYSTEM, ("MRS", "MSR", "CPS", "SVC", "BKPT", "WFI", "WFE", "UDF", "CLREX")),
    (Op.FP_ALU, ("VADD", "VSUB", "VMUL", "VNMUL", "VABS", "VNEG", "VCMP", "VCMPE", "VCVT",
                 "VCVTA", "VCVTB", "VCVTM", "VCVTN", "VCVTP", "VCVTR", "VCVTT", "VMAXNM",
                 "VMINNM", "VRINTA", "VRINTM", "VRINTN", "VRINTP", "VRINTR", "VRINTX", "VRINTZ",
                 "VSELEQ", "VSELGE", "VSELGT", "VSELVS", "FCONSTS", "FCONSTD")),
    (Op.FP_MAC, ("VMLA", "VMLS", "VNMLA", "VNMLS", "VFMA", "VFMS", "VFNMA", "VFNMS")),
    (Op.FP_DIV, ("VDIV",)),
    (Op.FP_SQRT, ("VSQRT",)),
    (Op.FP_LOAD, ("VLDR",)),
    (Op.FP_STORE, ("VSTR",)),
    (Op.FP_LOAD_MULTI, ("VLDMIA", "VLDMDB", "VPOP")),
    (Op.FP_STORE_MULTI, ("VSTMIA", "VSTMDB", "VPUSH")),
    (Op.FP_SYSTEM, ("VMRS", "VMSR", "FMSTAT")),
):
    for _id in _ids(*_names):
        _CLASS_OF[_id] = _op

_VMOV = _I.ARM_INS_VMOV
_POP_PUSH = _ids("POP", "PUSH", "VPOP", "VPUSH")
# RdLo/RdHi (or Rd) of these are accumulators: read and written.
_ACCUMULATING_DEST = _ids("SMLAL", "UMLAL", "UMAAL", "SMLALBB", "SMLALBT", "SMLALTB", "SMLALTT",
                          "SMLALD", "SMLALDX", "SMLSLD", "SMLSLDX")
_READS_FLAGS = _ids("ADC", "SBC", "RRX", "SEL")
_CALLS = _ids("BL", "BLX")
_CB = _ids("CBZ", "CBNZ")
_SHIFTABLE_ALU = _ids("ADD", "ADC", "SUB", "SBC", "RSB", "AND", "ORR", "ORN", "EOR", "BIC",
                      "MVN", "MOV", "CMP", "CMN", "TST", "TEQ")

_CORE_NAMES = {f"r{i}": i for i in range(13)} | {
    "sb": 9, "sl": 10, "fp": 11, "ip": 12, "sp": SP, "lr": LR, "pc": PC, "r13": SP, "r14": LR,
    "r15": PC,
}


@dataclass(frozen=True, slots=True)
class Insn:
    """One decoded instruction, as the timing rules see it."""

    address: int
    size: int  # bytes: 2 or 4
    op: Op
    mnemonic: str
    reads: frozenset[int]
    writes: frozenset[int]
    addr_regs: frozenset[int]  # base and index of a memory operand
    acc_regs: frozenset[int]  # accumulator sources of a MAC (read late on the Cortex-M7)
    data_regs: frozenset[int]  # registers a store writes to memory (read late)
    n_regs: int  # registers (words) moved by LDM/STM/PUSH/POP/VLDM/VSTM; 2 for LDRD/STRD
    branch: Branch
    target: int | None  # encoded branch target
    mem_base: int | None
    mem_disp: int
    mem_index: int | None
    imm_offset: bool  # a store or load with an immediate (or no) offset, pre/post-indexed included
    writeback: bool
    double: bool  # FP: double-precision operand or 64-bit transfer
    signed: bool  # SDIV vs UDIV
    conditional: bool  # executes under a condition (IT block or B<cond>)
    operand_regs: tuple[int, ...] = ()  # register operands in encoding order (SDIV: d, n, m)

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def is_unaligned_wide(self) -> bool:
        """A 32-bit instruction at a halfword (not word) boundary."""
        return self.size == 4 and self.address % 4 == 2


def _reg_number(insn: capstone.CsInsn, reg: int) -> list[int]:
    """Register numbers for one capstone register: core 0-15, s-registers 16-47, d as two s."""
    name = insn.reg_name(reg)
    if name is None:
        return []
    name = name.lower()
    if name in _CORE_NAMES:
        return [_CORE_NAMES[name]]
    if name.startswith("s") and name[1:].isdigit():
        return [_FIRST_S + int(name[1:])]
    if name.startswith("d") and name[1:].isdigit():
        n = int(name[1:])
        return [_FIRST_S + 2 * n, _FIRST_S + 2 * n + 1] if n < 16 else []
    if name in ("apsr", "apsr_nzcv", "cpsr", "fpscr_nzcv"):
        return [FLAGS]
    return []


def _is_wide(halfword: int) -> bool:
    """ARMv7-M ARM §A5.1: a halfword whose bits [15:11] are 0b11101, 0b11110 or 0b11111 starts
    a 32-bit instruction."""
    return (halfword >> 11) in (0b11101, 0b11110, 0b11111)


class Decoder:
    """Decodes Thumb-2 code into ``Insn`` records; one per model (capstone handles are not
    shared between threads)."""

    def __init__(self) -> None:
        self._cs = capstone.Cs(capstone.CS_ARCH_ARM,
                               capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
        self._cs.detail = True

    def decode(self, code: bytes, address: int) -> list[Insn]:
        """Every instruction in ``code`` (which starts at ``address``). Bytes capstone cannot
        decode become 1-cycle ALU placeholders of the width the encoding says, so that the
        instruction count stays exact."""
        out: list[Insn] = []
        offset = 0
        while len(code) - offset >= 2:
            for raw in self._cs.disasm(code[offset:], address + offset):
                out.append(_convert(raw))
                offset += raw.size
            if len(code) - offset < 2:
                break
            # capstone stopped at an encoding it does not know: skip one instruction.
            halfword = int.from_bytes(code[offset:offset + 2], "little")
            size = 4 if _is_wide(halfword) and len(code) - offset >= 4 else 2
            out.append(_placeholder(address + offset, size))
            offset += size
        return out


def _placeholder(address: int, size: int) -> Insn:
    return Insn(address=address, size=size, op=Op.ALU, mnemonic="(undecoded)",
                reads=frozenset(), writes=frozenset(), addr_regs=frozenset(),
                acc_regs=frozenset(), data_regs=frozenset(), n_regs=0, branch=Branch.NONE,
                target=None, mem_base=None, mem_disp=0, mem_index=None, imm_offset=False,
                writeback=False, double=False, signed=False, conditional=False)


def _convert(raw: capstone.CsInsn) -> Insn:  # noqa: C901 - one table-driven pass
    ins_id = raw.id
    op = _CLASS_OF.get(ins_id, Op.ALU)
    reads: set[int] = set()
    writes: set[int] = set()
    addr_regs: set[int] = set()
    acc_regs: set[int] = set()
    data_regs: set[int] = set()
    list_regs: list[int] = []
    mem_base: int | None = None
    mem_index: int | None = None
    mem_disp = 0
    imm_offset = False
    shifted = False
    double = False
    target: int | None = None
    core_operands = 0
    fp_operands = 0
    operand_regs: list[int] = []

    operands = list(raw.operands)
    is_multi = op in (Op.LOAD_MULTI, Op.STORE_MULTI, Op.FP_LOAD_MULTI, Op.FP_STORE_MULTI)
    has_list_base = is_multi and ins_id not in _POP_PUSH
    for index, operand in enumerate(operands):
        if operand.type == cs_arm.ARM_OP_REG:
            numbers = _reg_number(raw, operand.reg)
            operand_regs.extend(numbers)
            name = (raw.reg_name(operand.reg) or "").lower()
            if name.startswith("d") and name[1:].isdigit():
                double = True
            if numbers and numbers[0] < _FIRST_S:
                core_operands += 1
            elif numbers:
                fp_operands += 1
            if operand.shift.type not in (0, cs_arm.ARM_SFT_INVALID) and operand.shift.value:
                shifted = True
            if has_list_base and index == 0:
                reads.update(numbers)
                addr_regs.update(numbers)
                if raw.writeback:
                    writes.update(numbers)
                continue
            if is_multi:
                list_regs.extend(numbers)
                if op in (Op.LOAD_MULTI, Op.FP_LOAD_MULTI):
                    writes.update(numbers)
                else:
                    reads.update(numbers)
                    data_regs.update(numbers)
                continue
            access = operand.access
            if op in (Op.STORE, Op.STORE_DUAL, Op.FP_STORE):
                reads.update(numbers)
                data_regs.update(numbers)
                continue
            if ins_id in _ACCUMULATING_DEST and index < 2:
                reads.update(numbers)
                writes.update(numbers)
                acc_regs.update(numbers)
                continue
            if access & capstone.CS_AC_WRITE:
                writes.update(numbers)
                if access & capstone.CS_AC_READ:
                    reads.update(numbers)
                    if op is Op.FP_MAC:
                        acc_regs.update(numbers)  # VMLA/VFMA Sd: the accumulator
            else:
                reads.update(numbers)  # read, or access not reported (SSAT, SXTAB16)
            if op is Op.MAC and index == 3:
                acc_regs.update(numbers)  # Ra of MLA/SMLAD/SMLAxy
        elif operand.type == cs_arm.ARM_OP_MEM:
            if operand.mem.base:
                base = _reg_number(raw, operand.mem.base)
                if base:
                    mem_base = base[0]
                    reads.add(mem_base)
                    addr_regs.add(mem_base)
                    if raw.writeback:
                        writes.add(mem_base)
            if operand.mem.index:
                idx = _reg_number(raw, operand.mem.index)
                if idx:
                    mem_index = idx[0]
                    reads.add(mem_index)
                    addr_regs.add(mem_index)
            mem_disp = operand.mem.disp
            if getattr(operand, "subtracted", False) and mem_disp > 0:
                mem_disp = -mem_disp
            imm_offset = mem_index is None
        elif operand.type == cs_arm.ARM_OP_IMM:
            if op is Op.BRANCH:
                target = operand.imm

    # Implicit registers capstone reports (SP of PUSH/POP, LR of BL, PC of LDR literal).
    implicit_reads, implicit_writes = raw.regs_access()
    for reg in implicit_reads:
        for number in _reg_number(raw, reg):
            if number != FLAGS:
                reads.add(number)
    for reg in implicit_writes:
        for number in _reg_number(raw, reg):
            if number == FLAGS:
                continue
            if op in (Op.STORE_MULTI, Op.FP_STORE_MULTI) and number != SP:
                continue  # capstone marks VPUSH's list as written
            writes.add(number)
    if ins_id in _POP_PUSH:
        reads.add(SP)
        writes.add(SP)
        addr_regs.add(SP)
        mem_base = SP
    if raw.update_flags or ins_id in (_I.ARM_INS_CMP, _I.ARM_INS_CMN, _I.ARM_INS_TST,
                                       _I.ARM_INS_TEQ):
        writes.add(FLAGS)
    conditional = raw.cc not in (cs_arm.ARM_CC_AL, cs_arm.ARM_CC_INVALID)
    if conditional or ins_id in _READS_FLAGS:
        reads.add(FLAGS)

    if op is Op.ALU and shifted and ins_id in _SHIFTABLE_ALU:
        op = Op.SHIFTED_ALU
    if ins_id == _VMOV:
        if core_operands == 1 and fp_operands >= 1:
            op = Op.FP_MOV_CORE
        elif core_operands >= 2:
            op = Op.FP_MOV_CORE2
        elif core_operands == 0:
            op = Op.FP_ALU
        # VMOV with only core registers is a plain MOV alias; keep ALU.
    n_regs = len(list_regs)  # d registers count as two words, as the FPU moves them
    if op in (Op.LOAD_DUAL, Op.STORE_DUAL):
        n_regs = 2

    branch = Branch.NONE
    if op is Op.BRANCH:
        if ins_id in _CB:
            branch = Branch.CONDITIONAL
        elif target is not None:
            branch = Branch.CONDITIONAL if conditional else Branch.DIRECT
        else:
            branch = Branch.INDIRECT
        if ins_id in _CALLS:
            writes.add(LR)
    elif op is Op.TABLE_BRANCH:
        branch = Branch.LOADED
    elif PC in writes or (op is Op.LOAD_MULTI and PC in list_regs):
        branch = Branch.LOADED if op in (Op.LOAD, Op.LOAD_MULTI) else Branch.INDIRECT
    writes.discard(PC)
    reads.discard(PC)
    addr_regs.discard(PC)
    return Insn(
        address=raw.address, size=raw.size, op=op, mnemonic=raw.mnemonic,
        reads=frozenset(reads), writes=frozenset(writes), addr_regs=frozenset(addr_regs),
        acc_regs=frozenset(acc_regs), data_regs=frozenset(data_regs), n_regs=n_regs,
        branch=branch, target=target, mem_base=mem_base, mem_disp=mem_disp,
        mem_index=mem_index, imm_offset=imm_offset, writeback=bool(raw.writeback),
        double=double, signed=ins_id == _I.ARM_INS_SDIV, conditional=conditional,
        operand_regs=tuple(operand_regs),
    )
