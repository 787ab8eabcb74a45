"""A virtual Nucleo board: the unchanged firmware image on Unicorn, with the peripherals it
touches, a cycle model, and its UART on a pty or a TCP socket.

How a Cortex-M boots on Unicorn 2.1.4 (each point checked with that version):

- ``Uc(UC_ARCH_ARM, UC_MODE_THUMB, cpu=UC_CPU_ARM_CORTEX_M4)`` (or ``_M7``) gives the M-profile
  core that was asked for: Thumb-2, the DSP extension (``SMLAD``, ``SXTB16``), MRS/MSR of
  PRIMASK / CONTROL / MSP / PSP and CPSID all execute; the M4 rejects double-precision VFP
  as the real FPv4-SP does, the M7 runs it. ``UC_MODE_MCLASS`` must *not* be added: it
  silently makes a Cortex-M33 (``ctl_get_cpu_model()`` reads 11) whatever ``cpu`` says.
- The core does not fetch its vector table: memory is mapped after the CPU is reset, so SP
  and PC read 0. We boot as the core would: SP from word 0 of the table at the flash base
  (the boot alias of address 0 with BOOT0 low), PC from word 1, and start at that address
  with its Thumb bit set.
- Memory is the board catalogue's: all of flash (erased bytes read 0xFF; the image's
  PT_LOAD segments are loaded at their load addresses, as a probe programs them; the model
  region is part of it), and the contiguous SRAM block. The F7's ITCM RAM (0x00000000) and
  ITCM flash alias (0x00200000), the boot alias at 0 and system memory are not mapped: the
  bench firmware runs from the AXIM alias and touches none of them, and an access there is
  reported like any other unmapped one.
- There are no system peripherals (SCS, DWT, SysTick are unmapped) and no exceptions: a
  fault, SVC or BKPT stops emulation instead of entering a handler. The HardFault path of
  the firmware (``mp_fault_handler``: ``e-[hard fault]``) therefore cannot be emulated; a
  CPU fault ends the run with a :class:`BoardError` naming the PC and the instruction.
- The FPU is usable whatever CPACR holds (the firmware enables it first anyway).
- The emulator does not check alignment: LDRD / STRD / LDM / STM / VLDR / VLDM / LDREX at an
  address that is not word-aligned, which raise an UNALIGNED UsageFault on silicon, would
  run as if aligned. With ``check_alignment`` (the default) a code hook on each such
  instruction of the image (found with capstone between the ELF's ``$t`` / ``$d`` mapping
  symbols; SP- and PC-based ones are always aligned and skipped) checks its base register,
  for about 10-20 % of emulation speed. Unaligned accesses to device memory are caught by
  the peripheral models.
- Memory-access hooks (``UC_HOOK_MEM_READ`` / ``_WRITE``) break Thumb IT blocks: after a
  hooked load inside an IT block, the IT state stays in xPSR, and the code after the block
  runs as if still inside it (instructions are skipped; unicorn-engine/unicorn#2309 is the
  same bug). The machine installs none; MMIO callbacks, code and block hooks and the
  invalid-access hooks it uses do not have this effect. A hook that must watch loads can
  clear xPSR's IT bits (``& ~0x0600FC00``) when it finds them set: the translated block keeps
  its own IT state, and Unicorn writes the state back if the block ends inside an IT block.
- Inside an MMIO callback the PC register is stale (it holds the start of the translated
  block). When a callback stops emulation, Unicorn rewinds to the accessing instruction, so
  after ``emu_start`` returns, PC is exact: faults are reported from there. The rewound
  access would run again if emulation resumed, so a stopped machine is never resumed.

Reads of the UART's status register while no host byte is pending are where the firmware
spends its idle time; instead of emulating that busy-wait, the read blocks on the host
side (``select`` with a timeout, re-checking the stop flag) until a byte arrives. Modeled
cycles do not advance while it blocks. A status read blocks at once when it comes from
the firmware's blocking read, ``board_uart_getc`` (``mp_board.h``; found in the ELF's
symbols), so every received byte costs the same emulated instructions however the host's
bytes are timed: runs are deterministic. Elsewhere (an image without that symbol), two
empty status reads from the same code within a few instructions count as a busy-wait.

A budget stops firmware that never answers: when the modeled cycles since the last byte
the firmware received exceed ``budget_s`` of board time, or the host time spent emulating
since then exceeds ``wall_budget_s``, a watchdog thread stops the run with a BoardError.
"""

from __future__ import annotations

