"""Cross-build the firmware for every board and check the image against the catalogue: it fits
below the model region, .data + .bss + stack fit FIRMWARE_RAM_RESERVE, the vector table's
initial SP is the top of the reserve, the arena and model region symbols are where boards.py
says, and the image boots to main() under a minimal register model (Unicorn, when installed).
Also the host side: board_host.c on its own, and the host builds once their mains exist.

The board-support builds link a stand-in main() generated into a temporary folder (it uses only
mp_board.h), so they test this layer whether or not firmware/main.c and the runtime exist yet;
``test_full_firmware_builds`` builds the real thing once main.c is there."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench_firmware import build
from bench_firmware.boards import BOARDS, FIRMWARE_RAM_RESERVE, Board
from bench_firmware.errors import BuildError

pytestmark = pytest.mark.slow

BOARD_NAMES = sorted(BOARDS)
HAVE_ARM_GCC = shutil.which(build.ARM_GCC) is not None
needs_arm_gcc = pytest.mark.skipif(
    not HAVE_ARM_GCC,
    reason=f"{build.ARM_GCC} is not installed (apt-get install gcc-arm-none-eabi "
    "libnewlib-arm-none-eabi)",
)
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (cc)")

# Exercises every mp_board.h function, 64-bit division (board_micros) and the FPU.
STAND_IN_MAIN = r"""
#include <stdint.h>
#include "mp_board.h"

static volatile float sink;

