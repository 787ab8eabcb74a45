"""Clocks and power: RCC (ready bits, SWS, the clock tree computed from the registers), PWR (the
F4 / F7 over-drive handshake, the L4 range 1 boost and VDDIO2) and FLASH_ACR.
"""

from __future__ import annotations

from bench_firmware.backends.virtual.registers.base import ClockGate, RegisterBlock

HSI16_HZ = 16_000_000  # STM32 internal RC oscillator
ST_LINK_MCO_HZ = 8_000_000  # the ST-LINK's MCO drives OSC_IN in bypass (F4 / F7 Nucleos)
L4_MSI_RESET_HZ = 4_000_000  # MSI range 6 at reset (RM0432 RCC_CR MSIRANGE)

# RCC_CFGR prescaler encodings (RM0390 / RM0385 / RM0432, RCC_CFGR HPRE and PPREx).
AHB_DIVIDERS = {8: 2, 9: 4, 10: 8, 11: 16, 12: 64, 13: 128, 14: 256, 15: 512}
APB_DIVIDERS = {4: 2, 5: 4, 6: 8, 7: 16}


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

