"""The Renode backend end to end.

Two layers:

- ``test_renode_*`` run the real firmware images in real Renode, each board with zoo models,
  outputs bit for bit equal to TFLite Micro. Renode is not on any package registry this project
  installs from, so they are skipped unless ``renode`` is on PATH or ``MCUPROF_RENODE`` is set
  (docs/renode.md says how to install it).
- ``test_stand_in_*`` always run: the backend's process handling (launch, connect, check the
  board, load plans through the monitor or by restarting, shut down, report failures) against a
  stand-in ``renode`` executable written below. It runs the session script's commands the way
  Renode's monitor would, serves the UART socket and answers the serial protocol with a toy
  firmware (it checks plans as the firmware does: magic, size, CRC, board). It is not Renode:
  it proves the orchestration, not the platform descriptions.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench_firmware.backends.renode import CYCLE_SOURCE, RenodeBoard, find_renode
from bench_firmware.boards import BOARDS, Board
from bench_firmware.compiler import compile_model
from bench_firmware.errors import BoardError

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MODEL = REPO_ROOT / "bench_firmware" / "samples" / "kws_tiny.tflite"
BOARD_NAMES = sorted(BOARDS)

HAVE_RENODE = shutil.which("renode") is not None or bool(os.environ.get("MCUPROF_RENODE"))
needs_renode = pytest.mark.skipif(
    shutil.which("renode") is None and not os.environ.get("MCUPROF_RENODE"),
    reason="Renode is not installed: it is not available from the package registries here; "
    "see docs/renode.md",
)
needs_arm_gcc = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="arm-none-eabi-gcc is not installed (apt-get install gcc-arm-none-eabi "
    "libnewlib-arm-none-eabi)",
)


# --------------------------------------------------------------------------------------------
# Real Renode

REAL_MODELS = ("ds_cnn_kws", "mobilenetv2_block")  # the second one is loaded into the same machine


@pytest.mark.slow
@needs_renode
@needs_arm_gcc
@pytest.mark.parametrize("board_name", BOARD_NAMES)
def test_renode_runs_zoo_models_bit_exact(zoo: dict[str, Path], board_name: str,
                                          tmp_path: Path) -> None:
    from tests.oracle import tflm_run
    from tests.zoo import random_input

    board = BOARDS[board_name]
    with RenodeBoard(f"renode:{board_name}", workdir=tmp_path / "session") as renode:
        assert renode.cycle_source == CYCLE_SOURCE
        for name in REAL_MODELS:
            model = zoo[name].read_bytes()
            plan = compile_model(model, board, name=name)
            status = renode.load_plan(plan.data)
            assert status["status"] == "ok" and status["model"] == plan.model_id
            assert status["bytes"] == plan.plan_bytes
            x = random_input(model, seed=0)
            expected = np.asarray(tflm_run(model, x)).astype(np.int8).reshape(-1)
            for kernels in ("dsp", "ref"):
                result = renode.run(x.tobytes(), runs=2, warmup=1, kernels=kernels)
                got = np.frombuffer(result.output, dtype=np.int8)
                mismatch = np.flatnonzero(got != expected)
                assert mismatch.size == 0, (
                    f"{board_name} {name} {kernels}: {mismatch.size} of {got.size} outputs differ "
                    f"from TFLM; first at {mismatch[0]}: got {got[mismatch[0]]}, "
                    f"TFLM {expected[mismatch[0]]}")
                assert result.cycle_source == CYCLE_SOURCE
                assert len(result.cycles_per_run) == 2 and min(result.cycles_per_run) > 0
                # Renode is deterministic in instructions: both timed runs execute the same ones.
                assert max(result.cycles_per_run) - min(result.cycles_per_run) \
                    <= 0.01 * max(result.cycles_per_run)
                assert len(result.layer_cycles) == len(plan.layers)
                assert 0 < sum(result.layer_cycles) <= max(result.cycles_per_run)
                assert result.lap_us[1] > result.lap_us[0]


@pytest.mark.slow
@needs_renode
@needs_arm_gcc
def test_renode_cycles_are_instruction_counts_at_the_core_clock(tmp_path: Path) -> None:
    """The µs laps (CYCCNT / clock in MHz) and the cycle counts agree, and the counts scale
    with the work: a model that does more MACs takes more cycles."""
    board = BOARDS["nucleo-f446re"]
    model = SAMPLE_MODEL.read_bytes()
    plan = compile_model(model, board, name="kws_tiny")
    x = np.zeros(int(np.prod(plan.input_shape)), dtype=np.int8)
    with RenodeBoard("renode:nucleo-f446re", workdir=tmp_path / "session") as renode:
        renode.load_plan(plan.data)
        result = renode.run(x.tobytes(), runs=4, warmup=1)
    total_us = result.lap_us[1] - result.lap_us[0]
    per_run_cycles = sum(result.cycles_per_run)
    # The laps include the loop around the runs, a few hundred instructions at most.
    assert per_run_cycles <= total_us * board.clock_mhz * 1.01 + 1000
    assert per_run_cycles >= total_us * board.clock_mhz * 0.9
    # The work shows: even the DSP path, two MACs per SMLAD, needs more than an instruction per
    # four MACs once the loads and sign extensions are counted.
    assert per_run_cycles / len(result.cycles_per_run) > plan.macs / 4


def test_find_renode_is_what_the_skip_marker_checks() -> None:
    if HAVE_RENODE:
        assert find_renode().is_file()
    else:
        with pytest.raises(BoardError, match="Renode is not installed"):
            find_renode()


# --------------------------------------------------------------------------------------------
# The stand-in `renode`

STAND_IN = r'''
"""A stand-in for `renode --disable-xwt --plain --console SESSION.resc` (see test_renode.py).

