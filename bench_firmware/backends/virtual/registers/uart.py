"""The polled 8N1 UART (the F4 USART layout and the F7 / L4 USART / LPUART layout), with the
checks a byte must pass to reach the ST-LINK on a real board.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from bench_firmware.backends.virtual.registers.base import (
    ClockGate,
    FaultSink,
    RegisterBlock,
    UartLink,
)
from bench_firmware.backends.virtual.registers.gpio import Gpio

UART_BAUD = 115_200  # MLPerf Tiny performance mode, bench_firmware.protocol.BAUDRATE
BAUD_TOLERANCE = 0.02  # relative baud error a UART receiver still samples correctly


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

