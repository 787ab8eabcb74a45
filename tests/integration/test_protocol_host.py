"""The serial protocol end to end: the host build of the firmware (real protocol, runtime and
kernels, ``mcuprof-host PLAN``) driven by :class:`DutClient` over a pty and over
``socket://``.

Most tests run hand-made plans of RESHAPE operators (copies), whose outputs are known without
an oracle; ``test_zoo_model_*`` run a compiled zoo model and compare with the runtime run
directly (``bench_firmware.host.run_plan``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench_firmware import plan_format as pf
from bench_firmware.errors import BoardError, FirmwareError, McuprofError, ProtocolError
from bench_firmware.protocol import (
    DB_CHUNK_BYTES,
    LIST_LINE_MAX,
    MAX_RUNS,
    DutClient,
    HostDut,
    Transport,
    format_dequantized,
    format_list,
)
from bench_firmware.protocol.anomaly import anomaly_score, quantize_features

TRANSPORTS: tuple[Transport, ...] = ("pty", "tcp")
MODEL_ID = bytes.fromhex("0123456789abcdef")


def _align(n: int) -> int:
    return -(-n // pf.ALIGN) * pf.ALIGN


def copy_plan(input_bytes: int = 8, *, n_ops: int = 1, reuse_input: bool = False,
              float_io: bool = False, arena_bytes: int | None = None,
              mlperf_name: str | None = None) -> bytes:
    """A valid plan of RESHAPE operators chained input → t1 → ... → output: the output equals
    the input. ``reuse_input``: two operators, the second writing its output one byte into the
    input's space, as a memory planner may once the input is consumed; run twice without a
    fresh input, the output shifts."""
    size = input_bytes
    if reuse_input:
        offsets, n_ops = [0, _align(size + 1), 1], 2
    else:
        offsets = [k * _align(size) for k in range(n_ops + 1)]
    elem = 4 if float_io else 1
    tensors = b"".join(
        pf.TENSOR.pack(arena_off=off, bytes=size, shape=[1, 1, 1, size // elem],
                       type=pf.TYPE_CODES["float32" if float_io else "int8"], rank=2,
                       zero_point=-1, scale=0.5)
        for off in offsets)
    tensors_off = pf.HEADER.size
    ops_off = _align(tensors_off + len(tensors))
    data_off = _align(ops_off + n_ops * pf.OP.size)
    ops, data = b"", b""
    for i in range(n_ops):
        inputs_off = data_off + len(data)
        data += struct.pack("<H", i).ljust(pf.ALIGN, b"\0")
        ops += pf.OP.pack(code=pf.OP_CODES["RESHAPE"], n_inputs=1, output=i + 1,
                          inputs_off=inputs_off)
    body = (tensors.ljust(ops_off - tensors_off, b"\0") + ops.ljust(data_off - ops_off, b"\0")
            + data)
    flags = 3 if float_io else 0  # MP_FLAG_FLOAT_INPUT | MP_FLAG_FLOAT_OUTPUT
    flags |= pf.mlperf_flags(mlperf_name)
    header = pf.HEADER.pack(
        magic=list(pf.MAGIC), version=pf.VERSION, header_bytes=pf.HEADER.size,
        total_bytes=pf.HEADER.size + len(body), crc32=0, model_id=list(MODEL_ID), board_code=0,
        n_tensors=len(offsets), n_ops=n_ops, input_tensor=0, output_tensor=len(offsets) - 1,
        flags=flags,
        arena_bytes=arena_bytes if arena_bytes is not None else max(offsets) + size,
        tensors_off=tensors_off, ops_off=ops_off)
    return _with_crc(header + body)


def _with_crc(plan: bytes) -> bytes:
    """``plan`` with its CRC field set (the CRC-32 of bytes [16, end))."""
    out = bytearray(plan)
    out[12:16] = struct.pack("<I", zlib.crc32(bytes(out[pf.CRC_START:])))
    return bytes(out)


@pytest.fixture(scope="module")
def host_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host executable, built once for this module by the build driver."""
    from bench_firmware.build import build_host

    return build_host("exe", tmp_path_factory.mktemp("host-build"))


@pytest.fixture(params=TRANSPORTS)
def dut(request: pytest.FixtureRequest, host_exe: Path) -> Iterator[DutClient]:
    """A client on the host firmware running an 8-byte copy plan, over a pty or TCP."""
    with HostDut(copy_plan(8), exe=host_exe, transport=request.param) as client:
        yield client


