"""The serial protocol's pure logic: the line parser, list chunking and its reassembly, output
decoding, and the client against a scripted port (no firmware, no serial device)."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from bench_firmware import protocol
from bench_firmware.errors import BoardError, FirmwareError, ProtocolError, SerialTimeoutError
from bench_firmware.protocol import (
    LIST_LINE_MAX,
    DutClient,
    InferResult,
    Message,
    Output,
    assemble_list,
    format_list,
    format_output,
    parse_line,
    parse_output,
)

# --------------------------------------------------------------------------------------------
# parse_line

GOOD_LINES = [
    ("m-ready", Message("m", "ready", "", bracketed=False)),
    ("m-init-done", Message("m", "init-done", "", bracketed=False)),
    ("m-timestamp-mode-performance", Message("m", "timestamp-mode-performance", "", False)),
    ("m-lap-us-123", Message("m", "lap-us", "123", bracketed=False)),
    ("m-warmup-start-10", Message("m", "warmup-start", "10", bracketed=False)),
    ("m-cycles-truncated-100", Message("m", "cycles-truncated", "100", bracketed=False)),
    ("m-name-dut-[nucleo-f446re]", Message("m", "name-dut", "nucleo-f446re")),
    ("m-profile-[mcuprof-0.1.0]", Message("m", "profile", "mcuprof-0.1.0")),
    ("m-[Expecting 8 bytes]", Message("m", "", "Expecting 8 bytes")),
    ("e-[Unknown command: foo bar]", Message("e", "", "Unknown command: foo bar")),
    ("e-[Invalid hex digit '[']", Message("e", "", "Invalid hex digit '['")),
    ("e-[Invalid hex digit ']']", Message("e", "", "Invalid hex digit ']'")),
    ("m-results-[-128,0,127]", Message("m", "results", "-128,0,127")),
    ("m-results-[]", Message("m", "results", "")),
    ("m-layers-16/40-[1,2]", Message("m", "layers", "1,2", True, 16, 40)),
    ("m-input-crc-[0a1b2c3d]", Message("m", "input-crc", "0a1b2c3d")),
    ("m-plan-[status=crc,region=262144]", Message("m", "plan", "status=crc,region=262144")),
]


@pytest.mark.parametrize(("line", "expected"), GOOD_LINES)
def test_parse_good_lines(line: str, expected: Message) -> None:
    assert parse_line(line) == expected
    assert parse_line(line + "\r\n") == expected
    assert parse_line(line).format() == line  # the formatter is the parser's inverse


def test_message_helpers() -> None:
    assert parse_line("m-lap-us-123").number == 123
    assert parse_line("m-results-[1,-2,3]").items() == ["1", "-2", "3"]
    assert parse_line("m-results-[]").items() == []
    plan = parse_line("m-plan-[status=ok,model=0102030405060708,ops=3]")
    assert plan.fields(["ops"]) == {"status": "ok", "model": "0102030405060708", "ops": 3}
    assert parse_line("e-[x]").is_error
    assert parse_line("m-layers-0/9-[1]").is_chunk
    with pytest.raises(ProtocolError):
        parse_line("m-name-dut-[x]").number  # noqa: B018
    with pytest.raises(ProtocolError):
        parse_line("m-plan-[status]").fields()
    with pytest.raises(ProtocolError):
        parse_line("m-plan-[ops=x]").fields(["ops"])


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "hello",
        "m-",
        "mready",
        "x-[a]",
        "m-foo bar",
        "m-results-[1,2",
        "m-foo-bar[x]",
        "m-a-[x]y",
        "m-layers-5/3-[1]",
        "\x00\xffm-ready",
        "m-na\u00efve",
        "M-READY!",
    ],
)
def test_parse_garbage_raises(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_line(line)


# --------------------------------------------------------------------------------------------
# Lists


def _numbers(n: int) -> list[str]:
    return [str((i * 37) % 256 - 128) for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 10, 39, 40, 41, 100, 1000, 4000])
def test_format_list_round_trip(n: int) -> None:
    items = _numbers(n)
    lines = format_list("results", items)
    assert all(len(line) <= LIST_LINE_MAX for line in lines)
    messages = [parse_line(line) for line in lines]
    assert assemble_list(messages, "results") == items
    if len(lines) > 1:
        assert [m.start for m in messages][0] == 0
        assert all(m.total == n for m in messages)


def test_list_line_boundary() -> None:
    # "m-x-[" + items + "]" is 6 characters plus the items and commas.
    fits = ["9" * (LIST_LINE_MAX - 6)]
    assert format_list("x", fits) == [f"m-x-[{fits[0]}]"]
    over = ["9" * (LIST_LINE_MAX - 5)]
    lines = format_list("x", over)
    assert lines == [f"m-x-0/1-[{over[0]}]"]  # one item always goes out, even if long
    items = ["1"] * 200
    lines = format_list("layers", items)
    assert len(lines) > 1 and all(len(line) <= LIST_LINE_MAX for line in lines)
    assert max(len(line) for line in lines) >= LIST_LINE_MAX - 1  # chunks are filled


def test_empty_list() -> None:
    assert format_list("cycles", []) == ["m-cycles-[]"]
    assert assemble_list([parse_line("m-cycles-[]")], "cycles") == []


def test_assemble_list_detects_lost_chunks() -> None:
    messages = [parse_line(line) for line in format_list("results", _numbers(300))]
    assert len(messages) >= 3
    assert assemble_list(messages, "other") is None
    with pytest.raises(ProtocolError, match="chunk starting at"):
        assemble_list(messages[:1] + messages[2:], "results")  # a middle line lost
    with pytest.raises(ProtocolError, match="announces 300 items"):
        assemble_list(messages[:-1], "results")  # the last line lost
    with pytest.raises(ProtocolError, match="chunk starting at 0"):
        assemble_list(messages[1:], "results")  # the first line lost
    with pytest.raises(ProtocolError, match="separate lines"):
        assemble_list([parse_line("m-results-[1]"), messages[0]], "results")


# --------------------------------------------------------------------------------------------
# Outputs


def test_parse_output_int8() -> None:
    out = parse_output(["-128", "0", "127", "5"])
    assert out == Output("int8", (-128, 0, 127, 5), bytes([0x80, 0, 0x7F, 5]))
    assert format_output(out) == ["-128", "0", "127", "5"]
    assert parse_output([]) == Output("int8", (), b"")


def test_parse_output_float32() -> None:
    values = (1.0, -2.5, 0.125)
    raw = struct.pack("<3f", *values)
    words = [f"{w:08x}" for w in struct.unpack("<3I", raw)]
    assert words[0] == "3f800000"
    out = parse_output(words)
    assert out.dtype == "float32" and out.values == values and out.raw == raw
    assert format_output(out) == words


@pytest.mark.parametrize("items", [["1", "x"], ["128"], ["-129"], ["3f800000", "1"]])
def test_parse_output_rejects_junk(items: list[str]) -> None:
    with pytest.raises(ProtocolError):
        parse_output(items)


def test_infer_result_elapsed_wraps() -> None:
    out = Output("int8", (1,), b"\x01")
    assert InferResult(4, 1, (100, 500), out).elapsed_us == 400
    assert InferResult(4, 1, (100, 500), out).us_per_run == 100.0
    assert InferResult(1, 0, (2**32 - 10, 5), out).elapsed_us == 15
    assert InferResult(1, 0, (0, 1), out).output_bytes == b"\x01"


# --------------------------------------------------------------------------------------------
# The client against a scripted port

class ScriptedPort:
    """Stands in for a pyserial port: each command ('...%') written to it is answered by
    ``respond(command)``'s lines, then ``m-ready`` (unless ``respond`` returns None)."""

    def __init__(self, respond: Callable[[str], list[str] | None]) -> None:
        self.port = "scripted0"
        self._respond = respond
        self._rx = bytearray()
        self._tx = bytearray()
        self.commands: list[str] = []
        self.closed = False

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def read(self, n: int = 1) -> bytes:
        data = bytes(self._rx[:n])
        del self._rx[:n]
        return data

    def push(self, *lines: str) -> None:
        self._rx += "".join(f"{line}\r\n" for line in lines).encode()

    def write(self, data: bytes) -> int:
        self._tx += data
        while b"%" in self._tx:
            raw, _, rest = bytes(self._tx).partition(b"%")
            self._tx = bytearray(rest)
            command = raw.decode()
            self.commands.append(command)
            lines = self._respond(command)
            if lines is not None:
                self.push(*lines, "m-ready")
        return len(data)

    def close(self) -> None:
        self.closed = True


