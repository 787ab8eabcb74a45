"""The cycle model: hooks on a Unicorn instance that count core cycles as the code runs.

How the cost of a run is put together (the rules themselves are in ``m4.py``, ``m7.py`` and
``memory.py``):

* **Blocks, decoded once.** Unicorn's block hook reports each translated block's address and
  size. The first time a block is seen it is decoded with capstone and kept (keyed by address;
  a block re-translated with another size is decoded again). Unicorn's blocks end at branches
  but also at page boundaries, at the ``until`` address and at some system instructions; that
  is why the cost is per *edge*.
* **Edges, costed once.** The cost of entering block B from block A depends on A only through
  A's last instruction: whether it was a branch and taken (B is not A's fall-through), the
  refill that costs, and the pipeline state A leaves (Cortex-M4: load pipelining, address
  dependency and store-then-load across a fall-through; Cortex-M7: a free issue slot in A's
  last cycle and registers still in flight, from A's schedule on its own). Each block keeps a
  dict of its successors; an edge holds the cost (packed with B's instruction count) and B's
  own successor dict, so the block hook does one dict lookup and one integer add.
* **Branch prediction (Cortex-M7).** An edge out of a conditional branch stores its cost for
  each state of a 2-bit counter kept per branch, and the next state; an edge out of an indirect
  branch stores (predicted, mispredicted) costs against the branch's last target.
* **Instruction fetch** (``memory.py`` has the facts). On the F4/L4 ART with prefetch on, a
  line reaches the instruction cache only when it was not in the current line, the prefetched
  line or the cache: sequential code streams through the prefetcher (a refill overlapping the
  previous line's cycles, a static part of the edge cost) and only the target line of a taken
  branch is looked up and, on a miss, refilled. On the Cortex-M7 (and the ART without prefetch)
  every line a block spans goes through the cache. Either way a per-block epoch against the
  refill counter skips the lookups while no line was refilled since the block last found its
  lines resident.
* **Data from flash.** A memory-read hook restricted to the flash address range runs the data
  cache (ART data cache / Cortex-M7 D-cache, LRU) on every flash read: exact. Only flash reads
  reach Python (SRAM, DTCM and peripheral reads never leave the emulator), and a read of the
  line just used returns after one comparison. It is the largest cost of the model (about
  0.35 µs per flash read, measured; ``benchmarks/cycle_model_speed.py``); learning per-block
  miss rates instead was rejected because the Cortex-M7's 4-16 KB D-cache keeps whole layers'
  weights across output pixels, which no short learning window can see.
* **Divides (Cortex-M4).** SDIV/UDIV cost depends on the operands; a code hook on each divide
  instruction reads them. Divides are found when the model attaches (a scan of the firmware
  part of flash) and, for code written later, when their block is first decoded; that first
  execution uses the operands if the block does not compute them before the divide, else the
  worst case (at most 10 cycles of error, once per divide instruction).

A memory hook on Unicorn 2.1 leaks the IT state of a load inside an IT block past the block
(the code after it then runs as conditional and is partly skipped); the data hook clears it
for blocks that read memory inside IT blocks (``_it_state_clearer``).

Charges are made when a block starts, so ``cycles`` read from a hook in the middle of a block
already includes the whole block (by at most the block's own length, and equally at the start
and the end of a timed region). The count is deterministic: it depends only on the code and
the data.
"""

from __future__ import annotations

import ctypes
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unicorn import Uc
from unicorn import arm_const as uc_arm

from bench_firmware.backends.virtual.timing import m4, m7
from bench_firmware.backends.virtual.timing._hooks import Hooks
from bench_firmware.backends.virtual.timing.decode import Branch, Decoder, Insn, Op
from bench_firmware.backends.virtual.timing.memory import FlashPath, LruCache, flash_path
from bench_firmware.boards import Board
from bench_firmware.errors import BoardError


