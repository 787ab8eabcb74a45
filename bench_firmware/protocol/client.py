"""The host's serial client, :class:`DutClient`: one board (or the host build) over a serial
port, a pty or a TCP socket, with a deadline on every read (the commands and answers are
documented in :mod:`bench_firmware.protocol`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Literal

import serial

from bench_firmware.errors import (
    BoardError,
    FirmwareError,
    McuprofError,
    ProtocolError,
    SerialTimeoutError,
)
from bench_firmware.protocol.messages import (
    BAUDRATE,
    COMMAND_MAX,
    DB_CHUNK_BYTES,
    INFO_NUMBERS,
    PLAN_NUMBERS,
    Answer,
    InferResult,
    Message,
    Output,
    is_raw_output,
    parse_dequantized,
    parse_line,
    parse_output,
)

logger = logging.getLogger("mcuprof.serial")

DEFAULT_TIMEOUT_S = 5.0  # seconds for any one command's answer
BOOT_TIMEOUT_S = 10.0  # seconds from reset to the boot banner's m-ready
DEFAULT_INFER_BUDGET_S = 60.0  # seconds `infer` may take, on top of DEFAULT_TIMEOUT_S
# Commands whose work grows with their data get the fixed timeout above as a floor plus a
# share per unit of work, sized for the slowest target: a virtual board on a loaded host
# (~4 M emulated cycles/s, bench_firmware/backends/virtual/backend.py MIN_EMULATED_HZ).
RELOAD_S_PER_KIB = 0.05  # seconds per KiB of plan that `mp-reload` checks (CRC, layout)
CRC_S_PER_KIB = 0.02  # seconds per KiB of input that `mp-crc` checks
INFER_SLACK = 2.0  # times the expected time of all runs that `infer` may take at most
POLL_INTERVAL_S = 0.05  # seconds one serial read blocks before the deadline is checked
SYNC_QUIET_S = 0.2  # seconds without a line after an m-ready that end a resync
TRANSCRIPT_MAX_LINES = 100_000  # oldest transcript lines are dropped beyond this
# Bytes without a newline after which they count as one (garbage) line. `m-results` is one
# line however long (MLPerf Tiny compatibility): 64 Ki outputs of 11 characters fit.
RX_LINE_MAX = 1 << 20


# --------------------------------------------------------------------------------------------
# The client


class DutClient:
    """Talks to one board (or the host build) over a serial port, a pty or a TCP socket.

    Every read has a deadline: no ``m-ready`` within it raises :class:`SerialTimeoutError`
    naming the command, the port and the last lines received. ``e-[...]`` answers raise
    :class:`FirmwareError` with the firmware's message. Lines that are not protocol lines are
    logged and kept; they fail a command only when its expected answer never came.

    Every line sent and received goes to the ``mcuprof.serial`` logger and to
    :attr:`transcript` (``"> cmd%"`` for sent, ``"< line"`` for received).
    """

    def __init__(self, port: serial.SerialBase, *, name: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 diagnose: Callable[[], str | None] | None = None) -> None:
        self._port = port
        self.port_name = name or str(port.port)
        self.timeout_s = timeout_s
        self._diagnose = diagnose
        self._rx = bytearray()
        self._transcript: deque[str] = deque(maxlen=TRANSCRIPT_MAX_LINES)
        self.boot_lines: list[str] = []
        self.energy_mode = False  # as last set or read with timestamp_mode()

    @classmethod
    def open(cls, url: str, baudrate: int = BAUDRATE, timeout_s: float = DEFAULT_TIMEOUT_S, *,
             diagnose: Callable[[], str | None] | None = None) -> DutClient:
        """Opens ``url``: a device (``/dev/ttyACM0``), a pty path, ``socket://host:port`` or
        ``loop://`` (anything ``serial.serial_for_url`` takes)."""
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=POLL_INTERVAL_S,
                                         write_timeout=timeout_s)
        except (serial.SerialException, ValueError, OSError) as e:
            raise BoardError(f"Could not open serial port {url}: {e}") from e
        return cls(port, name=url, timeout_s=timeout_s, diagnose=diagnose)

    @property
    def port(self) -> serial.SerialBase:
        return self._port

    @property
    def transcript(self) -> list[str]:
        """Every line sent (``"> ..."``) and received (``"< ..."``), oldest first."""
        return list(self._transcript)

    def take_transcript(self) -> list[str]:
        """The transcript so far, which then starts afresh (e.g. one serial log per job)."""
        lines = list(self._transcript)
        self._transcript.clear()
        return lines

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()

    def __enter__(self) -> DutClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- lines ---------------------------------------------------------------------------

    def _context(self) -> str:
        extra = self._diagnose() if self._diagnose else None
        return f"; {extra}" if extra else ""

    def _record(self, text: str) -> None:
        self._transcript.append(text)
        logger.debug("%s %s", self.port_name, text)

    def _read_line(self, deadline: float, doing: str) -> str | None:
        """The next non-empty line, or None at the deadline."""
        while True:
            newline = self._rx.find(b"\n")
            if newline >= 0 or len(self._rx) > RX_LINE_MAX:
                end = newline if newline >= 0 else len(self._rx)
                raw = bytes(self._rx[:end])
                del self._rx[: end + 1]
                text = _printable(raw.rstrip(b"\r"))
                if text.strip():
                    self._record("< " + text)
                    return text
                continue
            if time.monotonic() >= deadline:
                return None
            try:
                chunk = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError) as e:
                raise BoardError(f"serial port {self.port_name} failed while {doing}: {e}"
                                 f"{self._context()}") from e
            self._rx += chunk

    def _send(self, command: str, *, check: bool = True) -> None:
        if check:
            if "%" in command or not command.isascii():
                raise ProtocolError(f"command {command!r} must be ASCII without '%'")
            if len(command) > COMMAND_MAX:
                raise ProtocolError(f"command {command[:40]!r}... is {len(command)} characters; "
                                    f"the firmware takes at most {COMMAND_MAX}")
        self._drain()
        self._record(f"> {command}%")
        try:
            self._port.write((command + "%").encode("ascii", errors="replace"))
        except serial.SerialTimeoutException as e:
            raise SerialTimeoutError(f"{self.port_name} took no input while sending "
                                     f"`{command}%` within {self.timeout_s:.1f} s"
                                     f"{self._context()}") from e
        except (serial.SerialException, OSError) as e:
            raise BoardError(f"serial port {self.port_name} failed while sending `{command}%`: {e}"
                             f"{self._context()}") from e

    def _drain(self) -> None:
        """Keeps (in the transcript) whatever arrived outside any command's answer, so it is
        not taken for the next answer."""
        try:
            waiting = self._port.in_waiting
            if waiting:
                self._rx += self._port.read(waiting)
        except (serial.SerialException, OSError):
            return  # the next read reports it with context
        for line in bytes(self._rx).split(b"\n"):
            text = _printable(line.strip())
            if text:
                self._record("< " + text)
                logger.warning("%s: unexpected line outside an answer: %r", self.port_name, text)
        self._rx.clear()

    def _timeout(self, doing: str, waited_s: float, lines: Sequence[str]) -> SerialTimeoutError:
        recent = list(lines)[-6:] or [t for t in self._transcript if t.startswith("< ")][-6:]
        text = (f"no answer from {self.port_name} while {doing} within {waited_s:.1f} s; "
                f"last lines received: {recent!r}")
        if lines and all(_garbage(t) for t in lines):
            text += " (none is a protocol line: wrong baud rate? it should be 115200)"
        return SerialTimeoutError(text + self._context())

    def _read_answer(self, command: str, timeout_s: float) -> Answer:
        doing = f"waiting for the answer to `{command}%`"
        deadline = time.monotonic() + timeout_s
        messages: list[Message] = []
        garbage: list[str] = []
        received: list[str] = []
        while True:
            line = self._read_line(deadline, doing)
            if line is None:
                raise self._timeout(doing, timeout_s, received)
            received.append(line)
            try:
                msg = parse_line(line)
            except ProtocolError:
                logger.warning("%s: not a protocol line: %r", self.port_name, line)
                garbage.append(line)
                continue
            if msg.kind == "m" and msg.name == "ready" and not msg.payload:
                return Answer(command, self.port_name, messages, garbage)
            messages.append(msg)

    def command(self, command: str, *, timeout_s: float | None = None, check: bool = True,
                raw: bool = False) -> Answer:
        """Sends ``command`` (without its ``%``) and reads its answer up to ``m-ready``.

        ``check``: raise :class:`FirmwareError` when the answer has an ``e-[...]`` line.
        ``raw``: send it even if it breaks the framing rules (for tests of the firmware)."""
        self._send(command, check=not raw)
        answer = self._read_answer(command, timeout_s if timeout_s is not None else self.timeout_s)
        if check and answer.errors:
            raise FirmwareError(f"{self.port_name}: the board refused `{command}%`: "
                                f"{answer.errors[0].payload}")
        return answer

    # -- session -------------------------------------------------------------------------

    def wait_ready(self, timeout_s: float = BOOT_TIMEOUT_S) -> list[Message]:
        """Reads the boot banner up to its ``m-ready`` (after a reset or start)."""
        doing = "waiting for the boot banner (m-init-done, m-ready)"
        deadline = time.monotonic() + timeout_s
        received: list[str] = []
        boot: list[Message] = []
        while True:
            line = self._read_line(deadline, doing)
            if line is None:
                err = self._timeout(doing, timeout_s, received)
                raise SerialTimeoutError(f"{err}; is the board flashed with the mcuprof "
                                         f"firmware and was it reset?")
            received.append(line)
            self.boot_lines.append(line)
            try:
                msg = parse_line(line)
            except ProtocolError:
                continue
            if msg.kind == "m" and msg.name == "ready":
                return boot
            boot.append(msg)

    def sync(self, timeout_s: float | None = None) -> None:
        """Brings the firmware and this client back in step, e.g. when attaching to a board
        that booted earlier or after a timeout: sends an empty command and reads until an
        ``m-ready`` has come and the line has been quiet for :data:`SYNC_QUIET_S`, so late
        answers to earlier commands (or a boot banner) are not taken for later ones."""
        doing = "resynchronising (an empty command)"
        wait_s = timeout_s if timeout_s is not None else self.timeout_s
        self._send("")
        deadline = time.monotonic() + wait_s
        received: list[str] = []
        ready = False
        while True:
            quiet_until = time.monotonic() + SYNC_QUIET_S
            line = self._read_line(min(deadline, quiet_until) if ready else deadline, doing)
            if line is None:
                if ready:
                    return
                raise self._timeout(doing, wait_s, received)
            received.append(line)
            ready = ready or line.strip() == "m-ready"

    def name(self) -> str:
        """``name%``: the board's name."""
        return self.command("name").one("name-dut").payload

    def profile(self) -> dict[str, str | None]:
        """``profile%``: ``{"firmware": "mcuprof-<version>", "model": <id> or None}``."""
        answer = self.command("profile")
        model = answer.one("model").payload
        return {"firmware": answer.one("profile").payload,
                "model": None if model == "none" else model}

    def timestamp(self) -> int:
        """``timestamp%``: microseconds since boot."""
        return self.command("timestamp").one("lap-us").number

    def timestamp_mode(self, mode: Literal["performance", "energy"] | None = None) -> str:
        """``mp-timestamp-mode [mode]%``: selects (or reads) EEMBC's timestamp mode. In
        ``energy`` mode the firmware prints no ``m-lap-us`` lines: each timestamp is the
        timestamp pin's falling edge alone, for an energy monitor; :meth:`infer` then returns
        ``lap_us`` (0, 0) and the cycles come from :meth:`cycles`."""
        if mode not in (None, "performance", "energy"):
            raise McuprofError(f"unknown timestamp mode {mode!r}; use 'performance' or 'energy'")
        command = "mp-timestamp-mode" + (f" {mode}" if mode else "")
        answer = self.command(command)
        names = [m.name for m in answer.messages if m.kind == "m"]
        got = next((n.removeprefix("timestamp-mode-") for n in names
                    if n in ("timestamp-mode-performance", "timestamp-mode-energy")), None)
        if got is None:
            raise answer.missing("m-timestamp-mode-performance or -energy")
        self.energy_mode = got == "energy"
        return got

    def info(self) -> dict[str, int | str]:
        """``mp-info%``: board, code, clock, arena, region, kernels, plan, version, ..."""
        return self.command("mp-info").one("info").fields(INFO_NUMBERS)

    def _plan(self, command: str, timeout_s: float | None = None) -> dict[str, int | str]:
        answer = self.command(command, check=False, timeout_s=timeout_s)
        if answer.errors:
            found = answer.find("plan")
            status = found.fields().get("status", "?") if found else "?"
            raise FirmwareError(
                f"{self.port_name}: the board has no valid plan: {answer.errors[0].payload} "
                f"(status {status}); write a plan compiled for this board into its model "
                f"region, then reload it (mp-reload)")
        return answer.one("plan").fields(PLAN_NUMBERS)

    def plan_status(self) -> dict[str, int | str]:
        """``mp-plan%``: the loaded plan's facts; :class:`FirmwareError` without a valid plan."""
        return self._plan("mp-plan")

    def reload_plan(self, plan_bytes: int = 0) -> dict[str, int | str]:
        """``mp-reload%``: validates the model region again; as :meth:`plan_status`.
        ``plan_bytes``: the size of the plan written there, which the check takes time for
        (:data:`RELOAD_S_PER_KIB` on top of the command timeout)."""
        return self._plan("mp-reload",
                          timeout_s=self.timeout_s + plan_bytes / 1024 * RELOAD_S_PER_KIB)

    def kernels(self) -> str:
        """``mp-kernels%``: the kernel path in use, "ref" or "dsp"."""
        return self.command("mp-kernels").one("kernels").payload

    def set_kernels(self, path: Literal["ref", "dsp"] | str) -> str:
        """``mp-kernels ref|dsp%``: selects the kernel path."""
        if path not in ("ref", "dsp"):
            raise McuprofError(f"unknown kernel path {path!r}; use 'ref' or 'dsp'")
        got = self.command(f"mp-kernels {path}").one("kernels").payload
        if got != path:
            raise FirmwareError(f"{self.port_name}: asked for the {path} kernels, the board "
                                f"uses {got}")
        return got

    def load_input(self, data: bytes) -> None:
        """Uploads the input tensor (``db load N``, ``db <hex>`` lines of 31 bytes) and checks
        it arrived intact against the firmware's CRC (``mp-crc``)."""
        expecting = self.command(f"db load {len(data)}").one("")
        if expecting.payload != f"Expecting {len(data)} bytes":
            raise ProtocolError(f"{self.port_name}: `db load {len(data)}%` was answered "
                                f"{expecting.format()!r}")
        done = False
        for offset in range(0, len(data), DB_CHUNK_BYTES):
            command = "db " + data[offset : offset + DB_CHUNK_BYTES].hex()
            answer = self.command(command, check=False)
            if answer.errors:
                raise ProtocolError(
                    f"{self.port_name}: the input upload was corrupted at bytes {offset}.."
                    f"{offset + DB_CHUNK_BYTES - 1} of {len(data)}: the board said "
                    f"{answer.errors[0].payload!r}; the serial link dropped or altered data")
            done = answer.find("load-done") is not None
            last = offset + DB_CHUNK_BYTES >= len(data)
            if done and not last:
                raise ProtocolError(f"{self.port_name}: the board reported m-load-done after "
                                    f"{offset + DB_CHUNK_BYTES} of {len(data)} bytes; the serial "
                                    f"link altered the upload")
        expected = zlib.crc32(data)
        got_text = self.command("mp-crc", timeout_s=self._crc_timeout(len(data))
                                ).one("input-crc").payload
        try:
            got = int(got_text, 16)
        except ValueError:
            raise ProtocolError(f"{self.port_name}: bad input CRC {got_text!r}") from None
        if got != expected or not done:
            raise ProtocolError(
                f"{self.port_name}: the input upload was corrupted: sent {len(data)} bytes with "
                f"CRC-32 {expected:08x}, the board computed {got:08x}"
                f"{'' if done else ' and never reported m-load-done'}; the serial link "
                f"dropped or altered bytes (check the cable and the baud rate)")

    def _crc_timeout(self, size: int) -> float:
        return self.timeout_s + size / 1024 * CRC_S_PER_KIB

    def input_crc(self, size: int = 0) -> int:
        """``mp-crc%``: CRC-32 of the bytes received since ``db load`` (``size`` of them)."""
        return int(self.command("mp-crc", timeout_s=self._crc_timeout(size)
                                ).one("input-crc").payload, 16)

    def buffer(self) -> bytes:
        """``db print%``: the input bytes the board received."""
        return bytes.fromhex("".join(self.command("db print").list_items("buffer")))

    def infer(self, runs: int, warmup: int = 1, *,
              budget_s: float = DEFAULT_INFER_BUDGET_S,
              run_s: float | None = None) -> InferResult:
        """``infer N W%``: W warm-up and N timed runs. ``budget_s``: how long the runs may
        take, added to the command timeout; ``run_s``: the expected seconds of one run (its
        cycles over the cycles per second), which raises that to :data:`INFER_SLACK` times
        the expected time of all runs when that is longer."""
        if runs < 1 or warmup < 0:
            raise McuprofError(f"infer needs runs >= 1 and warmup >= 0, got {runs} and {warmup}")
        command = f"infer {runs} {warmup}"
        if run_s is not None:
            budget_s = max(budget_s, INFER_SLACK * (runs + warmup) * run_s)
        answer = self.command(command, timeout_s=self.timeout_s + budget_s)
        for name, value in (("warmup-start", warmup), ("infer-start", runs)):
            if answer.one(name).number != value:
                raise ProtocolError(f"{self.port_name}: `{command}%` was answered "
                                    f"{answer.one(name).format()!r}")
        answer.one("warmup-done")
        answer.one("infer-done")
        laps = [m.number for m in answer.all("lap-us")]
        if self.energy_mode and not laps:
            laps = [0, 0]  # energy mode: the timestamps are pin edges only
        if len(laps) != 2:
            raise answer.missing("two m-lap-us lines")
        warnings = tuple(m.payload for m in answer.all("warning"))
        for w in warnings:
            logger.warning("%s: %s", self.port_name, w)
        output, dequantized = self._output(answer.list_items("results"))
        return InferResult(runs, warmup, (laps[0], laps[1]), output, warnings, dequantized)

    def _output(self, items: list[str]) -> tuple[Output, tuple[float, ...]]:
        """The raw output and the dequantized values for ``m-results`` items: the firmware
        sends the dequantized values there (as MLPerf Tiny wants them), so the output as the
        board holds it comes from ``mp-results``; raw items (an older firmware) are used as
        they are."""
        if is_raw_output(items):
            return parse_output(items), ()
        return self.raw_results(), parse_dequantized(items)

    def results(self) -> Output:
        """The output of the last inference as the board holds it (``mp-results%``; the
        ``results%`` of a firmware that sends raw values there)."""
        return self._output(self.command("results").list_items("results"))[0]

    def dequantized_results(self) -> tuple[float, ...]:
        """``results%``: the last output dequantized, as the MLPerf Tiny runner reads it."""
        return parse_dequantized(self.command("results").list_items("results"))

    def raw_results(self) -> Output:
        """``mp-results%``: the last output as the board holds it (int8 or float32 bits)."""
        return parse_output(self.command("mp-results").list_items("raw-results"))

    def cycles(self) -> list[int]:
        """``mp-cycles%``: total cycles of each timed run of the last infer (the first 64)."""
        return [int(v) for v in self.command("mp-cycles").list_items("cycles")]

    def layer_cycles(self) -> list[int]:
        """``mp-layers%``: cycles of each operator in the last timed run."""
        return [int(v) for v in self.command("mp-layers").list_items("layers")]


def _printable(raw: bytes) -> str:
    """Bytes from the port as text; anything but printable ASCII as ``\\xNN``, so a line
    noise or a baud-rate mismatch shows in logs instead of corrupting them."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in raw)


def _garbage(line: str) -> bool:
    try:
        parse_line(line)
    except ProtocolError:
        return True
    return False

