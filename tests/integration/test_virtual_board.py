"""Virtual boards end to end: the unchanged firmware image of every board on Unicorn
(``bench_firmware/backends/virtual``), driven over its emulated UART (a pty or ``socket://``) by the
same serial client as a physical board, and compared bit for bit with TFLite Micro.

Failure paths run deliberately broken firmwares built from ``tests/fixtures/bad_firmware``
with the board's own start-up code and linker script: CPU faults, unmodeled peripherals,
a firmware that hangs (the budget stops it), one that prints garbage.

The cycle model is ``bench_firmware.backends.virtual.timing``'s; until that package can be imported
a stand-in defined here counts one cycle per instruction.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs
from unicorn import UC_HOOK_BLOCK

from bench_firmware import build
from bench_firmware.backends.virtual.backend import VirtualBoard
from bench_firmware.backends.virtual.machine import VirtualMachine
from bench_firmware.backends.virtual.peripherals import Dwt, Gpio
from bench_firmware.backends.virtual.serial_port import Transport
from bench_firmware.boards import BOARDS, FIRMWARE_RAM_RESERVE, Board
from bench_firmware.compiler import compile_model
from bench_firmware.errors import (
    BoardError,
    DoesNotFitError,
    FirmwareError,
    McuprofError,
    ProtocolError,
)
from bench_firmware.protocol import MAX_RUNS, DutClient
from tests.oracle import tflm_run
from tests.zoo import random_input

pytestmark = pytest.mark.slow

BOARD_NAMES = sorted(BOARDS)
TRANSPORTS: tuple[Transport, ...] = ("pty", "socket")
MAX_OPS = 256  # operators a plan may have (MP_MAX_OPS, reported by mp-info)
SMALL_MODEL = "gap_mean"  # CONV_2D, MEAN, FULLY_CONNECTED: both kernel paths, three layers
KWS_MODEL = "ds_cnn_kws"
RUNS, WARMUP = 3, 1
LAYER_SUM_TOLERANCE = 0.01  # sum(layer cycles) vs the run's total
FAST_FAILURE_S = 3.0  # a dead machine must fail the next call well inside the client timeout
BAD_FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "bad_firmware"
BAD_BOARD = "nucleo-f446re"
HANG_BUDGET_S = 0.002  # board seconds; booting and answering a command take far less


class StandInCycleModel:
    """One cycle per instruction, counted per translated block (capstone decodes each block
    once). Stands in for ``bench_firmware.backends.virtual.timing`` until that package exists."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.cycles = 0
        self.instructions = 0
        self._counts: dict[tuple[int, int], int] = {}
        self._cs = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)

    def attach(self, uc: Any) -> None:
        uc.hook_add(UC_HOOK_BLOCK, self._block)

    def _block(self, uc: Any, address: int, size: int, _data: object) -> None:
        n = self._counts.get((address, size))
        if n is None:
            code = bytes(uc.mem_read(address, size))
            n = max(1, sum(1 for _ in self._cs.disasm_lite(code, address)))
            self._counts[(address, size)] = n
        self.instructions += n
        self.cycles += n


try:
    from bench_firmware.backends.virtual.timing import create_cycle_model

    CYCLE_MODEL: Callable[[Board], Any] = create_cycle_model
    REAL_CYCLE_MODEL = True
except ImportError:
    CYCLE_MODEL = StandInCycleModel
    REAL_CYCLE_MODEL = False


@pytest.fixture(scope="module")
def images() -> dict[str, Path]:
    """The real firmware image of every board (cross-built once, cached in build/)."""
    if shutil.which(build.ARM_GCC) is None:
        pytest.skip(f"{build.ARM_GCC} is not installed")
    return {name: build.build_firmware(BOARDS[name]).elf for name in BOARD_NAMES}