import ctypes
import logging
import struct
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs
from unicorn import (
    UC_ARCH_ARM,
    UC_ERR_FETCH_PROT,
    UC_ERR_FETCH_UNMAPPED,
    UC_ERR_INSN_INVALID,
    UC_ERR_READ_PROT,
    UC_ERR_READ_UNMAPPED,
    UC_ERR_WRITE_PROT,
    UC_ERR_WRITE_UNMAPPED,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_HOOK_MEM_PROT,
    UC_HOOK_MEM_UNMAPPED,
    UC_MODE_THUMB,
    UC_PROT_ALL,
    UC_PROT_EXEC,
    UC_PROT_READ,
    Uc,
    UcError,
)
from unicorn.arm_const import (
    UC_ARM_REG_LR,
    UC_ARM_REG_PC,
    UC_ARM_REG_SP,
    UC_CPU_ARM_CORTEX_M4,
    UC_CPU_ARM_CORTEX_M7,
)

from bench_firmware.backends.virtual.cpu import CycleModel, default_cycle_model, register_reader
from bench_firmware.backends.virtual.firmware_image import (
    load_elf,
    symbol_range,
    word_aligned_sites,
)
from bench_firmware.backends.virtual.peripherals import Peripherals, PinEdge, build_peripherals
from bench_firmware.backends.virtual.serial_port import SerialEndpoint, Transport, open_endpoint
from bench_firmware.backends.virtual.uart_bridge import UartBridge
from bench_firmware.boards import Board
from bench_firmware.errors import BoardError

LOGGER = logging.getLogger("mcuprof.virtual")

CPU_MODELS = {"cortex-m4": UC_CPU_ARM_CORTEX_M4, "cortex-m7": UC_CPU_ARM_CORTEX_M7}
ERASED_FLASH = 0xFF  # what erased NOR flash reads
RESET_LR = 0xFFFF_FFFF  # LR at reset (ARMv7-M ARM §B1.5.5)
EMU_UNTIL = 0xFFFF_FFFF  # an odd address: a Thumb PC never equals it, so emulation never "ends"

DEFAULT_BUDGET_S = 60.0  # seconds of board time the firmware may run without a received byte
DEFAULT_WALL_BUDGET_S = 600.0  # seconds of host time the same, whatever the cycle model says
WATCHDOG_PERIOD_S = 0.05  # seconds between budget checks
STOP_JOIN_S = 5.0  # seconds stop() waits for the emulator thread
FINAL_FLUSH_S = 0.2  # seconds the last output of a stopped run gets to reach the host
RX_POLL_FUNCTION = "board_uart_getc"  # mp_board.h: the firmware's blocking UART read
BOARD_NAME_SYMBOL = "board_name"  # mp_board.h: the board the image was built for

# Unicorn's M-profile exception numbers (QEMU target/arm/cpu.h EXCP_*) as UC_HOOK_INTR sees them.
EXCEPTION_NAMES = {
    1: "an undefined instruction (UDEF)", 2: "a supervisor call (SVC)",
    3: "a prefetch abort", 4: "a data abort", 7: "a breakpoint (BKPT)",
    8: "an exception return", 17: "a coprocessor access with the FPU disabled (NOCP)",
    18: "an invalid state (INVSTATE)", 22: "an unaligned access (UNALIGNED)",
}  # fmt: skip
SVC_EXCEPTION = 2

# An alignment-checked site is checked this many times, then trusted: the bases of LDRD / LDM
# in compiled code are stack, struct or buffer pointers whose alignment does not change from
# one execution to the next, and a Python callback on every execution of a hot kernel loop
# costs 10-20 % of emulation speed.
ALIGNMENT_CHECKS_PER_SITE = 64


