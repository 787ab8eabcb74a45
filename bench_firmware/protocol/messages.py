"""The protocol's lines and what the host makes of them: the line grammar (:class:`Message`,
:func:`parse_line`), lists and their chunk lines (:func:`format_list`, :func:`assemble_list`),
output tensors (:class:`Output`), ``infer`` results and a command's :class:`Answer`. The
grammar itself is documented in :mod:`bench_firmware.protocol`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench_firmware.errors import ProtocolError

COMMAND_MAX = 80  # characters before the '%' (MLPerf Tiny)
LIST_LINE_MAX = 200  # characters of one list line before "\r\n" (MP_LIST_LINE_MAX)
DB_CHUNK_BYTES = 31  # input bytes per `db` line, as the MLPerf Tiny runner sends them
MAX_RUNS = 64  # runs whose cycles the firmware keeps (MP_MAX_RUNS)
BAUDRATE = 115200  # MLPerf Tiny performance mode

# Numeric fields of m-plan-[...] and m-info-[...] (the others are text: status, model, ...).
PLAN_NUMBERS = ("board", "ops", "arena", "capacity", "bytes", "input", "output", "region")
INFO_NUMBERS = ("code", "clock", "arena", "region", "max-runs", "max-ops")

_NAME_RE = re.compile(r"[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*", re.ASCII)
_CHUNK_RE = re.compile(r"(?P<name>.+)-(?P<start>\d+)/(?P<total>\d+)", re.ASCII)
_INT_RE = re.compile(r"\d+", re.ASCII)
_WORD_RE = re.compile(r"[0-9a-f]{8}", re.ASCII)
_RAW_ITEM_RE = re.compile(r"-?\d{1,3}|[0-9a-f]{8}", re.ASCII)
_FLOAT_ITEM_RE = re.compile(r"-?(?:\d+\.\d+(?:e\d+)?|nan|inf)", re.ASCII)


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


def is_raw_output(items: Sequence[str]) -> bool:
    """Whether ``results`` items are the raw form (int8 decimals or float32 words, as
    ``mp-results`` and firmware before MLPerf-compatible results send them) rather than the
    dequantized decimal fractions ``m-results`` carries."""
    return all(_RAW_ITEM_RE.fullmatch(i) for i in items)


def parse_dequantized(items: Sequence[str]) -> tuple[float, ...]:
    """``m-results`` items (dequantized decimal fractions) as floats."""
    if not all(_FLOAT_ITEM_RE.fullmatch(i) for i in items):
        raise ProtocolError(f"results are not decimal fractions: {','.join(items)[:80]!r}")
    return tuple(float(i) for i in items)


def format_dequantized(values: Iterable[float]) -> list[str]:
    """``m-results`` items for dequantized values, as the firmware formats them
    (``mp_fmt_float``) for values below 1e9: six digits after the point."""
    out = []
    for v in values:
        if v != v:
            out.append("nan")
        elif abs(v) == float("inf"):
            out.append("-inf" if v < 0 else "inf")
        else:
            out.append(f"{v:.6f}")
    return out


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
    dequantized: tuple[float, ...] = ()  # m-results as MLPerf Tiny reads it (when sent so)

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