class FakeFirmware:
    """Just enough of the firmware for load_input, with a knob to corrupt bytes."""

    def __init__(self, input_bytes: int, corrupt: bool = False) -> None:
        self.input_bytes = input_bytes
        self.corrupt = corrupt
        self.buf = bytearray()

    def __call__(self, command: str) -> list[str]:
        words = command.split()
        if words[:2] == ["db", "load"]:
            self.buf.clear()
            return [f"m-[Expecting {words[2]} bytes]"]
        if words[0] == "db":
            data = bytes.fromhex(words[1])
            if self.corrupt and not self.buf:
                data = bytes([data[0] ^ 1]) + data[1:]
            self.buf += data
            return ["m-load-done"] if len(self.buf) == self.input_bytes else []
        if words[0] == "mp-crc":
            return [f"m-input-crc-[{zlib.crc32(bytes(self.buf)):08x}]"]
        return [f"e-[Unknown command: {command}]"]


def _client(respond: Callable[[str], list[str] | None], timeout_s: float = 1.0) -> tuple[
        DutClient, ScriptedPort]:
    port = ScriptedPort(respond)
    return DutClient(port, timeout_s=timeout_s), port  # type: ignore[arg-type]


def test_client_tolerates_garbage_lines() -> None:
    client, _ = _client(lambda c: ["\x7f\x00noise", "m-name-dut-[nucleo-f446re]"])
    assert client.name() == "nucleo-f446re"
    assert "< \\x7f\\x00noise" in client.transcript
    assert "> name%" in client.transcript