Environment: STAND_IN_IGNORE_MONITOR=1 (never read stdin), STAND_IN_EXIT=<n> (exit at once),
STAND_IN_SCRIPT_ERROR=1 (fail the session script like a bad monitor command),
STAND_IN_BOARD=<name> (answer as another board), STAND_IN_LAUNCHES=<file> (append one line per
launch).
"""
import os
import re
import socket
import struct
import sys
import threading
import time
import zlib

from bench_firmware import plan_format as pf
from bench_firmware.boards import BOARDS

state = {"region": b"", "paused": False, "board": None, "clock": 0}
lock = threading.Lock()


def log(text):
    print(text, flush=True)


def load_binary(path, address):
    data = open(path, "rb").read()
    with lock:
        state["region"] = data
        state["address"] = address


def run_command(line):
    words = line.split()
    if not words or line.startswith(("#", ":")):
        return True
    if words[0] == "using":
        return True
    if words[:2] == ["mach", "create"]:
        state["board"] = line.split('"')[1][len("mcuprof-"):]
        return True
    if words[:2] == ["machine", "LoadPlatformDescription"]:
        return os.path.isfile(words[2][1:])
    if words[:2] == ["cpu", "PerformanceInMips"]:
        state["clock"] = int(words[2]) * 1000000
        return True
    if words[:2] == ["emulation", "SetGlobalAdvanceImmediately"]:
        return True
    if words[:2] == ["sysbus", "LoadELF"]:
        return os.path.isfile(words[2][1:])
    if words[:2] == ["cpu", "VectorTableOffset"]:
        return int(words[2], 0) == BOARDS[state["board"]].flash_base
    if words[:2] == ["sysbus", "LoadBinary"]:
        load_binary(words[2][1:], int(words[3], 0))
        return True
    if words[:2] == ["emulation", "CreateServerSocketTerminal"]:
        state["port"] = int(words[2])
        return words[3] == '"term"' and words[4] == "false"
    if words[:2] == ["connector", "Connect"]:
        return words[2].startswith("sysbus.") and words[3] == "term"
    if words[0] == "start":
        state["paused"] = False
        state["started"] = True
        return True
    if words[0] == "pause":
        state["paused"] = True
        return True
    if words[0] in ("quit", "q"):
        log("quitting")
        os._exit(0)
    return False


def run_script(path):
    lines = open(path).read().splitlines()
    macros, i = {}, 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if line.startswith("macro "):
            body = []
            i += 1  # the opening """
            while lines[i].strip() != '"""':
                body.append(lines[i].strip())
                i += 1
            i += 1
            macros[line.split()[1]] = body
            continue
        if line.startswith("runMacro $"):
            todo = macros[line.split("$")[1]]
        else:
            todo = [line]
        for command in todo:
            if os.environ.get("STAND_IN_SCRIPT_ERROR") and command.startswith("sysbus LoadELF"):
                command = "sysbus LoadELFF"
            if not run_command(command):
                log(f"There was an error executing command '{command}'")
                return False
    return True


