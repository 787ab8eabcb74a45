"""The pyOCD backend and the LPM01A energy monitor.

What needs a physical board and probe is marked ``hardware`` and skipped when none is
attached. Everything around it runs for real: pyOCD's probe discovery (with no probe
attached here), the sector arithmetic, the serial-port matching (only the USB port list is
fabricated: it stands in for the probe), and the LPM01A protocol over a real pty with a
scripted fake monitor on the other end (the monitor is the one thing faked)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from serial.tools.list_ports_common import ListPortInfo

from bench_firmware.backends.lpm01a import Acquisition, Lpm01a, parse_samples
from bench_firmware.backends.pyocd_backend import (
    PyocdBoard,
    find_probe,
    match_serial_port,
    sectors_for,
)
from bench_firmware.backends.registry import open_backend
from bench_firmware.boards import BOARDS
from bench_firmware.compiler import compile_model
from bench_firmware.errors import BoardError, DoesNotFitError

KWS = Path(__file__).resolve().parents[2] / "bench_firmware" / "samples" / "kws_tiny.tflite"
KIB = 1024

# -- probe discovery ---------------------------------------------------------------------------


def _attached_probes() -> list[str]:
    from pyocd.core.helpers import ConnectHelper

    return [p.unique_id for p in ConnectHelper.get_all_connected_probes(blocking=False)]


ATTACHED = _attached_probes()
HARDWARE_UID = os.environ.get("MCUPROF_TEST_PROBE")  # e.g. 066DFF535155878281123456
HARDWARE_BOARD = os.environ.get("MCUPROF_TEST_BOARD", "nucleo-f446re")
needs_probe = pytest.mark.skipif(
    not (ATTACHED and HARDWARE_UID),
    reason="needs a Nucleo board on its ST-LINK: set MCUPROF_TEST_PROBE=<unique id> "
           "(and MCUPROF_TEST_BOARD) with the probe attached")


@pytest.mark.skipif(bool(ATTACHED), reason="a probe is attached; this checks the error without")
def test_no_probe_attached_is_a_clear_board_error() -> None:
    """A real pyOCD enumeration: nothing is attached on this machine."""
    with pytest.raises(BoardError) as err:
        find_probe("066DFF535155878281123456")
    text = str(err.value)
    assert "no debug probe with unique id 066DFF535155878281123456 is attached" in text
    assert "pyOCD sees: none" in text
    assert "ST-LINK connector" in text and "pyocd list" in text and "udev" in text


@pytest.mark.skipif(bool(ATTACHED), reason="a probe is attached; this checks the error without")
def test_opening_a_board_without_its_probe_fails_before_touching_anything() -> None:
    board = open_backend("pyocd:nucleo-f446re:066DFF535155878281123456")
    assert isinstance(board, PyocdBoard)
    with pytest.raises(BoardError, match="no debug probe"):
        board.open()
    board.close()  # safe after a failed open
    with pytest.raises(BoardError, match="not open"):
        board.load_plan(b"\0" * 64)


def test_lifecycle_misuse_is_an_error() -> None:
    board = PyocdBoard("pyocd:nucleo-f767zi:0670FF")
    with pytest.raises(BoardError, match="not open"):
        board.run(b"", runs=1, warmup=0)


# -- sectors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("board", "size", "expected"), [
    # F446RE: the model region starts at sector 3 (16 KiB), then sector 4 (64 KiB) (RM0390 §3.3).
    ("nucleo-f446re", 1, [(0x0800_C000, 16 * KIB)]),
    ("nucleo-f446re", 16 * KIB, [(0x0800_C000, 16 * KIB)]),
    ("nucleo-f446re", 16 * KIB + 1, [(0x0800_C000, 16 * KIB), (0x0801_0000, 64 * KIB)]),
    # F767ZI single bank: sectors 2-3 (32 KiB), 4 (128 KiB), then 256 KiB ones (RM0410 §3.3.1).
    ("nucleo-f767zi", 600 * KIB, [(0x0801_0000, 32 * KIB), (0x0801_8000, 32 * KIB),
                                  (0x0802_0000, 128 * KIB), (0x0804_0000, 256 * KIB),
                                  (0x0808_0000, 256 * KIB)]),
    # L4R5ZI: 4 KiB pages, so a 9 KiB plan erases three.
    ("nucleo-l4r5zi", 9 * KIB, [(0x0800_C000, 4 * KIB), (0x0800_D000, 4 * KIB),
                                (0x0800_E000, 4 * KIB)]),
])
def test_sectors_cover_only_what_the_plan_needs(board: str, size: int,
                                                expected: list[tuple[int, int]]) -> None:
    assert sectors_for(BOARDS[board], size) == expected


def test_the_sample_plan_erases_only_the_sectors_it_fills() -> None:
    for board in BOARDS.values():
        plan = compile_model(KWS.read_bytes(), board)
        sectors = sectors_for(board, plan.plan_bytes)
        covered = sum(n for _, n in sectors)
        # The fewest leading sectors of the model region that hold the plan.
        assert tuple(sectors) == board.model_region_sectors[:len(sectors)], board.name
        assert covered >= plan.plan_bytes > covered - sectors[-1][1], board.name


def test_a_plan_larger_than_the_region_does_not_fit() -> None:
    board = BOARDS["nucleo-f746zg"]
    assert len(sectors_for(board, board.model_region_bytes)) == 6  # sectors 2-7
    with pytest.raises(DoesNotFitError, match="983,041 bytes") as err:
        sectors_for(board, board.model_region_bytes + 1)
    assert err.value.needed == board.model_region_bytes + 1


# -- the serial port of a probe ------------------------------------------------------------------


def fake_port(device: str, vid: int | None, pid: int | None, serial: str | None,
              description: str = "") -> ListPortInfo:
    """A port as pyserial's list_ports reports it. Fabricated: there is no probe here."""
    port = ListPortInfo(device, skip_link_detection=True)
    port.vid, port.pid, port.serial_number = vid, pid, serial
    port.description = description or device
    return port