def test_missing_answer_quotes_the_garbage() -> None:
    client, _ = _client(lambda c: ["#$%garbled"])
    with pytest.raises(ProtocolError, match="garbled") as info:
        client.name()
    assert "m-name-dut" in str(info.value) and "baud" in str(info.value)


def test_error_line_raises_firmware_error() -> None:
    client, _ = _client(lambda c: ["e-[input incomplete: got 3 of 8 bytes]"])
    with pytest.raises(FirmwareError, match=r"infer 1 0%.*input incomplete: got 3 of 8"):
        client.infer(1, 0)


def test_no_answer_times_out_naming_command_and_port() -> None:
    client, _ = _client(lambda c: None, timeout_s=0.2)
    with pytest.raises(SerialTimeoutError, match=r"scripted0.*`name%`.*last lines"):
        client.name()


def test_infer_reassembles_chunked_results() -> None:
    values = [str(v) for v in range(-128, 128)] * 2
    answer = ["m-warmup-start-2", "m-warmup-done", "m-infer-start-5", "m-lap-us-1000",
              "m-lap-us-6000", "m-infer-done", *format_list("results", values)]
    client, _ = _client(lambda c: answer)
    result = client.infer(5, 2)
    assert result.lap_us == (1000, 6000) and result.elapsed_us == 5000
    assert result.output.values == tuple(int(v) for v in values)
    assert result.output.dtype == "int8"


def test_infer_with_a_lost_chunk_fails() -> None:
    values = [str(v) for v in range(-128, 128)]
    lines = format_list("results", values)
    answer = ["m-warmup-start-0", "m-warmup-done", "m-infer-start-1", "m-lap-us-1",
              "m-lap-us-2", "m-infer-done", *lines[:1], *lines[2:]]
    client, _ = _client(lambda c: answer)
    with pytest.raises(ProtocolError, match="lost"):
        client.infer(1, 0)


