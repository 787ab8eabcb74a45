"""``virtual:<board>``: the board backend that runs the board's firmware image on a
:class:`~bench_firmware.backends.virtual.machine.VirtualMachine` and drives it over its
emulated UART with the same serial client as a physical board.

    with VirtualBoard("virtual:nucleo-f446re") as board:
        board.load_plan(plan.data)              # written into the emulated model region
        run = board.run(x.tobytes(), runs=5, warmup=1)

When the emulated firmware dies (a CPU fault, an unmodeled register, the budget), the
machine closes its UART, so the client's pending or next read fails at once, and the
backend raises the machine's own :class:`BoardError` rather than a serial error.

``python -m bench_firmware.backends.virtual.backend --board nucleo-f446re [--socket]`` boots a board
and prints the pty path or socket URL to open with any serial terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from bench_firmware.backends.base import RunResult
from bench_firmware.backends.virtual.machine import (
    DEFAULT_BUDGET_S,
    DEFAULT_WALL_BUDGET_S,
    LOGGER,
    CycleModel,
    VirtualMachine,
)
from bench_firmware.backends.virtual.serial_port import Transport
from bench_firmware.boards import Board, get_board
from bench_firmware.errors import (
    BoardError,
    DoesNotFitError,
    FirmwareError,
    McuprofError,
    ProtocolError,
)
from bench_firmware.protocol import BOOT_TIMEOUT_S, DEFAULT_TIMEOUT_S, Answer, DutClient

T = TypeVar("T")

BUDGET_STOPS = frozenset({"budget", "wall"})  # machine stop reasons that are a run's budget
# The slowest emulation a twin is expected to run at (board cycles per host second): a loaded
# host emulating the DSP kernels of kws_tiny measured ~14 M cycles/s on one core (2026-12,
# nucleo-f446re); a third of that leaves room for a busy host.
MIN_EMULATED_HZ = 4_000_000

INFER_MARGIN_S = 30.0  # seconds the client waits for `infer` beyond the machine's own guard
DEATH_GRACE_S = 0.2  # seconds a failed client call waits to see whether the machine died
BOOT_BANNER_END = "init-done"  # the boot banner's last line before m-ready (protocol.py)


class RunBudgetError(BoardError):
    """A run took longer than the virtual board's budget: the job asked for too much work
    (fewer runs), the board itself is fine."""

    def __init__(self, message: str, budget_s: float) -> None:
        super().__init__(message)
        self.budget_s = budget_s


def twin_budget_s(board: Board, *, budget_s: float = DEFAULT_BUDGET_S,
                  wall_budget_s: float = DEFAULT_WALL_BUDGET_S,
                  min_emulated_hz: float = MIN_EMULATED_HZ) -> float:
    """The most board time one command (``infer``) may take on a virtual ``board`` before
    the machine stops it: its board-time budget, or its host-time budget at the slowest
    expected emulation speed, whichever is less."""
    return min(budget_s, wall_budget_s * min_emulated_hz / board.clock_hz)


class VirtualBoard:
    """A virtual board as a :class:`~bench_firmware.backends.base.BoardBackend`.

    ``device``: ``virtual:<board>`` (or just the board name). ``transport``: the UART on a
    pty ("pty") or on ``socket://127.0.0.1:PORT`` ("socket"). ``firmware``: an ELF image;
    by default the board's firmware is built (and cached) with ``build_firmware``.
    ``budget_s`` / ``wall_budget_s``: board time / host time the firmware may run without
    answering before the run is stopped. ``cycle_model``: a factory replacing the project's
    cycle model (tests). ``check_alignment``: fault on unaligned LDRD / LDM / ... as silicon
    does (costs some emulation speed; see ``machine.py``).
    """

    def __init__(self, device: str, *, transport: Transport = "pty",
                 firmware: Path | None = None, budget_s: float = DEFAULT_BUDGET_S,
                 wall_budget_s: float = DEFAULT_WALL_BUDGET_S,
                 cycle_model: Callable[[Board], CycleModel] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 boot_timeout_s: float = BOOT_TIMEOUT_S,
                 check_alignment: bool = True) -> None:
        self.device = device
        self.board: Board = get_board(device)
        if self.board.core not in ("cortex-m4", "cortex-m7"):
            raise BoardError(f"{device}: there is no virtual {self.board.name}; use one of the "
                             f"Nucleo boards")
        self.transport: Transport = transport
        self.firmware = Path(firmware) if firmware is not None else None
        self.budget_s = budget_s
        self.wall_budget_s = wall_budget_s
        self.timeout_s = timeout_s
        self.boot_timeout_s = boot_timeout_s
        self.check_alignment = check_alignment
        self._cycle_model = cycle_model
        self.machine: VirtualMachine | None = None
        self.client: DutClient | None = None
        self.boot_lines: list[str] = []
        self.log = LOGGER.getChild(self.board.name)

    # -- lifecycle -----------------------------------------------------------------------

    def open(self) -> None:
        """Builds the firmware if needed, boots the machine, reads its boot banner."""
        if self.machine is not None:
            raise BoardError(f"{self.device} is already open; close() it first")
        elf = self.firmware if self.firmware is not None else self._build()
        model = self._cycle_model(self.board) if self._cycle_model is not None else None
        machine = VirtualMachine(self.board, elf, transport=self.transport,
                                 budget_s=self.budget_s, wall_budget_s=self.wall_budget_s,
                                 cycle_model=model, check_alignment=self.check_alignment)
        self.machine = machine
        try:
            # The client opens first: pyserial flushes pending input when it opens a port.
            self.client = DutClient.open(machine.url, timeout_s=self.timeout_s,
                                         diagnose=machine.diagnose)
            machine.start()
            self._guard(lambda: self._boot(machine))
        except BaseException:
            self.close()
            raise
        self.log.info("booted %s (%s) on %s", self.board.name, elf.name, machine.url)

    def _build(self) -> Path:
        from bench_firmware.build import build_firmware

        return build_firmware(self.board).elf

    def _boot(self, machine: VirtualMachine) -> None:
        client = self._client()
        client.port.write(b"\n")  # the machine holds its output until the host speaks
        banner = client.wait_ready(self.boot_timeout_s)
        self.boot_lines = list(client.boot_lines)
        if not any(m.name == BOOT_BANNER_END for m in banner):
            raise ProtocolError(
                f"{machine.url}: the boot banner of the virtual {self.board.name} has no "
                f"m-{BOOT_BANNER_END}; it printed "
                f"{' | '.join(repr(line)[1:-1] for line in self.boot_lines[:8])}. Is "
                f"{machine.firmware_elf} the mcuprof firmware?")

    def close(self) -> None:
        """Stops the machine and closes the client; safe to call twice."""
        client, self.client = self.client, None
        machine, self.machine = self.machine, None
        if client is not None:
            client.close()
        if machine is not None:
            machine.stop()

    def __enter__(self) -> VirtualBoard:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- use -----------------------------------------------------------------------------

    def _client(self) -> DutClient:
        if self.client is None or self.machine is None:
            raise BoardError(f"{self.device} is not open; call open() (or use it as a context "
                             f"manager) first")
        return self.client

    def _guard(self, call: Callable[[], T]) -> T:
        """Runs a client call; when the machine has died, raises the machine's error."""
        machine = self.machine
        if machine is None:
            raise BoardError(f"{self.device} is not open; call open() first")
        machine.raise_if_failed()
        try:
            return call()
        except McuprofError as e:
            # A machine that died closed the UART after recording why: report that. An
            # answer from the firmware (an e- line, a malformed answer) means it is alive.
            if machine.error is None and not isinstance(e, FirmwareError | ProtocolError):
                machine.wait(DEATH_GRACE_S)
            if machine.error is not None:
                raise self._budget_error(machine) or machine.error from e
            raise

    def _budget_error(self, machine: VirtualMachine) -> RunBudgetError | None:
        """The machine's error as a :class:`RunBudgetError` when a budget stopped it."""
        reason = machine.stop_reason
        if not reason or reason[0] not in BUDGET_STOPS:
            return None
        return RunBudgetError(
            f"{machine.error} (the job asked for more work than the virtual board runs in "
            f"one command: ask for fewer runs)", self.budget_s)

    def command(self, command: str, *, timeout_s: float | None = None,
                check: bool = True) -> Answer:
        """Sends one protocol command (without its ``%``) and returns the answer; for
        diagnostics and commands the backend has no method for."""
        client = self._client()
        return self._guard(lambda: client.command(command, timeout_s=timeout_s, check=check))

    def load_plan(self, plan: bytes) -> dict[str, int | str]:
        """Programs ``plan`` into the emulated model region and has the firmware validate it
        (``mp-reload``); :class:`FirmwareError` with the firmware's status if it refuses."""
        client = self._client()
        board = self.board
        if len(plan) > board.model_region_bytes:
            raise DoesNotFitError(
                f"the plan is {len(plan):,} bytes but {board.name}'s model region holds "
                f"{board.model_region_bytes:,} bytes; choose a smaller model or a board with "
                f"more flash", "plan", len(plan), board.model_region_bytes)
        machine = self.machine
        assert machine is not None
        machine.raise_if_failed()
        machine.program_flash(board.model_region_base, plan)
        return self._guard(lambda: client.reload_plan(len(plan)))

    def run(self, input_bytes: bytes, *, runs: int, warmup: int,
            kernels: str = "dsp") -> RunResult:
        """Uploads the input, runs ``warmup`` + ``runs`` inferences, reads the cycles."""
        client = self._client()

        def session() -> RunResult:
            client.set_kernels(kernels)
            client.load_input(input_bytes)
            result = client.infer(runs, warmup, budget_s=self.wall_budget_s + INFER_MARGIN_S)
            cycles = client.cycles()
            layers = client.layer_cycles()
            return RunResult(output=result.output_bytes, cycles_per_run=cycles,
                             layer_cycles=layers, lap_us=result.lap_us,
                             transcript=client.take_transcript(), warnings=list(result.warnings))

        return self._guard(session)


