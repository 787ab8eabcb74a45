"""A GPIO port's registers, with one pin's driven level logged (the D7 timestamp pin)."""

from __future__ import annotations

from collections.abc import Callable

from bench_firmware.backends.virtual.registers.base import ClockGate, PinEdge, RegisterBlock


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