@dataclass(frozen=True)
class MemoryConfig:
    """Which parts of the flash accelerator are on. The default is what the bench firmware
    turns on at boot (FLASH_ACR ICEN/DCEN/PRFTEN on the F4/L4, SCB->CCR IC/DC on the F7)."""

    icache: bool = True
    dcache: bool = True
    prefetch: bool = True


@dataclass
class _BlockInfo:
    """What the slow paths need to know about a block."""

    address: int
    size: int
    insns: list[Insn]
    lines: tuple[int, ...]  # flash lines the block's bytes span, in address order
    line_cycles: tuple[int, ...]  # Cortex-M4 cycles spent in each of those lines
    streaming: int  # ART prefetch: refill cycles of the block's own sequential lines
    tail: m7.Tail | None  # Cortex-M7 pipeline state at the block's end

    @property
    def fallthrough(self) -> int:
        return self.address + self.size

    @property
    def last(self) -> Insn | None:
        return self.insns[-1] if self.insns else None


# Block record (a list: indexing is the cheapest lookup a Python callback has). The hot paths
# index it with these values as literals.
_SUCC = 0  # dict: successor address -> edge tuple; _SELF -> this record
_EPOCH = 1  # refill count when the block's cached lines were last seen resident; -1: look again
_PRED = 2  # Cortex-M7 predictor state of the block's final branch (see _KIND_*)
_INFO = 3  # _BlockInfo
_PLAN = 4  # ((line, its LRU set), ...) the block looks up in the instruction cache
_SELF_EVICTING = 5  # the block's own lines overflow a set: look them up every time
_IT_READS = 6  # the block reads memory from inside an IT block (see _clear_it_state)
_SELF = -1  # key of a successor dict that leads back to its own record
# Edge tuple: (value, successor's _SUCC dict, successor size, kind, source record, lookup,
# successor record, successor's _IT_READS). ``lookup`` says whether entering this way goes
# through the instruction cache. ``kind`` is how the source block's last instruction picks its
# successor, and decides what ``value`` is:
_KIND_STATIC = 0  # value: packed cost (no prediction, or Cortex-M4)
_KIND_CONDITIONAL = 1  # value: per 2-bit counter state, (packed cost, next state)
_KIND_INDIRECT = 2  # value: (packed cost if the last target repeats, packed cost otherwise)
# 2-bit counter states; >= _WEAK_TAKEN predicts taken. Initial state: backward branches
# weakly taken, forward ones weakly not taken (a static BTFN start; the Cortex-M7 TRM names a
# dynamic predictor but documents no algorithm).
_STRONG_NOT, _WEAK_NOT, _WEAK_TAKEN, _STRONG_TAKEN = range(4)
_NO_TARGET = -1
# ``total`` packs cycles and instructions: total = cycles << COUNT_BITS | instructions, so a
# block costs one addition. Room for 10**12 instructions, more than a day at 10 M/s.
COUNT_BITS = 40
COUNT_MASK = (1 << COUNT_BITS) - 1

_UC_CORE_REGS = (*(uc_arm.UC_ARM_REG_R0 + i for i in range(13)), uc_arm.UC_ARM_REG_SP,
                 uc_arm.UC_ARM_REG_LR, uc_arm.UC_ARM_REG_PC)
# ARMv7-M ARM §A7.7.127/§A7.7.195, encoding T1: SDIV 0xFB9n 0xFdFm, UDIV 0xFBBn 0xFdFm
# (little-endian bytes: 9n/Bn, FB, Fm, Fd).
_DIVIDE_PATTERN = re.compile(rb"(?=[\x90-\x9f\xb0-\xbf]\xfb[\xf0-\xff][\xf0-\xff])", re.DOTALL)


