"""Register models of the peripherals the bench firmware touches, one board at a time.

Only the registers ``bench_firmware/firmware/boards/**`` reads or writes are modeled, with the
behaviour the firmware depends on (sources: ``shared/reference/boards.md``, RM0390, RM0385,
RM0410, RM0432, the ARMv7-M ARM and the Cortex-M7 TRM):

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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from bench_firmware.boards import Board
from bench_firmware.errors import BoardError

WORD_MASK = 0xFFFF_FFFF
SIZE_MASK = {1: 0xFF, 2: 0xFFFF, 4: WORD_MASK}
MMIO_PAGE = 0x1000  # bytes: Unicorn maps I/O in 4 KB pages
BLOCK_GRAIN = 0x400  # bytes: every STM32 peripheral block is 1 KB aligned

HSI16_HZ = 16_000_000  # STM32 internal RC oscillator
ST_LINK_MCO_HZ = 8_000_000  # the ST-LINK's MCO drives OSC_IN in bypass (F4 / F7 Nucleos)
L4_MSI_RESET_HZ = 4_000_000  # MSI range 6 at reset (RM0432 RCC_CR MSIRANGE)
UART_BAUD = 115_200  # MLPerf Tiny performance mode, bench_firmware.protocol.BAUDRATE
BAUD_TOLERANCE = 0.02  # relative baud error a UART receiver still samples correctly

# RCC_CFGR prescaler encodings (RM0390 / RM0385 / RM0432, RCC_CFGR HPRE and PPREx).
AHB_DIVIDERS = {8: 2, 9: 4, 10: 8, 11: 16, 12: 64, 13: 128, 14: 256, 15: 512}
APB_DIVIDERS = {4: 2, 5: 4, 6: 8, 7: 16}

# ARMv7-M ARM §C1.6.5 / §C1.8.7; Cortex-M7 TRM "DWT programmers' model" (LAR key).
DEMCR_TRCENA = 1 << 24
DWT_CTRL_CYCCNTENA = 1 << 0
DWT_CTRL_RESET = 0x4000_0000  # NUMCOMP = 4 comparators
DWT_LAR_KEY = 0xC5AC_CE55
DWT_LSR_IMPLEMENTED = 1 << 0
DWT_LSR_LOCKED = 1 << 1

# L1 cache geometry of the Cortex-M7 parts (I bytes, D bytes), cortex-m-timing.md; the
# Cortex-M7 TRM fixes 2-way I / 4-way D, 32-byte lines.
M7_L1_CACHE_BYTES = {"nucleo-f746zg": (4096, 4096), "nucleo-f767zi": (16384, 16384)}
M7_CACHE_LINE_BYTES = 32
M7_ICACHE_WAYS, M7_DCACHE_WAYS = 2, 4

PinEdge = tuple[int, int]  # (cycles since reset, new level)


class FaultSink(Protocol):
    """Where a peripheral reports what the firmware did wrong; the machine stops the run and
    names the instruction. ``summary`` reads like "firmware read unmodeled address 0x...
    (4 bytes)"; ``detail`` says why and what to do."""

    def fault(self, summary: str, detail: str) -> None: ...


class UartLink(Protocol):
    """The host side of a UART, as the machine provides it."""

    def rx_ready(self, spinning: bool) -> bool:
        """A host byte is pending. ``spinning``: the firmware's previous UART access was a
        status read that found none, so it is busy-waiting; the machine may block here
        until a byte arrives instead of emulating the spin."""
        ...

    def rx_take(self) -> int:
        """The oldest pending host byte (only after ``rx_ready`` said True)."""
        ...

    def tx(self, byte: int) -> None:
        """The firmware wrote ``byte`` to the transmit data register."""


@dataclass(frozen=True)
class ClockGate:
    """The RCC enable bit a peripheral's bus clock hangs on."""

    rcc: RegisterBlock
    register: str
    bit: int

    def enabled(self) -> bool:
        return bool((self.rcc.reg(self.register) >> self.bit) & 1)

    def describe(self) -> str:
        return f"RCC_{self.register} bit {self.bit}"


