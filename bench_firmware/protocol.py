"""The serial protocol between the host and the bench firmware: the line parser, the client
(:class:`DutClient`) and the host build of the firmware on a pty or TCP (:class:`HostDut`).

One protocol for both sides; the firmware side is ``firmware/protocol/`` and the same
reference heads ``firmware/protocol/protocol.c``. Change both together.

It is the MLPerf Tiny / EEMBC DUT protocol (``shared/reference/mlperf-tiny-protocol.md``)
plus mcuprof's own commands, which all start with ``mp-``.

Framing
    A command is ASCII ending with ``%``; tokens are separated by spaces; ``\\r``, ``\\n``
    and NUL are ignored. At most 80 characters before the ``%``: a longer command is
    discarded up to its ``%`` and answered ``e-[command too long]``. ``%`` alone is answered
    with ``m-ready`` only (used to resynchronise). Answer lines end with ``\\r\\n``;
    ``m-...`` lines are messages, ``e-[...]`` lines errors. Every command is answered, after
    its own lines, by ``m-ready``.

Boot
    ``m-timestamp-mode-performance``, ``m-plan-[...]`` (as for ``mp-plan``, never an ``e-``
    line), ``m-init-done``, ``m-ready``.

Lists
    A list is one line ``m-<name>-[v0,v1,...]`` when that line has at most 200 characters
    (:data:`LIST_LINE_MAX`); otherwise chunk lines ``m-<name>-<start>/<total>-[...]``, each at
    most 200 characters, ``start`` being the index of the chunk's first item and ``total`` the
    list's length (``m-layers-0/300-[...]``, ``m-layers-41/300-[...]``, ...). The host
    joins them and checks that the starts are contiguous and add up to ``total``
    (:func:`assemble_list`). An empty list is ``m-<name>-[]``. ``m-results`` is the exception:
    always one line, however long, because the MLPerf Tiny runner reads it that way.

MLPerf Tiny commands
    ``name%``
        ``m-name-dut-[<board name>]``
    ``profile%``
        ``m-profile-[mcuprof-<firmware version>]``, ``m-model-[<16 hex model id> | none]``
    ``timestamp%``
        ``m-lap-us-<microseconds since boot>`` (and a pulse on the timestamp pin)
    ``db load N%``
        ``m-[Expecting N bytes]``. N must equal the plan's input tensor size, else
        ``e-[db load: the model input is M bytes, not N]``; without a valid plan
        ``e-[db load: no valid plan (<status>)]``.
    ``db <hex>%``
        appends bytes (two hex digits each) to the input; ``m-load-done`` after the byte that
        completes N. Errors, nothing appended: ``e-[Insufficent number of hex digits]`` (odd
        count, MLPerf's spelling), ``e-[Invalid hex digit '<c>']``,
        ``e-[db: K more bytes would exceed the N expected (R received)]``,
        ``e-[db: no upload announced; send db load N first]``.
        The host sends 31 bytes per line, as the MLPerf Tiny runner does.
    ``db print%``
        the received bytes as a list named ``buffer`` of 2-hex-digit items
    ``infer N W%``
        W untimed warm-up runs (default 10), then N timed runs (default 1, at least 1):
        ``m-warmup-start-W``, ``m-warmup-done``, ``m-infer-start-N``, ``m-lap-us-<t0>``,
        ``m-lap-us-<t1>``, ``m-infer-done``, the ``results`` list. t0/t1 are taken just
        before the first and after the last timed run, each with a >= 1 us low pulse on the
        timestamp pin; both lap lines are printed after the loop so UART time is not
        measured. Between them, each run also reads the µs clock (so laps stay right across
        cycle-counter wraps) and, when the plan overwrites its input, first restores the input
        from a copy kept in the arena; ``mp-cycles`` count the runtime's invoke alone.
        Incomplete input: ``e-[input incomplete: got X of N bytes]``, nothing runs.
        A failing run: ``e-[infer: <status>]``. When the plan overwrites its own input and the
        arena has no room for a copy, ``m-warning-[...]`` precedes the results.
    ``results%``
        the ``results`` list of the last infer: an int8 output as signed decimals; a float32
        output (plan flag ``MP_FLAG_FLOAT_OUTPUT``) as the raw IEEE-754 bits of each value,
        8 lowercase hex digits (``3f800000`` is 1.0). An int8 item never has 8 characters.
    anything else
        ``e-[Unknown command: <command>]``

mcuprof commands
    ``mp-plan%``
        ``m-plan-[status=ok,model=<16 hex>,board=<code>,ops=<n>,arena=<bytes>,
        capacity=<board arena bytes>,bytes=<plan bytes>,input=<bytes>,output=<bytes>,
        input-type=int8|float32,output-type=int8|float32]``; without a valid plan
        ``m-plan-[status=<token>,region=<model region bytes>]`` then
        ``e-[plan: <status text>]``, tokens ``not-loaded magic version size crc board arena op``.
    ``mp-reload%``
        validates the model region again (after the host rewrote it), forgets input and
        results; answers as ``mp-plan``
    ``mp-kernels%``, ``mp-kernels ref%``, ``mp-kernels dsp%``
        ``m-kernels-[ref|dsp]``: the kernel path in use (after selecting one)
    ``mp-cycles%``
        list ``cycles``: total CYCCNT cycles of each timed run of the last infer (at most the
        first 64); when N was larger, then ``m-cycles-truncated-<N>``
    ``mp-layers%``
        list ``layers``: cycles of each operator in the last timed run
    ``mp-crc%``
        ``m-input-crc-[<8 hex>]``: CRC-32 (as ``zlib.crc32``) of the bytes received since
        ``db load``
    ``mp-info%``
        ``m-info-[board=<name>,code=<plan board code>,clock=<Hz>,arena=<bytes>,
        region=<model region bytes>,kernels=ref|dsp,plan=<token>,version=<firmware>,
        max-runs=64,max-ops=256]``
    ``results``, ``mp-cycles`` and ``mp-layers`` before an infer (or after a new upload or
    reload): ``e-[<command>: no inference since the last upload; run infer first]``.
    Too many arguments: ``e-[<command>: too many arguments]``.

Lifecycle of a :class:`DutClient`: ``open`` → ``wait_ready`` (after a reset) or ``sync`` →
commands → ``close`` (or use it as a context manager).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import selectors
import socket
import struct
import subprocess
import tempfile
import threading
import time
import tty
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import serial

from bench_firmware.errors import (
    BoardError,
    BuildError,
    FirmwareError,
    McuprofError,
    ProtocolError,
    SerialTimeoutError,
)

logger = logging.getLogger("mcuprof.serial")

Transport = Literal["pty", "tcp"]

COMMAND_MAX = 80  # characters before the '%' (MLPerf Tiny)
LIST_LINE_MAX = 200  # characters of one list line before "\r\n" (MP_LIST_LINE_MAX)
DB_CHUNK_BYTES = 31  # input bytes per `db` line, as the MLPerf Tiny runner sends them
MAX_RUNS = 64  # runs whose cycles the firmware keeps (MP_MAX_RUNS)
BAUDRATE = 115200  # MLPerf Tiny performance mode

DEFAULT_TIMEOUT_S = 5.0  # seconds for any one command's answer
BOOT_TIMEOUT_S = 10.0  # seconds from reset to the boot banner's m-ready
DEFAULT_INFER_BUDGET_S = 60.0  # seconds `infer` may take, on top of DEFAULT_TIMEOUT_S
POLL_INTERVAL_S = 0.05  # seconds one serial read blocks before the deadline is checked
SYNC_QUIET_S = 0.2  # seconds without a line after an m-ready that end a resync
DIAGNOSE_WAIT_S = 0.5  # seconds a failing host firmware gets to exit before we report on it
STOP_TIMEOUT_S = 2.0  # seconds the host firmware gets to exit after its input closes
TRANSCRIPT_MAX_LINES = 100_000  # oldest transcript lines are dropped beyond this
# Bytes without a newline after which they count as one (garbage) line. `m-results` is one
# line however long (MLPerf Tiny compatibility): 64 Ki outputs of 11 characters fit.
RX_LINE_MAX = 1 << 20

# Numeric fields of m-plan-[...] and m-info-[...] (the others are text: status, model, ...).
PLAN_NUMBERS = ("board", "ops", "arena", "capacity", "bytes", "input", "output", "region")
INFO_NUMBERS = ("code", "clock", "arena", "region", "max-runs", "max-ops")

_NAME_RE = re.compile(r"[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*", re.ASCII)
_CHUNK_RE = re.compile(r"(?P<name>.+)-(?P<start>\d+)/(?P<total>\d+)", re.ASCII)
_INT_RE = re.compile(r"\d+", re.ASCII)
_WORD_RE = re.compile(r"[0-9a-f]{8}", re.ASCII)


# --------------------------------------------------------------------------------------------
# Lines


@dataclass(frozen=True)
class Message:
    """One protocol line.

    ``m-lap-us-123`` is ``Message("m", "lap-us", "123", bracketed=False)``;
    ``m-results-[1,2]`` is ``Message("m", "results", "1,2")``; ``e-[oops]`` is
    ``Message("e", "", "oops")``; a chunk line ``m-layers-16/40-[...]`` has ``start=16``
    and ``total=40``.
    """

    kind: str  # "m" | "e"
    name: str
    payload: str = ""
    bracketed: bool = True
    start: int | None = None
    total: int | None = None

    @property
    def is_error(self) -> bool:
        return self.kind == "e"

    @property
    def is_chunk(self) -> bool:
        return self.start is not None

    @property
    def number(self) -> int:
        """The payload as an unsigned decimal (``m-lap-us-123`` → 123)."""
        if not _INT_RE.fullmatch(self.payload):
            raise ProtocolError(f"expected a number in {self.format()!r}")
        return int(self.payload)

    def items(self) -> list[str]:
        """The comma-separated items of a list payload."""
        return self.payload.split(",") if self.payload else []

    def fields(self, numbers: Iterable[str] = ()) -> dict[str, int | str]:
        """``key=value`` items as a dict; the values of the keys in ``numbers`` as ints."""
        numeric = set(numbers)
        out: dict[str, int | str] = {}
        for item in self.items():
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ProtocolError(f"expected key=value items in {self.format()!r}, got {item!r}")
            if key in numeric:
                if not _INT_RE.fullmatch(value):
                    raise ProtocolError(f"expected a number for {key} in {self.format()!r}")
                out[key] = int(value)
            else:
                out[key] = value
        return out

    def format(self) -> str:
        """The line as the firmware prints it (without ``\\r\\n``)."""
        head = self.name
        if self.start is not None:
            head = f"{head}-{self.start}/{self.total}"
        if not self.bracketed:
            return f"{self.kind}-{head}-{self.payload}" if self.payload else f"{self.kind}-{head}"
        return f"{self.kind}-{head}-[{self.payload}]" if head else f"{self.kind}-[{self.payload}]"


def parse_line(line: str) -> Message:
    """Parses one line (``\\r\\n`` optional). Raises :class:`ProtocolError` for anything that is
    not an ``m-`` or ``e-`` line of the protocol; :class:`DutClient` keeps such lines aside
    instead of failing."""
    text = line.strip()
    if len(text) < 3 or text[1] != "-" or text[0] not in "me":
        raise ProtocolError(f"not a protocol line: {line!r}")
    kind, body = text[0], text[2:]
    if body.endswith("]") and "[" in body:
        head, _, rest = body.partition("[")
        payload = rest[:-1]
        if head and not head.endswith("-"):
            raise ProtocolError(f"not a protocol line: {line!r}")
        name = head[:-1]
        start = total = None
        chunk = _CHUNK_RE.fullmatch(name)
        if chunk:
            name, start, total = chunk["name"], int(chunk["start"]), int(chunk["total"])
            if start >= total:
                raise ProtocolError(f"chunk start {start} is not below its total {total}: {line!r}")
        if name and not _NAME_RE.fullmatch(name):
            raise ProtocolError(f"not a protocol line: {line!r}")
        return Message(kind, name, payload, True, start, total)
    if not _NAME_RE.fullmatch(body):
        raise ProtocolError(f"not a protocol line: {line!r}")
    head, _, last = body.rpartition("-")
    if head and _INT_RE.fullmatch(last):
        return Message(kind, head, last, bracketed=False)
    return Message(kind, body, "", bracketed=False)


def format_list(name: str, items: Sequence[str], line_max: int = LIST_LINE_MAX) -> list[str]:
    """The lines the firmware prints for a list (``mp_out_list`` in ``firmware/protocol/out.c``,
    the same algorithm): one line if it fits in ``line_max`` characters, else chunk lines."""
    plain = f"m-{name}-[{','.join(items)}]"
    if len(plain) <= line_max:
        return [plain]
    lines = []
    n, i = len(items), 0
    while i < n:
        prefix = f"m-{name}-{i}/{n}-["
        chunk = [items[i]]
        length = len(prefix) + len(items[i]) + 1
        i += 1
        while i < n and length + 1 + len(items[i]) <= line_max:
            length += 1 + len(items[i])
            chunk.append(items[i])
            i += 1
        lines.append(f"{prefix}{','.join(chunk)}]")
    return lines


def assemble_list(messages: Iterable[Message], name: str) -> list[str] | None:
    """The items of list ``name`` from its line or chunk lines among ``messages``; None when
    there is none. Raises :class:`ProtocolError` when chunks are missing or out of order."""
    lines = [m for m in messages if m.kind == "m" and m.name == name and m.bracketed]
    if not lines:
        return None
    plain = [m for m in lines if not m.is_chunk]
    if plain:
        if len(lines) > 1:
            raise ProtocolError(f"list m-{name} came as {len(lines)} separate lines; "
                                f"expected one line or a run of chunk lines")
        return plain[0].items()
    total = lines[0].total
    items: list[str] = []
    for chunk in lines:
        if chunk.total != total or chunk.start != len(items):
            raise ProtocolError(
                f"list m-{name}: expected a chunk starting at {len(items)} of {total}, got "
                f"{chunk.format()[:60]!r}...; a line was lost or garbled on the serial link")
        new = chunk.items()
        if not new:
            raise ProtocolError(f"list m-{name}: empty chunk line {chunk.format()!r}")
        items.extend(new)
    if len(items) != total:
        raise ProtocolError(f"list m-{name} announces {total} items but its chunk lines hold "
                            f"{len(items)}; a line was lost on the serial link")
    return items


# --------------------------------------------------------------------------------------------
# Answers and results


@dataclass(frozen=True)
class Output:
    """An output tensor: ``dtype`` "int8" or "float32", its values, and its raw bytes as the
    board holds them (little-endian)."""

    dtype: str
    values: tuple[int, ...] | tuple[float, ...]
    raw: bytes


def parse_output(items: Sequence[str]) -> Output:
    """The ``results`` list's items → :class:`Output` (8-hex-digit items are float32 bits)."""
    if items and all(_WORD_RE.fullmatch(i) for i in items):
        raw = b"".join(int(i, 16).to_bytes(4, "little") for i in items)
        return Output("float32", struct.unpack(f"<{len(items)}f", raw), raw)
    try:
        values = tuple(int(i) for i in items)
    except ValueError:
        raise ProtocolError(f"results are neither int8 decimals nor float32 words: "
                            f"{','.join(items)[:80]!r}") from None
    if any(v < -128 or v > 127 for v in values):
        raise ProtocolError(f"results hold values outside int8: {values[:16]!r}")
    return Output("int8", values, bytes(v & 0xFF for v in values))