@pytest.fixture(scope="module")
def bad_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each fixture firmware, built for BAD_BOARD with its start-up code and linker script."""
    if shutil.which(build.ARM_GCC) is None:
        pytest.skip(f"{build.ARM_GCC} is not installed")
    out = tmp_path_factory.mktemp("bad_firmware")
    board = BOARDS[BAD_BOARD]
    return {src.stem: build.build_firmware(board, out / src.stem, sources=[src]).elf
            for src in sorted(BAD_FIRMWARE_DIR.glob("*.c"))}


@pytest.fixture
def open_board() -> Iterator[Callable[..., VirtualBoard]]:
    """Opens virtual boards and closes them after the test, whatever happened."""
    opened: list[VirtualBoard] = []

    def opener(name: str, **kwargs: Any) -> VirtualBoard:
        kwargs.setdefault("cycle_model", CYCLE_MODEL)
        board = VirtualBoard(f"virtual:{name}", **kwargs)
        opened.append(board)
        board.open()
        return board

    yield opener
    for board in opened:
        board.close()


# --- the real firmware on every board --------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", BOARD_NAMES)
def test_boots_and_answers(name: str, transport: Transport, images: dict[str, Path],
                           open_board: Callable[..., VirtualBoard]) -> None:
    board = open_board(name, transport=transport, firmware=images[name])
    catalogue = BOARDS[name]
    assert board.client is not None and board.machine is not None
    assert board.machine.url.startswith("socket://" if transport == "socket" else "/dev/")
    assert "m-init-done" in board.boot_lines
    assert board.client.name() == name
    info = board.client.info()
    assert info["clock"] == catalogue.clock_hz
    # Every field, so an emulation fault that garbles a string (a skipped instruction, a
    # wrong register) shows here.
    expected: dict[str, int | str] = {
        "board": name, "code": catalogue.code, "clock": catalogue.clock_hz,
        "arena": catalogue.arena_capacity, "region": catalogue.model_region_bytes,
        "kernels": "dsp", "plan": "magic", "version": info["version"], "max-runs": MAX_RUNS,
        "max-ops": MAX_OPS,
    }  # fmt: skip
    assert info == expected, f"the firmware printed a corrupted m-info line: {info}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(info["version"]))
    # The clock tree the firmware programmed into the emulated RCC gives the catalogue clock,
    # and the flash latency is the catalogue's.
    peripherals = board.machine.peripherals
    assert board.machine.core_clock_hz == catalogue.clock_hz
    assert peripherals.flash.latency == catalogue.flash_wait_states
    assert peripherals.dwt.trcena and not peripherals.dwt.locked
    if catalogue.core == "cortex-m7":
        assert peripherals.scs.caches_enabled == (True, True)
    # D7 is driven high once it becomes an output.
    assert [level for _, level in board.machine.pin_edges] == [1]


@pytest.fixture(scope="module")
def small_model(zoo: dict[str, Path]) -> tuple[bytes, np.ndarray, bytes]:
    model = zoo[SMALL_MODEL].read_bytes()
    x = random_input(model, seed=0)
    return model, x, tflm_run(model, x).tobytes()


def _check_cycles(board: VirtualBoard, result: Any, runs: int) -> None:
    assert len(result.cycles_per_run) == runs
    assert all(c > 0 for c in result.cycles_per_run)
    total = result.cycles_per_run[-1]
    assert abs(sum(result.layer_cycles) - total) <= LAYER_SUM_TOLERANCE * total
    # The µs laps around the timed runs agree with CYCCNT (each run also pays a little
    # bookkeeping outside the runtime's invoke).
    mhz = board.board.clock_hz / 1e6
    elapsed_us = (result.lap_us[1] - result.lap_us[0]) % (1 << 32)
    assert sum(result.cycles_per_run) / mhz <= elapsed_us + 1
    assert elapsed_us <= 1.05 * sum(result.cycles_per_run) / mhz + 100


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_runs_a_model_bit_exact(name: str, images: dict[str, Path],
                                small_model: tuple[bytes, np.ndarray, bytes],
                                open_board: Callable[..., VirtualBoard]) -> None:
    model, x, expected = small_model
    plan = compile_model(model, BOARDS[name])
    board = open_board(name, firmware=images[name])
    status = board.load_plan(plan.data)
    assert status["status"] == "ok" and status["bytes"] == len(plan.data)
    assert board.machine is not None
    machine = board.machine
    for kernels in ("dsp", "ref"):
        edges_before = len(machine.pin_edges)
        first = board.run(x.tobytes(), runs=RUNS, warmup=WARMUP, kernels=kernels)
        assert first.output == expected, f"{name} {kernels}: output differs from TFLM"
        _check_cycles(board, first, RUNS)
        assert len(first.layer_cycles) == status["ops"]
        # Two timestamps per infer, each a falling then a rising edge, in cycle order.
        edges = machine.pin_edges[edges_before:]
        assert [level for _, level in edges] == [0, 1, 0, 1]
        assert [c for c, _ in edges] == sorted(c for c, _ in edges)
        # The same run again: identical once warm. (The first timed run follows the UART
        # lines `infer` prints after its warm-up, so with caches modeled it may differ by a
        # few cycles with what ran before it; test_deterministic_across_boots checks it.)
        again = board.run(x.tobytes(), runs=RUNS, warmup=WARMUP, kernels=kernels)
        assert again.output == expected
        assert again.cycles_per_run[1:] == first.cycles_per_run[1:]
        assert again.layer_cycles == first.layer_cycles
    assert machine.instructions > 0 and machine.cycles >= machine.instructions // 4


def test_deterministic_across_boots(images: dict[str, Path],
                                    small_model: tuple[bytes, np.ndarray, bytes],
                                    open_board: Callable[..., VirtualBoard]) -> None:
    """The same session on two fresh boards, over different transports, gives the same
    cycles, laps and pin edges: nothing depends on how the host's bytes are timed."""
    name = "nucleo-f767zi"
    model, x, expected = small_model
    plan = compile_model(model, BOARDS[name]).data
    sessions = []
    for transport in TRANSPORTS:
        board = open_board(name, firmware=images[name], transport=transport)
        board.load_plan(plan)
        results = [board.run(x.tobytes(), runs=RUNS, warmup=WARMUP, kernels=k)
                   for k in ("dsp", "ref", "dsp")]
        assert board.machine is not None
        sessions.append(([(r.output, r.cycles_per_run, r.layer_cycles, r.lap_us)
                          for r in results], board.machine.pin_edges))
        board.close()
    assert sessions[0] == sessions[1]
    assert sessions[0][0][0][0] == expected