class RegisterBlock:
    """One peripheral's registers as 32-bit storage. Subclasses override :meth:`read` and
    :meth:`write` for the registers hardware updates by itself."""

    #: offsets whose writes carry data, not configuration (see :attr:`PeripheralBus.generation`)
    data_offsets: frozenset[int] = frozenset()

    def __init__(self, name: str, base: int, registers: dict[str, tuple[int, int]],
                 size: int = BLOCK_GRAIN, gate: ClockGate | None = None) -> None:
        self.name = name
        self.base = base
        self.size = size
        self.gate = gate
        self.offsets = {reg: off for reg, (off, _) in registers.items()}
        self.names = {off: reg for reg, (off, _) in registers.items()}
        self.values = {off: reset for off, reset in registers.values()}

    def reg(self, name: str) -> int:
        """The stored value of register ``name`` (no side effects)."""
        return self.values[self.offsets[name]]

    def set_reg(self, name: str, value: int) -> None:
        self.values[self.offsets[name]] = value & WORD_MASK

    def read(self, offset: int) -> int:
        return self.values[offset]

    def write(self, offset: int, value: int) -> None:
        self.values[offset] = value


# ---------------------------------------------------------------------------------------------
# Clocks and power


class Rcc(RegisterBlock):
    """Reset and clock control: ready bits, SWS, and the resulting clock tree."""

    def sysclk_hz(self) -> int:
        raise NotImplementedError

    def hclk_hz(self) -> int:
        return self.sysclk_hz() // AHB_DIVIDERS.get((self.reg("CFGR") >> 4) & 0xF, 1)


class RccF4F7(Rcc):
    """RCC of the STM32F446 (RM0390 §6.3) and STM32F746 / F767 (RM0385 §5.3, RM0410 §5.3)."""

    HSION, HSIRDY, HSEON, HSERDY, PLLON, PLLRDY = 1 << 0, 1 << 1, 1 << 16, 1 << 17, 1 << 24, 1 << 25

    def __init__(self, *, f7: bool, hse_present: bool) -> None:
        registers = {
            "CR": (0x00, 0x0000_0083),  # HSION, HSIRDY, HSITRIM = 16
            "PLLCFGR": (0x04, 0x2400_3010),
            "CFGR": (0x08, 0x0000_0000),
            "AHB1ENR": (0x30, 0x0010_0000),
            "APB1ENR": (0x40, 0x0000_0000),
        }
        if f7:
            registers["DCKCFGR2"] = (0x90, 0x0000_0000)
        super().__init__("RCC", 0x4002_3800, registers)
        self.hse_present = hse_present
        self._cr, self._cfgr = self.offsets["CR"], self.offsets["CFGR"]

    def read(self, offset: int) -> int:
        value = self.values[offset]
        if offset == self._cr:
            value &= ~(self.HSIRDY | self.HSERDY | self.PLLRDY)
            if value & self.HSION:
                value |= self.HSIRDY
            if value & self.HSEON and self.hse_present:
                value |= self.HSERDY
            if value & self.PLLON:
                value |= self.PLLRDY
        elif offset == self._cfgr:  # SWS [3:2] follows SW [1:0]
            value = (value & ~0xC) | ((value & 3) << 2)
        return value

    def _pll_hz(self) -> int:
        cfg = self.reg("PLLCFGR")
        m, n, p = cfg & 0x3F, (cfg >> 6) & 0x1FF, 2 * (((cfg >> 16) & 3) + 1)
        source = ST_LINK_MCO_HZ if cfg & (1 << 22) else HSI16_HZ
        return source * n // (m * p) if m else 0

    def sysclk_hz(self) -> int:
        sw = self.reg("CFGR") & 3
        if sw == 0:
            return HSI16_HZ
        if sw == 1:
            return ST_LINK_MCO_HZ if self.hse_present else 0
        return self._pll_hz()

    def pclk1_hz(self) -> int:
        return self.hclk_hz() // APB_DIVIDERS.get((self.reg("CFGR") >> 10) & 7, 1)