int main(void) {
  board_init();
  uint32_t model_bytes = 0, arena_bytes = 0;
  const uint8_t *model = board_model_region(&model_bytes);
  uint8_t *arena = board_arena(&arena_bytes);
  arena[0] = model[0];
  sink = (float)board_cycles() * 0.5f + (float)board_micros();
  board_timestamp_pin(0);
  board_uart_write("m-ready\r\n", 9);
  for (;;) {
    char c = (char)board_uart_getc();
    board_uart_write(&c, 1);
  }
}
"""


def _nm(elf: Path) -> dict[str, int]:
    gcc = build.find_arm_gcc()
    out = subprocess.run(
        [str(build.arm_tool(gcc, "nm")), str(elf)], capture_output=True, text=True, check=True
    ).stdout
    symbols = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3:
            symbols[fields[2]] = int(fields[0], 16)
    return symbols


def _stand_in_main(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    main = folder / "stand_in_main.c"
    main.write_text(STAND_IN_MAIN)
    return main


@pytest.fixture(scope="module", params=BOARD_NAMES)
def board_image(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Board, build.FirmwareImage]:
    if not HAVE_ARM_GCC:
        pytest.skip(f"{build.ARM_GCC} is not installed")
    board = BOARDS[request.param]
    tmp = tmp_path_factory.mktemp(board.name)
    image = build.build_firmware(board, tmp / "out", sources=[_stand_in_main(tmp / "src")])
    return board, image


@needs_arm_gcc
def test_image_files_and_id(board_image: tuple[Board, build.FirmwareImage]) -> None:
    board, image = board_image
    assert image.board == board.name
    assert image.elf.is_file() and image.bin.is_file()
    data = image.bin.read_bytes()
    assert image.firmware_id == hashlib.sha256(data).hexdigest()[:16]
    assert image.flash_bytes == len(data) == image.text_bytes + image.data_bytes
    assert image.text_bytes > 0


@needs_arm_gcc
def test_image_fits_below_the_model_region(board_image: tuple[Board, build.FirmwareImage]) -> None:
    board, image = board_image
    assert image.flash_bytes <= board.model_region_base - board.flash_base
    symbols = _nm(image.elf)
    assert symbols["_sidata"] + image.data_bytes <= board.model_region_base
    assert symbols["__model_region_start"] == board.model_region_base
    assert symbols["__model_region_end"] == board.model_region_base + board.model_region_bytes


@needs_arm_gcc
def test_static_ram_and_stack_fit_the_reserve(
    board_image: tuple[Board, build.FirmwareImage],
) -> None:
    board, image = board_image
    symbols = _nm(image.elf)
    assert symbols["_sdata"] == board.sram_base
    assert symbols["__stack_top"] == board.sram_base + FIRMWARE_RAM_RESERVE
    stack_min = symbols["__stack_top"] - symbols["__stack_limit"]
    assert image.data_bytes + image.bss_bytes + stack_min <= FIRMWARE_RAM_RESERVE
    assert symbols["_ebss"] <= symbols["__stack_limit"]


@needs_arm_gcc
def test_arena_is_the_rest_of_sram(board_image: tuple[Board, build.FirmwareImage]) -> None:
    board, image = board_image
    symbols = _nm(image.elf)
    assert symbols["__arena_start"] == board.sram_base + FIRMWARE_RAM_RESERVE
    assert symbols["__arena_start"] % 16 == 0
    assert symbols["__arena_end"] == board.sram_base + board.sram_bytes
    assert symbols["__arena_end"] - symbols["__arena_start"] == board.arena_capacity


@needs_arm_gcc
def test_vector_table(board_image: tuple[Board, build.FirmwareImage]) -> None:
    board, image = board_image
    initial_sp, reset = struct.unpack_from("<II", image.bin.read_bytes(), 0)
    assert initial_sp == board.sram_base + FIRMWARE_RAM_RESERVE
    symbols = _nm(image.elf)
    assert symbols["mp_vectors"] == board.flash_base
    assert reset == symbols["reset_handler"] | 1  # Thumb bit


# --- boot under a minimal register model (Unicorn) ----------------------------------------------
# Peripheral registers read back what was last written, plus the ready bits board_init() polls
# for; RCC_CFGR's SWS mirrors SW. The image must run reset → board_init() → main() and print
# "m-ready" through the VCP UART's data register.

_F4F7_RCC_READY = (1 << 1) | (1 << 17) | (1 << 25)  # RCC_CR HSIRDY, HSERDY, PLLRDY
_F4F7_PWR_READY = (1 << 16) | (1 << 17)  # PWR_CSR ODRDY, ODSWRDY
_L4_RCC_READY = (1 << 10) | (1 << 25)  # RCC_CR HSIRDY, PLLRDY
_UART_READY = (1 << 5) | (1 << 7)  # RXNE, TXE


@dataclass(frozen=True)
class BootFacts:
    """Register addresses (the RMs) the register model and the checks need."""

    ready: dict[int, int]  # status register → bits that read as 1
    rcc_cfgr: int
    uart_tx: int  # data register the VCP UART transmits from
    uart_brr: int
    brr_115200: int
    flash_acr: int
    timestamp_gpio: int  # GPIO port base of the D7 pin


_F7_BOOT = BootFacts(
    ready={0x40023800: _F4F7_RCC_READY, 0x40007004: _F4F7_PWR_READY, 0x4000481C: _UART_READY},
    rcc_cfgr=0x40023808, uart_tx=0x40004828, uart_brr=0x4000480C, brr_115200=469,
    flash_acr=0x40023C00, timestamp_gpio=0x40021400,
)  # fmt: skip
BOOT_FACTS = {
    "nucleo-f446re": BootFacts(
        ready={0x40023800: _F4F7_RCC_READY, 0x40007004: _F4F7_PWR_READY, 0x40004400: _UART_READY},
        rcc_cfgr=0x40023808, uart_tx=0x40004404, uart_brr=0x40004408, brr_115200=391,
        flash_acr=0x40023C00, timestamp_gpio=0x40020000,
    ),
    "nucleo-f746zg": _F7_BOOT,
    "nucleo-f767zi": _F7_BOOT,
    "nucleo-l4r5zi": BootFacts(
        ready={0x40021000: _L4_RCC_READY, 0x4000801C: _UART_READY},
        rcc_cfgr=0x40021008, uart_tx=0x40008028, uart_brr=0x4000800C, brr_115200=35556,
        flash_acr=0x40022000, timestamp_gpio=0x48001400,
    ),
}  # fmt: skip
SCB_CPACR, SCB_CCR, DWT_CTRL, DWT_LAR = 0xE000ED88, 0xE000ED14, 0xE0001000, 0xE0001FB0
BOOT_STEP_LIMIT = 5_000_000  # instructions; booting takes well under 100 000


@needs_arm_gcc
def test_boots_to_main_under_a_register_model(
    board_image: tuple[Board, build.FirmwareImage],
) -> None:
    uc_mod = pytest.importorskip("unicorn")
    arm = pytest.importorskip("unicorn.arm_const")
    board, image = board_image
    facts = BOOT_FACTS[board.name]
    regs: dict[int, int] = {}
    tx = bytearray()

    uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM, uc_mod.UC_MODE_THUMB | uc_mod.UC_MODE_MCLASS)
    m7 = board.core == "cortex-m7"
    uc.ctl_set_cpu_model(arm.UC_CPU_ARM_CORTEX_M7 if m7 else arm.UC_CPU_ARM_CORTEX_M4)
    uc.mem_map(board.flash_base, board.flash_bytes)  # the model region reads as zeros
    uc.mem_map(board.sram_base, board.sram_bytes)
    uc.mem_write(board.flash_base, image.bin.read_bytes())

    def read(addr: int) -> int:
        value = regs.get(addr, 0)
        if addr == facts.rcc_cfgr:  # SWS [3:2] follows SW [1:0]
            return (value & ~0xC) | ((value & 3) << 2)
        return value | facts.ready.get(addr, 0)

    def write(addr: int, value: int) -> None:
        regs[addr] = value
        if addr == facts.uart_tx:
            tx.append(value & 0xFF)
            if tx.endswith(b"\r\n"):
                uc.emu_stop()

    for base, size in ((0x40000000, 0x20000000), (0xE0000000, 0x100000)):
        uc.mmio_map(
            base, size,
            lambda _uc, off, _size, _ud, base=base: read(base + off), None,
            lambda _uc, off, _size, value, _ud, base=base: write(base + off, value), None,
        )  # fmt: skip
    initial_sp, reset = struct.unpack_from("<II", image.bin.read_bytes(), 0)
    uc.reg_write(arm.UC_ARM_REG_SP, initial_sp)
    uc.emu_start(reset, board.model_region_base, count=BOOT_STEP_LIMIT)

    assert bytes(tx) == b"m-ready\r\n"
    assert regs[SCB_CPACR] & (0xF << 20) == 0xF << 20  # FPU on
    assert regs[DWT_CTRL] & 1  # CYCCNTENA
    assert (regs.get(DWT_LAR) == 0xC5ACCE55) == m7  # unlocked on the M7 only
    if m7:
        assert regs[SCB_CCR] & (3 << 16) == 3 << 16  # L1 I- and D-cache on
    assert regs[facts.uart_brr] == facts.brr_115200
    assert regs[facts.flash_acr] & 0xF == board.flash_wait_states
    # The D7 pin is an output; the stand-in main last drove it low through BSRR.
    pin = int(board.timestamp_pin.split()[0][2:])
    assert (regs[facts.timestamp_gpio] >> (2 * pin)) & 3 == 1
    assert regs[facts.timestamp_gpio + 0x18] == 1 << (pin + 16)

    # Faults land in a handler that reports on the UART. Unicorn does not take exceptions, so
    # check the vectors and run the handler directly.
    fault_handler = _nm(image.elf)["mp_fault_handler"] | 1
    vectors = struct.unpack_from("<16I", image.bin.read_bytes(), 0)
    assert vectors[2:7] == (fault_handler,) * 5  # NMI, HardFault, MemManage, BusFault, Usage
    tx.clear()
    uc.emu_start(fault_handler, board.model_region_base, count=BOOT_STEP_LIMIT)
    assert bytes(tx) == b"e-[hard fault]\r\n"


@needs_arm_gcc
def test_rebuilds_only_when_sources_change(tmp_path: Path) -> None:
    board = BOARDS["nucleo-f446re"]
    main = _stand_in_main(tmp_path / "src")
    first = build.build_firmware(board, tmp_path / "out", sources=[main])
    mtime = first.elf.stat().st_mtime_ns
    again = build.build_firmware(board, tmp_path / "out", sources=[main])
    assert again == first and again.elf.stat().st_mtime_ns == mtime
    main.write_text(STAND_IN_MAIN.replace("m-ready", "m-READY"))
    changed = build.build_firmware(board, tmp_path / "out", sources=[main])
    assert changed.firmware_id != first.firmware_id


@needs_arm_gcc
def test_compiler_errors_become_build_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return undeclared; }\n")
    with pytest.raises(BuildError, match="undeclared"):
        build.build_firmware(BOARDS["nucleo-l4r5zi"], tmp_path / "out", sources=[bad])


def test_missing_cross_compiler_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(BuildError, match="apt-get install gcc-arm-none-eabi"):
        build.find_arm_gcc()


@needs_arm_gcc
@pytest.mark.skipif(
    not (build.FIRMWARE_DIR / build.FIRMWARE_MAIN).is_file(),
    reason="firmware/main.c not written yet",
)
@pytest.mark.parametrize("name", BOARD_NAMES)
def test_full_firmware_builds(name: str, tmp_path: Path) -> None:
    board = BOARDS[name]
    image = build.build_firmware(board, tmp_path)
    assert image.flash_bytes <= board.model_region_base - board.flash_base


# --- host side ---------------------------------------------------------------------------------

HOST_PROBE_MAIN = r"""
#include <stdio.h>
#include <stdint.h>
#include "mp_board.h"

