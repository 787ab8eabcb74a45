"""The virtual machine's side of the board's UART: the :class:`UartLink` the UART model calls.
Received bytes come from the serial endpoint; a status read with none pending blocks on the
host side instead of emulating the firmware's busy-wait (see :mod:`.machine`); transmitted
bytes are gathered and flushed to the endpoint.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from unicorn.arm_const import UC_ARM_REG_PC

from bench_firmware.backends.virtual.cpu import CycleModel
from bench_firmware.backends.virtual.serial_port import SerialEndpoint

RX_WAIT_S = 0.05  # seconds one blocked status read waits before it re-checks the stop flag
SPIN_WINDOW_INSTRUCTIONS = 64  # two empty status reads this close together are a busy-wait
TX_FLUSH_BYTES = 256  # output bytes gathered before they go to the host (also at each \n)
UART_LOG_MAX = 1 << 20  # bytes of each direction kept in the raw UART log


class UartBridge:
    """The :class:`~bench_firmware.backends.virtual.peripherals.UartLink` of
    :class:`~bench_firmware.backends.virtual.machine.VirtualMachine`, which sets up the state
    below; the emulator thread alone touches it (the watchdog reads the numbers)."""

    _rx: deque[int]
    _tx: bytearray
    _rx_log: bytearray
    _tx_log: bytearray
    _spin_site: tuple[int, int] | None
    _last_rx_cycles: int
    _last_rx_wall: float
    _idle_s: float
    _block_start: float | None
    _rx_poll: tuple[int, int] | None
    _stop_event: threading.Event
    _endpoint: SerialEndpoint
    _model: CycleModel
    _reg: Callable[[int], int]

    def _pull(self) -> None:
        data = self._endpoint.read()
        if data:
            self._rx.extend(data)
            self._rx_log += data
            if len(self._rx_log) > UART_LOG_MAX:
                del self._rx_log[: len(self._rx_log) - UART_LOG_MAX]

    def rx_ready(self, spinning: bool) -> bool:
        if self._rx:
            return True
        self._pull()
        if self._rx or self._stop_event.is_set():
            return bool(self._rx)
        # In a callback PC is the start of the translated block: inside the read function
        # for its polling loop.
        pc = self._reg(UC_ARM_REG_PC)
        if self._rx_poll is not None and self._rx_poll[0] <= pc < self._rx_poll[1]:
            return self._block_for_rx()
        site = (pc, self._model.instructions)
        previous, self._spin_site = self._spin_site, site
        if not (spinning and previous is not None and previous[0] == site[0]
                and site[1] - previous[1] <= SPIN_WINDOW_INSTRUCTIONS):
            return False
        return self._block_for_rx()

    def _block_for_rx(self) -> bool:
        """The firmware busy-waits for a byte: wait on the host side instead."""
        self._flush_tx()
        self._block_start = time.monotonic()
        try:
            while not self._stop_event.is_set():
                if self._endpoint.wait_readable(RX_WAIT_S):
                    self._pull()
                    if self._rx:
                        return True
            return False
        finally:
            self._end_block()

    def _end_block(self) -> None:
        if self._block_start is not None:
            self._idle_s += time.monotonic() - self._block_start
            self._block_start = None

    def rx_take(self) -> int:
        byte = self._rx.popleft()
        self._last_rx_cycles = self._model.cycles
        self._last_rx_wall = time.monotonic()
        self._idle_s = 0.0
        self._spin_site = None
        return byte

    def tx(self, byte: int) -> None:
        self._tx.append(byte)
        if byte == 0x0A or len(self._tx) >= TX_FLUSH_BYTES:
            self._flush_tx()

    def _flush_tx(self) -> None:
        if not self._tx:
            return
        data = bytes(self._tx)
        self._tx.clear()
        self._tx_log += data
        if len(self._tx_log) > UART_LOG_MAX:
            del self._tx_log[: len(self._tx_log) - UART_LOG_MAX]
        self._block_start = time.monotonic()
        try:
            self._endpoint.write(data)
        finally:
            self._end_block()