def plan_status():
    board = BOARDS[state["board"]]
    with lock:
        region = state["region"]
    if len(region) < pf.HEADER.size or region[:4] != pf.MAGIC:
        return None, "magic"
    hdr = pf.HEADER.unpack(region)
    total = hdr["total_bytes"]
    if total > len(region):
        return None, "size"
    if zlib.crc32(region[pf.CRC_START:total]) != hdr["crc32"]:
        return None, "crc"
    if hdr["board_code"] != board.code:
        return None, "board"
    tensors = [pf.TENSOR.unpack(region, hdr["tensors_off"] + i * pf.TENSOR.size)
               for i in range(hdr["n_tensors"])]
    return {"model": bytes(hdr["model_id"]).hex(), "bytes": total, "ops": hdr["n_ops"],
            "input": tensors[hdr["input_tensor"]]["bytes"],
            "output": tensors[hdr["output_tensor"]]["bytes"]}, "ok"


class Firmware:
    def __init__(self):
        self.kernels = "dsp"
        self.expect = None
        self.input = b""
        self.plan = plan_status()[0]  # what the firmware validates at boot
        self.done = False
        self.runs = 0

    def answer(self, command):
        board = BOARDS[state["board"]]
        words = command.split()
        out = []
        if not words:
            pass
        elif words[0] == "name":
            out.append(f"m-name-dut-[{os.environ.get('STAND_IN_BOARD', board.name)}]")
        elif words[0] == "mp-info":
            name = os.environ.get("STAND_IN_BOARD", board.name)
            out.append(f"m-info-[board={name},code={board.code},clock={state['clock']},"
                       f"arena={board.arena_capacity},region={board.model_region_bytes},"
                       f"kernels={self.kernels},plan=ok,version=stand-in,max-runs=64,"
                       f"max-ops=256]")
        elif words[0] in ("mp-plan", "mp-reload"):
            status, token = plan_status()
            if words[0] == "mp-reload":
                self.plan, self.input, self.done = status, b"", False
            if status is None:
                out += [f"m-plan-[status={token},region={board.model_region_bytes}]",
                        f"e-[plan: {token}]"]
            else:
                out.append(f"m-plan-[status=ok,model={status['model']},board={board.code},"
                           f"ops={status['ops']},arena=0,capacity={board.arena_capacity},"
                           f"bytes={status['bytes']},input={status['input']},"
                           f"output={status['output']},input-type=int8,output-type=int8]")
        elif words[0] == "mp-kernels":
            if len(words) > 1:
                self.kernels = words[1]
            out.append(f"m-kernels-[{self.kernels}]")
        elif words[:2] == ["db", "load"]:
            if self.plan is None:
                out.append("e-[db load: no valid plan (not-loaded)]")
            else:
                self.expect, self.input = int(words[2]), b""
                out.append(f"m-[Expecting {self.expect} bytes]")
        elif words[0] == "db":
            self.input += bytes.fromhex(words[1])
            if len(self.input) == self.expect:
                out.append("m-load-done")
        elif words[0] == "mp-crc":
            out.append(f"m-input-crc-[{zlib.crc32(self.input):08x}]")
        elif words[0] == "infer":
            runs, warmup = int(words[1]), int(words[2])
            self.runs, self.done = runs, True
            output = [((self.input[i % len(self.input)] + i) & 0xFF) for i in
                      range(self.plan["output"])]
            signed = [v - 256 if v > 127 else v for v in output]
            out += [f"m-warmup-start-{warmup}", "m-warmup-done", f"m-infer-start-{runs}",
                    "m-lap-us-100", f"m-lap-us-{100 + 50 * runs}", "m-infer-done",
                    "m-results-[" + ",".join(map(str, signed)) + "]"]
        elif words[0] == "mp-cycles":
            out.append("m-cycles-[" + ",".join(["9000"] * min(self.runs, 64)) + "]")
        elif words[0] == "mp-layers":
            out.append("m-layers-[" + ",".join(["100"] * self.plan["ops"]) + "]")
        else:
            out.append(f"e-[Unknown command: {command}]")
        out.append("m-ready")
        return "".join(line + "\r\n" for line in out).encode()