class RccL4(Rcc):
    """RCC of the STM32L4R5 (RM0432 §6.4). The Nucleo's ST-LINK MCO is not wired to OSC_IN,
    so there is no HSE."""

    MSION, MSIRDY, HSION, HSIRDY, PLLON, PLLRDY = 1 << 0, 1 << 1, 1 << 8, 1 << 10, 1 << 24, 1 << 25

    def __init__(self) -> None:
        super().__init__("RCC", 0x4002_1000, {
            "CR": (0x00, 0x0000_0063),  # MSION, MSIRDY, MSIRANGE = 6 (4 MHz)
            "CFGR": (0x08, 0x0000_0000),
            "PLLCFGR": (0x0C, 0x0000_1000),
            "AHB2ENR": (0x4C, 0x0000_0000),
            "APB1ENR1": (0x58, 0x0000_0000),
            "APB1ENR2": (0x5C, 0x0000_0000),
            "CCIPR": (0x88, 0x0000_0000),
        })
        self._cr, self._cfgr = self.offsets["CR"], self.offsets["CFGR"]

    def read(self, offset: int) -> int:
        value = self.values[offset]
        if offset == self._cr:
            value &= ~(self.MSIRDY | self.HSIRDY | self.PLLRDY)
            if value & self.MSION:
                value |= self.MSIRDY
            if value & self.HSION:
                value |= self.HSIRDY
            if value & self.PLLON:
                value |= self.PLLRDY
        elif offset == self._cfgr:
            value = (value & ~0xC) | ((value & 3) << 2)
        return value

    def sysclk_hz(self) -> int:
        sw = self.reg("CFGR") & 3
        if sw == 0:
            return L4_MSI_RESET_HZ
        if sw == 1:
            return HSI16_HZ
        if sw == 2:
            return 0  # no HSE on this Nucleo
        cfg = self.reg("PLLCFGR")
        source = {1: L4_MSI_RESET_HZ, 2: HSI16_HZ}.get(cfg & 3, 0)
        m, n, r = ((cfg >> 4) & 0xF) + 1, (cfg >> 8) & 0x7F, 2 * (((cfg >> 25) & 3) + 1)
        if not cfg & (1 << 24):  # PLLREN: the R output feeds nothing
            return 0
        return source * n // (m * r)

    def pclk1_hz(self) -> int:
        return self.hclk_hz() // APB_DIVIDERS.get((self.reg("CFGR") >> 8) & 7, 1)


class PwrOverdrive(RegisterBlock):
    """PWR of the F4 (CR / CSR, RM0390 §5.4) and F7 (CR1 / CSR1, RM0385 §4.4): the
    over-drive handshake."""

    ODEN, ODSWEN = 1 << 16, 1 << 17
    ODRDY, ODSWRDY, VOSRDY = 1 << 16, 1 << 17, 1 << 14

    def __init__(self, *, f7: bool, gate: ClockGate) -> None:
        cr, csr = ("CR1", "CSR1") if f7 else ("CR", "CSR")
        super().__init__("PWR", 0x4000_7000, {cr: (0x00, 0x0000_C000), csr: (0x04, 0)},
                         gate=gate)
        self._cr, self._csr = self.offsets[cr], self.offsets[csr]

    def read(self, offset: int) -> int:
        if offset == self._csr:
            cr = self.values[self._cr]
            value = self.VOSRDY
            if cr & self.ODEN:
                value |= self.ODRDY
            if cr & self.ODSWEN:
                value |= self.ODSWRDY
            return value
        return self.values[offset]

    def write(self, offset: int, value: int) -> None:
        if offset != self._csr:  # the flags are read-only
            self.values[offset] = value