PORTS = [
    fake_port("/dev/ttyS0", None, None, None),
    fake_port("/dev/ttyUSB0", 0x0403, 0x6001, "066DFF535155878281123456", "FTDI"),  # not ST
    fake_port("/dev/ttyACM0", 0x0483, 0x374B, "0670FF484849785087085514", "STM32 STLink"),
    fake_port("/dev/ttyACM1", 0x0483, 0x374B, "066DFF535155878281123456", "STM32 STLink"),
    fake_port("/dev/ttyACM2", 0x0483, 0x374E, "004A00283137510F33333639", "STLINK-V3"),
    fake_port("/dev/ttyACM3", 0x0483, 0x3753, "0023003A3438511834393838", "STLINK-V3 2VCP"),
    fake_port("/dev/ttyACM4", 0x0483, 0x3753, "0023003A3438511834393838", "STLINK-V3 2VCP"),
]


def test_the_port_with_the_probes_serial_number_is_chosen() -> None:
    assert match_serial_port("066DFF535155878281123456", PORTS) == "/dev/ttyACM1"
    assert match_serial_port("066dff535155878281123456", PORTS) == "/dev/ttyACM1"
    assert match_serial_port("004A00283137510F33333639", PORTS) == "/dev/ttyACM2"
    # A V3 with two VCPs: the first one is wired to the target's USART.
    assert match_serial_port("0023003A3438511834393838", PORTS) == "/dev/ttyACM3"


def test_no_matching_port_lists_the_st_link_ports_seen() -> None:
    with pytest.raises(BoardError) as err:
        match_serial_port("FFFF", PORTS)
    text = str(err.value)
    assert "/dev/ttyACM0 (0483:374b serial 0670FF484849785087085514)" in text
    assert "ttyUSB0" not in text and "--serial-port" in text
    with pytest.raises(BoardError, match="ST-LINK ports seen: none"):
        match_serial_port("066DFF535155878281123456", PORTS[:2])


# -- the LPM01A over a pty -------------------------------------------------------------------


class FakeLpm01a:
    """A scripted stand-in for the monitor on the master side of a pty: acknowledges the
    set-up commands like the real one, and on ``start`` streams what ``stream`` gives."""

    def __init__(self, stream: Callable[[], list[str]], refuse: set[str] | None = None) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.url = os.ttyname(slave)
        self._slave = slave
        self.stream = stream
        self.refuse = refuse or set()
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _send(self, *lines: str) -> None:
        with contextlib.suppress(OSError):  # the client may have gone
            os.write(self.master, "".join(line + "\r\n" for line in lines).encode())

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = os.read(self.master, 1024)
            except OSError:
                return
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                command = raw.decode().strip()
                self.commands.append(command)
                if command in self.refuse:
                    self._send(f"PowerShield > error {command}",
                               "Error detail: argument out of range")
                elif command == "stop":
                    self._send("Acquisition completed")
                elif command == "start":
                    self._send(f"PowerShield > ack {command}")
                    self._send(*self.stream())
                else:
                    self._send(f"PowerShield > ack {command}")

    def wait_for(self, command: str, timeout_s: float = 5.0) -> None:
        """Waits until the monitor has read ``command``."""
        deadline = time.monotonic() + timeout_s
        while command not in self.commands:
            assert time.monotonic() < deadline, f"{command!r} never reached the monitor"
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        os.close(self._slave)  # with no slave end left open, the master's read fails: EIO
        self._thread.join(5)
        os.close(self.master)


