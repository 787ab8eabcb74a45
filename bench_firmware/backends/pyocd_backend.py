"""Physical boards through pyOCD: ``pyocd:<board>:<probe unique id>``.

Lifecycle (``BoardBackend``; misuse raises :class:`BoardError`)::

    with PyocdBoard("pyocd:nucleo-f446re:066DFF535155878281123456") as board:
        # open(): power on (energy monitor) → find the probe by unique id → pyOCD session →
        #         program the firmware image if the flash holds another → serial port of that
        #         probe → reset → boot banner
        board.load_plan(plan)   # write the model region (only the sectors the plan covers),
                                # reset, the firmware validates the plan
        board.run(x, runs=10, warmup=1)
    # close(): serial port, pyOCD session, energy monitor

The firmware image (``bench_firmware.build.build_firmware``) is programmed only when the flash
does not already hold it byte for byte (read back over SWD), so a board is flashed once and
every later model is a plan write. The serial port is the ST-LINK virtual COM port whose USB
serial number is the probe's unique id (ST-LINK/V2-1 and V3 report the same serial on both
interfaces); ``serial_port=`` overrides it. With ``energy_port=`` an X-NUCLEO-LPM01A measures
energy per inference (``energy_source`` "measured").

Serial timeouts grow with the work, as a virtual twin's do
(:mod:`bench_firmware.backends.timing`): the boot after a plan write waits longer for a larger
plan (the firmware validates the model region before ``m-ready``), and ``infer`` waits at
least twice the expected time of all its runs at the board's clock, so a large model or many
runs is not taken for a board that stopped answering.

pyOCD needs a CMSIS pack for every target but the F767 (``pyocd pack install stm32f446re``;
pyOCD's built-in targets are listed in ``pyocd/target/builtin/__init__.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from serial.tools import list_ports

from bench_firmware.backends.base import RunResult
from bench_firmware.backends.lpm01a import Lpm01a
from bench_firmware.backends.registry import parse_device
from bench_firmware.backends.timing import PlanWork
from bench_firmware.boards import Board, get_board
from bench_firmware.errors import BoardError, DoesNotFitError, McuprofError
from bench_firmware.protocol import BOOT_TIMEOUT_S, DEFAULT_TIMEOUT_S, DutClient
from bench_firmware.protocol.client import DEFAULT_INFER_BUDGET_S

logger = logging.getLogger("mcuprof.pyocd")

# ST-LINK USB ids with a virtual COM port (pyOCD's probe/stlink/usb.py table, minus the
# ST-LINK/V2 0x3748, which has none).
STLINK_VID = 0x0483
STLINK_VCP_PIDS = frozenset({0x374A, 0x374B, 0x374E, 0x374F, 0x3752, 0x3753, 0x3754, 0x3755,
                             0x3757})
SWD_FREQUENCY_HZ = 4_000_000  # what every ST-LINK supports
PROBE_CHECKS = (
    "the board's USB cable is plugged into the ST-LINK connector (CN1), not the user USB",
    "the probe's unique id is right (`pyocd list` shows it)",
    "this user may open the probe (the udev rules from pyOCD's udev/ folder on Linux)",
    "no other program (STM32CubeIDE, another pyocd or openocd) holds the probe",
)


class PortInfo(Protocol):
    """What the port matching reads of a ``serial.tools.list_ports_common.ListPortInfo``."""

    device: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    description: str


def sectors_for(board: Board, size: int) -> list[tuple[int, int]]:
    """The model-region sectors (address, bytes) that a plan of ``size`` bytes covers, from
    the region's start; raises :class:`DoesNotFitError` when the region is too small."""
    if size <= 0:
        raise McuprofError(f"a plan of {size} bytes is empty")
    if size > board.model_region_bytes:
        raise DoesNotFitError(
            f"the plan is {size:,} bytes; {board.name}'s model region holds "
            f"{board.model_region_bytes:,}", what="plan", needed=size,
            available=board.model_region_bytes)
    end = board.model_region_base + size
    needed = [(addr, n) for addr, n in board.model_region_sectors
              if addr < end and addr + n > board.model_region_base]
    covered = sum(n for _, n in needed)
    if not needed or needed[0][0] != board.model_region_base or needed[0][0] + covered < end:
        raise McuprofError(f"{board.name}'s sector table does not cover its model region "
                           f"{board.model_region_base:#010x}+{size:#x}; fix its "
                           f"model_region_sectors in bench_firmware/boards.py")
    return needed


def is_stlink_vcp(port: PortInfo) -> bool:
    return port.vid == STLINK_VID and port.pid in STLINK_VCP_PIDS