def format_output(output: Output) -> list[str]:
    """The ``results`` list's items for an output (the inverse of :func:`parse_output`)."""
    if output.dtype == "float32":
        words = struct.unpack(f"<{len(output.raw) // 4}I", output.raw)
        return [f"{w:08x}" for w in words]
    return [str(v) for v in output.values]


@dataclass(frozen=True)
class InferResult:
    """What ``infer N W`` answered: the two lap timestamps (µs since boot), the output of the
    last run, and any warnings the firmware printed."""

    runs: int
    warmup: int
    lap_us: tuple[int, int]
    output: Output
    warnings: tuple[str, ...] = ()

    @property
    def elapsed_us(self) -> int:
        """Microseconds of the N timed runs (the board's µs counter wraps at 2**32)."""
        return (self.lap_us[1] - self.lap_us[0]) % (1 << 32)

    @property
    def us_per_run(self) -> float:
        return self.elapsed_us / self.runs

    @property
    def output_bytes(self) -> bytes:
        return self.output.raw


@dataclass
class Answer:
    """The lines a command got back before its ``m-ready``; lines that were not protocol lines
    are kept in ``garbage``."""

    command: str
    port: str
    messages: list[Message]
    garbage: list[str]

    @property
    def errors(self) -> list[Message]:
        return [m for m in self.messages if m.is_error]

    def find(self, name: str) -> Message | None:
        return next((m for m in self.messages if m.kind == "m" and m.name == name), None)

    def all(self, name: str) -> list[Message]:
        return [m for m in self.messages if m.kind == "m" and m.name == name]

    def one(self, name: str) -> Message:
        """The ``m-<name>`` line; :class:`ProtocolError` when it did not come."""
        msg = self.find(name)
        if msg is None:
            raise self.missing(f"m-{name}" if name else "m-[...]")
        return msg

    def list_items(self, name: str) -> list[str]:
        """List ``name``'s items, chunks joined."""
        items = assemble_list(self.messages, name)
        if items is None:
            raise self.missing(f"the m-{name} list")
        return items

    def missing(self, what: str) -> ProtocolError:
        got = [m.format() for m in self.messages][:8]
        text = (f"{self.port}: the answer to `{self.command}%` has no {what}; "
                f"it had {got!r}")
        if self.garbage:
            text += f" and lines that are not protocol lines: {self.garbage[:8]!r}"
            text += " (wrong baud rate, or another program writing to the port?)"
        return ProtocolError(text)


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

    def info(self) -> dict[str, int | str]:
        """``mp-info%``: board, code, clock, arena, region, kernels, plan, version, ..."""
        return self.command("mp-info").one("info").fields(INFO_NUMBERS)

    def _plan(self, command: str) -> dict[str, int | str]:
        answer = self.command(command, check=False)
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

    def reload_plan(self) -> dict[str, int | str]:
        """``mp-reload%``: validates the model region again; as :meth:`plan_status`."""
        return self._plan("mp-reload")

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
        got_text = self.command("mp-crc").one("input-crc").payload
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

    def input_crc(self) -> int:
        """``mp-crc%``: CRC-32 of the bytes received since ``db load``."""
        return int(self.command("mp-crc").one("input-crc").payload, 16)

    def buffer(self) -> bytes:
        """``db print%``: the input bytes the board received."""
        return bytes.fromhex("".join(self.command("db print").list_items("buffer")))

    def infer(self, runs: int, warmup: int = 1, *,
              budget_s: float = DEFAULT_INFER_BUDGET_S) -> InferResult:
        """``infer N W%``: W warm-up and N timed runs. ``budget_s``: how long the runs may
        take, added to the command timeout."""
        if runs < 1 or warmup < 0:
            raise McuprofError(f"infer needs runs >= 1 and warmup >= 0, got {runs} and {warmup}")
        command = f"infer {runs} {warmup}"
        answer = self.command(command, timeout_s=self.timeout_s + budget_s)
        for name, value in (("warmup-start", warmup), ("infer-start", runs)):
            if answer.one(name).number != value:
                raise ProtocolError(f"{self.port_name}: `{command}%` was answered "
                                    f"{answer.one(name).format()!r}")
        answer.one("warmup-done")
        answer.one("infer-done")
        laps = [m.number for m in answer.all("lap-us")]
        if len(laps) != 2:
            raise answer.missing("two m-lap-us lines")
        warnings = tuple(m.payload for m in answer.all("warning"))
        for w in warnings:
            logger.warning("%s: %s", self.port_name, w)
        return InferResult(runs, warmup, (laps[0], laps[1]),
                           parse_output(answer.list_items("results")), warnings)

    def results(self) -> Output:
        """``results%``: the output of the last inference."""
        return parse_output(self.command("results").list_items("results"))

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