class VirtualMachine(UartBridge):
    """One virtual board running one firmware image.

    Lifecycle: construct (loads the image, maps memory, wires peripherals; the UART endpoint
    exists from here, see :attr:`url`) → :meth:`start` (emulator and watchdog threads) →
    talk to :attr:`url` → :meth:`stop` (idempotent). Or :meth:`run` in the calling thread.
    When the run ends by itself (fault, budget), :attr:`error` holds why and the UART
    endpoint is closed, so a client's next read fails at once.
    """

    def __init__(self, board: Board, firmware_elf: Path, *, transport: Transport = "pty",
                 budget_s: float = DEFAULT_BUDGET_S,
                 wall_budget_s: float = DEFAULT_WALL_BUDGET_S,
                 cycle_model: CycleModel | None = None, hse_present: bool = True,
                 check_alignment: bool = True) -> None:
        if board.core not in CPU_MODELS:
            raise BoardError(f"{board.name} has no virtual board (core {board.core}); virtual "
                             f"boards exist for Cortex-M4 and Cortex-M7 boards")
        self.board = board
        self.firmware_elf = Path(firmware_elf)
        self.budget_s = budget_s
        self.budget_cycles = int(budget_s * board.clock_hz)
        self.wall_budget_s = wall_budget_s
        self.hse_present = hse_present
        self.check_alignment = check_alignment
        self.log = LOGGER.getChild(board.name)
        self.error: BoardError | None = None

        self._model = cycle_model if cycle_model is not None else default_cycle_model(board)
        self._stop_event = threading.Event()
        self._done = threading.Event()
        self._stop_lock = threading.Lock()
        self._stop_reason: tuple[str, ...] | None = None
        self._fault: tuple[str, str] | None = None
        self._mem_fault: tuple[int, int, int] | None = None  # (access, address, size)
        self._exception: tuple[int, int] | None = None  # (intno, pc)
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None

        # UART state, touched by the emulator thread only (the watchdog reads the numbers).
        self._rx: deque[int] = deque()
        self._tx = bytearray()
        self._rx_log = bytearray()
        self._tx_log = bytearray()
        self._spin_site: tuple[int, int] | None = None
        self._last_rx_cycles = 0
        self._last_rx_wall = time.monotonic()
        self._idle_s = 0.0  # host seconds spent blocked on the host since the last byte
        self._block_start: float | None = None

        self._cs = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
        self._endpoint: SerialEndpoint = open_endpoint(transport, self._stop_event)
        try:
            self._build()
        except BaseException:
            self._endpoint.close()
            raise

    # -- construction --------------------------------------------------------------------

    def _build(self) -> None:
        board = self.board
        segments = load_elf(self.firmware_elf, board)
        # Flash is host memory we own, so the host can program the model region while the
        # firmware runs (as a probe does between commands) without going through Unicorn.
        self._flash = (ctypes.c_ubyte * board.flash_bytes)()
        ctypes.memset(self._flash, ERASED_FLASH, board.flash_bytes)
        for address, data in segments:
            ctypes.memmove(ctypes.addressof(self._flash) + address - board.flash_base, data,
                           len(data))
        try:
            # Not UC_MODE_MCLASS: it makes a Cortex-M33 whatever cpu= says (module docstring).
            # mypy reads the binding's Python 2 branch, whose Uc has no cpu argument.
            uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB, cpu=CPU_MODELS[board.core])  # type: ignore[call-arg]
            uc.mem_map_ptr(board.flash_base, board.flash_bytes, UC_PROT_READ | UC_PROT_EXEC,
                           ctypes.addressof(self._flash))
            uc.mem_map(board.sram_base, board.sram_bytes, UC_PROT_ALL)
        except UcError as e:
            raise BoardError(f"cannot set up the emulator for {board.name}: {e}") from e
        self._uc = uc
        self._reg = register_reader(uc)
        self.peripherals: Peripherals = build_peripherals(
            board, link=self, faults=self, cycles=self._cycles, hse_present=self.hse_present)
        self.peripherals.bus.map(uc)
        uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_bad_access)
        uc.hook_add(UC_HOOK_MEM_PROT, self._on_bad_access)
        uc.hook_add(UC_HOOK_INTR, self._on_exception)
        if self.check_alignment:
            for address, reg, text in word_aligned_sites(self.firmware_elf):
                site: list[Any] = [reg, text, ALIGNMENT_CHECKS_PER_SITE, None]
                site[3] = uc.hook_add(UC_HOOK_CODE, self._check_aligned, site, begin=address,
                                      end=address)
        self._model.attach(uc)

        initial_sp, reset = struct.unpack_from("<II", bytes(self._flash[:8]))
        sram_end = board.sram_base + board.sram_bytes
        flash_end = board.flash_base + board.flash_bytes
        if not (board.sram_base < initial_sp <= sram_end and initial_sp % 4 == 0):
            raise BoardError(f"the vector table of {self.firmware_elf} starts with SP "
                             f"{initial_sp:#010x}, not in {board.name}'s SRAM "
                             f"({board.sram_base:#010x}..{sram_end:#010x}); is the image for "
                             f"this board?")
        if not (reset & 1 and board.flash_base <= reset < flash_end):
            raise BoardError(f"the reset vector of {self.firmware_elf} is {reset:#010x}, not a "
                             f"Thumb address in {board.name}'s flash; is the image for this board?")
        uc.reg_write(UC_ARM_REG_SP, initial_sp)
        uc.reg_write(UC_ARM_REG_LR, RESET_LR)
        self._entry = reset
        self._rx_poll = symbol_range(self.firmware_elf, RX_POLL_FUNCTION)
        self._check_identity()

    def _check_identity(self) -> None:
        """An image built for another board (its ``board_name``) would misbehave subtly on
        this one's peripherals; refuse it up front."""
        where = symbol_range(self.firmware_elf, BOARD_NAME_SYMBOL, "STT_OBJECT")
        board = self.board
        if where is None or not board.flash_base <= where[0] < where[1] <= (
                board.flash_base + board.flash_bytes):
            return
        raw = bytes(self._flash[where[0] - board.flash_base : where[1] - board.flash_base])
        built_for = raw.split(b"\0", 1)[0].decode("ascii", errors="replace")
        if built_for != board.name:
            raise BoardError(f"{self.firmware_elf} was built for {built_for}, not {board.name}; "
                             f"build it with `mcuprof firmware build --board {board.name}`")

    def _cycles(self) -> int:
        return self._model.cycles

    # -- public state ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The UART's host end: a pty path or ``socket://127.0.0.1:PORT``."""
        return self._endpoint.url

    @property
    def cycles(self) -> int:
        """Modeled core cycles since reset."""
        return self._model.cycles

    @property
    def instructions(self) -> int:
        """Emulated instructions since reset."""
        return self._model.instructions

    @property
    def stop_reason(self) -> tuple[str, ...] | None:
        """Why the run was stopped (its first element names the cause, e.g. a budget), or
        None while nothing stopped it."""
        return self._stop_reason

    @property
    def pin_edges(self) -> list[PinEdge]:
        """(cycles, level) of every change of the D7 timestamp pin since it became an output."""
        return list(self.peripherals.pin_edges)

    @property
    def uart_tx_log(self) -> bytes:
        """What the firmware transmitted (the last :data:`UART_LOG_MAX` bytes)."""
        return bytes(self._tx_log)

    @property
    def uart_rx_log(self) -> bytes:
        """What the firmware received (the last :data:`UART_LOG_MAX` bytes)."""
        return bytes(self._rx_log)

    @property
    def core_clock_hz(self) -> int:
        """The core clock the firmware configured in the emulated RCC."""
        return self.peripherals.core_clock_hz()

    @property
    def running(self) -> bool:
        """Started and not ended yet."""
        return self._thread is not None and not self._done.is_set()

    def diagnose(self) -> str | None:
        """One line on the machine's state, for errors about its serial port."""
        if self.error is not None:
            return str(self.error)
        if self.running:
            since = self._model.cycles - self._last_rx_cycles
            return (f"the virtual {self.board.name} is running: {since:,} cycles since the last "
                    f"byte it received, {self._model.instructions:,} instructions since reset")
        return None

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Runs the firmware in a background thread."""
        if self._thread is not None or self._done.is_set():
            raise BoardError("a virtual machine starts once; make a new one to run again")
        self._thread = threading.Thread(target=self.run, name=f"virtual-{self.board.name}",
                                        daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Runs the firmware in this thread until it is stopped or fails (see :attr:`error`)."""
        if self._watchdog is not None:
            raise BoardError("this virtual machine is already running")
        if self._thread is None:
            self._thread = threading.current_thread()
        self._watchdog = threading.Thread(target=self._watch,
                                          name=f"virtual-{self.board.name}-watchdog",
                                          daemon=True)
        self._last_rx_wall = time.monotonic()
        self._watchdog.start()
        error: BoardError | None = None
        try:
            if not self._stop_event.is_set():
                self.log.debug("reset: SP %#010x, PC %#010x", self._uc.reg_read(UC_ARM_REG_SP),
                               self._entry)
                self._uc.emu_start(self._entry, EMU_UNTIL)
            error = self._outcome(None)
        except UcError as e:
            error = self._outcome(e)
        except Exception as e:  # a bug in a callback; the binding re-raises it here
            self.log.exception("virtual board callback failed")
            error = BoardError(f"the virtual {self.board.name} failed inside its emulator: {e!r}")
        finally:
            # The error first: a client whose read fails when the endpoint closes finds it.
            self.error = error
            if error is not None:
                self.log.info("stopped: %s", error)
            self._finish()
            self._done.set()

    def _finish(self) -> None:
        """Last output out (briefly: the host may not be reading), then the endpoint closed."""
        try:
            if self._tx:
                data = bytes(self._tx)
                self._tx.clear()
                self._tx_log += data
                self._endpoint.write(data, time.monotonic() + FINAL_FLUSH_S)
        except OSError as e:
            self.log.debug("could not send the last output: %s", e)
        finally:
            self._stop_event.set()
            self._endpoint.close()

    def stop(self, timeout_s: float = STOP_JOIN_S) -> None:
        """Stops the firmware and closes the UART endpoint; safe to call twice."""
        self._request_stop(("stop",))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                self.log.error("the emulator thread did not stop within %.1f s", timeout_s)
        if thread is None:
            self._endpoint.close()
            self._done.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout_s)

    def __enter__(self) -> VirtualMachine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Waits for the run to end; True when it has."""
        return self._done.wait(timeout_s)

    def _request_stop(self, reason: tuple[str, ...]) -> None:
        with self._stop_lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            self._stop_event.set()
            try:
                self._uc.emu_stop()
            except UcError:
                pass

    def _watch(self) -> None:
        """Stops a run that exceeds its budgets; keeps poking a requested stop until the
        emulator thread has seen it (it may not have been inside emu_start yet)."""
        while not self._done.wait(WATCHDOG_PERIOD_S):
            if self._stop_event.is_set():
                self._request_stop(("stop",))
                continue
            ran = self._model.cycles - self._last_rx_cycles
            if ran > self.budget_cycles:
                self._request_stop(("budget", str(ran)))
                continue
            busy = self._busy_s()
            if busy > self.wall_budget_s:
                self._request_stop(("wall", str(busy), str(ran)))

    def _busy_s(self) -> float:
        now = time.monotonic()
        blocked = self._idle_s + (now - self._block_start if self._block_start else 0.0)
        return now - self._last_rx_wall - blocked

    # -- outcome ---------------------------------------------------------------------------

    def describe_pc(self, pc: int) -> str:
        """``pc 0x08000412: ldr r3, [r2]``: the address and its instruction."""
        for size in (4, 2):
            try:
                code = bytes(self._uc.mem_read(pc, size))
                break
            except UcError:
                continue
        else:
            return f"pc {pc:#010x} (not in memory)"
        insn = next(self._cs.disasm(code, pc, 1), None)
        if insn is None:
            return f"pc {pc:#010x} (bytes {code.hex()}: not a valid instruction)"
        return f"pc {pc:#010x}: {insn.mnemonic} {insn.op_str}".rstrip()

    def _memory_map(self) -> str:
        b = self.board
        return (f"flash {b.flash_base:#010x}+{b.flash_bytes // 1024} KB, SRAM "
                f"{b.sram_base:#010x}+{b.sram_bytes // 1024} KB, peripherals "
                f"{self.peripherals.bus.modeled()}")

    def _outcome(self, uc_error: UcError | None) -> BoardError | None:
        pc = self._uc.reg_read(UC_ARM_REG_PC)
        if self._fault is not None:
            summary, detail = self._fault
            return BoardError(f"{summary} at {self.describe_pc(pc)}; {detail}")
        if uc_error is not None:
            return self._cpu_fault(uc_error, pc)
        if self._exception is not None:
            intno, at = self._exception
            what = EXCEPTION_NAMES.get(intno, f"exception {intno}")
            where = self.describe_pc(at - 2 if intno == SVC_EXCEPTION else at)
            return BoardError(f"the firmware raised {what} at {where}; the virtual board takes "
                              f"no exceptions (no handlers run), so it stopped there")
        reason = self._stop_reason or ("none",)
        clock = self.board.clock_hz
        if reason[0] == "budget":
            ran = int(reason[1])
            return BoardError(
                f"the firmware ran {ran:,} cycles ({ran / clock:.3g} s at "
                f"{self.board.clock_mhz:g} MHz) since the last command without answering; "
                f"stopped at {self.describe_pc(pc)}. It is stuck in a loop, or a run takes "
                f"longer than the budget (budget_s={self.budget_s:g} s of board time): raise it")
        if reason[0] == "wall":
            busy, ran = float(reason[1]), int(reason[2])
            return BoardError(
                f"the firmware ran {busy:.1f} s of host time ({ran:,} cycles) since the last "
                f"command without answering; stopped at {self.describe_pc(pc)}. It is stuck "
                f"in a loop, or a run takes longer than wall_budget_s={self.wall_budget_s:g} s: "
                f"raise it")
        if reason[0] == "stop":
            return None
        return BoardError(f"emulation of {self.board.name} ended unexpectedly at "
                          f"{self.describe_pc(pc)}")

    def _cpu_fault(self, e: UcError, pc: int) -> BoardError:
        code = e.errno
        access = self._mem_fault
        address, size = (access[1], access[2]) if access else (0, 0)
        hard_fault = ("on the board this is a fault escalated to HardFault, whose handler the "
                      "virtual board cannot run; it stopped here")
        if code in (UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED):
            verb = "read" if code == UC_ERR_READ_UNMAPPED else "wrote"
            return BoardError(f"firmware {verb} unmapped address {address:#010x} ({size} bytes) "
                              f"at {self.describe_pc(pc)}; nothing is there on the virtual "
                              f"{self.board.name} ({self._memory_map()}): {hard_fault}")
        if code in (UC_ERR_FETCH_UNMAPPED, UC_ERR_FETCH_PROT):
            lr = self._uc.reg_read(UC_ARM_REG_LR)
            return BoardError(f"firmware jumped to {address or pc:#010x}, where there is no code "
                              f"(lr {lr:#010x}, {self._memory_map()}): {hard_fault}")
        if code in (UC_ERR_WRITE_PROT, UC_ERR_READ_PROT):
            return BoardError(f"firmware wrote flash at {address:#010x} ({size} bytes) at "
                              f"{self.describe_pc(pc)}; flash is read-only to the firmware "
                              f"(the host programs the model region): {hard_fault}")
        if code == UC_ERR_INSN_INVALID:
            return BoardError(f"firmware executed an undefined or unsupported instruction at "
                              f"{self.describe_pc(pc)} ({self.board.core}): {hard_fault}")
        return BoardError(f"the emulator stopped with {e} at {self.describe_pc(pc)}")

    # -- Unicorn hooks and FaultSink (the UartLink is UartBridge's) --------------------------

    def _on_bad_access(self, _uc: Uc, access: int, address: int, size: int, _value: int,
                       _data: object) -> bool:
        self._mem_fault = (access, address, size)
        return False

    def _on_exception(self, _uc: Uc, intno: int, _data: object) -> None:
        if self._exception is None:
            self._exception = (intno, self._uc.reg_read(UC_ARM_REG_PC))
        self._request_stop(("exception",))

    def _check_aligned(self, uc: Uc, address: int, size: int, site: list[Any]) -> None:
        reg, text = site[0], site[1]
        base = self._reg(reg)
        site[2] -= 1
        if site[2] == 0 and not base & 3:
            uc.hook_del(site[3])  # this site has shown where its base points; stop paying
            # A hook deleted from its own callback stays compiled into the translated code
            # (unicorn 2.1), a call per execution that cost the DSP kernels, whose loops hold
            # such sites, a quarter of their speed: translate it again without the hook.
            uc.ctl_remove_cache(address, address + size)
        if base & 3:
            name = text.split(" ", 1)[0]
            self.fault(f"firmware used the unaligned base address {base:#010x}",
                       f"on the board {name.upper()} at an address that is not word-aligned "
                       f"raises an UNALIGNED UsageFault (escalated to HardFault)")

    def fault(self, summary: str, detail: str) -> None:
        """A peripheral saw the firmware do something a real board would not survive."""
        if self._fault is None:
            self._fault = (summary, detail)
        self._request_stop(("fault",))

    # -- the host side of the flash --------------------------------------------------------

    def program_flash(self, address: int, data: bytes) -> None:
        """Erases the model-region sectors ``data`` covers and writes it at ``address``, as a
        probe programs flash. Only the model region may be programmed."""
        board = self.board
        region_end = board.model_region_base + board.model_region_bytes
        if address < board.model_region_base or address + len(data) > region_end:
            raise BoardError(
                f"cannot program {len(data)} bytes at {address:#010x}: the virtual "
                f"{board.name} programs only its model region ({board.model_region_base:#010x}"
                f"..{region_end:#010x})")
        base = ctypes.addressof(self._flash) - board.flash_base
        for sector, size in board.model_region_sectors:
            if sector < address + len(data) and address < sector + size:
                ctypes.memset(base + sector, ERASED_FLASH, size)
        ctypes.memmove(base + address, data, len(data))

    def read_memory(self, address: int, size: int) -> bytes:
        """Bytes of emulated memory (flash or SRAM), for diagnostics and tests."""
        try:
            return bytes(self._uc.mem_read(address, size))
        except UcError as e:
            raise BoardError(f"cannot read {size} bytes at {address:#010x}: {e}") from e