def serve(port):
    server = socket.create_server(("127.0.0.1", port))
    firmware = Firmware()
    while True:
        conn, _ = server.accept()
        buf = b""
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                buf += data
                while b"%" in buf:
                    raw, _, buf = buf.partition(b"%")
                    command = raw.replace(b"\r", b"").replace(b"\n", b"").decode().strip()
                    while state["paused"]:
                        time.sleep(0.01)
                    conn.sendall(firmware.answer(command))


def monitor():
    for line in sys.stdin:
        if not run_command(line.strip()):
            log(f"There was an error executing command '{line.strip()}'")


def main():
    args = sys.argv[1:]
    assert args[:3] == ["--disable-xwt", "--plain", "--console"], args
    if os.environ.get("STAND_IN_LAUNCHES"):
        with open(os.environ["STAND_IN_LAUNCHES"], "a") as f:
            f.write(" ".join(args) + "\n")
    log("Renode, version stand-in")
    if os.environ.get("STAND_IN_EXIT"):
        log("stand-in told to exit")
        sys.exit(int(os.environ["STAND_IN_EXIT"]))
    # Like Renode: a failing script stops where it failed; the monitor goes on reading.
    if run_script(args[3]) and state.get("started"):
        threading.Thread(target=serve, args=(state["port"],), daemon=True).start()
    if not os.environ.get("STAND_IN_IGNORE_MONITOR"):
        monitor()
    while True:
        time.sleep(1)