class PwrL4(RegisterBlock):
    """PWR of the STM32L4R5 (RM0432 §5.4): range 1 boost, VDDIO2."""

    IOSV = 1 << 9

    def __init__(self, gate: ClockGate) -> None:
        super().__init__("PWR", 0x4000_7000, {
            "CR1": (0x00, 0x0000_0200),  # VOS = range 1
            "CR2": (0x04, 0x0000_0000),
            "SR2": (0x14, 0x0000_0000),  # VOSF reads 0: the new range is ready at once
            "CR5": (0x80, 0x0000_0100),  # R1MODE = 1 (range 1 normal)
        }, gate=gate)
        self._sr2 = self.offsets["SR2"]

    def write(self, offset: int, value: int) -> None:
        if offset != self._sr2:
            self.values[offset] = value

    def vddio2_valid(self) -> bool:
        return bool(self.reg("CR2") & self.IOSV)


class FlashInterface(RegisterBlock):
    """The embedded-flash interface: only FLASH_ACR (latency, prefetch, ART / caches)."""

    def __init__(self, base: int, acr_reset: int = 0) -> None:
        super().__init__("FLASH", base, {"ACR": (0x00, acr_reset)})

    @property
    def latency(self) -> int:
        return self.reg("ACR") & 0xF


# ---------------------------------------------------------------------------------------------
# GPIO


class Gpio(RegisterBlock):
    """A GPIO port (common/stm32_gpio.h layout). One pin may be watched: its driven level
    changes go to :attr:`edges` as (cycles, level)."""

    MODE_OUTPUT, MODE_AF = 1, 2

    def __init__(self, port: str, base: int, *, moder_reset: int = 0, ospeedr_reset: int = 0,
                 pupdr_reset: int = 0, gate: ClockGate | None = None) -> None:
        super().__init__(f"GPIO{port}", base, {
            "MODER": (0x00, moder_reset),
            "OTYPER": (0x04, 0),
            "OSPEEDR": (0x08, ospeedr_reset),
            "PUPDR": (0x0C, pupdr_reset),
            "IDR": (0x10, 0),
            "ODR": (0x14, 0),
            "BSRR": (0x18, 0),
            "AFRL": (0x20, 0),
            "AFRH": (0x24, 0),
        }, gate=gate)
        self.port = port
        self._moder, self._idr = self.offsets["MODER"], self.offsets["IDR"]
        self._odr, self._bsrr = self.offsets["ODR"], self.offsets["BSRR"]
        self.data_offsets = frozenset((self._odr, self._bsrr))
        self._watched: int | None = None
        self._level: int | None = None
        self._cycles: Callable[[], int] = lambda: 0
        self.edges: list[PinEdge] = []
        self.edges_max = 0

    def watch(self, pin: int, cycles: Callable[[], int], edges_max: int) -> None:
        """Log the driven level of ``pin`` (None while it is not an output)."""
        self._watched, self._cycles, self.edges_max = pin, cycles, edges_max

    def pin_name(self, pin: int) -> str:
        return f"P{self.port}{pin}"

    def mode(self, pin: int) -> int:
        return (self.values[self._moder] >> (2 * pin)) & 3

    def alternate_function(self, pin: int) -> int:
        reg = self.reg("AFRL") if pin < 8 else self.reg("AFRH")
        return (reg >> (4 * (pin % 8))) & 0xF

    def read(self, offset: int) -> int:
        if offset == self._idr:  # outputs read back what they drive; inputs read 0
            moder = self.values[self._moder]
            outputs = sum(1 << p for p in range(16) if (moder >> (2 * p)) & 3 == 1)
            return self.values[self._odr] & outputs
        if offset == self._bsrr:  # write-only, reads 0
            return 0
        return self.values[offset]

    def write(self, offset: int, value: int) -> None:
        if offset == self._bsrr:
            odr = self.values[self._odr]
            # Bits 15:0 set, 31:16 reset; set wins when both are written (RM0390 §7.4.7).
            odr = (odr & ~(value >> 16)) | (value & 0xFFFF)
            self.values[self._odr] = odr & 0xFFFF
        elif offset == self._idr:
            return  # read-only
        else:
            self.values[offset] = value
        if self._watched is not None:
            self._track()

    def _track(self) -> None:
        pin = self._watched
        assert pin is not None
        level = (self.values[self._odr] >> pin) & 1 if self.mode(pin) == self.MODE_OUTPUT else None
        if level is not None and level != self._level:
            if len(self.edges) < self.edges_max:
                self.edges.append((self._cycles(), level))
        self._level = level