class CycleModel:
    """Counts the cycles a board's core spends on the code a Unicorn instance runs.

    Lifecycle: ``create_cycle_model(board)`` → ``attach(uc)`` once, after the memory is mapped
    (ideally after the firmware is written, so divides are found up front) and before
    ``emu_start`` → read ``cycles`` and ``instructions`` at any time → ``detach()``.
    """

    def __init__(self, board: Board, memory: MemoryConfig | None = None) -> None:
        if board.core not in ("cortex-m4", "cortex-m7"):
            raise BoardError(f"no cycle model for core {board.core!r} ({board.name}); "
                             "virtual boards exist for Cortex-M4 and Cortex-M7 parts")
        self.board = board
        self.memory = memory or MemoryConfig()
        self.flash: FlashPath = flash_path(board)
        self._m7 = board.core == "cortex-m7"
        self._uc: Uc | None = None
        self._hooks: Hooks | None = None
        self._counters: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0)
        self.icache = LruCache(self.flash.icache, enabled=self.memory.icache)
        self.dcache = LruCache(self.flash.dcache, enabled=self.memory.dcache)
        self.divides = 0  # divide instructions timed by their operands

    # --- public counters -------------------------------------------------------------------
    @property
    def cycles(self) -> int:
        """Modelled core cycles since reset."""
        return self._counters()[0]

    @property
    def instructions(self) -> int:
        """Instructions emulated since reset."""
        return self._counters()[1]

    @property
    def instruction_misses(self) -> int:
        """Instruction-cache (ART / L1) line refills since reset."""
        return self._counters()[2]

    @property
    def data_misses(self) -> int:
        """Data-cache (ART / L1) line refills since reset."""
        return self.dcache.misses

    # --- lifecycle ---------------------------------------------------------------------------
    def attach(self, uc: Uc) -> None:
        """Install the hooks on ``uc`` (memory mapped; before ``emu_start``)."""
        if self._uc is not None:
            raise BoardError("this cycle model is already attached; create one per emulator")
        self._uc = uc
        self._hooks = Hooks(uc)
        self._install(uc, self._hooks)
        # Blocks translated before the hooks existed would run without them.
        uc.ctl_flush_tb()  # type: ignore[attr-defined]  # unicorn 2 API, absent from the stubs

    def detach(self) -> None:
        """Remove the hooks; the counters keep their values."""
        if self._hooks is not None:
            self._hooks.remove_all()
        self._hooks = None

    # --- the run-time part -------------------------------------------------------------------
    def _install(self, uc: Uc, hooks: Hooks) -> None:  # noqa: C901 - closures share state
        """Build the callbacks: closures over local variables (reading and adding to a closure
        cell is the cheapest state a Python callback can keep). The hot paths, run for every
        block and every flash read, use literal record indices (layout above ``_SUCC``)."""
        board, flash, m7_core = self.board, self.flash, self._m7
        decoder = Decoder()
        icache, dcache = self.icache, self.dcache
        iways = icache.ways
        ishift, dshift = flash.icache.line_shift, flash.dcache.line_shift
        wait_states = flash.wait_states
        # F4/L4 ART with prefetch: only taken-branch targets go through the instruction cache.
        streaming = flash.prefetch and self.memory.prefetch
        flash_lo = board.flash_base
        flash_hi = board.flash_base + board.flash_bytes  # exclusive
        reg_read = uc.reg_read
        fail = hooks.fail

        blocks: dict[int, list[Any]] = {}
        timed_divides: dict[int, Insn] = {}  # address -> divide with a code hook
        total = 0  # cycles << COUNT_BITS | instructions
        iepoch = 0  # instruction-cache refills so far: the epoch of the per-block check
        start: list[Any] = [{}, 0, 0, None, (), False, False]  # "block" before the first
        start[_SUCC][_SELF] = start
        succ: dict[int, Any] = start[_SUCC]  # successors of the block that ran last
        it_reads = False  # the running block reads memory inside an IT block
        clear_it_state = _it_state_clearer(uc)

        def counters() -> tuple[int, int, int]:
            return total >> COUNT_BITS, total & COUNT_MASK, iepoch

        self._counters = counters

        # ---- slow paths: once per block, per edge, per refill ----
        def new_block(address: int, size: int) -> list[Any]:
            nonlocal total
            insns = decoder.decode(bytes(uc.mem_read(address, size)), address)
            lo, hi = max(address, flash_lo), min(address + size, flash_hi)
            lines = tuple(range(lo >> ishift, ((hi - 1) >> ishift) + 1)) if lo < hi else ()
            line_cycles = [0] * len(lines)
            before: Insn | None = None
            for insn in insns:
                index = (insn.address >> ishift) - lines[0] if lines else -1
                if 0 <= index < len(lines):
                    line_cycles[index] += m4.instruction_cycles(insn, before)
                before = insn
            # RM0390 §3.4.2: the prefetcher reads the next line while the current one runs,
            # so a sequential line waits only for what the previous line's cycles leave over.
            refills = sum(prefetch_wait(cycles) for cycles in line_cycles[:-1])
            info = _BlockInfo(address, size, insns, lines, tuple(line_cycles),
                              refills if streaming else 0,
                              m7.schedule(insns, None)[1] if m7_core else None)
            cached = lines[:1] if streaming else lines
            plan = tuple((line, icache.set_of(line)) for line in cached)
            per_set = Counter(id(lines_of_set) for _, lines_of_set in plan)
            last = info.last
            state = _NO_TARGET
            if last is not None and last.branch is Branch.CONDITIONAL:
                backward = last.target is not None and last.target <= last.address
                state = _WEAK_TAKEN if backward else _WEAK_NOT
            it_reads = any(insn.conditional and insn.op in _READS for insn in insns)
            record: list[Any] = [{}, -1, state, info, plan,
                                 any(n > iways for n in per_set.values()), it_reads]
            record[_SUCC][_SELF] = record
            blocks[address] = record
            if not m7_core:
                total += untimed_divides(info) << COUNT_BITS
            return record

        def prefetch_wait(previous_line_cycles: int) -> int:
            return max(0, wait_states + 1 - previous_line_cycles)

        def untimed_divides(info: _BlockInfo) -> int:
            """Hook the block's divides not hooked yet; cost their first execution."""
            extra = 0
            written: set[int] = set()
            for insn in info.insns:
                if insn.op is Op.DIV and insn.address not in timed_divides:
                    timed_divides[insn.address] = insn
                    hooks.code(on_divide, insn.address)
                    uc.ctl_remove_cache(info.address, info.fallthrough)
                    n_reg, d_reg = insn.operand_regs[1], insn.operand_regs[2]
                    if n_reg in written or d_reg in written:
                        extra += m4.DIV_MAX_CYCLES - m4.DIV_MIN_CYCLES
                    else:
                        extra += m4.divide_cycles(reg_read(_UC_CORE_REGS[n_reg]),
                                                  reg_read(_UC_CORE_REGS[d_reg]),
                                                  signed=insn.signed) - m4.DIV_MIN_CYCLES
                written |= insn.writes
            return extra

        def fetch_terms(prev_info: _BlockInfo | None, info: _BlockInfo,
                        address: int) -> tuple[int, bool]:
            """(static refill cycles, whether the entry goes through the instruction cache)
            for entering ``info`` from ``prev_info``."""
            if not info.lines:
                return 0, False  # code outside flash (SRAM) waits for nothing
            if not streaming:
                return 0, True
            cost = info.streaming
            if prev_info is None or not prev_info.lines:
                return cost, True
            current = prev_info.lines[-1]
            first = info.lines[0]
            if address == prev_info.fallthrough:
                if first != current:
                    cost += prefetch_wait(prev_info.line_cycles[-1])  # prefetched next line
                return cost, False
            # A taken branch: RM0390 §3.4.2 serves the current and the prefetched line without
            # a refill; any other target goes through the instruction cache.
            return cost, first not in (current, current + 1)

        def new_edge(source_succ: dict[int, Any], address: int, size: int) -> tuple[Any, ...]:
            """Cost the edge from the block owning ``source_succ`` to the block at
            ``address``, and remember it there."""
            source: list[Any] = source_succ[_SELF]
            record = blocks.get(address)
            if record is None or record[_INFO].size != size:
                record = new_block(address, size)
            prev_info: _BlockInfo | None = source[_INFO]
            info: _BlockInfo = record[_INFO]
            count = len(info.insns)
            refills, lookup = fetch_terms(prev_info, info, address)
            kind = _KIND_STATIC
            if m7_core:
                kind = _kind(prev_info)
                value = m7_edge(prev_info, info, address, kind, count)
            else:
                value = (m4_edge(prev_info, info, address) + refills) << COUNT_BITS | count
            edge = (value, record[_SUCC], size, kind, source, lookup, record, record[_IT_READS])
            source_succ[address] = edge
            return edge

        def fetch(record: list[Any]) -> int:
            """Instruction-cache lookups of a block whose lines may have been evicted: each
            line made most recent, or refilled (``LruCache.touch``, inlined)."""
            nonlocal iepoch
            penalty = 0
            for line, lines in record[4]:  # _PLAN
                if line in lines:
                    lines.move_to_end(line)
                else:
                    penalty += wait_states
                    if iways:  # 0: the cache is off
                        if len(lines) >= iways:
                            lines.popitem(last=False)
                        lines[line] = None
                    iepoch += 1
            record[1] = -1 if record[5] else iepoch  # _EPOCH, _SELF_EVICTING
            return penalty << COUNT_BITS

        def data_miss(address: int, size: int) -> int:
            """A flash read that missed, or crossed into another line."""
            penalty = 0
            for line in range(address >> dshift, ((address + size - 1) >> dshift) + 1):
                if not dcache.touch(line):
                    penalty += wait_states
                    dcache.misses += 1
            return penalty << COUNT_BITS

        # ---- hot paths: every block, every flash read ----
        def on_block_m4(_handle: Any, address: int, size: int, _data: Any) -> None:
            nonlocal total, succ, it_reads
            try:
                try:
                    edge = succ[address]
                except KeyError:
                    edge = new_edge(succ, address, size)
                if edge[2] != size:  # re-translated with other bounds
                    edge = new_edge(succ, address, size)
                total += edge[0]
                if edge[5] and edge[6][1] != iepoch:  # lookup, record[_EPOCH]
                    total += fetch(edge[6])
                succ = edge[1]
                it_reads = edge[7]
            except BaseException as exc:  # noqa: BLE001 - re-raised by emu_start
                fail(exc)

        def on_block_m7(_handle: Any, address: int, size: int, _data: Any) -> None:
            nonlocal total, succ, it_reads
            try:
                try:
                    edge = succ[address]
                except KeyError:
                    edge = new_edge(succ, address, size)
                if edge[2] != size:  # re-translated with other bounds
                    edge = new_edge(succ, address, size)
                kind = edge[3]
                if kind == 0:  # _KIND_STATIC
                    total += edge[0]
                elif kind == 1:  # _KIND_CONDITIONAL: per counter state (cost, next state)
                    source = edge[4]
                    cost, source[2] = edge[0][source[2]]  # _PRED
                    total += cost
                else:  # _KIND_INDIRECT: predicted when the target repeats
                    source = edge[4]
                    if source[2] == address:
                        total += edge[0][0]
                    else:
                        total += edge[0][1]
                        source[2] = address
                if edge[5] and edge[6][1] != iepoch:  # lookup, record[_EPOCH]
                    total += fetch(edge[6])
                succ = edge[1]
                it_reads = edge[7]
            except BaseException as exc:  # noqa: BLE001 - re-raised by emu_start
                fail(exc)

        dsets = dcache.sets
        dmask = len(dsets) - 1
        dlines = dsets[0]
        dtouch = dlines.move_to_end
        dline_mask = flash.dcache.line_bytes - 1
        dline_bytes = flash.dcache.line_bytes
        dlast = -1  # the most recently used data line: already the most recent of its set
        dcache_on = dcache.ways > 0

        def on_flash_read_one_set(_handle: Any, _access: int, address: int, size: int,
                                  _value: int, _data: Any) -> None:
            """Fully associative data cache (the ART's)."""
            nonlocal total, dlast
            try:
                if it_reads:
                    clear_it_state()
                line = address >> dshift
                if (address & dline_mask) + size <= dline_bytes:  # within one line
                    if line == dlast:
                        return
                    if line in dlines:
                        dtouch(line)  # LRU recency
                        dlast = line
                        return
                total += data_miss(address, size)
                dlast = (address + size - 1) >> dshift if dcache_on else -1
            except BaseException as exc:  # noqa: BLE001
                fail(exc)

        def on_flash_read_sets(_handle: Any, _access: int, address: int, size: int,
                               _value: int, _data: Any) -> None:
            """Set-associative data cache (the Cortex-M7's)."""
            nonlocal total, dlast
            try:
                if it_reads:
                    clear_it_state()
                line = address >> dshift
                if (address & dline_mask) + size <= dline_bytes:  # within one line
                    if line == dlast:
                        return
                    lines = dsets[line & dmask]
                    if line in lines:
                        lines.move_to_end(line)  # LRU recency
                        dlast = line
                        return
                total += data_miss(address, size)
                dlast = (address + size - 1) >> dshift if dcache_on else -1
            except BaseException as exc:  # noqa: BLE001
                fail(exc)

        def on_divide(_handle: Any, address: int, _size: int, _data: Any) -> None:
            nonlocal total
            try:
                insn = timed_divides[address]
                extra = m4.divide_cycles(reg_read(_UC_CORE_REGS[insn.operand_regs[1]]),
                                         reg_read(_UC_CORE_REGS[insn.operand_regs[2]]),
                                         signed=insn.signed) - m4.DIV_MIN_CYCLES
                total += extra << COUNT_BITS
                self.divides += 1
            except BaseException as exc:  # noqa: BLE001
                fail(exc)

        on_block = on_block_m7 if m7_core else on_block_m4
        on_flash_read = on_flash_read_one_set if len(dsets) == 1 else on_flash_read_sets
        hooks.block(on_block)
        hooks.mem_read(on_flash_read, flash_lo, flash_hi - 1)
        if not m7_core:
            for address in self._scan_divides(uc):
                if address not in timed_divides:
                    insns = decoder.decode(bytes(uc.mem_read(address, 4)), address)
                    if insns and insns[0].op is Op.DIV:
                        timed_divides[address] = insns[0]
                        hooks.code(on_divide, address)

    def _scan_divides(self, uc: Uc) -> list[int]:
        """Addresses in the firmware part of flash that hold an SDIV/UDIV encoding. A match
        inside data only adds a code hook that never fires."""
        board = self.board
        lo = board.flash_base
        hi = board.model_region_base if board.model_region_base > lo else lo + board.flash_bytes
        found: list[int] = []
        for begin, end, _perms in uc.mem_regions():
            start, stop = max(begin, lo), min(end + 1, hi)
            if start >= stop:
                continue
            data = bytes(uc.mem_read(start, stop - start))
            found.extend(start + m.start() for m in _DIVIDE_PATTERN.finditer(data)
                         if m.start() % 2 == 0)
        return found