def match_serial_port(probe_uid: str, ports: Iterable[PortInfo]) -> str:
    """The device path of the ST-LINK virtual COM port whose USB serial number is
    ``probe_uid`` (case-insensitive); :class:`BoardError` listing what was seen otherwise."""
    ports = list(ports)
    stlinks = [p for p in ports if is_stlink_vcp(p)]
    wanted = probe_uid.lower()
    matches = [p for p in stlinks if (p.serial_number or "").lower() == wanted]
    if len(matches) == 1:
        return matches[0].device
    if len(matches) > 1:
        # An ST-LINK/V3 with two VCPs: the first interface is the target's USART.
        return sorted(p.device for p in matches)[0]
    seen = ", ".join(f"{p.device} ({p.vid or 0:04x}:{p.pid or 0:04x} serial "
                     f"{p.serial_number or '?'})" for p in stlinks) or "none"
    raise BoardError(
        f"no ST-LINK virtual COM port has the serial number {probe_uid}; ST-LINK ports seen: "
        f"{seen} (of {len(ports)} serial ports). Check that the probe's firmware has its VCP "
        f"(update it with STM32CubeProgrammer), or name the port: --serial-port "
        f"pyocd:<board>:{probe_uid}=/dev/ttyACM0")


def describe_probes(probes: Sequence[Any]) -> str:
    return ", ".join(f"{p.unique_id} ({p.description})" for p in probes) or "none"


