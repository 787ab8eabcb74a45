"""Register models of the peripherals the bench firmware touches, one board at a time.

Only the registers ``bench_firmware/firmware/boards/**`` reads or writes are modeled, with the
behaviour the firmware depends on (sources: ST reference manuals RM0390, RM0385, RM0410 and
RM0432, the ST CMSIS device headers, the Nucleo user manuals UM1724, UM1974 and UM2179,
the ARMv7-M ARM and the Cortex-M7 TRM):

- RCC: ready bits follow their enable bits (HSIRDY, HSERDY while the ST-LINK's 8 MHz MCO
  drives OSC_IN, PLLRDY), SWS follows SW; the clock tree is computed from the registers so
  the UART's baud rate can be checked against 115200.
- PWR: over-drive ODRDY / ODSWRDY follow ODEN / ODSWEN (F4, F7); VOSF reads 0 (L4: the
  voltage scaling is done at once).
- FLASH_ACR: stored (latency, ART / caches).
- GPIO: MODER, OTYPER, OSPEEDR, PUPDR, IDR, ODR, BSRR, AFRL, AFRH. The D7 timestamp pin's
  level changes are logged with the cycle count, for energy-monitor emulation.
- USART (F4 layout SR / DR / BRR / CR1) and USART / LPUART (F7 and L4 layout CR1 / CR3 / BRR /
  ISR / RDR / TDR): TXE and TC always set; RXNE when the host has sent a byte. Transmitting
  checks what a real board needs for a byte to reach the ST-LINK: the pins in their
  alternate function, UE and TE, 8N1, a baud rate within 2 % of 115200, and on the L4 the
  VDDIO2 supply of port G.
- SCS: ACTLR, VTOR, CCR, CPACR, DEMCR; on the Cortex-M7 also CSSELR / CCSIDR and the cache
  maintenance registers ICIALLU, DCISW.
- DWT: CTRL, CYCCNT (counts the cycle model's cycles while DEMCR.TRCENA and CYCCNTENA are
  set; a write sets it), LAR / LSR (the Cortex-M7's software lock: DWT writes are ignored
  until 0xC5ACCE55 is written to LAR, so CYCCNT stays 0 as on silicon).

Any other offset in a modeled block, an access to a peripheral whose RCC clock is off, or an
unaligned access to device memory is a fault: the machine stops the firmware and names the
address and instruction. Register blocks are 32-bit; byte and half-word accesses are served
from (and merged into) the word.

The register blocks live in :mod:`.registers` (``base``, ``clocks``, ``gpio``, ``uart``,
``system``); this module wires them into a board and dispatches the bus. Every name is
importable from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench_firmware.backends.virtual.registers.base import (
    BLOCK_GRAIN,
    MMIO_PAGE,
    SIZE_MASK,
    WORD_MASK,
    ClockGate,
    FaultSink,
    PinEdge,
    RegisterBlock,
    UartLink,
)
from bench_firmware.backends.virtual.registers.clocks import (
    AHB_DIVIDERS,
    APB_DIVIDERS,
    HSI16_HZ,
    L4_MSI_RESET_HZ,
    ST_LINK_MCO_HZ,
    FlashInterface,
    PwrL4,
    PwrOverdrive,
    Rcc,
    RccF4F7,
    RccL4,
)
from bench_firmware.backends.virtual.registers.gpio import Gpio
from bench_firmware.backends.virtual.registers.system import (
    DEMCR_TRCENA,
    DWT_CTRL_CYCCNTENA,
    DWT_CTRL_RESET,
    DWT_LAR_KEY,
    DWT_LSR_IMPLEMENTED,
    DWT_LSR_LOCKED,
    M7_CACHE_LINE_BYTES,
    M7_DCACHE_WAYS,
    M7_ICACHE_WAYS,
    M7_L1_CACHE_BYTES,
    Dwt,
    SystemControl,
)
from bench_firmware.backends.virtual.registers.uart import (
    BAUD_TOLERANCE,
    F4_USART,
    REACK,
    RXNE,
    TC,
    TEACK,
    TXE,
    UART_BAUD,
    V2_LPUART,
    V2_REGISTERS,
    V2_USART,
    Uart,
    UartLayout,
    UartRoute,
)
from bench_firmware.boards import Board
from bench_firmware.errors import BoardError

__all__ = [
    "AHB_DIVIDERS",
    "APB_DIVIDERS",
    "BAUD_TOLERANCE",
    "BLOCK_GRAIN",
    "DEMCR_TRCENA",
    "DWT_CTRL_CYCCNTENA",
    "DWT_CTRL_RESET",
    "DWT_LAR_KEY",
    "DWT_LSR_IMPLEMENTED",
    "DWT_LSR_LOCKED",
    "F4_USART",
    "HSI16_HZ",
    "L4_MSI_RESET_HZ",
    "M7_CACHE_LINE_BYTES",
    "M7_DCACHE_WAYS",
    "M7_ICACHE_WAYS",
    "M7_L1_CACHE_BYTES",
    "MMIO_PAGE",
    "REACK",
    "RXNE",
    "SIZE_MASK",
    "ST_LINK_MCO_HZ",
    "TC",
    "TEACK",
    "TIMESTAMP_EDGES_MAX",
    "TXE",
    "UART_BAUD",
    "V2_LPUART",
    "V2_REGISTERS",
    "V2_USART",
    "WORD_MASK",
    "ClockGate",
    "Dwt",
    "FaultSink",
    "FlashInterface",
    "Gpio",
    "PeripheralBus",
    "Peripherals",
    "PinEdge",
    "PwrL4",
    "PwrOverdrive",
    "Rcc",
    "RccF4F7",
    "RccL4",
    "RegisterBlock",
    "SystemControl",
    "Uart",
    "UartLayout",
    "UartLink",
    "UartRoute",
    "build_peripherals",
]

# ---------------------------------------------------------------------------------------------
# The bus


class PeripheralBus:
    """Dispatches Unicorn MMIO callbacks to the register blocks; reports everything else as a
    fault. :attr:`generation` counts configuration writes, so checks that depend on several
    registers (the UART route) are redone only when something changed."""

    def __init__(self, blocks: list[RegisterBlock], faults: FaultSink, board: Board) -> None:
        self.blocks = blocks
        self._faults = faults
        self._board = board
        self._by_grain: dict[int, RegisterBlock] = {}
        for block in blocks:
            for grain in range(block.base // BLOCK_GRAIN, (block.base + block.size) // BLOCK_GRAIN):
                self._by_grain[grain] = block
        self.pages = sorted({g * BLOCK_GRAIN // MMIO_PAGE * MMIO_PAGE for g in self._by_grain})
        self.generation = 0
        self.accesses = 0

    def modeled(self) -> str:
        return ", ".join(b.name for b in self.blocks)

    def map(self, uc: Any) -> None:
        """Maps every 4 KB page holding a modeled block as MMIO on ``uc``."""
        for page in self.pages:
            uc.mmio_map(page, MMIO_PAGE, self._read_cb, page, self._write_cb, page)

    def _locate(self, address: int, size: int, write: bool) -> tuple[RegisterBlock, int] | None:
        """The block and offset of a modeled register; else reports the fault, None."""
        block = self._by_grain.get(address // BLOCK_GRAIN)
        offset = address - block.base if block is not None else 0
        if (block is not None and (offset & ~3) in block.names and not address % size
                and (block.gate is None or block.gate.enabled())):
            return block, offset  # the fast path: every access the firmware should make
        verb = "wrote" if write else "read"
        summary = f"firmware {verb} unmodeled address {address:#010x} ({size} bytes)"
        if block is None:
            self._faults.fault(summary, f"no peripheral is modeled there; the virtual "
                                        f"{self._board.name} models {self.modeled()}")
            return None
        word = offset & ~3
        if word not in block.names:
            self._faults.fault(summary, f"{block.name} register offset {word:#05x} is not "
                                        f"modeled: the virtual board models only the "
                                        f"{block.name} registers the bench firmware uses "
                                        f"({', '.join(sorted(block.offsets))}); model it in "
                                        f"bench_firmware/backends/virtual/peripherals.py if the "
                                        f"firmware now needs it")
            return None
        name = f"{block.name}_{block.names[word]}"
        if address % size:
            self._faults.fault(f"firmware {verb} {name} at {address:#010x} unaligned "
                               f"({size} bytes)", "unaligned accesses to device memory fault "
                               "on Cortex-M")
            return None
        gate = block.gate
        assert gate is not None
        self._faults.fault(f"firmware {verb} {name} ({address:#010x})",
                           f"{block.name}'s clock is off ({gate.describe()} = 0): on the board "
                           f"the access is ignored; enable the clock first")
        return None

    def _read_cb(self, _uc: object, offset: int, size: int, page: int) -> int:
        self.accesses += 1
        address = page + offset
        found = self._locate(address, size, write=False)
        if found is None:
            return 0
        block, rel = found
        value = block.read(rel & ~3)
        return (value >> ((rel & 3) * 8)) & SIZE_MASK[size]

    def _write_cb(self, _uc: object, offset: int, size: int, value: int, page: int) -> None:
        self.accesses += 1
        address = page + offset
        found = self._locate(address, size, write=True)
        if found is None:
            return
        block, rel = found
        word = rel & ~3
        if size != 4:
            shift, mask = (rel & 3) * 8, SIZE_MASK[size]
            value = (block.values[word] & ~(mask << shift)) | ((value & mask) << shift)
        if word not in block.data_offsets:
            self.generation += 1
        block.write(word, value & WORD_MASK)


# ---------------------------------------------------------------------------------------------
# Boards


@dataclass
class Peripherals:
    """A board's modeled peripherals, wired together."""

    bus: PeripheralBus
    rcc: Rcc
    flash: FlashInterface
    uart: Uart
    timestamp_port: Gpio
    scs: SystemControl
    dwt: Dwt

    def core_clock_hz(self) -> int:
        """The core clock (HCLK) the firmware has configured, from the RCC registers."""
        return self.rcc.hclk_hz()

    @property
    def pin_edges(self) -> list[PinEdge]:
        return self.timestamp_port.edges


