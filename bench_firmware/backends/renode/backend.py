"""The Renode backend: the board's own firmware image, unchanged, in Renode (https://renode.io).

``RenodeBoard("renode:nucleo-f446re")`` runs ``renode`` as a subprocess on a generated ``.resc``
(:mod:`bench_firmware.backends.renode.script`) and talks to the firmware over the board's
UART, which Renode serves on ``socket://127.0.0.1:<port>``, with the same :class:`DutClient`
as a physical board. Lifecycle (misuse raises :class:`BoardError`)::

    with RenodeBoard("renode:nucleo-f446re") as board:  # open(): find renode, boot, sync
        board.load_plan(plan.data)                       # model region ← plan, mp-reload
        result = board.run(x.tobytes(), runs=5, warmup=1)
    # close(): `quit` to Renode's monitor, then SIGTERM / SIGKILL to its process group

Loading a plan. Renode runs with its monitor on stdin (``--console``). A new plan is written into
the model region of the running machine (``pause``; ``sysbus LoadBinary @plan.bin <base>``;
``start``) and the firmware re-validates it (``mp-reload%``) until it reports that plan (same
model id and size; the firmware checks the CRC, so a half-written plan is never taken).
Monitor commands are not acknowledged on that channel, so when the firmware has not seen the
new plan within ``RELOAD_TIMEOUT_S`` (or the plan differs from the loaded one only in bytes the
status cannot show) the machine is restarted instead, with the plan in the ``.resc``; after a
lost write, every later plan is loaded that way. ``reload="restart"`` always restarts.

Timeouts grow with the work (:mod:`bench_firmware.backends.timing`): ``mp-reload`` and the
wait for a plan written through the monitor get a share per KiB of the plan, the boot after a
restart a share for the plan in the region, and ``infer`` at least twice the expected host
time of all its runs at :data:`MIN_RENODE_IPS`, so a large model or many runs is not taken for
a machine that stopped answering.

Cycles. Renode has no pipeline, caches or flash wait states: it converts executed instructions
to virtual time at ``cpu PerformanceInMips``, set to the core clock in MHz, and its DWT model
counts virtual time at the core clock. Cycle figures are instruction counts at one instruction
per cycle: results carry ``cycle_source = "renode-estimate"`` (:data:`CYCLE_SOURCE`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from bench_firmware.backends.base import RunResult
from bench_firmware.backends.renode.script import (
    CYCLE_SOURCE,
    load_plan_commands,
    platform_file,
    render_resc,
)
from bench_firmware.backends.timing import PlanWork
from bench_firmware.boards import Board, get_board
from bench_firmware.compiler import read_plan
from bench_firmware.errors import (
    BoardError,
    FirmwareError,
    McuprofError,
    PlanError,
    ProtocolError,
)
from bench_firmware.protocol import DutClient
from bench_firmware.settings import LocalSettings, env_name, local_settings

if TYPE_CHECKING:
    from bench_firmware.backends.base import BoardBackend

logger = logging.getLogger("mcuprof.renode")

BACKEND = "renode"
# The variable behind LocalSettings.renode: the renode executable, or the folder holding it.
RENODE_ENV = env_name(LocalSettings, "renode")
RENODE_EXECUTABLE = "renode"
RENODE_ARGS = ("--disable-xwt", "--plain", "--console")  # headless, no colours, monitor on stdin

START_TIMEOUT_S = 120.0  # seconds from launching Renode to the firmware answering (.NET start)
SYNC_TIMEOUT_S = 30.0  # seconds for the first answer once the UART socket is open
COMMAND_TIMEOUT_S = 10.0  # seconds for one serial command's answer
INFER_BUDGET_S = 900.0  # seconds of host time one `infer` may take on top of that
RELOAD_TIMEOUT_S = 30.0  # seconds for the firmware to see a plan written through the monitor
QUIT_TIMEOUT_S = 10.0  # seconds Renode gets to exit after `quit`
KILL_TIMEOUT_S = 5.0  # seconds after SIGTERM before SIGKILL
POLL_INTERVAL_S = 0.2  # seconds between connection attempts and plan polls
# The slowest Renode is expected to run the firmware, in instructions (= its cycles, at one
# instruction per cycle) per host second: the rate the serial client's per-KiB shares are
# sized for, the slowest target (bench_firmware/protocol/client.py); Renode's translated
# code runs far faster, so this only ever lengthens a wait.
MIN_RENODE_IPS = 4_000_000
START_ATTEMPTS = 3  # launches tried when the UART port turns out to be someone else's
LOG_TAIL_LINES = 25  # of Renode's log, quoted in errors
PLAN_FILE = "plan.bin"  # in the session folder

# Lines of Renode's log that mean the .resc failed (the rest of the script, `start` included, is
# then not run): a monitor command's error or an ERROR-level log line.
_SCRIPT_ERROR = re.compile(r"There was an error executing command|^Error E\d+|\[ERROR\]", re.M)

INSTALL_HINT = (
    "Install Renode 1.15 or newer from its GitHub releases "
    "(https://github.com/renode/renode/releases): either the portable Linux package "
    "(renode-<version>.linux-portable*.tar.gz: unpack it anywhere) or the Debian package "
    "(sudo apt install ./renode_<version>_amd64.deb). Then put `renode` on PATH or set "
    f"{RENODE_ENV}=/path/to/renode. Renode is not on PyPI, so pip cannot install it; "
    "see docs/renode.md"
)


@dataclass
class RenodeRunResult(RunResult):
    """A :class:`RunResult` whose cycles are Renode's instruction-based estimates."""

    cycle_source: str = CYCLE_SOURCE