_READS = frozenset({Op.LOAD, Op.LOAD_DUAL, Op.LOAD_MULTI, Op.TABLE_BRANCH, Op.FP_LOAD,
                    Op.FP_LOAD_MULTI})
# ARMv7-M ARM §B1.4.2: EPSR holds the IT state in bits [26:25] and [15:10].
_EPSR_IT_BITS = (0x3 << 25) | (0x3F << 10)


def _it_state_clearer(uc: Uc) -> Callable[[], None]:
    """A function that clears the IT bits of EPSR, the workaround for a Unicorn 2.1 bug.

    When a memory-read hook fires for a load inside an IT block, Unicorn restores the CPU state
    of that instruction, IT bits included, into the architectural state, and nothing clears
    them when the IT block ends inside the same translated block. The next block is then looked
    up and run as if still inside the IT block: instructions after it are skipped (seen on the
    bench firmware: ``itte ls; ldrls; ldrls.w; ldrhi; bx lr`` made the caller's next load a
    no-op, and ``m-info`` printed a wrong field). Clearing the bits from the hook is safe: the
    translated code has the IT conditions built in, and a block that ends inside an IT block
    stores the right IT state as it ends (QEMU's ``gen_set_condexec``). The model does it only
    for blocks with reads inside IT blocks (rare in kernels); ``test_cycle_model`` checks it.
    """
    try:
        from unicorn.unicorn_py3.unicorn import uclib

        read_c, write_c, handle = uclib.uc_reg_read, uclib.uc_reg_write, uc._uch
    except (ImportError, AttributeError):  # pragma: no cover - other binding versions

        def clear_slow() -> None:
            uc.reg_write(uc_arm.UC_ARM_REG_EPSR,
                         uc.reg_read(uc_arm.UC_ARM_REG_EPSR) & ~_EPSR_IT_BITS)

        return clear_slow
    value = ctypes.c_uint32()
    ref = ctypes.byref(value)
    epsr = uc_arm.UC_ARM_REG_EPSR

    def clear() -> None:
        read_c(handle, epsr, ref)
        if value.value & _EPSR_IT_BITS:
            value.value &= ~_EPSR_IT_BITS
            write_c(handle, epsr, ref)

    return clear


