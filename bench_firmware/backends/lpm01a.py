"""The ST X-NUCLEO-LPM01A (PowerShield) energy monitor on its own serial port.

The monitor powers the board under test and integrates its energy; the firmware marks the
start and the end of the timed loop with a falling edge on the timestamp pin (Arduino D7),
which the monitor reports as events in its data stream. Energy per inference is the sum of
the samples between the last two events, divided by the number of timed inferences (as the
MLPerf Tiny runner does: eembc/energyrunner ``README.md``).

Protocol (ASCII, one command per line, ``\\n``-terminated; answers end in ``\\r\\n``, some
behind a ``PowerShield > `` prompt). The monitor acknowledges every command with
``ack <command> [<output>]`` or refuses it with ``error ...`` followed by
``Error detail: <why>``. Set-up, in this order (commands from the LPM01A's own help text):

    htc                 host takes control
    volt <mV>m          supply voltage, e.g. volt 3300m
    freq 1k             samples per second
    acqtime inf         acquire until stopped
    trigsrc sw          acquisition starts on `start`
    eventsrc d7 fal     a falling edge on D7 is an event
    output energy       each sample is the energy since the previous one
    format ascii_dec    "6409-07" means 6409 × 10⁻⁷ (joules here)
    pwr on              power the board under test

Then ``start`` … ``stop`` (``stop`` is not acknowledged: the stream ends with
``Acquisition completed``); ``hrc`` hands control back on close. During an acquisition the
monitor streams sample lines (one or more ``dddd±ee`` values), ``event <n> ...`` lines, and
``TimeStamp`` lines (ignored).

Lifecycle: ``open`` → (``start`` → the timed loop runs → ``stop``)* → ``close``; or use it as
a context manager.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import serial

from bench_firmware.errors import BoardError, ProtocolError

logger = logging.getLogger("mcuprof.lpm01a")

BAUDRATE = 3_686_400  # the LPM01A's VCP rate
SAMPLE_RATE = "1k"  # samples per second; ascii_dec streams without limit up to 5k
DEFAULT_VOLTAGE_MV = 3300  # the Nucleo boards' supply
COMMAND_TIMEOUT_S = 3.0  # seconds for an ack
STOP_TIMEOUT_S = 5.0  # seconds from `stop` to "Acquisition completed"
READ_POLL_S = 0.05  # seconds one serial read blocks
MIN_WINDOW_SAMPLES = 100  # fewer samples between the edges than this make a coarse figure
PROMPT = "PowerShield > "

_SAMPLE_RE = re.compile(r"(\d{4})([-+]\d{2})")
_EVENT_RE = re.compile(r"event\s+(\d+)", re.IGNORECASE)


def parse_samples(line: str) -> list[float] | None:
    """The values of a sample line (``"6409-07"`` → ``[6.409e-04]``; several may share a
    line), or None when the line is not a sample line."""
    text = line.strip()
    matches = list(_SAMPLE_RE.finditer(text))
    if not matches or "".join(m.group(0) for m in matches) != text.replace(" ", ""):
        return None
    return [int(m.group(1)) * 10.0 ** int(m.group(2)) for m in matches]


@dataclass
class Acquisition:
    """One start…stop: the samples (joules each) and, for every event, the number of samples
    that had arrived before it."""

    samples: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    completed: bool = False

    def energy_per_inference_mj(self, runs: int) -> tuple[float, list[str]]:
        """Energy of one inference in millijoules: the samples between the last two events
        (the timed loop's two timestamp edges) over ``runs``; and warnings."""
        if len(self.events) < 2:
            raise BoardError(
                f"the energy monitor saw {len(self.events)} timestamp edge(s) on D7, not the "
                f"2 that bracket the timed loop: check the wire from the board's timestamp pin "
                f"to the LPM01A's D7 (and its solder bridge)")
        first, last = self.events[-2], self.events[-1]
        window = self.samples[first:last]
        warnings = []
        if len(window) < MIN_WINDOW_SAMPLES:
            warnings.append(f"the timed loop lasted {len(window)} energy samples (at "
                            f"{SAMPLE_RATE} samples/s); raise --runs for a finer energy figure")
        return sum(window) * 1e3 / runs, warnings


class Lpm01a:
    """One LPM01A on ``url`` (any pyserial URL). Not thread-safe, except that its reader
    thread fills the current :class:`Acquisition`."""

    def __init__(self, url: str, *, voltage_mv: int = DEFAULT_VOLTAGE_MV,
                 baudrate: int = BAUDRATE, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self.url = url
        self.voltage_mv = voltage_mv
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.transcript: list[str] = []
        self._port: serial.SerialBase | None = None
        self._rx = bytearray()
        self._acquisition: Acquisition | None = None
        self._reader: threading.Thread | None = None
        self._reading = threading.Event()
        self._stop_deadline = 0.0  # time.monotonic() by which the stream must have ended

    # -- lifecycle -----------------------------------------------------------------------

    def open(self) -> None:
        """Opens the port, takes control and configures an energy acquisition."""
        if self._port is not None:
            raise BoardError(f"LPM01A on {self.url} is already open")
        try:
            self._port = serial.serial_for_url(self.url, baudrate=self.baudrate,
                                               timeout=READ_POLL_S, write_timeout=self.timeout_s)
        except (serial.SerialException, ValueError, OSError) as e:
            raise BoardError(f"Could not open the LPM01A energy monitor's port {self.url}: {e}"
                             ) from e
        try:
            for command in ("htc", f"volt {self.voltage_mv}m", f"freq {SAMPLE_RATE}",
                            "acqtime inf", "trigsrc sw", "eventsrc d7 fal", "output energy",
                            "format ascii_dec", "pwr on"):
                self.command(command)
        except BoardError:
            self.close()
            raise

    def close(self) -> None:
        """Stops any acquisition, hands control back, closes the port; safe to call twice."""
        if self._port is None:
            return
        if self._reading.is_set():
            with contextlib.suppress(BoardError):
                self.stop()
        with contextlib.suppress(BoardError, serial.SerialException, OSError):
            self._write("hrc")
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()
        self._port = None

    def __enter__(self) -> Lpm01a:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- lines ---------------------------------------------------------------------------

    def _require_port(self) -> serial.SerialBase:
        if self._port is None:
            raise BoardError(f"LPM01A on {self.url} is not open; call open() first")
        return self._port

    def _write(self, command: str) -> None:
        port = self._require_port()
        self.transcript.append(f"> {command}")
        try:
            port.write((command + "\n").encode("ascii"))
        except (serial.SerialException, OSError) as e:
            raise BoardError(f"LPM01A on {self.url}: cannot send `{command}`: {e}") from e

    def _read_line(self, deadline: float) -> str | None:
        port = self._require_port()
        while True:
            newline = self._rx.find(b"\n")
            if newline >= 0:
                raw = bytes(self._rx[:newline])
                del self._rx[: newline + 1]
                line = raw.decode("ascii", errors="replace").replace(PROMPT, "").strip()
                if line:
                    self.transcript.append(f"< {line}")
                    return line
                continue
            if time.monotonic() >= deadline:
                return None
            try:
                self._rx += port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as e:
                raise BoardError(f"LPM01A on {self.url}: reading failed: {e}") from e

    def command(self, command: str) -> str:
        """Sends ``command`` and returns what its ``ack`` carried after the command's name;
        :class:`BoardError` with the monitor's detail when it answers ``error``."""
        if self._reading.is_set():
            raise BoardError(f"LPM01A on {self.url}: `{command}` during an acquisition; stop "
                             f"it first")
        self._write(command)
        deadline = time.monotonic() + self.timeout_s
        while True:
            line = self._read_line(deadline)
            if line is None:
                raise BoardError(
                    f"no answer from the LPM01A on {self.url} to `{command}` within "
                    f"{self.timeout_s:.1f} s: is it the monitor's port, at {self.baudrate} "
                    f"baud, and is the monitor powered (its LCD lit)?")
            if line.startswith("ack") and command in line:
                return line.split(command, 1)[1].strip()
            if line.lower().startswith("error"):
                detail = self._read_line(time.monotonic() + self.timeout_s) or ""
                detail = detail.removeprefix("Error detail:").strip()
                raise BoardError(f"the LPM01A on {self.url} refused `{command}`: "
                                 f"{detail or line}")
            logger.debug("%s: ignoring %r while waiting for the ack of %r", self.url, line,
                         command)

    # -- acquisitions --------------------------------------------------------------------

    def start(self) -> None:
        """Starts an acquisition; samples and events are gathered until :meth:`stop`."""
        self.command("start")
        self._acquisition = Acquisition()
        self._reading.set()
        self._reader = threading.Thread(target=self._read_stream, daemon=True,
                                        name=f"lpm01a-{self.url}")
        self._reader.start()

    def _read_stream(self) -> None:
        acquisition = self._acquisition
        assert acquisition is not None
        while self._reading.is_set() or not acquisition.completed:
            try:
                line = self._read_line(time.monotonic() + READ_POLL_S)
            except BoardError as e:
                acquisition.other.append(str(e))
                return
            if line is None:
                if not self._reading.is_set() and time.monotonic() >= self._stop_deadline:
                    return
                continue
            values = parse_samples(line)
            if values is not None:
                acquisition.samples.extend(values)
            elif _EVENT_RE.match(line):
                acquisition.events.append(len(acquisition.samples))
            elif "acquisition completed" in line.lower():
                acquisition.completed = True
                return
            elif not line.startswith("TimeStamp"):
                acquisition.other.append(line)

    def stop(self) -> Acquisition:
        """Stops the acquisition and returns it (once the monitor said it completed)."""
        acquisition = self._acquisition
        if acquisition is None or not self._reading.is_set():
            raise BoardError(f"LPM01A on {self.url}: stop() without start()")
        self._stop_deadline = time.monotonic() + STOP_TIMEOUT_S
        self._write("stop")
        self._reading.clear()
        assert self._reader is not None
        self._reader.join(STOP_TIMEOUT_S + 1.0)
        self._acquisition = None
        if not acquisition.completed:
            raise BoardError(f"the LPM01A on {self.url} did not complete its acquisition within "
                             f"{STOP_TIMEOUT_S:.0f} s of `stop`; last lines: "
                             f"{self.transcript[-4:]!r}")
        errors = [line for line in acquisition.other if line.lower().startswith("error")]
        if errors:
            raise ProtocolError(f"the LPM01A on {self.url} reported during the acquisition: "
                                f"{errors[:3]!r}")
        return acquisition