# ---------------------------------------------------------------------------------------------
# python -m bench_firmware.backends.virtual.backend


def main(argv: list[str] | None = None) -> int:
    """Boots a virtual board and serves its UART until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m bench_firmware.backends.virtual.backend",
        description="Boot a virtual board and serve its UART on a pty or a TCP socket.")
    parser.add_argument("--board", required=True, help="e.g. nucleo-f446re")
    parser.add_argument("--socket", action="store_true",
                        help="serve on socket://127.0.0.1:PORT instead of a pty")
    parser.add_argument("--firmware", type=Path, help="an ELF image (default: build the board's)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                        help="seconds of board time the firmware may run without input")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(name)s: %(message)s")
    try:
        board = get_board(args.board)
        elf = args.firmware
        if elf is None:
            from bench_firmware.build import build_firmware

            elf = build_firmware(board).elf
        machine = VirtualMachine(board, elf, transport="socket" if args.socket else "pty",
                                 budget_s=args.budget)
    except McuprofError as e:
        print(f"error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    done = threading.Event()
    with _signals(done):
        machine.start()
        print(f"{board.name} is running; its UART is at {machine.url} (115200 8N1; send a "  # noqa: T201
              f"newline first, then e.g. `name%`). Ctrl-C stops it.", flush=True)
        while not done.is_set() and not machine.wait(0.2):
            pass
        machine.stop()
    if machine.error is not None:
        print(f"error: {machine.error}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


@contextlib.contextmanager
def _signals(done: threading.Event) -> Iterator[None]:
    previous = {sig: signal.signal(sig, lambda *_: done.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
