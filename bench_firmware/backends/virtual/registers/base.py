"""What every register model shares: 32-bit register storage (:class:`RegisterBlock`), the
RCC enable bit a block's clock hangs on (:class:`ClockGate`), and the interfaces through which
a block reports faults and reaches the host's side of a UART (:class:`FaultSink`,
:class:`UartLink`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

WORD_MASK = 0xFFFF_FFFF
SIZE_MASK = {1: 0xFF, 2: 0xFFFF, 4: WORD_MASK}
MMIO_PAGE = 0x1000  # bytes: Unicorn maps I/O in 4 KB pages
BLOCK_GRAIN = 0x400  # bytes: every STM32 peripheral block is 1 KB aligned

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

