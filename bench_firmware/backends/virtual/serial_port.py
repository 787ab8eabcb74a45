"""The host end of a virtual board's UART: a pseudo-terminal or a TCP socket on 127.0.0.1.

A physical Nucleo shows its ST-LINK virtual COM port as ``/dev/ttyACMn``; a virtual board
shows the same byte stream as a pty (``/dev/pts/N``, opened by its path) or as
``socket://127.0.0.1:PORT`` (one client at a time). Either works with
:class:`bench_firmware.protocol.DutClient` and with any serial terminal.

Only the emulator thread reads and writes an endpoint; other threads only read :attr:`url`.
The emulator thread closes it when the board stops, so a client's next read fails at once
(EIO on a pty, "socket disconnected" on TCP) instead of waiting for its timeout.

Like the ST-LINK virtual COM port of a real Nucleo, the UART keeps nothing for a host that
is not there: what the firmware prints while no client has the port open (no process holds
the pty, or no TCP client is connected) is dropped, and a client that connects later sees only
what is printed from then on. So a host that wants the boot banner opens the port before the
board starts (as :class:`~bench_firmware.backends.virtual.backend.VirtualBoard` does); one
that comes later resynchronises (:meth:`bench_firmware.protocol.DutClient.sync`), as the
MLPerf Tiny runner's first ``name%`` does with a board that booted long ago. The bytes dropped
are counted in :attr:`SerialEndpoint.dropped`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time
import tty
from abc import ABC, abstractmethod
from typing import Literal

from bench_firmware.errors import BoardError

Transport = Literal["pty", "socket"]

READ_CHUNK = 4096  # bytes read from the host at once
WRITE_POLL_S = 0.05  # seconds a blocked write waits before it checks the stop flag


class SerialEndpoint(ABC):
    """The host side of the UART. ``read`` and ``write`` never block for long: waiting is
    done in :meth:`wait_readable` with a timeout, so the caller can check its stop flag."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop  # set when the board stops: blocked writes give up
        self.dropped = 0  # bytes printed while no host was connected

    @abstractmethod
    def connected(self) -> bool:
        """Whether a host has the port open now."""

    @property
    @abstractmethod
    def url(self) -> str:
        """What a client opens: a pty path or ``socket://127.0.0.1:PORT``."""

    @abstractmethod
    def wait_readable(self, timeout_s: float) -> bool:
        """Waits up to ``timeout_s`` for host bytes; True when :meth:`read` has some."""

    @abstractmethod
    def _read(self) -> bytes:
        """Whatever the host sent, without blocking (b"" when nothing)."""

    @abstractmethod
    def _write(self, data: bytes, stop: threading.Event | None, deadline: float | None) -> None:
        """Writes all of ``data``; gives up when ``stop`` is set or at ``deadline``."""

    @abstractmethod
    def close(self) -> None:
        """Closes the endpoint; the client's next read or write fails. Safe to call twice."""

    def read(self) -> bytes:
        """What the host sent (b"" when nothing)."""
        return self._read()

    def write(self, data: bytes, deadline: float | None = None) -> None:
        """Sends ``data`` to the host, or drops it when no host is connected (as the ST-LINK
        virtual COM port does). Blocks while a connected host does not read: until the stop
        event is set or, when given, until ``deadline`` (``time.monotonic()``; then the stop
        event does not count: a stopped board's last words)."""
        if not self.connected():
            self.dropped += len(data)
            return
        self._write(data, None if deadline is not None else self._stop, deadline)


