"""The pyOCD and Renode back ends scale their serial timeouts with the work, as a virtual twin
does: a large plan's boot check and many runs of a large model are slow answers, not a dead
board, while a board that stops answering still fails with the one-line serial timeout.

No probe and no Renode here: a scripted board on a fake serial port answers the protocol
(after a delay longer than the client's fixed timeout where a test says so), and a fake pyOCD
session stands in for the probe (its reset reboots the scripted board). Everything between
the back end and the port, the serial client included, is the real code."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench_firmware.backends.pyocd_backend import PyocdBoard
from bench_firmware.backends.renode.backend import (
    MIN_RENODE_IPS,
    RELOAD_TIMEOUT_S,
    SYNC_TIMEOUT_S,
    RenodeBoard,
)
from bench_firmware.backends.timing import (
    CYCLES_PER_ARENA_BYTE_CEILING,
    CYCLES_PER_MAC_CEILING,
    PlanWork,
)
from bench_firmware.boards import BOARDS
from bench_firmware.compiler import compile_model
from bench_firmware.errors import SerialTimeoutError
from bench_firmware.protocol import DutClient
from bench_firmware.protocol.client import INFER_SLACK, RELOAD_S_PER_KIB
from tests.service_agent.delayed_port import DelayedPort

KWS = Path(__file__).resolve().parents[2] / "bench_firmware" / "samples" / "kws_tiny.tflite"
F446 = BOARDS["nucleo-f446re"]
TIMEOUT_S = 0.2  # the client's fixed command timeout (and boot timeout) in these tests
DELAY_S = 0.6  # seconds the scripted board takes for slow work: longer than TIMEOUT_S


def plan_line(plan: bytes) -> str:
    """The firmware's ``m-plan-[...]`` for ``plan`` loaded and valid."""
    model_id = bytes(plan[16:24]).hex()  # mp_plan_header_t.model_id
    return (f"m-plan-[board=1,model={model_id},ops=12,arena=6688,capacity=100000,"
            f"bytes={len(plan)},input=490,output=12,region=262144,status=ok]")


def padded(plan: bytes, size: int) -> bytes:
    """``plan`` grown to ``size`` bytes, its header's size and CRC made to match: a valid
    plan as large as a large model's (the padding is never read)."""
    out = bytearray(plan + b"\0" * (size - len(plan)))
    struct.pack_into("<I", out, 8, size)  # mp_plan_header_t.total_bytes
    struct.pack_into("<I", out, 12, zlib.crc32(bytes(out[16:])))  # .crc32 covers [16, end)
    return bytes(out)


class ScriptedPort(DelayedPort):
    """A serial port with a scripted board behind it: it answers the commands a back end
    sends (boot banner, plan status, kernels, input upload with its CRC, infer, cycles) as
    the firmware does, each ``delays[command]`` seconds late; commands in ``silent`` are
    never answered (a board that hung)."""

    port = "scripted"

    def __init__(self, plan: bytes, *, delays: dict[str, float] | None = None,
                 silent: frozenset[str] = frozenset()) -> None:
        self.plan_line = plan_line(plan)
        self.delays = delays or {}
        self.silent = silent
        self.commands: list[str] = []
        super().__init__()
        self._input = bytearray()
        self._expected = 0

    def boot(self) -> None:
        """A reset: the banner comes after the boot's plan check (``delays["boot"]``)."""
        self.later(self.delays.get("boot", 0.0), [
            "m-timestamp-mode-performance", self.plan_line, "m-init-done", "m-ready"])

    def _answer(self, command: str) -> list[str]:
        words = command.split(" ")
        if command == "mp-plan" or command == "mp-reload":
            return [self.plan_line]
        if words[0] == "mp-kernels":
            return [f"m-kernels-[{words[1]}]"]
        if words[:2] == ["db", "load"]:
            self._expected, self._input = int(words[2]), bytearray()
            return [f"m-[Expecting {self._expected} bytes]"]
        if words[0] == "db":
            self._input += bytes.fromhex(words[1])
            return ["m-load-done"] if len(self._input) == self._expected else []
        if command == "mp-crc":
            return [f"m-input-crc-[{zlib.crc32(bytes(self._input)):08x}]"]
        if words[0] == "infer":
            runs, warmup = words[1], words[2]
            return [f"m-warmup-start-{warmup}", "m-warmup-done", f"m-infer-start-{runs}",
                    "m-infer-done", "m-lap-us-100", "m-lap-us-900", "m-results-[5,-3]"]
        if command == "mp-cycles":
            return ["m-cycles-[1000,1001]"]
        if command == "mp-layers":
            return ["m-layers-[400,600]"]
        return []  # "" (a resync) and anything else: m-ready alone

    def write(self, data: bytes) -> int:
        command = data.decode().rstrip("%")
        self.commands.append(command)
        name = command.split(" ")[0]
        if name not in self.silent:
            self.later(self.delays.get(name, 0.0), [*self._answer(command), "m-ready"])
        return len(data)