def test_cycles_and_layers() -> None:
    cycles = [str(1_000_000 + i) for i in range(64)]
    layers = [str(123_456 * i) for i in range(120)]

    def respond(command: str) -> list[str]:
        if command == "mp-cycles":
            return [*format_list("cycles", cycles), "m-cycles-truncated-100"]
        return format_list("layers", layers)

    client, _ = _client(respond)
    assert client.cycles() == [int(c) for c in cycles]
    assert client.layer_cycles() == [int(v) for v in layers]


def test_load_input_ok() -> None:
    data = bytes(range(100))
    client, port = _client(FakeFirmware(len(data)))
    client.load_input(data)
    db_lines = [c for c in port.commands if c.startswith("db ") and c != "db load 100"]
    assert len(db_lines) == 4  # 31 bytes a line
    assert all(len(c) <= 80 for c in port.commands)
    assert port.commands[-1] == "mp-crc"


def test_load_input_detects_corruption() -> None:
    data = bytes(range(100))
    client, _ = _client(FakeFirmware(len(data), corrupt=True))
    with pytest.raises(ProtocolError, match=r"corrupted: sent 100 bytes with CRC-32 "
                                            rf"{zlib.crc32(data):08x}, the board computed"):
        client.load_input(data)


def test_commands_too_long_are_refused_before_sending() -> None:
    client, port = _client(lambda c: [])
    with pytest.raises(ProtocolError, match="at most 80"):
        client.command("x" * 81)
    with pytest.raises(ProtocolError, match="without '%'"):
        client.command("name%")
    assert port.commands == []


def test_stray_lines_between_commands_are_not_taken_for_answers() -> None:
    client, port = _client(lambda c: ["m-name-dut-[good]"])
    port.push("m-name-dut-[stale]", "m-ready")
    assert client.name() == "good"
    assert "< m-name-dut-[stale]" in client.transcript


def test_sync_consumes_late_answers() -> None:
    client, port = _client(lambda c: [] if c == "" else ["m-name-dut-[good]"])
    port.push("m-timestamp-mode-performance", "m-init-done")  # a banner, half read
    client.sync()
    assert client.name() == "good"


def test_wait_ready_reads_the_banner() -> None:
    client, port = _client(lambda c: [])
    port.push("m-timestamp-mode-performance", "boot noise", "m-init-done", "m-ready")
    boot = client.wait_ready(timeout_s=1.0)
    assert [m.name for m in boot] == ["timestamp-mode-performance", "init-done"]
    assert client.boot_lines[-1] == "m-ready"


def test_wait_ready_timeout_hints_at_baud_rate() -> None:
    client, port = _client(lambda c: [])
    port.push("\x12\x34garbage")
    with pytest.raises(SerialTimeoutError, match="baud rate"):
        client.wait_ready(timeout_s=0.2)


def test_open_missing_port_is_a_board_error() -> None:
    with pytest.raises(BoardError, match="Could not open serial port /dev/no-such-tty"):
        DutClient.open("/dev/no-such-tty")


def test_open_loop_url_and_time_out() -> None:
    # loop:// echoes what is sent; "name%" has no newline, so no answer ever comes.
    with DutClient.open("loop://", timeout_s=0.2) as client:
        with pytest.raises(SerialTimeoutError, match=r"loop://.*`name%`"):
            client.name()


# --------------------------------------------------------------------------------------------
# One protocol for both sides


def test_constants_match_the_firmware() -> None:
    firmware = Path(protocol.__file__).parents[1] / "firmware"
    header = (firmware / "protocol" / "mp_protocol.h").read_text()
    runtime = (firmware / "include" / "mp_runtime.h").read_text()

    def define(text: str, name: str) -> str:
        found = re.search(rf"#define {name} (\S+)", text)
        assert found, name
        return found.group(1).strip('"')

    assert int(define(header, "MP_CMD_MAX")) == protocol.COMMAND_MAX
    assert int(define(header, "MP_LIST_LINE_MAX")) == protocol.LIST_LINE_MAX
    assert int(define(runtime, "MP_MAX_RUNS")) == protocol.MAX_RUNS
    pyproject = (firmware.parent.parent / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version and define(header, "MP_FIRMWARE_VERSION") == version.group(1)