void board_host_set_model_region(const uint8_t *p, uint32_t n);

int main(void) {
  static const uint8_t plan[4] = {'M', 'C', 'U', 'P'};
  uint32_t n = 0;
  board_init();
  board_host_set_model_region(plan, sizeof plan);
  const uint8_t *m = board_model_region(&n);
  uint8_t *arena = board_arena(&n);
  arena[n - 1] = 1;
  char line[64];
  int len = snprintf(line, sizeof line, "%s %u %u %c%lu %u\n", board_name, board_code,
                     board_clock_hz, m[0], (unsigned long)n, board_cycles());
  board_uart_write(line, (uint32_t)len);
  int c;
  while ((c = board_uart_getc()) >= 0) {
    char ch = (char)c;
    board_uart_write(&ch, 1);
  }
  return ((uintptr_t)arena % 16) != 0;
}
"""


@needs_cc
def test_board_host_stdio(tmp_path: Path) -> None:
    src = tmp_path / "probe.c"
    src.write_text(HOST_PROBE_MAIN)
    exe = tmp_path / "probe"
    subprocess.run(
        [
            "cc",
            *build.HOST_FLAGS,
            f"-I{build.INCLUDE_DIR}",
            str(src),
            str(build.HOST_DIR / "board_host.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    run = subprocess.run([str(exe)], input=b"db load 4%", capture_output=True, check=True)
    arena = 64 * 1024 * 1024 - FIRMWARE_RAM_RESERVE
    assert run.stdout == f"host 0 0 M{arena} 0\ndb load 4%".encode()


@needs_cc
@pytest.mark.skipif(
    not (build.HOST_DIR / "host_main.c").is_file(),
    reason="firmware/host/host_main.c not written yet",
)
def test_host_exe_builds(tmp_path: Path) -> None:
    exe = build.build_host("exe", tmp_path)
    assert exe.is_file() and exe.name == build.HOST_EXE_NAME


@needs_cc
@pytest.mark.skipif(
    not (build.HOST_DIR / "host_lib.c").is_file(), reason="firmware/host/host_lib.c not written yet"
)
def test_host_lib_builds(tmp_path: Path) -> None:
    lib = build.build_host("lib", tmp_path)
    assert lib.is_file() and lib.name == build.HOST_LIB_NAME


def test_unknown_host_kind() -> None:
    with pytest.raises(BuildError, match="exe"):
        build.host_sources("dll")
