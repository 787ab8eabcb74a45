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
* **Instruction fetch** (``memory.py`` has the facts). Each edge carries a fetch plan: the
  instruction-cache lines of the block that could make the core wait, each with what it costs
  when it is not resident. On the F4/L4 ART with prefetch on, a line costs what the prefetcher
  fails to cover of its read units (each unit waits for the wait states + 1 less the cycles
  of the unit before it, RM0390 §3.4.2 / RM0432 §3.3.4), and the first unit of a taken branch's
  target costs the wait states unless it is the current or the prefetched unit; lines that
  cost nothing are delivered in time and never looked up. A looked-up line that is resident
  costs nothing; one that is not is charged and copied into the cache. On the Cortex-M7 every
  line a block spans goes through the L1 cache at the wait states per miss. A plan that found
  its lines resident is not looked up again until some line is refilled (a refill marks every
  such plan to look again), so the block hook tests one flag.
* **Data from flash.** A memory-read hook restricted to the flash address range runs the data
  cache (ART data cache / Cortex-M7 D-cache, LRU) on every flash read: exact. A refill stalls the
  wait states once per flash read it takes (``FlashPath.dline_reads``: four 64-bit reads for the
  L4+'s 32-byte rows, one for the F4's 128-bit rows and the Cortex-M7's critical word). Only flash
  reads reach Python (SRAM, DTCM and peripheral reads never leave the emulator), and a read of the
  line just used returns after two comparisons. It is the largest cost of the model (about 0.35 µs
  per flash read, measured; ``benchmarks/cycle_model_speed.py``); learning per-block miss rates
  instead was rejected because the Cortex-M7's 4-16 KB D-cache keeps whole layers' weights across
  output pixels, which no short learning window can see.
* **Divides (Cortex-M4).** SDIV/UDIV cost depends on the operands; a code hook on each divide
  instruction reads them. Divides are found when the model attaches (a scan of the firmware
  part of flash) and, for code written later, when their block is first decoded; that first
  execution uses the operands if the block does not compute them before the divide, else the
  worst case (at most 10 cycles of error, once per divide instruction).

**Two implementations of the hot paths, one set of rules.** The closures in ``_install`` are
the reference. ``_fast.c`` (built with the host C compiler on first use, ``_fast.py``) runs the
block and flash-read hooks in C, with Unicorn calling them directly: the same edge tables,
2-bit counters and indirect targets, fetch plans and LRU caches, filled by the same Python slow
paths (a new edge calls back into Python once, which decodes, costs it and installs the result
in C). Divides stay in Python. ``MCUPROF_TWIN_MODEL`` picks one (``auto``: C when it builds);
the counts are identical, which ``tests/integration/test_fast_model.py`` checks. Measured on
the 2-core development machine (``benchmarks/cycle_model_speed.py``, dot products), C runs 60-100
M instructions per CPU second where the Python hooks run 9-13 M; bare Unicorn runs 180-250 M.

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
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unicorn import UC_HOOK_BLOCK, UC_HOOK_MEM_READ, Uc
from unicorn import arm_const as uc_arm

from bench_firmware.backends.virtual.timing import _fast, m4, m7
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
    lines: tuple[int, ...]  # instruction-cache lines the block's bytes span, in address order
    units: tuple[int, ...]  # flash read units (``FlashPath.read_bytes``) the block spans
    unit_cycles: tuple[int, ...]  # Cortex-M4 cycles spent in each of those units
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
_PRED = 1  # Cortex-M7 predictor state of the block's final branch (see _KIND_*)
_INFO = 2  # _BlockInfo
_PLAN = 3  # Cortex-M7: the fetch plan every entry into the block shares (see below)
_IT_READS = 4  # the block reads memory from inside an IT block (see _clear_it_state)
_ID = 5  # the record's number in the C tables (``_fast.c``), or in ``records``
_SELF = -1  # key of a successor dict that leads back to its own record
# Fetch plan (a list): [look, self-evicting, ((line, its LRU set, cycles if missing), ...)].
# look: True while the lines must be looked up (set again for every plan found resident when
# a line is refilled); self-evicting: the plan's own lines overflow a set, so it looks them up
# every time. Edges that wait for nothing share a plan that never looks (no lines).
_PLAN_LOOK = 0
# Edge tuple, unpacked whole by the block hook: (value, successor's _SUCC dict, successor
# size, fetch plan, successor's _IT_READS), and on the Cortex-M7 also (kind, source record).
# ``kind`` is how the source block's last instruction picks its successor, and decides what
# ``value`` is:
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

    def __init__(self, board: Board, memory: MemoryConfig | None = None,
                 implementation: str | None = None) -> None:
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
        # "c": the hot paths run in _fast.c; "python": these closures (the reference). Which
        # one ``attach`` uses: the argument, else MCUPROF_TWIN_MODEL, else C when it builds.
        self._requested = _fast.requested(implementation)
        self.implementation = "python" if self._requested == "python" else "c"
        self._data_misses: Callable[[], int] = lambda: self.dcache.misses
        self._keep: list[object] = []  # the C state's miss callback and finalizer

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
        return self._data_misses()

    # --- lifecycle ---------------------------------------------------------------------------
    def attach(self, uc: Uc) -> None:
        """Install the hooks on ``uc`` (memory mapped; before ``emu_start``)."""
        if self._uc is not None:
            raise BoardError("this cycle model is already attached; create one per emulator")
        self._uc = uc
        self._hooks = Hooks(uc)
        lib = None
        if self._requested != "python":
            if self._requested == "c" or (_fast.available() and self._hooks.raw):
                lib = _fast.library()  # raises when it cannot be built ("c" only)
                if not self._hooks.raw:
                    raise BoardError("the fast cycle model needs unicorn 2.1's binding "
                                     "internals (uclib, Uc._uch); set MCUPROF_TWIN_MODEL=python")
        self.implementation = "c" if lib is not None else "python"
        self._install(uc, self._hooks, lib)
        # Blocks translated before the hooks existed would run without them.
        uc.ctl_flush_tb()  # type: ignore[attr-defined]  # unicorn 2 API, absent from the stubs

    def detach(self) -> None:
        """Remove the hooks; the counters keep their values."""
        if self._hooks is not None:
            self._hooks.remove_all()
        self._hooks = None

    # --- the run-time part -------------------------------------------------------------------
    def _install(self, uc: Uc, hooks: Hooks, lib: Any) -> None:  # noqa: C901 - shared state
        """Build the callbacks: closures over local variables (reading and adding to a closure
        cell is the cheapest state a Python callback can keep). The hot paths, run for every
        block and every flash read, use literal record indices (layout above ``_SUCC``).

        With ``lib`` (``_fast.c``) the block and flash-read hooks are C functions replaying
        what the slow paths here install in its tables; see ``_fast_hooks``."""
        board, flash, m7_core = self.board, self.flash, self._m7
        decoder = Decoder()
        icache, dcache = self.icache, self.dcache
        iways = icache.ways
        ishift, dshift, ushift = (flash.icache.line_shift, flash.dcache.line_shift,
                                  flash.read_shift)
        units_per_line = ishift - ushift  # log2 of read units per instruction-cache line
        wait_states = flash.wait_states
        # F4/L4 ART with prefetch: sequential units stream through the prefetcher.
        streaming = flash.prefetch and self.memory.prefetch
        # A data-line refill stalls the wait states once per flash read it takes; with the
        # data cache off each read fetches one unit (RM0432 §3.3.4 "current buffer").
        drefill = wait_states * (flash.dline_reads if self.memory.dcache else 1)
        flash_lo = board.flash_base
        flash_hi = board.flash_base + board.flash_bytes  # exclusive
        reg_read = uc.reg_read
        fail = hooks.fail

        blocks: dict[int, list[Any]] = {}
        timed_divides: dict[int, Insn] = {}  # address -> divide with a code hook
        total = 0  # cycles << COUNT_BITS | instructions
        iepoch = 0  # instruction-cache refills so far
        fast = lib is not None
        fast_state = self._create_fast(lib, uc, drefill) if fast else 0
        records: list[list[Any]] = []  # by _ID (Python only)
        no_plan: list[Any] = [False, False, (), -1]  # for edges that wait for nothing
        resident: list[list[Any]] = []  # plans that found their lines resident since the last
        # refill (their _PLAN_LOOK is False)
        start: list[Any] = [{}, 0, None, None, False,  # "block" before the first
                            lib.fast_new_record(fast_state, 0) if fast else 0]
        records.append(start)
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
            units = tuple(range(lo >> ushift, ((hi - 1) >> ushift) + 1)) if lo < hi else ()
            unit_cycles = [0] * len(units)
            before: Insn | None = None
            for insn in insns:
                index = (insn.address >> ushift) - units[0] if units else -1
                if 0 <= index < len(units):
                    unit_cycles[index] += m4.instruction_cycles(insn, before)
                before = insn
            info = _BlockInfo(address, size, insns, lines, units, tuple(unit_cycles),
                              m7.schedule(insns, None)[1] if m7_core else None)
            last = info.last
            pred = _NO_TARGET
            if last is not None and last.branch is Branch.CONDITIONAL:
                backward = last.target is not None and last.target <= last.address
                pred = _WEAK_TAKEN if backward else _WEAK_NOT
            it_reads = any(insn.conditional and insn.op in _READS for insn in insns)
            plan = make_plan([(line, wait_states) for line in lines]) if m7_core else None
            record: list[Any] = [{}, pred, info, plan, it_reads,
                                 lib.fast_new_record(fast_state, pred) if fast else len(records)]
            if fast and record[_ID] < 0:
                raise MemoryError("the fast cycle model's record table")
            records.append(record)
            record[_SUCC][_SELF] = record
            blocks[address] = record
            if not m7_core:
                total += untimed_divides(info) << COUNT_BITS
            return record

        def prefetch_wait(previous_unit_cycles: int) -> int:
            """RM0390 §3.4.2: the prefetcher reads the next unit while the current one runs, so
            a sequential unit waits only for what the previous unit's cycles leave over."""
            return max(0, wait_states + 1 - previous_unit_cycles)

        def make_plan(costs: list[tuple[int, int]]) -> list[Any] | None:
            """A fetch plan from (line, cycles if missing) pairs; None when nothing can wait."""
            entries = tuple((line, icache.set_of(line), cost) for line, cost in costs if cost)
            if not entries:
                return None
            per_set = Counter(id(lines_of_set) for _, lines_of_set, _ in entries)
            evicting = any(n > iways for n in per_set.values())
            number = -1
            if fast:
                n = len(entries)
                number = lib.fast_new_plan(fast_state, evicting, n,
                                           (ctypes.c_uint64 * n)(*(e[0] for e in entries)),
                                           (ctypes.c_uint64 * n)(*(e[2] for e in entries)))
                if number < 0:
                    raise MemoryError("the fast cycle model's plan table")
            return [True, evicting, entries, number]

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

        def edge_plan(prev_info: _BlockInfo | None, info: _BlockInfo,
                      address: int) -> list[Any] | None:
            """The F4/L4 ART fetch plan for entering ``info`` from ``prev_info``."""
            units = info.units
            if not units:
                return None  # code outside flash (SRAM) waits for nothing
            previous = prev_info.units[-1] if prev_info is not None and prev_info.units else -2
            sequential = prev_info is not None and address == prev_info.fallthrough
            first = units[0]
            carry = 0  # cycles already spent in the first unit by the block before
            if first == previous:  # the current buffer (also a loop within it, RM0432 §3.3.4)
                entry = 0
                carry = prev_info.unit_cycles[-1] if sequential and prev_info else 0
            elif first == previous + 1 and streaming:  # the prefetched unit
                entry = prefetch_wait(prev_info.unit_cycles[-1]) if sequential and prev_info \
                    else 0
            else:  # a miss: "at least equal to the number of wait states"
                entry = wait_states
            costs: dict[int, int] = {}
            for index, unit in enumerate(units):
                if index == 0:
                    cost = entry
                elif streaming:
                    cost = prefetch_wait(info.unit_cycles[index - 1] + (carry if index == 1 else 0))
                else:
                    cost = wait_states
                line = unit >> units_per_line
                costs[line] = costs.get(line, 0) + cost
            return make_plan(list(costs.items()))

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
            kind = _KIND_STATIC
            if m7_core:
                kind = _kind(prev_info)
                value = m7_edge(prev_info, info, address, kind, count)
                plan = record[_PLAN]
            else:
                value = m4_edge(prev_info, info, address) << COUNT_BITS | count
                plan = edge_plan(prev_info, info, address)
            if plan is None:
                plan = no_plan
            edge: tuple[Any, ...] = (value, record[_SUCC], size, plan, record[_IT_READS])
            if m7_core:
                edge += (kind, source)
            source_succ[address] = edge
            return edge

        def fetch(plan: list[Any]) -> int:
            """Instruction-cache lookups of a plan whose lines may have been evicted: each line
            made most recent, or charged and refilled (``LruCache.touch``, inlined)."""
            nonlocal iepoch
            penalty = 0
            refills = iepoch
            for line, lines, cost in plan[2]:
                if line in lines:
                    lines.move_to_end(line)
                else:
                    penalty += cost
                    if iways:  # 0: the cache is off
                        if len(lines) >= iways:
                            lines.popitem(last=False)
                        lines[line] = None
                    iepoch += 1
            if iepoch != refills:  # a refill may have evicted lines of plans found resident
                for other in resident:
                    other[0] = True  # _PLAN_LOOK
                resident.clear()
            if not plan[1]:  # self-evicting plans look again
                plan[0] = False  # _PLAN_LOOK
                resident.append(plan)
            return penalty << COUNT_BITS

        def data_miss(address: int, size: int) -> int:
            """A flash read that missed, or crossed into another line."""
            penalty = 0
            for line in range(address >> dshift, ((address + size - 1) >> dshift) + 1):
                if not dcache.touch(line):
                    penalty += drefill
                    dcache.misses += 1
            return penalty << COUNT_BITS

        # ---- hot paths: every block, every flash read ----
        def on_block_m4(_handle: Any, address: int, size: int) -> None:
            nonlocal total, succ, it_reads
            try:
                try:
                    value, following, bounds, plan, reads = succ[address]
                except KeyError:
                    value, following, bounds, plan, reads = new_edge(succ, address, size)
                if bounds != size:  # re-translated with other bounds
                    value, following, bounds, plan, reads = new_edge(succ, address, size)
                total += value
                if plan[0]:  # _PLAN_LOOK
                    total += fetch(plan)
                succ = following
                it_reads = reads
            except BaseException as exc:  # noqa: BLE001 - re-raised by emu_start
                fail(exc)

        def on_block_m7(_handle: Any, address: int, size: int) -> None:
            nonlocal total, succ, it_reads
            try:
                try:
                    value, following, bounds, plan, reads, kind, source = succ[address]
                except KeyError:
                    value, following, bounds, plan, reads, kind, source = new_edge(
                        succ, address, size)
                if bounds != size:  # re-translated with other bounds
                    value, following, bounds, plan, reads, kind, source = new_edge(
                        succ, address, size)
                if kind == 0:  # _KIND_STATIC
                    total += value
                elif kind == 1:  # _KIND_CONDITIONAL: per counter state (cost, next state)
                    cost, source[1] = value[source[1]]  # _PRED
                    total += cost
                elif source[1] == address:  # _KIND_INDIRECT, predicted: the target repeats
                    total += value[0]
                else:
                    total += value[1]
                    source[1] = address
                if plan[0]:  # _PLAN_LOOK
                    total += fetch(plan)
                succ = following
                it_reads = reads
            except BaseException as exc:  # noqa: BLE001 - re-raised by emu_start
                fail(exc)

        dsets = dcache.sets
        dmask = len(dsets) - 1
        dlines = dsets[0]
        dtouch = dlines.move_to_end
        dpop = dlines.popitem
        dways = dcache.ways
        dline_mask = flash.dcache.line_bytes - 1
        dline_bytes = flash.dcache.line_bytes
        drefill_packed = drefill << COUNT_BITS
        # The bytes [dlo, dhi) of the most recently used data line (already the most recent of
        # its set): a read inside them returns after two comparisons. Empty until a line is used.
        dlo = dhi = 0

        def on_flash_read_one_set(_handle: Any, _access: int, address: int, size: int) -> None:
            """Fully associative data cache (the ART's), on."""
            nonlocal total, dlo, dhi
            try:
                if it_reads:
                    clear_it_state()
                if dlo <= address and address + size <= dhi:
                    return
                if (address & dline_mask) + size <= dline_bytes:  # within one line
                    line = address >> dshift
                    if line in dlines:
                        dtouch(line)  # LRU recency
                    else:  # a refill (LruCache.touch, inlined)
                        if len(dlines) >= dways:
                            dpop(last=False)
                        dlines[line] = None
                        total += drefill_packed
                        dcache.misses += 1
                    dlo = line << dshift
                    dhi = dlo + dline_bytes
                    return
                total += data_miss(address, size)
                dlo = (address + size - 1) >> dshift << dshift
                dhi = dlo + dline_bytes
            except BaseException as exc:  # noqa: BLE001
                fail(exc)

        def on_flash_read_sets(_handle: Any, _access: int, address: int, size: int) -> None:
            """Set-associative data cache (the Cortex-M7's), on."""
            nonlocal total, dlo, dhi
            try:
                if it_reads:
                    clear_it_state()
                if dlo <= address and address + size <= dhi:
                    return
                if (address & dline_mask) + size <= dline_bytes:  # within one line
                    line = address >> dshift
                    lines = dsets[line & dmask]
                    if line in lines:
                        lines.move_to_end(line)  # LRU recency
                    else:  # a refill (LruCache.touch, inlined)
                        if len(lines) >= dways:
                            lines.popitem(last=False)
                        lines[line] = None
                        total += drefill_packed
                        dcache.misses += 1
                    dlo = line << dshift
                    dhi = dlo + dline_bytes
                    return
                total += data_miss(address, size)
                dlo = (address + size - 1) >> dshift << dshift
                dhi = dlo + dline_bytes
            except BaseException as exc:  # noqa: BLE001
                fail(exc)

        def on_flash_read_uncached(_handle: Any, _access: int, address: int, size: int) -> None:
            """Data cache off: every read stalls."""
            nonlocal total
            try:
                if it_reads:
                    clear_it_state()
                total += data_miss(address, size)
            except BaseException as exc:  # noqa: BLE001
                fail(exc)

        def on_divide(_handle: Any, address: int, _size: int) -> None:
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

        def on_miss(source: int, address: int, size: int) -> int:
            """C's block hook found no edge (or one of another size): cost it here, install
            it there. 0 when installed; -1 after an exception (``fail`` stops the run)."""
            try:
                edge = new_edge(records[source][_SUCC], address, size)
                value, following, _bounds, plan, reads = edge[:5]
                kind = edge[5] if m7_core else _KIND_STATIC
                cost = (ctypes.c_uint64 * 4)()
                nxt = (ctypes.c_uint8 * 4)()
                if kind == _KIND_STATIC:
                    count = value & COUNT_MASK
                    cost[0] = value >> COUNT_BITS
                elif kind == _KIND_CONDITIONAL:
                    count = value[0][0] & COUNT_MASK
                    for index, (packed, next_state) in enumerate(value):
                        cost[index] = packed >> COUNT_BITS
                        nxt[index] = next_state
                else:  # _KIND_INDIRECT: (predicted, mispredicted)
                    count = value[0] & COUNT_MASK
                    cost[0], cost[1] = value[0] >> COUNT_BITS, value[1] >> COUNT_BITS
                if lib.fast_set_edge(fast_state, source, address, size,
                                     following[_SELF][_ID], plan[3], reads, kind, count, cost,
                                     nxt) != 0:
                    raise MemoryError("the fast cycle model's edge table")
                return 0
            except BaseException as exc:  # noqa: BLE001 - re-raised by emu_start
                fail(exc)
                return -1

        if fast:
            self._fast_hooks(lib, fast_state, hooks, on_miss, lambda: total, flash_lo, flash_hi)
        else:
            on_block = on_block_m7 if m7_core else on_block_m4
            if not dways:
                on_flash_read = on_flash_read_uncached
            elif len(dsets) == 1:
                on_flash_read = on_flash_read_one_set
            else:
                on_flash_read = on_flash_read_sets
            hooks.block(on_block)
            hooks.mem_read(on_flash_read, flash_lo, flash_hi - 1)
        if not m7_core:
            for address in self._scan_divides(uc):
                if address not in timed_divides:
                    insns = decoder.decode(bytes(uc.mem_read(address, 4)), address)
                    if insns and insns[0].op is Op.DIV:
                        timed_divides[address] = insns[0]
                        hooks.code(on_divide, address)

    def _create_fast(self, lib: Any, uc: Uc, drefill: int) -> int:
        """The C state of this model (freed with it), with its caches' geometry."""
        from unicorn.unicorn_py3.unicorn import uclib

        icache, dcache = self.icache, self.dcache
        state = lib.fast_create(None, _fast.pointer(uclib, "uc_reg_read"),
                                _fast.pointer(uclib, "uc_reg_write"), uc_arm.UC_ARM_REG_EPSR,
                                _EPSR_IT_BITS, len(icache.sets), icache.ways, len(dcache.sets),
                                dcache.ways, self.flash.dcache.line_shift, drefill)
        if not state:
            raise BoardError("the fast cycle model could not allocate its state")
        self._keep.append(weakref.finalize(self, lib.fast_destroy, state))
        return int(state)

    def _fast_hooks(self, lib: Any, state: int, hooks: Hooks,
                    on_miss: Callable[[int, int, int], int], python_total: Callable[[], int],
                    flash_lo: int, flash_hi: int) -> None:
        """Register ``_fast.c``'s hooks and read the counters from there. Divides stay in
        Python (``python_total``: their cycles, packed as ``total``)."""
        miss = _fast.miss_callback(on_miss)
        self._keep.append(miss)
        lib.fast_set_miss(state, miss)
        # The state's first four fields (cycles, instructions, instruction and data refills),
        # read in place: the firmware's DWT and UART reads ask for the cycles often.
        values = (ctypes.c_uint64 * 4).from_address(state)

        def counters() -> tuple[int, int, int]:
            extra = python_total()
            return (values[0] + (extra >> COUNT_BITS), values[1] + (extra & COUNT_MASK),
                    values[2])

        def data_misses() -> int:
            return int(values[3])

        self._counters = counters
        self._data_misses = data_misses
        hooks.c_hook(UC_HOOK_BLOCK, _fast.pointer(lib, "fast_block"), state, 1, 0)
        hooks.c_hook(UC_HOOK_MEM_READ, _fast.pointer(lib, "fast_read"), state, flash_lo,
                     flash_hi - 1)

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
