"""Reading a firmware image for the virtual boards: its loadable segments (what a probe
programs), its symbols, and the instructions whose base address must be word-aligned.
"""

from __future__ import annotations

from pathlib import Path

from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs, CsError
from capstone.arm import ARM_OP_MEM, ARM_OP_REG, ARM_REG_PC, ARM_REG_SP
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from unicorn import arm_const

from bench_firmware.boards import Board
from bench_firmware.errors import BoardError

# Instructions that need a word-aligned address on ARMv7-M whatever CCR.UNALIGN_TRP says
# (ARMv7-M ARM §A3.2.1 "Alignment support").
WORD_ALIGNED_MNEMONICS = frozenset(
    f"{base}{suffix}"
    for base in ("ldrd", "strd", "ldm", "ldmia", "ldmfd", "ldmdb", "ldmea", "stm", "stmia",
                 "stmea", "stmdb", "stmfd", "ldrex", "strex", "vldr", "vstr", "vldm", "vldmia",
                 "vldmdb", "vstm", "vstmia", "vstmdb")
    for suffix in ("", ".w")
)
# Capstone register names → Unicorn register ids (r9-r12 have their APCS names in capstone).
_REG_ALIASES = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12", "lr": "r14"}


def _unicorn_reg(name: str) -> int:
    name = _REG_ALIASES.get(name, name)
    return int(getattr(arm_const, f"UC_ARM_REG_{name.upper()}"))



def load_elf(path: Path, board: Board) -> list[tuple[int, bytes]]:
    """The (load address, bytes) of every PT_LOAD segment with file contents: what a flash
    programmer writes. Every one must lie in ``board``'s flash."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_ARM" or elf.elfclass != 32:
                raise BoardError(f"{path} is not a 32-bit Arm ELF image; build the firmware for "
                                 f"{board.name} with `mcuprof firmware build --board {board.name}`")
            segments = [(seg["p_paddr"], seg.data()[: seg["p_filesz"]])
                        for seg in elf.iter_segments()
                        if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0]
    except (OSError, ELFError) as e:
        raise BoardError(f"cannot read the firmware image {path}: {e}") from e
    if not segments:
        raise BoardError(f"{path} has no loadable segment; is it a firmware image?")
    flash_end = board.flash_base + board.flash_bytes
    for address, data in segments:
        if address < board.flash_base or address + len(data) > flash_end:
            raise BoardError(
                f"{path}: a segment of {len(data)} bytes loads at {address:#010x}, outside "
                f"{board.name}'s flash ({board.flash_base:#010x}..{flash_end:#010x}); is the "
                f"image linked for this board?")
    return segments


def symbol_range(path: Path, name: str, kind: str = "STT_FUNC") -> tuple[int, int] | None:
    """[start, end) of symbol ``name`` of type ``kind`` in ``path`` (Thumb bit cleared), or
    None when the image has no such symbol."""
    try:
        with open(path, "rb") as f:
            symtab = ELFFile(f).get_section_by_name(".symtab")
            if not isinstance(symtab, SymbolTableSection):
                return None
            for sym in symtab.get_symbol_by_name(name) or ():
                if sym["st_info"]["type"] == kind and sym["st_size"]:
                    start = sym["st_value"] & ~1
                    return start, start + sym["st_size"]
    except (OSError, ELFError) as e:
        raise BoardError(f"cannot read the firmware image {path}: {e}") from e
    return None


def word_aligned_sites(path: Path) -> list[tuple[int, int, str]]:
    """(address, Unicorn base register, text) of every instruction in ``path`` that needs a
    word-aligned address and is not SP- or PC-relative. Code is found between the ``$t`` and
    ``$d`` mapping symbols (AAELF32 §5.5.5), so literal pools are not decoded as code."""
    cs = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
    cs.detail = True
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            symtab = elf.get_section_by_name(".symtab")
            marks = sorted(
                (sym["st_value"] & ~1, sym.name[1])
                for sym in (symtab.iter_symbols() if isinstance(symtab, SymbolTableSection)
                            else ())
                if sym.name[:2] in ("$t", "$d", "$a") and (len(sym.name) == 2
                                                            or sym.name[2] == "."))
            segments = [(seg["p_vaddr"], seg.data()) for seg in elf.iter_segments()
                        if seg["p_type"] == "PT_LOAD" and seg["p_flags"] & 1 and seg["p_filesz"]]
    except (OSError, ELFError) as e:
        raise BoardError(f"cannot read the firmware image {path}: {e}") from e
    sites = []
    for seg_base, data in segments:
        seg_end = seg_base + len(data)
        inside = [(a, k) for a, k in marks if seg_base <= a < seg_end] or [(seg_base, "t")]
        for (start, kind), (end, _) in zip(inside, [*inside[1:], (seg_end, "")], strict=True):
            if kind != "t":
                continue
            code = data[start - seg_base : end - seg_base]
            try:
                insns = list(cs.disasm(code, start))
            except CsError:
                continue
            for insn in insns:
                if insn.mnemonic not in WORD_ALIGNED_MNEMONICS:
                    continue
                mem = [op.mem.base for op in insn.operands if op.type == ARM_OP_MEM]
                regs = [op.reg for op in insn.operands if op.type == ARM_OP_REG]
                base = mem[0] if mem else (regs[0] if regs else None)
                if base is None or base in (ARM_REG_SP, ARM_REG_PC):
                    continue
                sites.append((insn.address, _unicorn_reg(cs.reg_name(base)),
                              f"{insn.mnemonic} {insn.op_str}"))
    return sites