def _kind(prev_info: _BlockInfo | None) -> int:
    """How the Cortex-M7 predicts the successor of ``prev_info``'s last instruction. Direct
    branches (B, BL) are taken as always predicted: the first encounter's miss in the branch
    target cache is not modelled."""
    last = prev_info.last if prev_info is not None else None
    if last is None:
        return _KIND_STATIC
    if last.branch is Branch.CONDITIONAL:
        return _KIND_CONDITIONAL
    if last.branch in (Branch.INDIRECT, Branch.LOADED):
        return _KIND_INDIRECT
    return _KIND_STATIC


def m4_edge(prev_info: _BlockInfo | None, info: _BlockInfo, address: int) -> int:
    """Cortex-M4 cycles of ``info`` entered from ``prev_info`` (None: the first block)."""
    last = prev_info.last if prev_info is not None else None
    if prev_info is None or last is None:
        return m4.block_cycles(info.insns, None)
    sequential = address == prev_info.fallthrough
    if last.branch is Branch.NONE:
        taken = False
    elif last.branch is Branch.CONDITIONAL:
        taken = not sequential
    else:
        taken = True  # B, BL, BX, POP {pc}, LDR pc, TBB: always write the PC
    cost = m4.block_cycles(info.insns, last if sequential and not taken else None)
    if taken and info.insns:
        cost += m4.taken_penalty(last) + m4.target_penalty(info.insns[0])
    return cost


def m7_edge(prev_info: _BlockInfo | None, info: _BlockInfo, address: int, kind: int,
            count: int) -> Any:
    """Cortex-M7 cost of ``info`` entered from ``prev_info``, packed with ``count`` (see
    ``COUNT_BITS``), in the form ``kind`` asks for (see ``_KIND_STATIC``)."""
    last = prev_info.last if prev_info is not None else None
    if prev_info is None or last is None or prev_info.tail is None:
        return m7.schedule(info.insns, None)[0] << COUNT_BITS | count
    sequential = address == prev_info.fallthrough
    continues = sequential or last.branch is not Branch.NONE
    ok = m7.schedule(info.insns, prev_info.tail if continues else None)[0] << COUNT_BITS | count
    if kind == _KIND_STATIC:
        return ok
    bad = m7.schedule(info.insns, None)[0] + m7.mispredict_penalty(last, prev_info.tail)
    bad = bad << COUNT_BITS | count
    if kind == _KIND_INDIRECT:
        return (ok, bad)
    taken = not sequential
    return tuple(
        (ok if (state >= _WEAK_TAKEN) == taken else bad,
         min(state + 1, _STRONG_TAKEN) if taken else max(state - 1, _STRONG_NOT))
        for state in range(4))