# --------------------------------------------------------------------------------------------
# The host build of the firmware as a device


def _build_host_exe() -> Path:
    try:
        from bench_firmware.build import build_host
    except ImportError as e:
        raise BuildError("the host build driver bench_firmware/build.py is not available; "
                         "pass exe= the path of a built mcuprof-host") from e
    return Path(build_host(kind="exe"))


class HostDut:
    """The firmware's host build (``mcuprof-host PLAN``) as a device under test.

    ``transport="pty"``: the program's stdin/stdout is a pseudo-terminal whose other end the
    client opens by its ``/dev/pts/N`` path, exactly as a board's USB serial port.
    ``transport="tcp"``: the program runs on pipes and a bridge thread serves them on
    ``socket://127.0.0.1:<port>`` (one connection).

    As a context manager it yields a connected :class:`DutClient` past the boot banner::

        with HostDut(plan_bytes) as dut:
            dut.load_input(x.tobytes())
            result = dut.infer(10, 1)

    Or ``url = dut.start()`` … ``dut.stop()`` to serve without a client. On exit the program
    is stopped; if it died on its own, :class:`BoardError` reports its status and stderr.
    A HostDut runs its program once.
    """

    def __init__(self, plan: bytes | str | os.PathLike[str], *,
                 exe: str | os.PathLike[str] | None = None,
                 transport: Transport = "pty",
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 boot_timeout_s: float = BOOT_TIMEOUT_S) -> None:
        if transport not in ("pty", "tcp"):
            raise McuprofError(f"unknown transport {transport!r}; use 'pty' or 'tcp'")
        self._plan = plan
        self._exe = Path(exe) if exe is not None else None
        self.transport = transport
        self.timeout_s = timeout_s
        self.boot_timeout_s = boot_timeout_s
        self.url: str | None = None
        self.client: DutClient | None = None
        self.returncode: int | None = None
        self.stderr = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._errfile: IO[bytes] | None = None
        self._slave_fd: int | None = None
        self._server: socket.socket | None = None
        self._bridge: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> str:
        """Starts the program and returns the URL to open (serving it without a client; use
        :meth:`connect`, or any serial client that resynchronises with an empty command)."""
        return self._start(open_client=False)

    def _start(self, *, open_client: bool) -> str:
        if self._proc is not None or self._stopping:
            raise McuprofError("a HostDut starts once; make a new one to run the program again")
        exe = self._exe or _build_host_exe()
        self._tmp = tempfile.TemporaryDirectory(prefix="mcuprof-host-")
        if isinstance(self._plan, bytes):
            plan_path = Path(self._tmp.name) / "model.plan"
            plan_path.write_bytes(self._plan)
        else:
            plan_path = Path(self._plan)
        self._errfile = open(Path(self._tmp.name) / "stderr.txt", "w+b")  # noqa: SIM115
        argv = [str(exe), str(plan_path)]
        try:
            if self.transport == "pty":
                self.url = self._start_pty(argv, open_client=open_client)
            else:
                self.url = self._start_tcp(argv)
        except OSError as e:
            with contextlib.suppress(McuprofError):
                self.stop()
            raise BoardError(f"cannot start the host firmware {exe}: {e}") from e
        return self.url

    def _start_pty(self, argv: list[str], *, open_client: bool) -> str:
        master, slave = os.openpty()
        url = os.ttyname(slave)
        try:
            # Raw before the program writes: no echo, no "\n" → "\r\n" translation.
            tty.setraw(slave)
            # The client opens before the program starts: pyserial flushes pending input when
            # it opens a port, which would eat the boot banner.
            if open_client:
                self.client = DutClient.open(url, timeout_s=self.timeout_s,
                                             diagnose=self.diagnose)
            self._proc = subprocess.Popen(argv, stdin=master, stdout=master,
                                          stderr=self._errfile, start_new_session=True)
        except BaseException:
            os.close(slave)
            raise
        finally:
            os.close(master)
        if self.client is not None:
            os.close(slave)
        else:
            # Until a client opens its own, our copy keeps the slave end open: with none open,
            # the program's reads would end at once.
            self._slave_fd = slave
        return url

    def _start_tcp(self, argv: list[str]) -> str:
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._errfile, bufsize=0, start_new_session=True)
        self._server = socket.create_server(("127.0.0.1", 0))
        port = self._server.getsockname()[1]
        self._bridge = threading.Thread(target=self._serve, name=f"host-dut-{port}",
                                        daemon=True)
        self._bridge.start()
        return f"socket://127.0.0.1:{port}"

    def _serve(self) -> None:
        """Bridges one TCP connection and the program's stdin/stdout. The program's output is
        held until the client sends its first byte (a newline does; the firmware ignores it),
        so none is lost to a client that flushes its input when it opens the port, as
        pyserial does."""
        assert self._server is not None and self._proc is not None
        proc_in, proc_out = self._proc.stdin, self._proc.stdout
        assert proc_in is not None and proc_out is not None
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._server, selectors.EVENT_READ)
            while not self._stop.is_set() and not sel.select(POLL_INTERVAL_S):
                pass
            if self._stop.is_set():
                return
            conn, _ = self._server.accept()
            sel.unregister(self._server)
            with conn:
                sel.register(conn, selectors.EVENT_READ)
                forwarding = False
                while not self._stop.is_set():
                    for key, _ in sel.select(POLL_INTERVAL_S):
                        if key.fileobj is conn:
                            data = conn.recv(4096)
                            if not data:
                                return  # the client hung up: the program gets EOF below
                            if not forwarding:
                                # The client has spoken, so it is done opening (and flushing)
                                # its port: from now on the program's output reaches it.
                                sel.register(proc_out, selectors.EVENT_READ)
                                forwarding = True
                            proc_in.write(data)
                        else:
                            data = os.read(proc_out.fileno(), 4096)
                            if not data:
                                return  # the program ended: the client sees the socket close
                            conn.sendall(data)
        except OSError as e:
            logger.debug("host DUT bridge ended: %s", e)
        finally:
            sel.close()
            with contextlib.suppress(OSError):
                proc_in.close()

    def connect(self) -> DutClient:
        """A client on :attr:`url` (after :meth:`start`), resynchronised with an empty command
        since its boot banner may have gone by."""
        if self.url is None:
            raise McuprofError("start the HostDut before connecting to it")
        client = self._open_client()
        try:
            client.sync(self.boot_timeout_s)
        except McuprofError:
            client.close()
            raise
        self.client = client
        return client

    def _open_client(self) -> DutClient:
        assert self.url is not None
        client = DutClient.open(self.url, timeout_s=self.timeout_s, diagnose=self.diagnose)
        if self._slave_fd is not None:
            os.close(self._slave_fd)
            self._slave_fd = None
        if self.transport == "tcp":
            # Wakes the bridge (see _serve); the firmware ignores newlines.
            client.port.write(b"\n")
        return client

    def diagnose(self) -> str | None:
        """Says how the program ended, if it has (called when talking to it failed, so it
        gets a moment to finish dying)."""
        if self._proc is None:
            return None
        try:
            self._proc.wait(DIAGNOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            return None
        return (f"the host firmware exited with status {self._proc.returncode}"
                f"{self._stderr_tail()}")

    def _stderr_tail(self) -> str:
        if self._errfile is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._errfile.flush()
            self._errfile.seek(0)
            self.stderr = self._errfile.read().decode(errors="replace")
        tail = self.stderr.strip()[-500:]
        return f"; its stderr: {tail!r}" if tail else ""

    def stop(self) -> None:
        """Closes the client, ends the program (EOF first, then SIGTERM, then SIGKILL).
        Raises :class:`BoardError` when the program had died on its own."""
        proc = self._proc
        died = None
        if proc is not None and proc.poll() is not None and not self._stopping:
            died = self.diagnose()
        self._stopping = True
        if self.client is not None:
            self.client.close()
            self.client = None
        self._stop.set()
        if self._server is not None:
            self._server.close()
        if self._bridge is not None:
            self._bridge.join(STOP_TIMEOUT_S)
        if self._slave_fd is not None:
            os.close(self._slave_fd)
            self._slave_fd = None
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            self.returncode = proc.returncode
            self._stderr_tail()
            if died is None and proc.returncode not in (0, -15):
                died = (f"the host firmware exited with status {proc.returncode}"
                        f"{self._stderr_tail()}")
        if self._errfile is not None:
            self._errfile.close()
            self._errfile = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._proc = None
        if died:
            raise BoardError(died)

    def __enter__(self) -> DutClient:
        try:
            self._start(open_client=True)
            if self.client is None:
                self.client = self._open_client()
            self.client.wait_ready(self.boot_timeout_s)
        except BaseException:
            with contextlib.suppress(McuprofError):
                self.stop()
            raise
        return self.client

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.stop()
            return
        with contextlib.suppress(McuprofError):
            self.stop()