TIMESTAMP_EDGES_MAX = 1_000_000  # pin edges kept (4 per `infer`)


def build_peripherals(board: Board, *, link: UartLink, faults: FaultSink,
                      cycles: Callable[[], int], hse_present: bool = True) -> Peripherals:
    """The modeled peripherals of ``board``, as its firmware (``firmware/boards/<board>``)
    uses them. ``cycles``: the cycle model's count, for CYCCNT and pin edges."""
    dwt = Dwt(lock_implemented=board.core == "cortex-m7", cycles=cycles)
    scs = SystemControl(board, dwt)
    rcc: Rcc
    uart: Uart
    if board.mcu.startswith("STM32F4") or board.mcu.startswith("STM32F7"):
        f7 = board.mcu.startswith("STM32F7")
        rcc = RccF4F7(f7=f7, hse_present=hse_present)
        pwr: RegisterBlock = PwrOverdrive(f7=f7, gate=ClockGate(rcc, "APB1ENR", 28))
        flash = FlashInterface(0x4002_3C00)
        pclk1 = rcc.pclk1_hz
        if f7:  # USART3 on PD8 / PD9, D7 = PF13 (stm32f7_nucleo144.c)
            gpio_d = Gpio("D", 0x4002_0C00, gate=ClockGate(rcc, "AHB1ENR", 3))
            gpio_f = Gpio("F", 0x4002_1400, gate=ClockGate(rcc, "AHB1ENR", 5))
            ports, timestamp = [gpio_d, gpio_f], (gpio_f, 13)

            def usart3_clock() -> int:
                sel = (rcc.reg("DCKCFGR2") >> 4) & 3  # RM0385 RCC_DCKCFGR2 USART3SEL
                return {0: pclk1(), 1: rcc.sysclk_hz(), 2: HSI16_HZ}.get(sel, 0)

            route = UartRoute(gpio_d, 8, gpio_d, 9, 7, usart3_clock, "USART3 kernel clock")
            uart = Uart("USART3", 0x4000_4800, V2_USART, route, link, faults,
                        ClockGate(rcc, "APB1ENR", 18))
        else:  # USART2 on PA2 / PA3, D7 = PA8 (nucleo-f446re/board.c)
            gpio_a = Gpio("A", 0x4002_0000, moder_reset=0xA800_0000,
                          ospeedr_reset=0x0C00_0000, pupdr_reset=0x6400_0000,
                          gate=ClockGate(rcc, "AHB1ENR", 0))
            ports, timestamp = [gpio_a], (gpio_a, 8)
            route = UartRoute(gpio_a, 2, gpio_a, 3, 7, pclk1, "PCLK1")
            uart = Uart("USART2", 0x4000_4400, F4_USART, route, link, faults,
                        ClockGate(rcc, "APB1ENR", 17))
    elif board.mcu.startswith("STM32L4"):  # LPUART1 on PG7 / PG8, D7 = PF13
        rcc_l4 = RccL4()
        rcc = rcc_l4
        pwr_l4 = PwrL4(gate=ClockGate(rcc, "APB1ENR1", 28))
        pwr = pwr_l4
        flash = FlashInterface(0x4002_2000, acr_reset=0x0000_0600)
        gpio_f = Gpio("F", 0x4800_1400, moder_reset=WORD_MASK, gate=ClockGate(rcc, "AHB2ENR", 5))
        gpio_g = Gpio("G", 0x4800_1800, moder_reset=WORD_MASK, gate=ClockGate(rcc, "AHB2ENR", 6))
        ports, timestamp = [gpio_f, gpio_g], (gpio_f, 13)

        def lpuart1_clock() -> int:
            sel = (rcc.reg("CCIPR") >> 10) & 3  # RM0432 RCC_CCIPR LPUART1SEL
            return {0: rcc_l4.pclk1_hz(), 1: rcc.sysclk_hz(), 2: HSI16_HZ}.get(sel, 0)

        def vddio2() -> str | None:
            if pwr_l4.vddio2_valid():
                return None
            return ("port G is unpowered (PWR_CR2.IOSV = 0): on the board PG7 / PG8 stay dead; "
                    "set IOSV before using LPUART1")

        route = UartRoute(gpio_g, 7, gpio_g, 8, 8, lpuart1_clock, "LPUART1 kernel clock",
                          vddio2)
        uart = Uart("LPUART1", 0x4000_8000, V2_LPUART, route, link, faults,
                    ClockGate(rcc, "APB1ENR2", 0))
    else:
        raise BoardError(f"no virtual peripherals for {board.name} ({board.mcu})")

    port, pin = timestamp
    port.watch(pin, cycles, TIMESTAMP_EDGES_MAX)
    blocks: list[RegisterBlock] = [rcc, pwr, flash, *ports, uart, scs, dwt]
    bus = PeripheralBus(blocks, faults, board)
    uart.generation = lambda: bus.generation
    return Peripherals(bus, rcc, flash, uart, port, scs, dwt)