# ---------------------------------------------------------------------------------------------
# UARTs


@dataclass(frozen=True)
class UartLayout:
    """Where a UART keeps its registers and bits (the F4 USART or the F7 / L4 layout)."""

    registers: dict[str, tuple[int, int]]
    status: str  # SR | ISR
    rx_data: str  # DR | RDR
    tx_data: str  # DR | TDR
    ue: int  # CR1 bits
    te: int
    re: int
    word_bits: int  # CR1 M (M0 | M1): 9- or 7-bit frames
    parity: int  # CR1 PCE
    lpuart: bool  # BRR = 256 * fck / baud instead of fck / baud


RXNE, TC, TXE = 1 << 5, 1 << 6, 1 << 7
TEACK, REACK = 1 << 21, 1 << 22  # F7 / L4 ISR

F4_USART = UartLayout(
    registers={"SR": (0x00, TXE | TC), "DR": (0x04, 0), "BRR": (0x08, 0), "CR1": (0x0C, 0)},
    status="SR", rx_data="DR", tx_data="DR", ue=1 << 13, te=1 << 3, re=1 << 2,
    word_bits=1 << 12, parity=1 << 10, lpuart=False,
)  # fmt: skip
V2_REGISTERS = {"CR1": (0x00, 0), "CR3": (0x08, 0), "BRR": (0x0C, 0), "ISR": (0x1C, TXE | TC),
                "RDR": (0x24, 0), "TDR": (0x28, 0)}
V2_USART = UartLayout(
    registers=V2_REGISTERS, status="ISR", rx_data="RDR", tx_data="TDR", ue=1 << 0, te=1 << 3,
    re=1 << 2, word_bits=(1 << 12) | (1 << 28), parity=1 << 10, lpuart=False,
)  # fmt: skip
V2_LPUART = replace(V2_USART, lpuart=True)


@dataclass(frozen=True)
class UartRoute:
    """What stands between a UART and the ST-LINK on a Nucleo: the pins and their alternate
    function, the kernel clock, and (L4) the I/O supply of the pins' port."""

    tx_port: Gpio
    tx_pin: int
    rx_port: Gpio
    rx_pin: int
    af: int
    kernel_clock_hz: Callable[[], int]
    kernel_clock_name: str
    power_problem: Callable[[], str | None] = lambda: None


