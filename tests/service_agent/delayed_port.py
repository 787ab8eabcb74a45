"""A fake serial port whose board answers late: each answer is queued with the time it is
due and a read returns what is due by then. The tests of the serial client's and the back
ends' timeouts script what the board answers; this is the port they share."""

from __future__ import annotations

import threading
import time

READ_BLOCK_S = 0.01  # seconds a read blocks when nothing is due


class DelayedPort:
    """The port; a subclass answers ``write`` by calling :meth:`later`."""

    port = "fake-delayed"

    def __init__(self) -> None:
        self._pending: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()

    def later(self, delay_s: float, lines: list[str]) -> None:
        """Sends ``lines`` (each ended by CRLF) ``delay_s`` seconds from now."""
        with self._lock:
            self._pending.append((time.monotonic() + delay_s,
                                  "".join(f"{line}\r\n" for line in lines).encode()))

    def _ready(self) -> bytes:
        now = time.monotonic()
        with self._lock:
            due = [data for at, data in self._pending if at <= now]
            self._pending = [(at, data) for at, data in self._pending if at > now]
        return b"".join(due)

    @property
    def in_waiting(self) -> int:
        return 0  # the reads below find what is due

    def read(self, size: int = 1) -> bytes:
        data = self._ready()
        if not data:
            time.sleep(READ_BLOCK_S)
            data = self._ready()
        return data

    def close(self) -> None:
        pass