def test_ds_cnn_kws_bit_exact_and_speed(zoo: dict[str, Path], images: dict[str, Path],
                                        open_board: Callable[..., VirtualBoard]) -> None:
    """A real keyword-spotting network; prints the emulation speed (run with -s to see it)."""
    name = "nucleo-f446re"
    model = zoo[KWS_MODEL].read_bytes()
    x = random_input(model, seed=1)
    expected = tflm_run(model, x).tobytes()
    board = open_board(name, firmware=images[name])
    board.load_plan(compile_model(model, BOARDS[name]).data)
    assert board.machine is not None
    for kernels in ("dsp", "ref"):
        start_i, start_t = board.machine.instructions, time.perf_counter()
        result = board.run(x.tobytes(), runs=1, warmup=1, kernels=kernels)
        seconds = time.perf_counter() - start_t
        instructions = board.machine.instructions - start_i
        assert result.output == expected
        _check_cycles(board, result, 1)
        speed = instructions / seconds / 1e6
        print(f"\n{KWS_MODEL} on virtual {name} ({kernels}, "
              f"{'real' if REAL_CYCLE_MODEL else 'stand-in'} cycle model): "
              f"{result.cycles_per_run[0]:,} cycles per inference, {speed:.1f} M instructions "
              f"per host second ({instructions:,} in {seconds:.2f} s)")


def test_load_plan_refusals(images: dict[str, Path], small_model: tuple[bytes, np.ndarray, bytes],
                            open_board: Callable[..., VirtualBoard]) -> None:
    name = "nucleo-l4r5zi"
    catalogue = BOARDS[name]
    board = open_board(name, firmware=images[name])
    too_big = bytes(catalogue.model_region_bytes + 1)
    numbers = f"{len(too_big):,}.*{catalogue.model_region_bytes:,}"
    with pytest.raises(DoesNotFitError, match=numbers):
        board.load_plan(too_big)
    plan = bytearray(compile_model(small_model[0], catalogue).data)
    plan[-1] ^= 0xFF  # the CRC no longer checks out
    with pytest.raises(FirmwareError, match="status crc"):
        board.load_plan(bytes(plan))
    # The firmware is still there, and a good plan replaces the bad one.
    assert board.load_plan(compile_model(small_model[0], catalogue).data)["status"] == "ok"


def test_lifecycle(images: dict[str, Path]) -> None:
    name = "nucleo-f746zg"
    threads = threading.active_count()
    fds = len(os.listdir("/proc/self/fd"))
    board = VirtualBoard(f"virtual:{name}", firmware=images[name], cycle_model=CYCLE_MODEL)
    with pytest.raises(BoardError, match="not open"):
        board.run(b"", runs=1, warmup=0)
    with board:
        with pytest.raises(BoardError, match="already open"):
            board.open()
        assert board.client is not None and board.client.name() == name
    board.close()  # twice is fine
    assert board.machine is None
    deadline = time.monotonic() + 2.0
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads
    assert len(os.listdir("/proc/self/fd")) == fds


