"""``--local``: a server and virtual boards for one campaign, on this machine.

They are ``mcuprof demo`` (``service/demo.py``), run as a child process: the campaign's
SQLite database in its folder (kept between runs, so a rerun resumes), a free loopback port,
one agent *process* per device class (the virtual boards' cycle model calls into Python on
every basic block, so boards in threads of one process share one core through the GIL:
``benchmarks/campaign_throughput.py`` measured four boards in threads 3.7 times slower than
in processes on two cores, and starved heartbeats lost leases), no sample models. The demo
writes its URL and token to a ready file; its output and the agents' logs go to
``<out>/agents.log``.

The child leads a process group of its own, with its agents in it: Ctrl-C in the terminal
reaches only the campaign, which then stops the child, and whatever is left of the group
after the stop is killed. The child also stops when its standard input, a pipe from the
campaign, closes: the campaign ended, however it ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from profiler_client.client import Client
from search.campaign.errors import CampaignError

LOCAL_DATABASE = "mcuprof.db"  # the --local server's SQLite database, in the same directory
LOCAL_AGENT_LOG = "agents.log"  # the --local server's and agents' log, in the same directory
LOCAL_READY_FILE = ".local-server.json"  # where the demo writes its URL, in the same directory
LOCAL_DASHBOARD = "http://127.0.0.1:8000"  # where `mcuprof serve` shows a --local database
LOCAL_START_TIMEOUT_S = 120.0  # seconds the demo gets to migrate, serve and start its agents
LOCAL_STOP_GRACE_S = 40.0  # seconds a --local agent gets to stop (its own grace is 30 s)
LOCAL_STOP_MARGIN_S = 15.0  # ... and the demo around it (its server, its agents' exits)
READY_POLL_S = 0.1  # seconds between two looks for the ready file
# The environment the demo must not inherit: the user's server, tokens and database are not
# the campaign's (the campaign uses the user token the demo writes to its ready file), and the
# user's MCUPROF_AUTH or allowed hosts must not change how the local server guards itself.
CLEARED_ENV = ("MCUPROF_SERVER", "MCUPROF_TOKEN", "MCUPROF_TOKEN_FILE", "MCUPROF_DATABASE_URL",
               "MCUPROF_AUTH", "MCUPROF_ALLOWED_HOSTS")


def mcuprof_command() -> list[str]:
    """The ``mcuprof`` console script of this installation (next to this interpreter's
    scripts, else on PATH)."""
    name = "mcuprof.exe" if os.name == "nt" else "mcuprof"
    script = Path(sysconfig.get_path("scripts")) / name
    found = str(script) if script.is_file() else shutil.which("mcuprof")
    if found is None:
        raise CampaignError("--local runs `mcuprof demo`, and no mcuprof command is installed "
                            "next to this Python or on PATH; reinstall the package "
                            "(pip install -e .)")
    return [found]


class LocalService:
    """The ``--local`` server and boards (see the module docstring).

    Lifecycle: :meth:`start` (the server and, with ``boards``, one virtual agent per
    device class; returns a client for it) → :meth:`check` while waiting → :meth:`stop`.
    ``boards=False`` (a campaign that does not wait) starts the server alone: jobs wait in
    the campaign's database for the next run's boards.
    """

    def __init__(self, out: Path, devices: Sequence[str], *, boards: bool = True) -> None:
        bad = [d for d in devices if not d.startswith("virtual:")]
        if bad:
            raise CampaignError(f"--local runs virtual boards only; {', '.join(bad)} needs a "
                                f"server with an agent that owns such a board (--server URL)")
        self.out = out
        self.devices = list(devices)
        self.boards = boards
        self.database = (out / LOCAL_DATABASE).resolve()
        self.log_path = out / LOCAL_AGENT_LOG
        self.ready_path = out / LOCAL_READY_FILE
        self.url = ""
        self.client: Client | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The ``mcuprof demo`` command line this service runs."""
        boards = ([a for d in self.devices for a in ("--board", d.split(":")[1])]
                  if self.boards else ["--no-agents"])
        return [*mcuprof_command(), "demo", "-v", "--port", "0", "--database",
                str(self.database), *boards, "--no-samples", "--agent-processes",
                "--ready-file", str(self.ready_path.resolve()), "--stop-with-stdin"]

    def start(self) -> Client:
        """Starts the demo and waits until it serves; returns a client for it."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.ready_path.unlink(missing_ok=True)  # an old run's: its port is gone
        except OSError as e:
            raise CampaignError(f"cannot create campaign directory {self.out}: "
                                f"{e.strerror}") from e
        env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), env=env, stdin=subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=os.name == "posix")
        info = self._wait_ready()
        self.url = str(info["url"])
        self.client = Client(self.url, token=str(info.get("token") or ""))
        return self.client

    def _wait_ready(self) -> dict[str, Any]:
        assert self.process is not None
        deadline = time.monotonic() + LOCAL_START_TIMEOUT_S
        while not self.ready_path.exists():
            if self.process.poll() is not None:
                raise CampaignError(f"the local server stopped as it started (exit status "
                                    f"{self.process.returncode}); see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop(hurry=True)
                raise CampaignError(f"the local server did not start within "
                                    f"{LOCAL_START_TIMEOUT_S:.0f} s; see {self.log_path}")
            time.sleep(READY_POLL_S)
        try:
            info = json.loads(self.ready_path.read_text())
        except (OSError, ValueError) as e:
            self.stop(hurry=True)
            raise CampaignError(f"cannot read the local server's {self.ready_path}: {e}") from e
        if not isinstance(info, dict) or "url" not in info:
            self.stop(hurry=True)
            raise CampaignError(f"{self.ready_path} does not name the local server's URL")
        return info

    def check(self) -> None:
        """Raises CampaignError when the server or one of its agents has stopped (the demo
        ends when an agent does)."""
        if self.process is not None and self.process.poll() is not None:
            raise CampaignError(f"the local server and boards stopped (exit status "
                                f"{self.process.returncode}); see {self.log_path}. Run the "
                                f"same command again to resume")

    def stop(self, *, hurry: bool = False) -> None:
        """Stops the demo: SIGTERM, so a job in flight gets the agents' grace period to
        finish and is released for a later run otherwise (``hurry``: SIGINT, released at
        once); then kills whatever is left of its process group."""
        if self.client is not None:
            self.client.close()
            self.client = None
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if hurry else signal.SIGTERM)
        try:
            proc.wait(LOCAL_STOP_GRACE_S + LOCAL_STOP_MARGIN_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        _kill_group(proc.pid)
        self.ready_path.unlink(missing_ok=True)

    def __enter__(self) -> Client:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(hurry=exc_type is not None and issubclass(exc_type, KeyboardInterrupt))


def _kill_group(pgid: int) -> None:
    """Kills what is left of the process group ``pgid`` (the demo's: it leads its own)."""
    if hasattr(os, "killpg"):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def local_serve_hint(out: Path) -> str:
    """How to look at a --local campaign's results after the command has ended."""
    database = (out / LOCAL_DATABASE).resolve()
    return (f"The local server stopped with this command; to see the plots, serve its "
            f"database:\n  MCUPROF_DATABASE_URL=sqlite:///{database} mcuprof serve")
