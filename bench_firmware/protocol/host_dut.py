"""The firmware's host build (``mcuprof-host PLAN``) as a device under test on a pty or a TCP
socket: :class:`HostDut`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import tempfile
import threading
import tty
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from bench_firmware.errors import BoardError, BuildError, McuprofError
from bench_firmware.protocol.client import (
    BOOT_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    POLL_INTERVAL_S,
    DutClient,
    logger,
)

Transport = Literal["pty", "tcp"]

DIAGNOSE_WAIT_S = 0.5  # seconds a failing host firmware gets to exit before we report on it
STOP_TIMEOUT_S = 2.0  # seconds the host firmware gets to exit after its input closes


def _build_host_exe() -> Path:
    try:
        from bench_firmware.build import build_host
    except ImportError as e:
        raise BuildError("the host build driver bench_firmware/build.py is not available; "
                         "pass exe= the path of a built mcuprof-host") from e
    return Path(build_host(kind="exe"))


class HostDut:
    """The firmware's host build (``mcuprof-host PLAN``) as a device under test.

    ``transport="pty"``: the program's stdin/stdout is a pseudo-terminal whose other end the
    client opens by its ``/dev/pts/N`` path, exactly as a board's USB serial port.
    ``transport="tcp"``: the program runs on pipes and a bridge thread serves them on
    ``socket://127.0.0.1:<port>`` (one connection).

    As a context manager it yields a connected :class:`DutClient` past the boot banner::

        with HostDut(plan_bytes) as dut:
            dut.load_input(x.tobytes())
            result = dut.infer(10, 1)

    Or ``url = dut.start()`` … ``dut.stop()`` to serve without a client. On exit the program
    is stopped; if it died on its own, :class:`BoardError` reports its status and stderr.
    A HostDut runs its program once.
    """

    def __init__(self, plan: bytes | str | os.PathLike[str], *,
                 exe: str | os.PathLike[str] | None = None,
                 transport: Transport = "pty",
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 boot_timeout_s: float = BOOT_TIMEOUT_S) -> None:
        if transport not in ("pty", "tcp"):
            raise McuprofError(f"unknown transport {transport!r}; use 'pty' or 'tcp'")
        self._plan = plan
        self._exe = Path(exe) if exe is not None else None
        self.transport = transport
        self.timeout_s = timeout_s
        self.boot_timeout_s = boot_timeout_s
        self.url: str | None = None
        self.client: DutClient | None = None
        self.returncode: int | None = None
        self.stderr = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._errfile: IO[bytes] | None = None
        self._slave_fd: int | None = None
        self._server: socket.socket | None = None
        self._bridge: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> str:
        """Starts the program and returns the URL to open (serving it without a client; use
        :meth:`connect`, or any serial client that resynchronises with an empty command)."""
        return self._start(open_client=False)

    def _start(self, *, open_client: bool) -> str:
        if self._proc is not None or self._stopping:
            raise McuprofError("a HostDut starts once; make a new one to run the program again")
        exe = self._exe or _build_host_exe()
        self._tmp = tempfile.TemporaryDirectory(prefix="mcuprof-host-")
        if isinstance(self._plan, bytes):
            plan_path = Path(self._tmp.name) / "model.plan"
            plan_path.write_bytes(self._plan)
        else:
            plan_path = Path(self._plan)
        self._errfile = open(Path(self._tmp.name) / "stderr.txt", "w+b")  # noqa: SIM115
        argv = [str(exe), str(plan_path)]
        try:
            if self.transport == "pty":
                self.url = self._start_pty(argv, open_client=open_client)
            else:
                self.url = self._start_tcp(argv)
        except OSError as e:
            with contextlib.suppress(McuprofError):
                self.stop()
            raise BoardError(f"cannot start the host firmware {exe}: {e}") from e
        return self.url

    def _start_pty(self, argv: list[str], *, open_client: bool) -> str:
        master, slave = os.openpty()
        url = os.ttyname(slave)
        try:
            # Raw before the program writes: no echo, no "\n" → "\r\n" translation.
            tty.setraw(slave)
            # The client opens before the program starts: pyserial flushes pending input when
            # it opens a port, which would eat the boot banner.
            if open_client:
                self.client = DutClient.open(url, timeout_s=self.timeout_s,
                                             diagnose=self.diagnose)
            self._proc = subprocess.Popen(argv, stdin=master, stdout=master,
                                          stderr=self._errfile, start_new_session=True)
        except BaseException:
            os.close(slave)
            raise
        finally:
            os.close(master)
        if self.client is not None:
            os.close(slave)
        else:
            # Until a client opens its own, our copy keeps the slave end open: with none open,
            # the program's reads would end at once.
            self._slave_fd = slave
        return url

    def _start_tcp(self, argv: list[str]) -> str:
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._errfile, bufsize=0, start_new_session=True)
        self._server = socket.create_server(("127.0.0.1", 0))
        port = self._server.getsockname()[1]
        self._bridge = threading.Thread(target=self._serve, name=f"host-dut-{port}",
                                        daemon=True)
        self._bridge.start()
        return f"socket://127.0.0.1:{port}"

    def _serve(self) -> None:
        """Bridges one TCP connection and the program's stdin/stdout. The program's output is
        held until the client sends its first byte (a newline does; the firmware ignores it),
        so none is lost to a client that flushes its input when it opens the port, as
        pyserial does."""
        assert self._server is not None and self._proc is not None
        proc_in, proc_out = self._proc.stdin, self._proc.stdout
        assert proc_in is not None and proc_out is not None
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._server, selectors.EVENT_READ)
            while not self._stop.is_set() and not sel.select(POLL_INTERVAL_S):
                pass
            if self._stop.is_set():
                return
            conn, _ = self._server.accept()
            sel.unregister(self._server)
            with conn:
                sel.register(conn, selectors.EVENT_READ)
                forwarding = False
                while not self._stop.is_set():
                    for key, _ in sel.select(POLL_INTERVAL_S):
                        if key.fileobj is conn:
                            data = conn.recv(4096)
                            if not data:
                                return  # the client hung up: the program gets EOF below
                            if not forwarding:
                                # The client has spoken, so it is done opening (and flushing)
                                # its port: from now on the program's output reaches it.
                                sel.register(proc_out, selectors.EVENT_READ)
                                forwarding = True
                            proc_in.write(data)
                        else:
                            data = os.read(proc_out.fileno(), 4096)
                            if not data:
                                return  # the program ended: the client sees the socket close
                            conn.sendall(data)
        except OSError as e:
            logger.debug("host DUT bridge ended: %s", e)
        finally:
            sel.close()
            with contextlib.suppress(OSError):
                proc_in.close()

    def connect(self) -> DutClient:
        """A client on :attr:`url` (after :meth:`start`), resynchronised with an empty command
        since its boot banner may have gone by."""
        if self.url is None:
            raise McuprofError("start the HostDut before connecting to it")
        client = self._open_client()
        try:
            client.sync(self.boot_timeout_s)
        except McuprofError:
            client.close()
            raise
        self.client = client
        return client

    def _open_client(self) -> DutClient:
        assert self.url is not None
        client = DutClient.open(self.url, timeout_s=self.timeout_s, diagnose=self.diagnose)
        if self._slave_fd is not None:
            os.close(self._slave_fd)
            self._slave_fd = None
        if self.transport == "tcp":
            # Wakes the bridge (see _serve); the firmware ignores newlines.
            client.port.write(b"\n")
        return client

    def diagnose(self) -> str | None:
        """Says how the program ended, if it has (called when talking to it failed, so it
        gets a moment to finish dying)."""
        if self._proc is None:
            return None
        try:
            self._proc.wait(DIAGNOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            return None
        return (f"the host firmware exited with status {self._proc.returncode}"
                f"{self._stderr_tail()}")

    def _stderr_tail(self) -> str:
        if self._errfile is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._errfile.flush()
            self._errfile.seek(0)
            self.stderr = self._errfile.read().decode(errors="replace")
        tail = self.stderr.strip()[-500:]
        return f"; its stderr: {tail!r}" if tail else ""

    def stop(self) -> None:
        """Closes the client, ends the program (EOF first, then SIGTERM, then SIGKILL).
        Raises :class:`BoardError` when the program had died on its own."""
        proc = self._proc
        died = None
        if proc is not None and proc.poll() is not None and not self._stopping:
            died = self.diagnose()
        self._stopping = True
        if self.client is not None:
            self.client.close()
            self.client = None
        self._stop.set()
        if self._server is not None:
            self._server.close()
        if self._bridge is not None:
            self._bridge.join(STOP_TIMEOUT_S)
        if self._slave_fd is not None:
            os.close(self._slave_fd)
            self._slave_fd = None
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            self.returncode = proc.returncode
            self._stderr_tail()
            if died is None and proc.returncode not in (0, -15):
                died = (f"the host firmware exited with status {proc.returncode}"
                        f"{self._stderr_tail()}")
        if self._errfile is not None:
            self._errfile.close()
            self._errfile = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._proc = None
        if died:
            raise BoardError(died)

    def __enter__(self) -> DutClient:
        try:
            self._start(open_client=True)
            if self.client is None:
                self.client = self._open_client()
            self.client.wait_ready(self.boot_timeout_s)
        except BaseException:
            with contextlib.suppress(McuprofError):
                self.stop()
            raise
        return self.client

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.stop()
            return
        with contextlib.suppress(McuprofError):
            self.stop()