class PtyEndpoint(SerialEndpoint):
    """A pseudo-terminal in raw mode; clients open the slave by its path. We keep no slave
    descriptor of our own, so the master tells whether a client has the port open: with none,
    it polls as hung up (POLLHUP) and reads fail with EIO."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(stop)
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # no echo, no "\n" -> "\r\n" translation
            os.set_blocking(master, False)
            self._url = os.ttyname(slave)
        except OSError as e:
            os.close(master)
            os.close(slave)
            raise BoardError(f"cannot set up a pseudo-terminal for the virtual board: {e}") from e
        os.close(slave)  # the path stays valid while the master is open
        self._master: int | None = master
        self._poll = select.poll()
        self._poll.register(master, select.POLLIN | select.POLLHUP)

    @property
    def url(self) -> str:
        return self._url

    def connected(self) -> bool:
        if self._master is None:
            return False
        return not any(ev & select.POLLHUP for _, ev in self._poll.poll(0))

    def wait_readable(self, timeout_s: float) -> bool:
        if self._master is None:
            return False
        events = self._poll.poll(timeout_s * 1000)
        if any(ev & select.POLLHUP for _, ev in events):
            time.sleep(timeout_s)  # no client: a hung-up master would poll ready at once
            return False
        return bool(events)

    def _read(self) -> bytes:
        if self._master is None:
            return b""
        try:
            return os.read(self._master, READ_CHUNK)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno == errno.EIO:  # no slave open: nothing to read
                return b""
            raise

    def _write(self, data: bytes, stop: threading.Event | None, deadline: float | None) -> None:
        view = memoryview(data)
        while view and self._master is not None and _going(stop, deadline):
            try:
                view = view[os.write(self._master, view):]
            except BlockingIOError:
                select.select([], [self._master], [], WRITE_POLL_S)

    def close(self) -> None:
        master, self._master = self._master, None
        if master is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._poll.unregister(master)  # its number may soon name another file
            with contextlib.suppress(OSError):
                os.close(master)


class SocketEndpoint(SerialEndpoint):
    """A TCP server on 127.0.0.1 (ephemeral port) that serves one client at a time; when it
    hangs up the next may connect. Output while no client is connected is dropped."""

    def __init__(self, stop: threading.Event, host: str = "127.0.0.1") -> None:
        super().__init__(stop)
        try:
            self._server: socket.socket | None = socket.create_server((host, 0))
        except OSError as e:
            raise BoardError(f"cannot listen on {host} for the virtual board's UART: {e}") from e
        self._server.setblocking(False)
        self._host = host
        self._port = self._server.getsockname()[1]
        self._conn: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"socket://{self._host}:{self._port}"

    def _accept(self) -> None:
        if self._server is None:
            return
        try:
            conn, _ = self._server.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn

    def connected(self) -> bool:
        if self._conn is None:
            self._accept()
        return self._conn is not None

    def _hang_up(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None

    def wait_readable(self, timeout_s: float) -> bool:
        waiting = self._conn if self._conn is not None else self._server
        if waiting is None:
            return False
        ready, _, _ = select.select([waiting], [], [], timeout_s)
        if ready and self._conn is None:
            self._accept()
            return False
        return bool(ready)

    def _read(self) -> bytes:
        if self._conn is None:
            self._accept()
            if self._conn is None:
                return b""
        try:
            data = self._conn.recv(READ_CHUNK)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self._hang_up()  # the client left; wait for the next one
        return data

    def _write(self, data: bytes, stop: threading.Event | None, deadline: float | None) -> None:
        view = memoryview(data)
        while view and _going(stop, deadline):
            if self._conn is None:  # the client left: the rest is lost, as on a real port
                self.dropped += len(view)
                return
            try:
                view = view[self._conn.send(view):]
            except BlockingIOError:
                select.select([], [self._conn], [], WRITE_POLL_S)
            except OSError:
                self._hang_up()

    def close(self) -> None:
        self._hang_up()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()
            self._server = None


def _going(stop: threading.Event | None, deadline: float | None) -> bool:
    return not (stop is not None and stop.is_set()) and (
        deadline is None or time.monotonic() < deadline)


def open_endpoint(transport: Transport, stop: threading.Event) -> SerialEndpoint:
    """A new endpoint for ``transport`` ("pty" or "socket"); ``stop``: set when the board
    stops, so that a write blocked on a host that does not read gives up."""
    if transport == "pty":
        return PtyEndpoint(stop)
    if transport == "socket":
        return SocketEndpoint(stop)
    raise BoardError(f"unknown virtual UART transport {transport!r}; use 'pty' or 'socket'")