def find_renode(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The ``renode`` executable: ``explicit``, else ``$MCUPROF_RENODE``, else ``renode`` on
    PATH. A folder (the unpacked portable package) means the ``renode`` inside it.
    :class:`BoardError` saying what to install, and how, when there is none."""
    if explicit is not None:
        candidate, source = str(explicit), "renode="
    elif (configured := local_settings().renode) is not None:
        candidate, source = configured, RENODE_ENV
    else:
        found = shutil.which(RENODE_EXECUTABLE)
        if found is None:
            raise BoardError(f"Renode is not installed: there is no `{RENODE_EXECUTABLE}` on "
                             f"PATH and {RENODE_ENV} is not set. {INSTALL_HINT}")
        return Path(found)
    path = Path(candidate).expanduser()
    if path.is_dir():
        path = path / RENODE_EXECUTABLE
    if path.is_file() and os.access(path, os.X_OK):
        return path.resolve()
    found = shutil.which(candidate)
    if found is not None:
        return Path(found)
    raise BoardError(f"{source} {candidate!r} is not an executable Renode: "
                     f"{'no such file' if not path.exists() else 'not executable'}. {INSTALL_HINT}")


def parse_device(device: str) -> tuple[Board, str | None]:
    """``renode:<board>[:<id>]`` → the board and the optional instance id."""
    parts = device.split(":")
    if len(parts) not in (2, 3) or parts[0] != BACKEND or not parts[1]:
        raise BoardError(f"{device!r} is not a Renode device; name one renode:<board>[:<id>], "
                         f"e.g. renode:nucleo-f446re")
    try:
        board = get_board(parts[1])
    except McuprofError as e:
        raise BoardError(f"{device}: {e}") from e
    if board.core == "host":
        raise BoardError(f"{device}: Renode runs the board firmware images; the host build "
                         f"runs with --board host")
    return board, parts[2] if len(parts) == 3 and parts[2] else None


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (Renode binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RenodeBoard:
    """One board in Renode: a ``renode`` process, its generated session files and a serial
    client on the board's UART. See the module docstring for the lifecycle and for what the
    cycle counts mean.

    ``renode``: the executable (default: ``$MCUPROF_RENODE``, then ``renode`` on PATH).
    ``firmware``: the board's firmware ELF (default: ``build_firmware(board).elf``).
    ``workdir``: where the session files and ``renode.log`` go, kept afterwards (default: a
    temporary folder removed by :meth:`close`). ``reload``: ``"monitor"`` (write new plans into
    the running machine, restart when that fails) or ``"restart"``.
    """

    cycle_source = CYCLE_SOURCE

    def __init__(self, device: str, *, renode: str | os.PathLike[str] | None = None,
                 firmware: str | os.PathLike[str] | None = None,
                 workdir: str | os.PathLike[str] | None = None, reload: str = "monitor",
                 start_timeout_s: float = START_TIMEOUT_S,
                 command_timeout_s: float = COMMAND_TIMEOUT_S,
                 infer_budget_s: float = INFER_BUDGET_S,
                 reload_timeout_s: float = RELOAD_TIMEOUT_S) -> None:
        if reload not in ("monitor", "restart"):
            raise BoardError(f"unknown reload mode {reload!r}; use 'monitor' or 'restart'")
        self.device = device
        self.board, self.instance = parse_device(device)
        self.log = logger.getChild(device)
        self._renode_arg = renode
        self._firmware_arg = firmware
        self._workdir_arg = Path(workdir) if workdir is not None else None
        self._reload = reload
        self.start_timeout_s = start_timeout_s
        self.command_timeout_s = command_timeout_s
        self.infer_budget_s = infer_budget_s
        self.reload_timeout_s = reload_timeout_s

        self.renode: Path | None = None  # the executable, once open() found it
        self.workdir: Path | None = None
        self.url: str | None = None  # socket://127.0.0.1:<port> of the board's UART
        self.restarts = 0  # machine restarts since open(), for the curious
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._client: DutClient | None = None
        self._owns_workdir = False
        self._platform: Path | None = None
        self._elf: Path | None = None
        self._plan_path: Path | None = None  # the plan the machine has (or gets at start)
        self._plan: bytes | None = None
        self._work: PlanWork | None = None  # of _plan_path, the plan the machine has
        self._plan_status: dict[str, int | str] | None = None
        self._monitor_works: bool | None = None  # False once a plan written through it was lost
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------

    def open(self) -> None:
        """Find Renode, write the session files, boot the firmware and get in step with it."""
        if self._closed:
            raise BoardError(f"{self.device} was closed; make a new RenodeBoard")
        if self._proc is not None:
            raise BoardError(f"{self.device} is already open")
        self.renode = find_renode(self._renode_arg)
        try:
            self._prepare_workdir()
            self._launch()
        except BaseException:
            # The session folder stays for a look at renode.log; the error names it.
            self._shutdown()
            self._owns_workdir = False
            raise
        self.log.info("%s running in Renode (%s), UART on %s", self.board.name, self.renode,
                      self.url)

    def close(self) -> None:
        """Stop Renode and remove the session files (unless ``workdir`` was given); safe to
        call twice."""
        self._closed = True
        self._shutdown()
        self._remove_workdir()

    def __enter__(self) -> RenodeBoard:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- BoardBackend --------------------------------------------------------------------

    def load_plan(self, plan: bytes) -> dict[str, int | str]:
        """Put ``plan`` in the model region and have the firmware validate it; returns the
        firmware's plan status (``mp-plan``). :class:`PlanError` for a plan that is not for
        this board or does not fit its model region."""
        client = self._require_open()
        info = read_plan(plan, self.board)
        if len(plan) > self.board.model_region_bytes:
            raise PlanError(f"the plan is {len(plan)} bytes; the {self.board.name} model region "
                            f"holds {self.board.model_region_bytes}")
        work = PlanWork.of(plan)
        if plan == self._plan:
            # Already in the model region: re-validate (this also forgets input and results).
            return self._accept(client.reload_plan(len(plan)), info.model_id, len(plan))
        path = self._write_plan_file(plan)
        same_header = (self._plan_status is not None
                       and self._plan_status.get("model") == info.model_id
                       and self._plan_status.get("bytes") == len(plan))
        status: dict[str, int | str] | None = None
        if self._reload == "monitor" and self._monitor_works is not False and not same_header:
            status = self._load_through_monitor(path, info.model_id, work)
            self._monitor_works = status is not None
            if status is None:
                self.log.warning("plans will be loaded by restarting the machine from now on")
        self._plan, self._plan_path, self._work = None, path, work
        if status is None:
            self._restart()
            status = self._require_open().plan_status()
        self._plan = plan
        return self._accept(status, info.model_id, len(plan))

    def _write_plan_file(self, plan: bytes) -> Path:
        """``plan.bin`` in the session folder, replaced whole: it is the one file the .resc's
        reset macro and the monitor's LoadBinary read, so a restart gets the latest plan."""
        assert self.workdir is not None
        path = self.workdir / PLAN_FILE
        tmp = path.with_name(f".{PLAN_FILE}.tmp")
        tmp.write_bytes(plan)
        os.replace(tmp, path)
        return path

    def run(self, input_bytes: bytes, *, runs: int, warmup: int,
            kernels: str = "dsp") -> RenodeRunResult:
        """Upload the input, run ``warmup`` untimed and ``runs`` timed inferences; the cycles
        are Renode's instruction counts (``cycle_source`` ``"renode-estimate"``)."""
        client = self._require_open()
        if self._plan is None:
            raise BoardError(f"{self.device}: no plan loaded; call load_plan() before run()")
        client.set_kernels(kernels)
        client.load_input(input_bytes)
        result = client.infer(runs, warmup, budget_s=self.infer_budget_s,
                              run_s=self.run_s())
        cycles = client.cycles()
        layers = client.layer_cycles()
        if cycles and not any(cycles):
            raise BoardError(f"{self.device}: the firmware counted 0 cycles: Renode's DWT did not "
                             f"advance. Is Miscellaneous.DWT in {self._platform} (Renode 1.15 "
                             f"or newer)?{self._log_tail()}")
        return RenodeRunResult(
            output=result.output_bytes,
            cycles_per_run=cycles,
            layer_cycles=layers,
            lap_us=result.lap_us,
            transcript=client.take_transcript(),
            warnings=list(result.warnings),
        )

    def run_s(self) -> float | None:
        """Host seconds one inference of the loaded plan takes at most (None: no plan)."""
        return self._work.run_s(MIN_RENODE_IPS) if self._work is not None else None

    def boot_sync_s(self) -> float:
        """Seconds to wait for the firmware's first answer after a (re)start: the boot
        validates the plan in the model region first."""
        return SYNC_TIMEOUT_S + (self._work.check_s if self._work is not None else 0.0)

    def reload_wait_s(self, work: PlanWork) -> float:
        """Seconds to wait for the firmware to report a plan written through the monitor."""
        return self.reload_timeout_s + work.check_s

    # -- the Renode process ----------------------------------------------------------------

    def _prepare_workdir(self) -> None:
        if self._workdir_arg is not None:
            self.workdir = self._workdir_arg.resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"mcuprof-renode-{self.board.name}-"))
            self._owns_workdir = True
        # Copies, so the session folder replays on its own: `renode session.resc`.
        self._platform = self.workdir / platform_file(self.board).name
        shutil.copyfile(platform_file(self.board), self._platform)
        self._elf = self.workdir / f"{self.board.name}.elf"
        shutil.copyfile(self._firmware_elf(), self._elf)

    def _firmware_elf(self) -> Path:
        if self._firmware_arg is not None:
            elf = Path(self._firmware_arg)
            if not elf.is_file():
                raise BoardError(f"{self.device}: firmware {elf} does not exist; build it with "
                                 f"`mcuprof firmware build --board {self.board.name}`")
            return elf
        from bench_firmware.build import build_firmware

        return build_firmware(self.board).elf

    def _launch(self) -> None:
        """Start Renode on a fresh .resc and connect to the firmware, trying another port when
        the one picked turns out to answer as something else."""
        for attempt in range(1, START_ATTEMPTS + 1):
            port = _free_port()
            self._start_process(port)
            try:
                self._connect(port)
                return
            except _PortTaken as e:
                self.log.warning("attempt %d: %s; trying another port", attempt, e)
                self._shutdown()
        raise BoardError(f"{self.device}: {START_ATTEMPTS} Renode launches found their UART port "
                         f"answered by another program{self._log_tail()}")

    def _start_process(self, port: int) -> None:
        assert self.workdir is not None and self._platform is not None and self._elf is not None
        assert self.renode is not None
        resc = self.workdir / "session.resc"
        resc.write_text(render_resc(self.board, platform=self._platform, elf=self._elf,
                                    uart_port=port, plan=self._plan_path))
        self.url = f"socket://127.0.0.1:{port}"
        self._log_file = open(self.workdir / "renode.log", "ab")  # noqa: SIM115
        argv = [str(self.renode), *RENODE_ARGS, str(resc)]
        self.log.debug("starting %s", " ".join(argv))
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self._log_file,
                                          stderr=subprocess.STDOUT, cwd=self.workdir,
                                          start_new_session=True)
        except OSError as e:
            raise BoardError(f"cannot start Renode ({self.renode}): {e}. {INSTALL_HINT}") from e
        # A monitor that does not read its stdin must not block us once the pipe is full: the
        # write fails instead (OSError), and the plan is loaded by a restart.
        assert self._proc.stdin is not None
        os.set_blocking(self._proc.stdin.fileno(), False)

    def _connect(self, port: int) -> None:
        """Open the UART socket once Renode serves it, get in step with the firmware and check
        that it is the board's."""
        deadline = time.monotonic() + self.start_timeout_s
        last: Exception | None = None
        while True:
            self._check_alive("before its UART terminal opened")
            try:
                client = DutClient.open(f"socket://127.0.0.1:{port}",
                                        timeout_s=self.command_timeout_s, diagnose=self.diagnose)
                break
            except BoardError as e:
                last = e
            script_error = self._script_error()
            if script_error:
                raise BoardError(f"{self.device}: Renode could not run the session script "
                                 f"{self.workdir}/session.resc: {script_error}"
                                 f"{self._log_tail()}")
            if time.monotonic() >= deadline:
                raise BoardError(f"{self.device}: Renode did not open the UART terminal on port "
                                 f"{port} within {self.start_timeout_s:.0f} s ({last})"
                                 f"{self._log_tail()}")
            time.sleep(POLL_INTERVAL_S)
        self._client = client
        try:
            client.sync(self.boot_sync_s())
            info = client.info()
        except (ProtocolError, FirmwareError) as e:
            raise _PortTaken(f"port {port} does not speak the mcuprof protocol ({e})") from e
        if info.get("board") != self.board.name:
            raise _PortTaken(f"port {port} answers as {info.get('board')!r}, not "
                             f"{self.board.name}")
        if info.get("clock") != self.board.clock_hz:
            raise BoardError(f"{self.device}: the firmware runs at {info.get('clock')} Hz, the "
                             f"catalogue says {self.board.clock_hz}: rebuild it "
                             f"(`mcuprof firmware build --board {self.board.name}`)")
        self._plan_status = None
        client.take_transcript()

    def _restart(self) -> None:
        """Stop the machine and boot it again from a new .resc (with the current plan)."""
        self.log.info("restarting %s in Renode", self.board.name)
        self._shutdown()
        self.restarts += 1
        self._launch()

    def _load_through_monitor(self, plan: Path, model_id: str,
                              work: PlanWork) -> dict[str, int | str] | None:
        """Write ``plan`` into the running machine through the monitor, then poll ``mp-reload``
        until the firmware reports it. None when it did not (the caller restarts)."""
        try:
            self._monitor(load_plan_commands(self.board, plan))
        except OSError as e:
            self.log.warning("cannot send to Renode's monitor (%s); restarting instead", e)
            return None
        client = self._require_open()
        nbytes = work.plan_bytes
        wait_s = self.reload_wait_s(work)
        deadline = time.monotonic() + wait_s
        seen: object = None
        while time.monotonic() < deadline:
            try:
                status = client.reload_plan(nbytes)
            except FirmwareError as e:  # not (completely) written yet
                seen = e
            else:
                if status.get("model") == model_id and status.get("bytes") == nbytes:
                    return status
                seen = status
            self._check_alive("while loading a plan")
            time.sleep(POLL_INTERVAL_S)
        self.log.warning("the firmware did not see the plan written through Renode's monitor "
                         "within %.0f s (last status: %s); restarting the machine instead",
                         wait_s, seen)
        return None

    def _monitor(self, commands: list[str]) -> None:
        """Send commands to Renode's monitor (its stdin in --console mode)."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise OSError("Renode is not running")
        for command in commands:
            self.log.debug("monitor: %s", command)
            proc.stdin.write(command.encode() + b"\n")
        proc.stdin.flush()

    def _accept(self, status: dict[str, int | str], model_id: str,
                nbytes: int) -> dict[str, int | str]:
        if status.get("model") != model_id or status.get("bytes") != nbytes:
            raise BoardError(f"{self.device}: the firmware reports plan {status.get('model')} of "
                             f"{status.get('bytes')} bytes after loading {model_id} of {nbytes} "
                             f"bytes{self._log_tail()}")
        self._plan_status = status
        return status

    def _shutdown(self) -> None:
        """Close the client and end Renode: `quit`, then SIGTERM, then SIGKILL to its process
        group (its launcher script and the runtime it starts)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                quit_sent = False
                if self._monitor_works is not False:
                    with contextlib.suppress(OSError):
                        self._send_quit(proc)
                        quit_sent = True
                try:
                    proc.wait(QUIT_TIMEOUT_S if quit_sent else 0)
                except subprocess.TimeoutExpired:
                    self._signal_group(proc, signal.SIGTERM)
                    try:
                        proc.wait(KILL_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        self._signal_group(proc, signal.SIGKILL)
                        proc.wait()
            # Whatever Renode's launcher started and left behind goes with it.
            self._signal_group(proc, signal.SIGKILL)
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._plan_status = None

    @staticmethod
    def _send_quit(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdin is not None:
            proc.stdin.write(b"quit\n")
            proc.stdin.flush()

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # start_new_session=True made Renode the leader of its own process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def _remove_workdir(self) -> None:
        if self._owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._owns_workdir = False

    # -- diagnostics -----------------------------------------------------------------------

    def diagnose(self) -> str | None:
        """How Renode is doing, for error messages: its exit status if it ended, and the tail
        of its log."""
        proc = self._proc
        state = ""
        if proc is not None and proc.poll() is not None:
            state = f"Renode exited with status {proc.returncode}"
        tail = self._log_tail()
        return (state + tail).lstrip("; ") or None

    def _script_error(self) -> str | None:
        """The first line of Renode's log that says the session script failed, if any."""
        if self.workdir is None:
            return None
        if self._log_file is not None:
            with contextlib.suppress(OSError, ValueError):
                self._log_file.flush()
        try:
            text = (self.workdir / "renode.log").read_text(errors="replace")
        except OSError:
            return None
        m = _SCRIPT_ERROR.search(text)
        if m is None:
            return None
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        return text[start : end if end >= 0 else len(text)].strip()

    def _check_alive(self, doing: str) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            raise BoardError(f"{self.device}: Renode exited with status {proc.returncode} "
                             f"{doing}{self._log_tail()}")

    def _log_tail(self) -> str:
        if self.workdir is None:
            return ""
        path = self.workdir / "renode.log"
        if self._log_file is not None:
            with contextlib.suppress(OSError, ValueError):
                self._log_file.flush()
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        tail = "\n".join(lines[-LOG_TAIL_LINES:]).strip()
        return f"; Renode's log ({path}) ends:\n{tail}" if tail else ""

    def _require_open(self) -> DutClient:
        if self._closed:
            raise BoardError(f"{self.device} was closed; make a new RenodeBoard")
        if self._client is None:
            raise BoardError(f"{self.device} is not open; call open() (or use it in a `with`) "
                             f"first")
        return self._client


class _PortTaken(BoardError):
    """The UART port Renode was told to serve answers as something else."""


if TYPE_CHECKING:

    def _is_a_board_backend(board: RenodeBoard) -> BoardBackend:
        return board