def _input(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# --------------------------------------------------------------------------------------------


def test_boot_identity_and_plan(dut: DutClient) -> None:
    assert dut.boot_lines[0] == "m-timestamp-mode-performance"
    assert dut.boot_lines[-2:] == ["m-init-done", "m-ready"]
    assert dut.name() == "host"
    assert dut.profile() == {"firmware": "mcuprof-0.1.0", "model": MODEL_ID.hex()}
    info = dut.info()
    assert info["board"] == "host" and info["code"] == 0 and info["plan"] == "ok"
    assert info["max-runs"] == MAX_RUNS and info["kernels"] in ("ref", "dsp")
    plan = dut.plan_status()
    assert plan["status"] == "ok" and plan["model"] == MODEL_ID.hex()
    assert plan["input"] == 8 and plan["output"] == 8 and plan["ops"] == 1
    assert plan["capacity"] == info["arena"] and plan["input-type"] == "int8"
    t0 = dut.timestamp()
    assert dut.timestamp() >= t0


def test_upload_infer_results(dut: DutClient) -> None:
    data = bytes([0x80, 0xFF, 0, 1, 2, 0x7F, 0x10, 0x20])
    dut.load_input(data)
    assert dut.input_crc() == zlib.crc32(data)
    assert dut.buffer() == data
    result = dut.infer(5, 2)
    assert result.runs == 5 and result.warmup == 2
    assert result.lap_us[1] >= result.lap_us[0] and result.elapsed_us >= 0
    assert result.output.values == tuple(np.frombuffer(data, np.int8).tolist())
    assert result.output_bytes == data and result.warnings == ()
    assert dut.results() == result.output
    assert len(dut.cycles()) == 5
    assert len(dut.layer_cycles()) == 1
    answer = dut.command("infer 1 0")  # the firmware's own line order
    assert [m.name for m in answer.messages] == [
        "warmup-start", "warmup-done", "infer-start", "lap-us", "lap-us", "infer-done", "results"]
    # MLPerf's defaults: N=1, W=10
    answer = dut.command("infer")
    assert answer.one("warmup-start").number == 10 and answer.one("infer-start").number == 1


def test_kernel_switching(dut: DutClient) -> None:
    assert dut.set_kernels("ref") == "ref" and dut.kernels() == "ref"
    assert dut.set_kernels("dsp") == "dsp" and dut.kernels() == "dsp"
    with pytest.raises(McuprofError, match="unknown kernel path"):
        dut.set_kernels("fast")
    with pytest.raises(FirmwareError, match="expected ref or dsp, not 'fast'"):
        dut.command("mp-kernels fast")
    dut.load_input(bytes(8))
    assert dut.infer(1, 0).output_bytes == bytes(8)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dropped_hex_digit_is_detected(host_exe: Path, transport: Transport,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with HostDut(copy_plan(40), exe=host_exe, transport=transport) as client:
        _drop_from_second_db_line(client, monkeypatch, digits=1)
        with pytest.raises(ProtocolError, match="corrupted.*Insufficent number of hex digits"):
            client.load_input(_input(40))
        with pytest.raises(FirmwareError, match="input incomplete: got 31 of 40 bytes"):
            client.infer(1, 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dropped_byte_is_detected(host_exe: Path, transport: Transport,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A whole byte (two hex digits) lost: every line still parses; the CRC tells.
    data = _input(40)
    with HostDut(copy_plan(40), exe=host_exe, transport=transport) as client:
        _drop_from_second_db_line(client, monkeypatch, digits=2)
        with pytest.raises(ProtocolError, match=rf"sent 40 bytes with CRC-32 "
                                                rf"{zlib.crc32(data):08x}, the board computed"):
            client.load_input(data)


def _drop_from_second_db_line(client: DutClient, monkeypatch: pytest.MonkeyPatch,
                              digits: int) -> None:
    """Makes the port lose ``digits`` hex digits from the second `db <hex>` line."""
    port = client.port
    real_write = port.write
    seen = {"db": 0}

    def lossy_write(data: bytes) -> int | None:
        if data.startswith(b"db ") and not data.startswith(b"db load"):
            seen["db"] += 1
            if seen["db"] == 2:
                data = data[:10] + data[10 + digits:]
        return real_write(data)

    monkeypatch.setattr(port, "write", lossy_write)


def test_unknown_and_malformed_commands(dut: DutClient) -> None:
    answer = dut.command("bogus 1 2", check=False)
    assert [m.payload for m in answer.errors] == ["Unknown command: bogus 1 2"]
    with pytest.raises(FirmwareError, match=r"Unknown command: mp-crcx"):
        dut.command("mp-crcx")
    assert dut.command("name extra", check=False).errors[0].payload == (
        "name: too many arguments")
    assert dut.command("db 12g4", check=False).errors[0].payload == "Invalid hex digit 'g'"
    assert dut.command("db", check=False).errors[0].payload.startswith("db: expected")
    assert dut.command("infer x", check=False).errors[0].payload == "infer: bad run count 'x'"
    assert dut.command("infer 0 0", check=False).errors[0].payload.endswith("at least 1")
    assert dut.command("db load 9", check=False).errors[0].payload == (
        "db load: 9 bytes exceed the model input of 8 bytes")
    assert dut.command("db load 0", check=False).errors[0].payload == (
        "db load: N must be at least 1 byte")
    assert dut.command("db 00", check=False).errors[0].payload.startswith(
        "db: no upload announced")
    # \r, \n and NUL are ignored; an empty command answers m-ready alone
    assert dut.command("\r\nna\nme", raw=True).one("name-dut").payload == "host"
    assert dut.command("", raw=True).messages == []
    assert dut.name() == "host"


def test_too_long_command(dut: DutClient) -> None:
    with pytest.raises(ProtocolError, match="at most 80"):
        dut.command("db " + "00" * 40)
    answer = dut.command("db " + "00" * 40, raw=True, check=False)
    assert [m.payload for m in answer.errors] == ["command too long"]
    assert dut.command("x" * 80, check=False).errors[0].payload.startswith("Unknown command")
    assert dut.name() == "host"  # the rest was discarded up to the '%'


def test_too_many_bytes(dut: DutClient) -> None:
    dut.command("db load 8")
    dut.command("db 0001020304")
    answer = dut.command("db 05060708", check=False)
    assert answer.errors[0].payload == "db: 4 more bytes would exceed the 8 expected (5 received)"
    assert dut.command("db 050607").one("load-done")


def test_infer_before_upload_is_complete(dut: DutClient) -> None:
    with pytest.raises(FirmwareError, match=r"input incomplete: got 0 of 8 bytes"):
        dut.infer(1, 0)
    for command in ("results", "mp-cycles", "mp-layers"):
        with pytest.raises(FirmwareError, match="run infer first"):
            dut.command(command)
    dut.command("db load 8")
    dut.command("db 01020304")
    with pytest.raises(FirmwareError, match=r"input incomplete: got 4 of 8 bytes"):
        dut.infer(1, 0)
    dut.command("db 05060708")
    assert dut.infer(1, 0).output_bytes == bytes([1, 2, 3, 4, 5, 6, 7, 8])
    dut.command("db load 8")  # a new upload forgets the results
    with pytest.raises(FirmwareError, match="run infer first"):
        dut.results()


def test_db_load_takes_any_size_up_to_the_input(dut: DutClient) -> None:
    """As the MLPerf Tiny reference: `db load N` for N up to the buffer fills its first N
    bytes; the rest keep what they held."""
    dut.load_input(bytes([1, 2, 3, 4, 5, 6, 7, 8]))
    assert dut.infer(1, 0).output_bytes == bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert dut.command("db load 3").one("").payload == "Expecting 3 bytes"
    with pytest.raises(FirmwareError, match=r"input incomplete: got 0 of 3 bytes"):
        dut.infer(1, 0)
    assert dut.command("db 090a0b").one("load-done")
    assert dut.infer(1, 0).output_bytes == bytes([9, 10, 11, 4, 5, 6, 7, 8])


@pytest.mark.parametrize("name", ["kws01", "ad01"])
def test_profile_answers_the_eembc_model_name(host_exe: Path, name: str) -> None:
    with HostDut(copy_plan(8, mlperf_name=name), exe=host_exe) as client:
        assert client.profile() == {"firmware": "mcuprof-0.1.0", "model": name}
        assert client.plan_status()["model"] == MODEL_ID.hex()  # the id stays in mp-plan


def test_anomaly_detection_takes_float32_and_answers_one_score(host_exe: Path) -> None:
    """An ad01 plan whose int8 output has the input's size is scored as the EEMBC AD reference
    DUT does: the input may come as float32 values, quantized on the board, and m-results is
    one anomaly score, the mean squared error between the dequantized output and the input.
    The copy plan's output is its input, so the score is the quantization error alone."""
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 20.0, 24).astype(np.float32)
    values[:4] = [0.25, -0.25, 0.75, 1000.0]  # ties round away from zero; one saturates
    scale, zero_point = 0.5, -1  # copy_plan's quantization
    with HostDut(copy_plan(24, mlperf_name="ad01"), exe=host_exe) as client:
        client.load_input(values.tobytes())  # 96 bytes: 4 per element
        assert client.buffer() == values.tobytes()
        result = client.infer(2, 1)
        quantized = quantize_features(values, scale, zero_point)
        assert result.output_bytes == quantized
        assert quantized[:4] == bytes([0, 0xFE, 1, 127])  # 0.5 -> 1 - 1; -0.5 -> -1 - 1
        expected = anomaly_score(quantized, scale, zero_point, values)
        assert expected > 0
        assert result.dequantized == pytest.approx((expected,), rel=1e-6, abs=1e-6)
        assert client.command("results").list_items("results") == [f"{expected:.6f}"]
        # An int8 upload is scored against itself dequantized: a copy scores 0.
        client.load_input(quantized)
        assert client.infer(1, 0).dequantized == (0.0,)
        with pytest.raises(FirmwareError, match=r"of 24 bytes \(or 96 bytes of float32 values"):
            client.command("db load 50")


def test_anomaly_score_needs_an_autoencoder(host_exe: Path) -> None:
    """ad01 with float32 I/O (or any other name) keeps the dequantized vector and int8-only
    uploads."""
    with HostDut(copy_plan(8, mlperf_name="kws01"), exe=host_exe) as client:
        client.load_input(bytes(range(8)))
        assert len(client.infer(1, 0).dequantized) == 8
        with pytest.raises(FirmwareError, match=r"exceed the model input of 8 bytes$"):
            client.command("db load 32")
    with HostDut(copy_plan(16, float_io=True, mlperf_name="ad01"), exe=host_exe) as client:
        client.load_input(np.arange(4, dtype=np.float32).tobytes())
        assert client.infer(1, 0).dequantized == (0.0, 1.0, 2.0, 3.0)


def test_energy_timestamp_mode(dut: DutClient) -> None:
    """EEMBC energy mode: timestamps are pin edges only, no m-lap-us lines."""
    assert dut.timestamp_mode() == "performance"
    assert dut.timestamp_mode("energy") == "energy"
    assert dut.command("timestamp").messages == []
    dut.load_input(bytes(range(8)))
    result = dut.infer(2, 1)
    assert result.lap_us == (0, 0) and result.output_bytes == bytes(range(8))
    assert not any(t.startswith("< m-lap-us") for t in dut.transcript)
    assert dut.reload_plan()["status"] == "ok"
    assert dut.timestamp_mode() == "energy"  # a reload keeps it
    with pytest.raises(FirmwareError, match="expected energy or performance"):
        dut.command("mp-timestamp-mode idle")
    assert dut.timestamp_mode("performance") == "performance"
    assert dut.timestamp() >= 0


def test_reload(dut: DutClient) -> None:
    dut.load_input(bytes(8))
    dut.infer(1, 0)
    plan = dut.reload_plan()
    assert plan["status"] == "ok"
    with pytest.raises(FirmwareError, match="input incomplete"):
        dut.infer(1, 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_long_lists_are_chunked(host_exe: Path, transport: Transport) -> None:
    n_out, n_ops = 1000, 200
    with HostDut(copy_plan(n_out, n_ops=n_ops), exe=host_exe, transport=transport) as client:
        data = _input(n_out, seed=3)
        client.load_input(data)
        assert len([t for t in client.transcript if t.startswith("> db ")]) == (
            1 + -(-n_out // DB_CHUNK_BYTES))
        assert client.buffer() == data
        result = client.infer(MAX_RUNS + 6, 0)
        assert result.output_bytes == data
        layers = client.layer_cycles()
        assert len(layers) == n_ops
        cycles = client.cycles()
        assert len(cycles) == MAX_RUNS
        answer = client.command("mp-cycles")
        assert answer.one("cycles-truncated").number == MAX_RUNS + 6

        # The firmware's chunking is format_list's, line for line; m-results stays one line,
        # however long, as the MLPerf Tiny runner expects, and carries the output dequantized
        # (this plan's output has scale 0.5, zero point -1); mp-results the raw values, chunked.
        received = [t[2:] for t in client.transcript if t.startswith("< m-")]
        values = [str(v) for v in np.frombuffer(data, np.int8)]
        result_lines = [t for t in received if t.startswith("m-results-")]
        assert result_lines[-1] == "m-results-[" + ",".join(
            format_dequantized((int(v) + 1) * 0.5 for v in values)) + "]"
        assert len(result_lines[-1]) > LIST_LINE_MAX
        assert result.dequantized == tuple((int(v) + 1) * 0.5 for v in values)
        raw_lines = [t for t in received if t.startswith("m-raw-results-")]
        assert raw_lines[-len(format_list("raw-results", values)):] == format_list(
            "raw-results", values)
        layer_lines = [t for t in received if t.startswith("m-layers-")]
        assert len(layer_lines) > 1
        assert layer_lines == format_list("layers", [str(v) for v in layers])
        assert all(len(t) <= LIST_LINE_MAX for t in received if not t.startswith("m-results-"))


def test_float_output(host_exe: Path) -> None:
    values = np.array([1.0, -2.5, 3.25e-3, np.inf], dtype=np.float32)
    with HostDut(copy_plan(16, float_io=True), exe=host_exe) as client:
        plan = client.plan_status()
        assert plan["input-type"] == "float32" and plan["output-type"] == "float32"
        client.load_input(values.tobytes())
        result = client.infer(2, 1)
        assert result.output.dtype == "float32"
        assert result.output.values == tuple(values.tolist())
        assert result.output_bytes == values.tobytes()
        assert client.command("mp-results").messages[0].format() == (
            "m-raw-results-[3f800000,c0200000,3b54fdf4,7f800000]")
        assert client.command("results").messages[0].format() == (
            "m-results-[1.000000,-2.500000,0.003250,inf]")
        assert result.dequantized == (1.0, -2.5, 0.00325, float("inf"))


def test_dequantized_results_format(host_exe: Path) -> None:
    """m-results items as the runner's float() reads them: fractions, large values in
    scientific form, nan and infinities; mp-results keeps the exact bits."""
    values = np.array([1e10, np.nan, -0.0, 123456.789, -1e-7, 0.99999994, 3.4e38, -np.inf],
                      dtype=np.float32)
    with HostDut(copy_plan(32, float_io=True), exe=host_exe) as client:
        client.load_input(values.tobytes())
        result = client.infer(1, 0)
        items = client.command("results").list_items("results")
    assert result.output_bytes == values.tobytes()
    assert items[1] == "nan" and items[7] == "-inf" and items[2] == "0.000000"
    assert items[4] == "-0.000000" and items[5] == "1.000000"
    assert items[0] == "1.000000e10" and items[3] == "123456.789063"  # half up
    for item, v in zip(items, values.tolist(), strict=True):
        if not np.isnan(v):
            assert float(item) == pytest.approx(v, rel=1e-5, abs=1e-6)


def test_input_reused_by_the_plan_is_restored(host_exe: Path) -> None:
    data = bytes(range(1, 17))
    with HostDut(copy_plan(16, reuse_input=True), exe=host_exe) as client:
        client.load_input(data)
        for _ in range(2):
            result = client.infer(3, 2)
            assert result.output_bytes == data and result.warnings == ()
        assert client.buffer() == data


def test_input_reused_without_room_warns(host_exe: Path) -> None:
    with HostDut(copy_plan(8), exe=host_exe) as client:
        capacity = int(client.info()["arena"])
    data = bytes(range(1, 17))
    # The plan claims the whole arena: no room to keep a copy of the input.
    plan = copy_plan(16, reuse_input=True, arena_bytes=capacity)
    with HostDut(plan, exe=host_exe) as client:
        client.load_input(data)
        first = client.infer(1, 0)
        assert first.output_bytes == data and first.warnings == ()
        second = client.infer(1, 0)
        assert second.output_bytes != data
        assert second.warnings and "overwrites its input" in second.warnings[0]


def _bad_version(plan: bytes) -> bytes:
    out = bytearray(plan)
    out[4:6] = struct.pack("<H", pf.VERSION + 1)
    return bytes(out)


def _bad_board(plan: bytes) -> bytes:
    out = bytearray(plan)
    out[24:26] = struct.pack("<H", 1)
    return _with_crc(bytes(out))


@pytest.mark.parametrize(
    ("plan", "status", "message"),
    [
        (b"", "magic", "bad magic"),
        (bytes(range(256)) * 4, "magic", "bad magic"),
        (copy_plan(8)[:-8], "size", "size"),
        (copy_plan(8)[:-1] + b"\x01", "crc", "crc mismatch"),
        (_bad_version(copy_plan(8)), "version", "version"),
    ],
    ids=["empty", "garbage", "truncated", "corrupt", "version"],
)
def test_bad_model_region(host_exe: Path, plan: bytes, status: str, message: str) -> None:
    with HostDut(plan, exe=host_exe) as client:
        assert f"m-plan-[status={status}," in client.boot_lines[1]
        with pytest.raises(FirmwareError, match=rf"no valid plan: plan: .*{message}"):
            client.plan_status()
        with pytest.raises(FirmwareError, match="no valid plan"):
            client.reload_plan()
        assert client.info()["plan"] == status
        assert client.profile()["model"] is None
        assert client.name() == "host"
        with pytest.raises(FirmwareError, match=rf"db load: no valid plan \(.*{message}"):
            client.load_input(bytes(8))
        with pytest.raises(FirmwareError, match="infer: no valid plan"):
            client.infer(1, 0)
        answer = client.command("mp-plan", check=False)
        assert answer.one("plan").fields()["status"] == status


def test_other_boards_plans_load_on_the_host(host_exe: Path) -> None:
    # The host build runs any board's plan (it exists to check outputs).
    with HostDut(_bad_board(copy_plan(8)), exe=host_exe) as client:
        assert client.plan_status()["board"] == 1


def test_host_dut_reports_a_dead_program(tmp_path: Path) -> None:
    fake = tmp_path / "crashes"
    fake.write_text("#!/bin/sh\necho 'cannot start: no luck' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BoardError, match=r"exited with status 3.*no luck"):
        with HostDut(copy_plan(8), exe=fake, boot_timeout_s=1.0):
            pass


def test_host_dut_serves_without_a_client(host_exe: Path) -> None:
    dut = HostDut(copy_plan(8), exe=host_exe, transport="tcp")
    url = dut.start()
    try:
        assert url.startswith("socket://127.0.0.1:")
        client = dut.connect()
        assert client.name() == "host"
    finally:
        dut.stop()
    assert dut.returncode == 0


def test_host_dut_takes_a_plan_file(host_exe: Path, tmp_path: Path) -> None:
    path = tmp_path / "copy.plan"
    path.write_bytes(copy_plan(8))
    with HostDut(path, exe=host_exe) as client:
        assert client.plan_status()["bytes"] == path.stat().st_size


def test_host_dut_builds_its_own_executable() -> None:
    with HostDut(copy_plan(8)) as client:
        assert client.name() == "host"


# --------------------------------------------------------------------------------------------
# A real model


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ds_cnn_kws", "float_io", "mobilenetv2_block"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_zoo_model_over_serial(zoo: dict[str, Path], host_exe: Path, name: str,
                               transport: Transport) -> None:
    from bench_firmware.boards import HOST
    from bench_firmware.compiler import compile_model
    from bench_firmware.host import run_plan
    from tests.zoo import random_input

    model = zoo[name].read_bytes()
    plan = compile_model(model, HOST, name=name)
    x = random_input(model, 0)
    dtype = np.float32 if plan.output_dtype == "float32" else np.int8
    out_bytes = int(np.prod(plan.output_shape)) * np.dtype(dtype).itemsize
    with HostDut(plan.data, exe=host_exe, transport=transport) as client:
        status = client.plan_status()
        assert status["model"] == plan.model_id and status["bytes"] == plan.plan_bytes
        assert status["output-type"] == plan.output_dtype
        client.load_input(np.ascontiguousarray(x).tobytes())
        for kernels in ("ref", "dsp"):
            client.set_kernels(kernels)
            result = client.infer(3, 1)
            expected = run_plan(plan.data, x, output_bytes=out_bytes, kernels=kernels)
            assert result.output_bytes == expected, f"{name} {kernels}"
            assert result.output.dtype == plan.output_dtype
            assert len(client.layer_cycles()) == status["ops"] == len(plan.layers)