# --- failure paths -----------------------------------------------------------------------------

PC = r"pc 0x080[0-9a-f]{5}: "
_ARENA_START = BOARDS[BAD_BOARD].sram_base + FIRMWARE_RAM_RESERVE


@pytest.mark.parametrize(("command", "message"), [
    ("udf", rf"undefined or unsupported instruction at {PC}udf"),
    ("unmapped", rf"firmware read unmapped address 0x30000000 \(4 bytes\) at {PC}ldr"),
    # The misbehaving image aims at the arena's start + 2 and at the model region's base.
    ("unaligned", rf"unaligned base address {_ARENA_START + 2:#010x} at {PC}ldrd.*UsageFault"),
    ("flash", rf"firmware wrote flash at {BOARDS[BAD_BOARD].model_region_base:#010x} "
              rf"\(4 bytes\) at {PC}str"),
])  # fmt: skip
def test_cpu_fault_names_the_pc(command: str, message: str, bad_images: dict[str, Path],
                                open_board: Callable[..., VirtualBoard]) -> None:
    board = open_board(BAD_BOARD, firmware=bad_images["misbehave"])
    machine = board.machine
    assert machine is not None
    start = time.monotonic()
    with pytest.raises(BoardError, match=message) as failure:
        board.command(command)
    assert time.monotonic() - start < FAST_FAILURE_S
    assert failure.value is machine.error
    assert machine.wait(1.0) and not machine.running
    with pytest.raises(BoardError, match=message):  # and every call after it
        board.command("name")


@pytest.mark.parametrize(("command", "message"), [
    ("rcc", rf"firmware read unmodeled address 0x40023870 \(4 bytes\) at {PC}ldr.*RCC register "
            r"offset 0x070 is not modeled"),
    ("timer", rf"firmware read unmapped address 0x40000000 \(4 bytes\) at {PC}ldr"),
    ("noclock", rf"firmware read PWR_CR \(0x40007000\) at {PC}ldr.*PWR's clock is off "
                r"\(RCC_APB1ENR bit 28 = 0\)"),
    ("baud", rf"firmware wrote USART2 DR at {PC}str.*baud rate would be 9,599 \(PCLK1 "
             r"45,000,000 Hz, BRR 4688\), not 115200"),
])  # fmt: skip
def test_peripheral_misuse_names_the_address(command: str, message: str,
                                                bad_images: dict[str, Path],
                                                open_board: Callable[..., VirtualBoard]) -> None:
    board = open_board(BAD_BOARD, firmware=bad_images["misbehave"])
    with pytest.raises(BoardError, match=message):
        board.command(command)


def test_budget_stops_a_firmware_that_hangs(bad_images: dict[str, Path],
                                            open_board: Callable[..., VirtualBoard]) -> None:
    board = open_board(BAD_BOARD, firmware=bad_images["misbehave"], budget_s=HANG_BUDGET_S)
    start = time.monotonic()
    with pytest.raises(BoardError, match=r"the firmware ran [\d,]+ cycles \([\d.e-]+ s at 180 MHz"
                                         r"\) since the last command without answering; stopped "
                                         rf"at {PC}.*budget_s=0.002"):
        board.command("hang")
    assert time.monotonic() - start < FAST_FAILURE_S


def test_wall_clock_guard_stops_a_firmware_that_hangs(
        bad_images: dict[str, Path], open_board: Callable[..., VirtualBoard]) -> None:
    board = open_board(BAD_BOARD, firmware=bad_images["misbehave"], wall_budget_s=0.3)
    with pytest.raises(BoardError, match=r"ran [\d.]+ s of host time .* wall_budget_s=0.3"):
        board.command("hang")


def test_idle_firmware_is_not_charged(bad_images: dict[str, Path],
                                      open_board: Callable[..., VirtualBoard]) -> None:
    """Waiting for the host costs no modeled cycles and no budget: the UART status read
    blocks on the host side instead of spinning."""
    # Booting gets host time to spare (a loaded CI machine once stalled it 1.3 s); the tight
    # budget applies while the firmware idles, which must not spend it.
    board = open_board(BAD_BOARD, firmware=bad_images["misbehave"], budget_s=HANG_BUDGET_S,
                       wall_budget_s=5.0)
    assert board.machine is not None
    board.machine.wall_budget_s = 0.2
    cycles = board.machine.cycles
    time.sleep(0.5)
    assert board.machine.running and board.machine.cycles - cycles < 1000
    board.machine.wall_budget_s = 5.0
    board.command("name", check=False)