class Uart(RegisterBlock):
    """A polled 8N1 UART whose other end is :class:`UartLink`. Transmission is instantaneous
    (TXE and TC always read 1): the firmware prints outside its timed regions."""

    def __init__(self, name: str, base: int, layout: UartLayout, route: UartRoute,
                 link: UartLink, faults: FaultSink, gate: ClockGate) -> None:
        super().__init__(name, base, layout.registers, gate=gate)
        self.layout = layout
        self.route = route
        self._link = link
        self._faults = faults
        self._status = self.offsets[layout.status]
        self._rx = self.offsets[layout.rx_data]
        self._tx = self.offsets[layout.tx_data]
        self._cr1 = self.offsets["CR1"]
        self.data_offsets = frozenset((self._rx, self._tx))
        self._polled_empty = False  # the last access was a status read without RXNE
        self._checked_generation = -1
        self.generation: Callable[[], int] = lambda: 0

    def _enabled(self, bit: int) -> bool:
        cr1 = self.values[self._cr1]
        return bool(cr1 & self.layout.ue and cr1 & bit)

    def read(self, offset: int) -> int:
        spinning, self._polled_empty = self._polled_empty, False
        if offset == self._status:
            value = TXE | TC
            if self.layout.status == "ISR":
                value |= (TEACK if self._enabled(self.layout.te) else 0) | (
                    REACK if self._enabled(self.layout.re) else 0)
            if self._enabled(self.layout.re) and self._link.rx_ready(spinning):
                value |= RXNE
            else:
                self._polled_empty = True
            return value
        if offset == self._rx:
            if self._enabled(self.layout.re) and self._link.rx_ready(False):
                self.values[self._rx] = self._link.rx_take()
            return self.values[self._rx]
        if offset == self._tx and self._tx != self._rx:
            return 0  # TDR reads back nothing useful; the firmware never reads it
        return self.values[offset]

    def write(self, offset: int, value: int) -> None:
        self._polled_empty = False
        if offset == self._tx:
            if self._checked_generation != self.generation():
                problem = self.route_problem()
                if problem:
                    self._faults.fault(f"firmware wrote {self.name} {self.layout.tx_data}",
                                       problem)
                    return
                self._checked_generation = self.generation()
            self._link.tx(value & 0xFF)
            return
        if offset in (self._status, self._rx):
            return  # read-only
        self.values[offset] = value

    def baud(self) -> float:
        brr = self.reg("BRR")
        if not brr:
            return 0.0
        fck = self.route.kernel_clock_hz()
        return 256 * fck / brr if self.layout.lpuart else fck / brr

    def route_problem(self) -> str | None:
        """Why a byte written now would not reach the host as sent, or None."""
        layout, route = self.layout, self.route
        if not self._enabled(layout.te):
            return (f"the transmitter is off (CR1 UE={int(bool(self.reg('CR1') & layout.ue))} "
                    f"TE={int(bool(self.reg('CR1') & layout.te))}); set UE and TE first")
        for port, pin, what, effect in (
                (route.tx_port, route.tx_pin, "TX", "its bytes would never reach the ST-LINK"),
                (route.rx_port, route.rx_pin, "RX", "it would never receive the host's bytes")):
            mode, af = port.mode(pin), port.alternate_function(pin)
            if mode != Gpio.MODE_AF or af != route.af:
                return (f"its {what} pin {port.pin_name(pin)} is not in alternate function "
                        f"{route.af} (MODER mode {mode:#04b}, AF {af}): on the board {effect}")
        if self.reg("CR1") & (layout.word_bits | layout.parity):
            return f"the frame is not 8N1 (CR1 {self.reg('CR1'):#010x}); the host expects 8N1"
        baud = self.baud()
        if abs(baud - UART_BAUD) > BAUD_TOLERANCE * UART_BAUD:
            return (f"its baud rate would be {baud:,.0f} ({route.kernel_clock_name} "
                    f"{route.kernel_clock_hz():,} Hz, BRR {self.reg('BRR')}), not "
                    f"{UART_BAUD} ±{BAUD_TOLERANCE:.0%}: the host would read garbage")
        power = route.power_problem()
        if power:
            return power
        return None


# ---------------------------------------------------------------------------------------------
# Cortex-M system registers


class Dwt(RegisterBlock):
    """The data watchpoint and trace unit's cycle counter (ARMv7-M ARM §C1.8)."""

    def __init__(self, *, lock_implemented: bool, cycles: Callable[[], int]) -> None:
        super().__init__("DWT", 0xE000_1000, {
            "CTRL": (0x000, DWT_CTRL_RESET),
            "CYCCNT": (0x004, 0),
            "LAR": (0xFB0, 0),
            "LSR": (0xFB4, 0),
        }, size=MMIO_PAGE)
        self.lock_implemented = lock_implemented
        self.locked = lock_implemented
        self._cycles = cycles
        self._ctrl, self._cyccnt = self.offsets["CTRL"], self.offsets["CYCCNT"]
        self._lar, self._lsr = self.offsets["LAR"], self.offsets["LSR"]
        self.data_offsets = frozenset((self._cyccnt,))
        self.trcena = False
        self._counting = False
        self._base_value = 0  # CYCCNT when counting last started or it was written
        self._base_cycles = 0  # the cycle model's count at that moment

    def cyccnt(self) -> int:
        if self._counting:
            return (self._base_value + self._cycles() - self._base_cycles) & WORD_MASK
        return self._base_value

    def _rebase(self, value: int | None = None) -> None:
        current = self.cyccnt() if value is None else value
        self._base_value, self._base_cycles = current & WORD_MASK, self._cycles()
        self._counting = self.trcena and bool(self.values[self._ctrl] & DWT_CTRL_CYCCNTENA)

    def set_trcena(self, on: bool) -> None:
        """DEMCR.TRCENA (in the SCS) powers the DWT."""
        self._rebase()
        self.trcena = on
        self._rebase()

    def read(self, offset: int) -> int:
        if offset == self._cyccnt:
            return self.cyccnt()
        if offset == self._lsr:
            if not self.lock_implemented:
                return 0
            return DWT_LSR_IMPLEMENTED | (DWT_LSR_LOCKED if self.locked else 0)
        if offset == self._lar:
            return 0  # write-only
        return self.values[offset]

    def write(self, offset: int, value: int) -> None:
        if offset == self._lar:
            if self.lock_implemented:
                self.locked = value != DWT_LAR_KEY
            return
        if offset == self._lsr or self.locked:
            return  # read-only; or the software lock ignores the write (CoreSight LAR)
        if offset == self._cyccnt:
            self._rebase(value)
            return
        self._rebase()
        self.values[offset] = value
        self._rebase()