def make_monitor(lines: list[str], refuse: set[str] | None = None) -> FakeLpm01a:
    return FakeLpm01a(lambda: lines, refuse)


def test_sample_lines_are_decoded() -> None:
    assert parse_samples("6409-07") == pytest.approx([6409e-7])
    assert parse_samples("1221-05 9876+12") == pytest.approx([1221e-5, 9876e12])
    assert parse_samples("6409-07 ") == pytest.approx([6409e-7])
    assert parse_samples("TimeStamp: 00d 00h 00m 01s 000ms") is None
    assert parse_samples("event 1 ris") is None
    assert parse_samples("ack start") is None


def test_energy_is_summed_between_the_last_two_edges_per_inference() -> None:
    # 150 samples of 2 µJ before the loop, 1000 samples of 10 µJ in it, 50 after.
    lines = (["2000-09"] * 150 + ["event 1 ris"] + ["1000-08"] * 1000 + ["event 2 ris"]
             + ["TimeStamp: 00d 00h 00m 01s 150ms"] + ["2000-09"] * 50)
    fake = make_monitor(lines)
    try:
        with Lpm01a(fake.url) as monitor:
            monitor.start()
            time.sleep(0.3)  # the timed loop runs on the board meanwhile
            acquisition = monitor.stop()
        assert fake.commands[:9] == ["htc", "volt 3300m", "freq 1k", "acqtime inf",
                                     "trigsrc sw", "eventsrc d7 fal", "output energy",
                                     "format ascii_dec", "pwr on"]
        fake.wait_for("hrc")
        assert fake.commands[-3:] == ["start", "stop", "hrc"]
        assert len(acquisition.samples) == 1200 and acquisition.events == [150, 1150]
        energy_mj, warnings = acquisition.energy_per_inference_mj(runs=10)
        # 1000 × 10 µJ = 10 mJ over 10 inferences.
        assert energy_mj == pytest.approx(1.0)
        assert warnings == []
    finally:
        fake.close()


def test_a_short_window_warns_and_missing_edges_are_an_error() -> None:
    short = Acquisition(samples=[1e-6] * 30, events=[5, 25])
    energy, warnings = short.energy_per_inference_mj(runs=2)
    assert energy == pytest.approx(20 * 1e-6 * 1e3 / 2)
    assert "raise --runs" in warnings[0]
    with pytest.raises(BoardError, match="1 timestamp edge.*D7"):
        Acquisition(samples=[1e-6] * 10, events=[3]).energy_per_inference_mj(runs=1)


def test_a_refused_command_carries_the_monitors_detail() -> None:
    fake = make_monitor([], refuse={"volt 3300m"})
    try:
        with pytest.raises(BoardError, match="refused `volt 3300m`: argument out of range"):
            Lpm01a(fake.url).open()
    finally:
        fake.close()


def test_a_silent_port_is_a_clear_error() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        with pytest.raises(BoardError, match="no answer from the LPM01A.*to `htc`.*baud"):
            Lpm01a(os.ttyname(slave), timeout_s=0.3).open()
    finally:
        os.close(slave)
        os.close(master)


def test_a_missing_port_is_a_clear_error() -> None:
    with pytest.raises(BoardError, match="Could not open the LPM01A energy monitor's port"):
        Lpm01a("/dev/does-not-exist").open()


# -- on a real board ---------------------------------------------------------------------------


@pytest.mark.hardware
@needs_probe
def test_profile_on_a_real_board() -> None:
    device = f"pyocd:{HARDWARE_BOARD}:{HARDWARE_UID}"
    plan = compile_model(KWS.read_bytes(), BOARDS[HARDWARE_BOARD])
    x = np.random.default_rng(0).integers(-128, 128, size=plan.input_shape, dtype=np.int8)
    with PyocdBoard(device) as board:
        status = board.load_plan(plan.data)
        assert status["status"] == "ok"
        run = board.run(x.tobytes(), runs=5, warmup=1)
        again = board.run(x.tobytes(), runs=5, warmup=1)
    assert len(run.cycles_per_run) == 5 and len(run.layer_cycles) == len(plan.layers)
    assert run.output == again.output
    assert board.firmware_id is not None