def find_probe(unique_id: str | None) -> Any:
    """The one pyOCD debug probe whose unique id contains ``unique_id`` (any probe when None
    and exactly one is attached); :class:`BoardError` with what pyOCD sees otherwise."""
    from pyocd.core.exceptions import Error as PyocdError
    from pyocd.core.helpers import ConnectHelper

    try:
        everything = ConnectHelper.get_all_connected_probes(blocking=False)
    except PyocdError as e:
        raise BoardError(f"pyOCD could not list debug probes: {e}") from e
    if unique_id is None:
        matches = list(everything)
    else:
        matches = [p for p in everything if unique_id.lower() in p.unique_id.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        wanted = f" with unique id {unique_id}" if unique_id else ""
        checks = "; ".join(PROBE_CHECKS)
        raise BoardError(f"no debug probe{wanted} is attached; pyOCD sees: "
                         f"{describe_probes(everything)}. Check that {checks}.")
    raise BoardError(f"{len(matches)} debug probes match {unique_id or 'any id'}: "
                     f"{describe_probes(matches)}; give the whole unique id "
                     f"(pyocd:<board>:<unique id>)")


class PyocdBoard:
    """A Nucleo board behind its ST-LINK. See the module docstring.

    ``timeout_s``: the serial client's fixed timeout for one command's answer;
    ``boot_timeout_s``: from a reset to the boot banner's ``m-ready``; ``infer_budget_s``: how
    long ``infer`` may take at least. The plan's size and work add to them.
    """

    def __init__(self, device: str, *, serial_port: str | None = None,
                 energy_port: str | None = None, firmware_dir: Path | None = None,
                 boot_timeout_s: float = BOOT_TIMEOUT_S,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 infer_budget_s: float = DEFAULT_INFER_BUDGET_S) -> None:
        backend, _board, ident = parse_device(device)
        if backend != "pyocd":
            raise McuprofError(f"{device} is not a pyocd:<board>:<probe id> device")
        self.device = device
        self.board: Board = get_board(device)
        if self.board.pyocd_target is None:
            raise McuprofError(f"{self.board.name} has no pyOCD target")
        self.probe_uid = ident
        self.serial_port = serial_port
        self.energy_port = energy_port
        self.firmware_dir = firmware_dir
        self.boot_timeout_s = boot_timeout_s
        self.timeout_s = timeout_s
        self.infer_budget_s = infer_budget_s
        self.firmware_id: str | None = None
        self.firmware_bytes: int | None = None
        self._stack: contextlib.ExitStack | None = None
        self._session: Any = None
        self._client: DutClient | None = None
        self._monitor: Lpm01a | None = None
        self._plan_loaded = False
        self._work: PlanWork | None = None  # of the plan loaded

    # -- lifecycle -----------------------------------------------------------------------

    def open(self) -> None:
        if self._stack is not None:
            raise BoardError(f"{self.device} is already open")
        stack = contextlib.ExitStack()
        try:
            if self.energy_port:
                # The monitor powers the board: it comes first.
                self._monitor = stack.enter_context(Lpm01a(self.energy_port))
            probe = find_probe(self.probe_uid)
            self.probe_uid = probe.unique_id
            self._session = self._open_session(probe, stack)
            self._ensure_firmware()
            port = self.serial_port or match_serial_port(probe.unique_id, list_ports.comports())
            # The port opens before the reset: pyserial flushes its input on open, which would
            # eat the boot banner.
            self._client = stack.enter_context(DutClient.open(port, timeout_s=self.timeout_s))
            # Whatever plan the region holds is validated at boot: wait as for the largest.
            self._reset_and_wait(PlanWork(self.board.model_region_bytes, 0, 0, 0))
        except BaseException:
            stack.close()
            self._session = self._client = self._monitor = None
            raise
        self._stack = stack

    def close(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                stack.close()
            except Exception as e:  # closing must not mask the error that led here
                logger.warning("%s: closing failed: %s", self.device, e)
        self._session = self._client = self._monitor = None
        self._plan_loaded = False
        self._work = None

    def __enter__(self) -> PyocdBoard:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pyOCD ---------------------------------------------------------------------------

    def _open_session(self, probe: Any, stack: contextlib.ExitStack) -> Any:
        """A pyOCD session on ``probe``, opened as a context manager on ``stack`` (a session
        that fails to open closes itself)."""
        from pyocd.core.exceptions import Error as PyocdError
        from pyocd.core.exceptions import TargetSupportError
        from pyocd.core.session import Session

        try:
            return stack.enter_context(Session(
                probe, target_override=self.board.pyocd_target, frequency=SWD_FREQUENCY_HZ,
                hide_programming_progress=True, smart_flash=True))
        except TargetSupportError as e:
            raise BoardError(
                f"pyOCD does not know the target {self.board.pyocd_target} of {self.device}: "
                f"{e}. Install its pack: `pyocd pack install {self.board.mcu.lower()}`") from e
        except PyocdError as e:
            raise BoardError(f"pyOCD could not connect to {self.board.mcu} through probe "
                             f"{probe.unique_id}: {e}. Is the board powered? A board stuck "
                             f"in a bad state recovers with connect_mode=under-reset "
                             f"(`pyocd erase --chip -O connect_mode=under-reset`)") from e

    def _require(self) -> tuple[Any, DutClient]:
        if self._session is None or self._client is None:
            raise BoardError(f"{self.device} is not open; call open() (or use `with`) first")
        return self._session, self._client

    def _ensure_firmware(self) -> None:
        """Programs the firmware image unless the flash already holds exactly it."""
        from pyocd.core.exceptions import Error as PyocdError

        from bench_firmware.build import build_firmware

        image = build_firmware(self.board, self.firmware_dir)
        data = image.bin.read_bytes()
        self.firmware_id, self.firmware_bytes = image.firmware_id, image.flash_bytes
        target = self._session.target
        try:
            current = bytes(target.read_memory_block8(self.board.flash_base, len(data)))
        except PyocdError as e:
            raise BoardError(f"{self.device}: reading the flash failed: {e}") from e
        if current == data:
            logger.info("%s: firmware %s already flashed", self.device, image.firmware_id)
            return
        logger.info("%s: programming firmware %s (%d bytes)", self.device, image.firmware_id,
                    len(data))
        self._program(self.board.flash_base, data, "the firmware image")

    def _program(self, address: int, data: bytes, what: str) -> None:
        from pyocd.core.exceptions import Error as PyocdError
        from pyocd.flash.loader import MemoryLoader

        try:
            loader = MemoryLoader(self._session, chip_erase="sector", smart_flash=True,
                                  keep_unwritten=False)
            loader.add_data(address, data)
            loader.commit()
        except PyocdError as e:
            raise BoardError(f"{self.device}: writing {what} at {address:#010x} failed: {e}. "
                             f"Flash protection (RDP/WRP) set? `pyocd erase --chip` clears "
                             f"it") from e

    def _reset_and_wait(self, work: PlanWork) -> None:
        """Resets the target and waits for its boot banner: ``boot_timeout_s`` plus the time
        the firmware's check of the plan in ``work`` may take."""
        from pyocd.core.exceptions import Error as PyocdError

        session, client = self._require()
        try:
            session.target.reset()
        except PyocdError as e:
            raise BoardError(f"{self.device}: reset failed: {e}") from e
        client.wait_ready(self.boot_timeout_s + work.check_s)

    # -- BoardBackend --------------------------------------------------------------------

    def load_plan(self, plan: bytes) -> dict[str, int | str]:
        session, client = self._require()
        sectors = sectors_for(self.board, len(plan))
        logger.info("%s: writing a %d-byte plan into %d sector(s) from %#010x", self.device,
                    len(plan), len(sectors), sectors[0][0])
        self._plan_loaded = False
        work = PlanWork.of(plan)
        self._program(self.board.model_region_base, plan, "the plan")
        self._reset_and_wait(work)
        status = client.plan_status()
        self._plan_loaded, self._work = True, work
        return status

    def run(self, input_bytes: bytes, *, runs: int, warmup: int,
            kernels: str = "dsp") -> RunResult:
        _, client = self._require()
        if not self._plan_loaded or self._work is None:
            raise BoardError(f"{self.device}: load_plan() must come before run()")
        run_s = self._work.run_s(self.board.clock_hz)
        client.set_kernels(kernels)
        client.load_input(input_bytes)
        energy_mj: float | None = None
        warnings: list[str] = []
        if self._monitor is not None:
            self._monitor.start()
        try:
            result = client.infer(runs, warmup, budget_s=self.infer_budget_s, run_s=run_s)
        finally:
            acquisition = self._monitor.stop() if self._monitor is not None else None
        if acquisition is not None:
            energy_mj, warnings = acquisition.energy_per_inference_mj(runs)
        cycles = client.cycles()
        layers = client.layer_cycles()
        return RunResult(output=result.output_bytes, cycles_per_run=cycles, layer_cycles=layers,
                         lap_us=result.lap_us, energy_mj=energy_mj,
                         transcript=client.take_transcript(),
                         warnings=[*result.warnings, *warnings])