def test_garbage_is_a_protocol_error(bad_images: dict[str, Path],
                                     open_board: Callable[..., VirtualBoard]) -> None:
    with pytest.raises(ProtocolError, match=r"no m-init-done; it printed \\+xfe\\+xff~~ "
                                            r"garbage at boot ~~ \| m-ready"):
        open_board(BAD_BOARD, firmware=bad_images["garbage_banner"])
    board = open_board(BAD_BOARD, firmware=bad_images["misbehave"])
    assert board.client is not None
    start = time.monotonic()
    with pytest.raises(ProtocolError, match=r"not protocol lines: .*x01\\+xfe#\$ garbage !!"):
        board.client.name()
    assert time.monotonic() - start < FAST_FAILURE_S


def test_boots_from_hsi_without_the_st_link_clock(images: dict[str, Path]) -> None:
    """Without the ST-LINK's 8 MHz on OSC_IN, HSERDY never comes: the firmware gives up on
    the HSE and runs its PLL from HSI16, at the same clock."""
    name = "nucleo-f446re"
    board = BOARDS[name]
    machine = VirtualMachine(board, images[name], cycle_model=CYCLE_MODEL(board),
                             hse_present=False)
    client = DutClient.open(machine.url)
    try:
        with machine:
            client.port.write(b"\n")
            client.wait_ready()
            assert client.name() == name
            assert machine.core_clock_hz == board.clock_hz
            assert not machine.peripherals.rcc.reg("PLLCFGR") & (1 << 22)  # PLLSRC = HSI
    finally:
        client.close()
    assert machine.error is None


def test_machine_rejects_an_image_for_another_board(images: dict[str, Path]) -> None:
    with pytest.raises(BoardError, match="built for nucleo-f767zi, not nucleo-f446re"):
        VirtualMachine(BOARDS["nucleo-f446re"], images["nucleo-f767zi"],
                       cycle_model=StandInCycleModel(BOARDS["nucleo-f446re"]))


# --- register models -----------------------------------------------------------------------------


def test_m7_dwt_counts_only_when_enabled_and_unlocked() -> None:
    now = [1000]
    dwt = Dwt(lock_implemented=True, cycles=lambda: now[0])
    ctrl, cyccnt, lar, lsr = 0x000, 0x004, 0xFB0, 0xFB4
    dwt.set_trcena(True)
    dwt.write(ctrl, dwt.read(ctrl) | 1)  # ignored: still locked
    now[0] += 500
    assert dwt.read(cyccnt) == 0 and dwt.read(lsr) == 0b11
    dwt.write(lar, 0xC5AC_CE55)
    assert dwt.read(lsr) == 0b01
    dwt.write(cyccnt, 7)
    dwt.write(ctrl, dwt.read(ctrl) | 1)
    now[0] += 100
    assert dwt.read(cyccnt) == 107
    dwt.set_trcena(False)  # DEMCR.TRCENA off freezes it
    now[0] += 100
    assert dwt.read(cyccnt) == 107
    m4 = Dwt(lock_implemented=False, cycles=lambda: now[0])
    assert m4.read(lsr) == 0


def test_gpio_bsrr_logs_the_timestamp_pin() -> None:
    now = [0]
    gpio = Gpio("F", 0x4800_1400, moder_reset=0xFFFF_FFFF)
    gpio.watch(13, lambda: now[0], 100)
    bsrr, moder = 0x18, 0x00
    gpio.write(bsrr, 1 << 13)  # high, but still analog: not driven
    assert gpio.edges == []
    gpio.write(moder, (gpio.read(moder) & ~(3 << 26)) | (1 << 26))
    now[0] = 10
    gpio.write(bsrr, 1 << (13 + 16))
    now[0] = 20
    gpio.write(bsrr, (1 << 13) | (1 << (13 + 16)))  # set wins
    assert gpio.edges == [(0, 1), (10, 0), (20, 1)]


def test_machine_alone_starts_and_stops(images: dict[str, Path]) -> None:
    """The machine without the backend: it runs until stopped, and starts only once."""
    name = "nucleo-f446re"
    machine = VirtualMachine(BOARDS[name], images[name], cycle_model=CYCLE_MODEL(BOARDS[name]))
    machine.start()
    time.sleep(0.05)
    assert machine.running and machine.error is None
    machine.stop()
    assert not machine.running and machine.error is None
    with pytest.raises(McuprofError, match="starts once"):
        machine.start()