class SystemControl(RegisterBlock):
    """The System Control Space registers the firmware touches (ARMv7-M ARM §B3.2, §C1.6)."""

    def __init__(self, board: Board, dwt: Dwt) -> None:
        registers = {
            "ACTLR": (0x008, 0),
            "VTOR": (0xD08, 0),
            "CCR": (0xD14, 0x0000_0200),  # STKALIGN
            "CPACR": (0xD88, 0),
            "DEMCR": (0xDFC, 0),
        }
        self.m7 = board.core == "cortex-m7"
        if self.m7:
            registers |= {"CCSIDR": (0xD80, 0), "CSSELR": (0xD84, 0),
                          "ICIALLU": (0xF50, 0), "DCISW": (0xF60, 0)}
        super().__init__("SCS", 0xE000_E000, registers, size=MMIO_PAGE)
        self._dwt = dwt
        self._demcr = self.offsets["DEMCR"]
        self._ccsidr = self.offsets.get("CCSIDR")
        self._write_only = {self.offsets[r] for r in ("ICIALLU", "DCISW") if r in self.offsets}
        self.cache_maintenance_ops = 0
        icache, dcache = M7_L1_CACHE_BYTES.get(board.name, (0, 0))
        self._ccsidr_values = {
            0: _ccsidr(dcache, M7_DCACHE_WAYS, write_back=True),
            1: _ccsidr(icache, M7_ICACHE_WAYS, write_back=False),
        }

    def read(self, offset: int) -> int:
        if offset == self._ccsidr:
            return self._ccsidr_values.get(self.reg("CSSELR") & 1, 0)
        if offset in self._write_only:
            return 0
        return self.values[offset]

    def write(self, offset: int, value: int) -> None:
        if offset == self._ccsidr:
            return  # read-only
        if offset in self._write_only:
            self.cache_maintenance_ops += 1
            return
        self.values[offset] = value
        if offset == self._demcr:
            self._dwt.set_trcena(bool(value & DEMCR_TRCENA))

    @property
    def caches_enabled(self) -> tuple[bool, bool]:
        """(I-cache, D-cache) enables from CCR (Cortex-M7)."""
        ccr = self.reg("CCR")
        return bool(ccr & (1 << 17)), bool(ccr & (1 << 16))


def _ccsidr(size: int, ways: int, *, write_back: bool) -> int:
    """CCSIDR for an L1 cache (ARMv7-M ARM "CCSIDR"): WT/WB/RA/WA flags, sets-1, ways-1,
    log2(words per line) - 2."""
    if not size:
        return 0
    sets = size // (ways * M7_CACHE_LINE_BYTES)
    flags = (0b0111 if write_back else 0b1010) << 28  # WB, RA, WA | WT, RA
    line = (M7_CACHE_LINE_BYTES // 4).bit_length() - 1 - 2
    return flags | ((sets - 1) << 13) | ((ways - 1) << 3) | line


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