main()
'''


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in ``renode`` executable (it imports bench_firmware from this checkout)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p))
    path = tmp_path / "bin" / "renode"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\n{STAND_IN}")
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_elf(tmp_path: Path) -> Path:
    path = tmp_path / "firmware.elf"
    path.write_bytes(b"\x7fELF stand-in")
    return path


def _plans(board: Board) -> tuple[bytes, bytes]:
    """Two different plans for ``board`` (the sample model, and the same with a byte appended:
    another model id, the same network)."""
    model = SAMPLE_MODEL.read_bytes()
    first = compile_model(model, board, name="kws_tiny").data
    second = compile_model(model + b"\0", board, name="kws_tiny_2").data
    assert first != second
    return first, second


def _expected_output(x: bytes, n: int) -> bytes:
    return bytes((x[i % len(x)] + i) & 0xFF for i in range(n))


def _open(stand_in: Path, fake_elf: Path, tmp_path: Path, board: str = "nucleo-f446re",
          **kw: Any) -> RenodeBoard:
    return RenodeBoard(f"renode:{board}", renode=stand_in, firmware=fake_elf,
                       workdir=tmp_path / "session", start_timeout_s=20.0, **kw)


@pytest.mark.parametrize("board_name", BOARD_NAMES)
def test_stand_in_full_lifecycle(stand_in: Path, fake_elf: Path, tmp_path: Path,
                                 board_name: str) -> None:
    board = BOARDS[board_name]
    first, second = _plans(board)
    renode = _open(stand_in, fake_elf, tmp_path, board_name)
    with renode:
        proc = renode._proc
        assert proc is not None and renode.url is not None
        resc = (tmp_path / "session" / "session.resc").read_text()
        assert f"cpu PerformanceInMips {board.clock_hz // 1_000_000}" in resc
        assert "LoadBinary" not in resc  # no plan yet: the firmware boots with an empty region

        status = renode.load_plan(first)
        assert status["status"] == "ok" and status["bytes"] == len(first)
        assert renode.restarts == 0  # loaded through the monitor
        x = bytes((7 + i) % 256 for i in range(int(status["input"])))
        result = renode.run(x, runs=3, warmup=1)
        assert result.output == _expected_output(x, int(status["output"]))
        assert result.cycles_per_run == [9000, 9000, 9000]
        assert result.layer_cycles == [100] * int(status["ops"])
        assert result.cycle_source == CYCLE_SOURCE == renode.cycle_source
        assert any(line.startswith("> infer 3 1%") for line in result.transcript)

        status = renode.load_plan(second)
        assert status["model"] != "" and status["bytes"] == len(second)
        assert renode.restarts == 0
        assert renode.load_plan(second) == status  # already there: re-validated only
        assert (tmp_path / "session" / "plan.bin").read_bytes() == second
    assert proc.poll() == 0  # `quit` through the monitor
    assert (tmp_path / "session" / "renode.log").read_text().strip().endswith("quitting")
    renode.close()  # twice is fine


def test_stand_in_restarts_when_the_monitor_is_not_read(stand_in: Path, fake_elf: Path,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAND_IN_IGNORE_MONITOR", "1")
    launches = tmp_path / "launches"
    monkeypatch.setenv("STAND_IN_LAUNCHES", str(launches))
    first, second = _plans(BOARDS["nucleo-f446re"])
    with _open(stand_in, fake_elf, tmp_path, reload_timeout_s=1.0) as renode:
        status = renode.load_plan(first)
        assert status["bytes"] == len(first) and renode.restarts == 1
        resc = (tmp_path / "session" / "session.resc").read_text()
        assert f"sysbus LoadBinary @{tmp_path / 'session' / 'plan.bin'} 0x0800c000" in resc
        started = time.monotonic()
        renode.load_plan(second)  # straight to a restart this time: no second wait
        assert renode.restarts == 2 and time.monotonic() - started < 1.0 + 10.0
        proc = renode._proc
        assert proc is not None
        x = bytes(int(status["input"]))
        assert renode.run(x, runs=1, warmup=0).cycles_per_run == [9000]
    assert proc.poll() is not None  # terminated: the monitor was not listening for `quit`
    assert len(launches.read_text().splitlines()) == 3


def test_stand_in_restart_mode(stand_in: Path, fake_elf: Path, tmp_path: Path) -> None:
    first, _ = _plans(BOARDS["nucleo-l4r5zi"])
    with _open(stand_in, fake_elf, tmp_path, "nucleo-l4r5zi", reload="restart") as renode:
        assert renode.load_plan(first)["bytes"] == len(first)
        assert renode.restarts == 1


def test_stand_in_lifecycle_misuse(stand_in: Path, fake_elf: Path, tmp_path: Path) -> None:
    first, _ = _plans(BOARDS["nucleo-f446re"])
    renode = _open(stand_in, fake_elf, tmp_path)
    with pytest.raises(BoardError, match="not open"):
        renode.load_plan(first)
    with renode:
        with pytest.raises(BoardError, match="already open"):
            renode.open()
        with pytest.raises(BoardError, match="no plan loaded"):
            renode.run(b"\0", runs=1, warmup=0)
        other, _ = _plans(BOARDS["nucleo-f746zg"])
        with pytest.raises(Exception, match="compiled for nucleo-f746zg"):
            renode.load_plan(other)
    with pytest.raises(BoardError, match="closed"):
        renode.load_plan(first)
    with pytest.raises(BoardError, match="closed"):
        renode.open()


def test_stand_in_renode_that_exits(stand_in: Path, fake_elf: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAND_IN_EXIT", "3")
    with pytest.raises(BoardError, match=r"(?s)exited with status 3.*stand-in told to exit"):
        _open(stand_in, fake_elf, tmp_path).open()


def test_stand_in_script_error_fails_fast(stand_in: Path, fake_elf: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAND_IN_SCRIPT_ERROR", "1")
    renode = _open(stand_in, fake_elf, tmp_path)
    started = time.monotonic()
    with pytest.raises(BoardError, match="could not run the session script.*LoadELFF"):
        renode.open()
    assert time.monotonic() - started < 15.0
    assert renode._proc is None  # stopped


def test_stand_in_port_answered_by_another_board(stand_in: Path, fake_elf: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAND_IN_BOARD", "nucleo-f746zg")
    with pytest.raises(BoardError, match="answered by another program"):
        _open(stand_in, fake_elf, tmp_path).open()


def test_stand_in_processes_are_gone_after_close(stand_in: Path, fake_elf: Path,
                                                 tmp_path: Path) -> None:
    with _open(stand_in, fake_elf, tmp_path) as renode:
        proc = renode._proc
        assert proc is not None
        pid = proc.pid
    assert proc.poll() is not None
    with pytest.raises(ProcessLookupError):  # nothing in the process group Renode led lives on
        os.killpg(pid, 0)


def test_stand_in_checks_the_plan_crc_like_the_firmware() -> None:
    """The stand-in refuses what the firmware refuses (a sanity check of the check)."""
    first, _ = _plans(BOARDS["nucleo-f446re"])
    assert zlib.crc32(first[16:]) == int.from_bytes(first[12:16], "little")
