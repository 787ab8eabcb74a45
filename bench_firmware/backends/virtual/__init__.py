"""Virtual boards: the unchanged firmware image of a Nucleo board on Unicorn, with the
peripherals it touches, a cycle model (``timing/``) and its UART on a pty or TCP socket.

- :mod:`.machine`: :class:`VirtualMachine`, the emulated board; :mod:`.cpu` (the cycle-model
  interface, a fast register reader), :mod:`.firmware_image` (ELF segments, symbols,
  alignment-checked sites), :mod:`.uart_bridge` (the machine's side of the UART).
- :mod:`.peripherals`: a board's peripherals wired together, from the register models of RCC,
  PWR, FLASH, GPIO, the UART, SCS and DWT in :mod:`.registers`.
- :mod:`.serial_port`: the UART's host end (pty or ``socket://``).
- :mod:`.backend`: :class:`VirtualBoard`, the ``virtual:<board>`` board backend.

Run ``python -m bench_firmware.backends.virtual.backend --board nucleo-f446re [--socket]`` to boot a
board and talk to it with any serial terminal.
"""

from __future__ import annotations

from typing import Any

__all__ = ["VirtualBoard", "VirtualMachine"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing the timing subpackage does not pull in the backend.
    if name == "VirtualBoard":
        from bench_firmware.backends.virtual.backend import VirtualBoard

        return VirtualBoard
    if name == "VirtualMachine":
        from bench_firmware.backends.virtual.machine import VirtualMachine

        return VirtualMachine
    raise AttributeError(name)