class FakeTarget:
    """pyOCD's target, as far as the back end uses it after opening: reset."""

    def __init__(self, port: ScriptedPort) -> None:
        self.port = port
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        self.port.boot()


class FakeSession:
    def __init__(self, port: ScriptedPort) -> None:
        self.target = FakeTarget(port)


@pytest.fixture(scope="module")
def kws_plan() -> bytes:
    return compile_model(KWS.read_bytes(), F446).data


@pytest.fixture
def attach(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``attach(port)``: a PyocdBoard on the nucleo-f446re behind ``port``, opened as
    ``open()`` leaves it (a pyOCD session and a serial client), with the flash writes
    recorded instead of sent through pyOCD's loader."""
    boards: list[PyocdBoard] = []

    def make(port: ScriptedPort) -> PyocdBoard:
        board = PyocdBoard("pyocd:nucleo-f446re:066DFF535155878281123456",
                           timeout_s=TIMEOUT_S, boot_timeout_s=TIMEOUT_S, infer_budget_s=0.0)
        written: list[tuple[int, int]] = []
        monkeypatch.setattr(board, "_program",
                            lambda address, data, what: written.append((address, len(data))))
        board._session = FakeSession(port)
        board._client = DutClient(port, timeout_s=TIMEOUT_S)  # type: ignore[arg-type]
        boards.append(board)
        return board

    yield make
    for board in boards:
        board.close()


def infer_timeout(plan: bytes, runs: int, warmup: int, cycles_per_s: float) -> float:
    """The timeout the client gets for ``infer`` (with a budget floor of 0)."""
    return TIMEOUT_S + INFER_SLACK * (runs + warmup) * PlanWork.of(plan).run_s(cycles_per_s)


# -- the work of a plan ------------------------------------------------------------------------


def test_the_work_comes_from_the_plan_header(kws_plan: bytes) -> None:
    plan = compile_model(KWS.read_bytes(), F446)
    work = PlanWork.of(kws_plan)
    assert (work.plan_bytes, work.macs, work.arena_bytes) == (
        plan.plan_bytes, plan.macs, plan.arena_bytes)
    assert work.n_ops == len(plan.layers)
    assert work.run_cycles == pytest.approx(
        plan.macs * CYCLES_PER_MAC_CEILING
        + len(plan.layers) * plan.arena_bytes * CYCLES_PER_ARENA_BYTE_CEILING)
    # At the F446's 180 MHz, kws_tiny's bound is a few tenths of a second per run.
    assert 0.1 < work.run_s(F446.clock_hz) < 1.0
    assert work.check_s == pytest.approx(plan.plan_bytes / 1024 * RELOAD_S_PER_KIB)
    # Not a plan (the firmware refuses it): its size is all that counts.
    assert PlanWork.of(b"\0" * 2048) == PlanWork(2048, 0, 0, 0)


# -- pyOCD -------------------------------------------------------------------------------------


def test_pyocd_waits_for_the_boot_check_of_a_large_plan(attach: object,
                                                        kws_plan: bytes) -> None:
    big = padded(kws_plan, 200 * 1024)  # 200 KiB in the F446's 256 KiB model region
    assert TIMEOUT_S + PlanWork.of(big).check_s > DELAY_S > TIMEOUT_S
    board = attach(ScriptedPort(big, delays={"boot": DELAY_S}))  # type: ignore[operator]
    assert board.load_plan(big)["bytes"] == len(big)
    assert board._session.target.resets == 1

    # A small plan gets (about) the fixed boot timeout: the same slow boot is too slow.
    small = b"\0" * 64
    assert TIMEOUT_S + PlanWork.of(small).check_s < DELAY_S
    port = ScriptedPort(small, delays={"boot": DELAY_S})
    with pytest.raises(SerialTimeoutError, match="boot banner"):
        attach(port).load_plan(small)  # type: ignore[operator]


def test_pyocd_waits_for_many_runs_of_a_large_model(attach: object, kws_plan: bytes) -> None:
    runs, warmup = 20, 1
    scaled = infer_timeout(kws_plan, runs, warmup, F446.clock_hz)
    assert scaled > DELAY_S > TIMEOUT_S
    port = ScriptedPort(kws_plan, delays={"infer": DELAY_S})
    board = attach(port)  # type: ignore[operator]
    board.load_plan(kws_plan)
    run = board.run(b"\x01" * 490, runs=runs, warmup=warmup)
    assert run.cycles_per_run == [1000, 1001] and run.output == bytes([5, 0xFD])
    assert f"infer {runs} {warmup}" in port.commands


def test_a_pyocd_board_that_stops_answering_still_fails(attach: object,
                                                        kws_plan: bytes) -> None:
    runs, warmup = 2, 1
    scaled = infer_timeout(kws_plan, runs, warmup, F446.clock_hz)
    assert 0.5 < scaled < 5.0  # long enough to matter, short enough for a test
    board = attach(ScriptedPort(kws_plan, silent=frozenset({"infer"})))  # type: ignore[operator]
    board.load_plan(kws_plan)
    started = time.monotonic()
    with pytest.raises(SerialTimeoutError) as err:
        board.run(b"\x01" * 490, runs=runs, warmup=warmup)
    waited = time.monotonic() - started
    message = str(err.value)
    assert "\n" not in message
    assert f"`infer {runs} {warmup}%` within {scaled:.1f} s" in message
    assert scaled <= waited < scaled + 2.0


# -- Renode --------------------------------------------------------------------------------------


def renode_board(port: ScriptedPort, plan: bytes) -> RenodeBoard:
    """A RenodeBoard as ``open()`` and ``load_plan(plan)`` leave it, minus Renode: its UART
    is the scripted port."""
    board = RenodeBoard("renode:nucleo-f446re", command_timeout_s=TIMEOUT_S, infer_budget_s=0.0)
    board._client = DutClient(port, timeout_s=TIMEOUT_S)  # type: ignore[arg-type]
    board._plan, board._work = plan, PlanWork.of(plan)
    return board


def test_renode_timeouts_grow_with_the_plan() -> None:
    board = RenodeBoard("renode:nucleo-f446re")
    assert board.run_s() is None and board.boot_sync_s() == SYNC_TIMEOUT_S
    small, large = PlanWork.of(b"\0" * 1024), PlanWork.of(b"\0" * (400 * 1024))
    assert board.reload_wait_s(small) == pytest.approx(RELOAD_TIMEOUT_S + RELOAD_S_PER_KIB)
    assert board.reload_wait_s(large) == pytest.approx(RELOAD_TIMEOUT_S
                                                       + 400 * RELOAD_S_PER_KIB)
    board._work = large
    assert board.boot_sync_s() == pytest.approx(SYNC_TIMEOUT_S + 400 * RELOAD_S_PER_KIB)


def test_renode_waits_for_many_runs_of_a_large_model(kws_plan: bytes) -> None:
    runs, warmup = 3, 1
    board = renode_board(ScriptedPort(kws_plan, delays={"infer": DELAY_S}), kws_plan)
    # Renode's host time per run: the plan's cycle bound at the slowest Renode speed.
    assert board.run_s() == pytest.approx(PlanWork.of(kws_plan).run_cycles / MIN_RENODE_IPS)
    assert infer_timeout(kws_plan, runs, warmup, MIN_RENODE_IPS) > DELAY_S
    run = board.run(b"\x01" * 490, runs=runs, warmup=warmup)
    assert run.cycles_per_run == [1000, 1001]


def test_renode_reloads_a_large_plan_with_a_scaled_timeout(kws_plan: bytes) -> None:
    big = padded(kws_plan, 200 * 1024)
    assert TIMEOUT_S + PlanWork.of(big).check_s > DELAY_S
    port = ScriptedPort(big, delays={"mp-reload": DELAY_S})
    board = renode_board(port, big)
    # The same plan again: mp-reload re-validates it, waiting as long as its size needs.
    assert board.load_plan(big)["bytes"] == len(big)
    assert port.commands == ["mp-reload"]

    # A board that stops answering mp-reload still fails, after the scaled wait.
    plan = padded(kws_plan, 20 * 1024)
    scaled = TIMEOUT_S + PlanWork.of(plan).check_s
    port = ScriptedPort(plan, silent=frozenset({"mp-reload"}))
    with pytest.raises(SerialTimeoutError) as err:
        renode_board(port, plan).load_plan(plan)
    assert "\n" not in str(err.value)
    assert f"`mp-reload%` within {scaled:.1f} s" in str(err.value)
