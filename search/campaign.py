"""Profiling campaigns: sample, convert, upload, submit, wait, fit, report, resumably.

A *campaign* is what MicroNets did to show that latency is linear in op count (RQ1): ``n``
architectures sampled uniformly from one search space, converted to int8, profiled on every
target device, and one ``latency = a * ops + b`` line fitted per device. ::

    from profiler_client.client import Client
    from search.campaign import run_campaign

    with Client("http://127.0.0.1:8000") as api:
        result = run_campaign("kws", 100, ["virtual:nucleo-f446re", "virtual:nucleo-f746zg"],
                              client=api, seed=0, progress=True)
    print(result.report())
    result.fits["virtual:nucleo-f446re"].a_ms_per_op     # the stored fit (FitOut)
    result.frame()                                       # one row per measurement (pandas)

``mcuprof campaign`` (``search/cli_campaign.py``) is a thin layer over :func:`run_campaign`.

**Pipeline.** Conversion runs in spawned worker processes (``search.convert.run_job``, the
same code and sidecars as ``mcuprof sample``; TensorFlow is imported in the workers only);
the main process uploads each model as soon as it is converted (tags ``backbone=<space>``,
``arch=<id>``, ``campaign=<name>``) and submits one job per device, so the boards work
while later models are still converting. Then it polls until every job has finished,
reads the measurements, and asks the server for the stored fits (``GET /api/v1/fits``).

**Resumability.** Everything that happened is appended to a journal, ``<out>/state.jsonl``,
one JSON object per line, *after* it happened: the campaign's identity (space, seed,
sub-space, input shape), then ``converted`` (name, sha256), ``uploaded`` (server, model id),
``submitted`` (server, device, job id), ``finished`` (job state and error) and the failures.
Appending is atomic enough for a crash (a torn last line is dropped on the next load), and
replaying the journal gives the state back. A rerun of the same command therefore

- reuses converted models (their ``.tflite`` + sidecar in ``<out>/models``, checked by
  hash as ``mcuprof sample`` does),
- reuses uploads after checking that the server still has them (one listing of the models
  tagged ``campaign=<name>``; a wiped database or another server gets fresh uploads),
- never submits a model twice for a device: before submitting, it asks the server for the
  model's jobs and reuses one for the same device and kernels (queued, running, done, or
  failed). That also covers the window between the server accepting a job and the journal
  recording it, and models someone else already profiled,
- and collects jobs that finished while it was not running.

Models that fail to convert, are refused by the server, or whose jobs fail are recorded
and reported at the end; ``retry_failed`` tries them again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bench_firmware.errors import McuprofError
from profiler_client.client import (
    PAGE_SIZE,
    TERMINAL_STATES,
    ApiError,
    Client,
    ModelRejectedError,
    NotFoundError,
    ServerUnavailableError,
)
from profiler_client.schemas import FitOut, JobOut, MeasurementOut
from search.errors import SearchError
from search.network import Shape
from search.sampler import sample
from search.spaces import SearchSpace, get_space

if TYPE_CHECKING:
    import pandas as pd

    from search.convert import Job
    from service.fitting import LineFit

logger = logging.getLogger("mcuprof.campaign")

STATE_FILE = "state.jsonl"  # the journal, in the campaign's directory
RESULT_FILE = "result.json"  # the last run's result (CampaignResult.to_dict)
LOCK_FILE = ".lock"  # held (flock) by the process running the campaign
MODELS_DIR = "models"  # the .tflite files and sidecars, under the campaign's directory
LOCAL_DATABASE = "mcuprof.db"  # the --local server's SQLite database, in the same directory
LOCAL_STOP_GRACE_S = 40.0  # seconds a --local agent gets to stop (its own grace is 30 s)
LOCAL_AGENT_LOG = "agents.log"  # the --local agents' log, in the campaign's directory
LOCAL_DASHBOARD = "http://127.0.0.1:8000"  # where `mcuprof serve` shows a --local database
STATE_VERSION = 1  # bump when the journal's events change meaning
CAMPAIGN_TAG = "campaign"  # the tag naming a model's campaign on the server
DEFAULT_RUNS = 3  # timed inferences per job (the median is reported)
DEFAULT_WARMUP = 1  # untimed inferences before them (fills the M7's caches)
POLL_S = 1.0  # seconds between two looks at the jobs still running
GET_EACH_MAX = 20  # pending jobs up to which a poll gets each one instead of listing
JOBS_PAGE = 1000  # rows per page of GET /jobs (the server's maximum)
MEASUREMENTS_PAGE = 5000  # rows per page of GET /measurements
# The order in which an existing job of the same model and device is preferred for reuse.
REUSE_ORDER = {"done": 0, "leased": 1, "queued": 2, "failed": 3}

Echo = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Errors


class CampaignError(McuprofError):
    """A campaign could not start or go on (bad options, a foreign campaign directory)."""


class ServerNotFoundError(CampaignError):
    """No mcuprof server answered; the message says how to start one."""


class CampaignTimeoutError(CampaignError):
    """Jobs were still running when the campaign stopped waiting for them."""


# --------------------------------------------------------------------------------------------
# The sampled models


def restrict_widths(space: str | SearchSpace, max_width: int) -> SearchSpace:
    """``space`` with every width node limited to its choices ``<= max_width`` (a node
    whose smallest choice is larger keeps that one). Depth nodes are unchanged.

    Its architectures belong to the full space (same name, same nodes, fewer choices), so
    they carry the same ``backbone`` tag, rebuild with ``Architecture.from_dict`` and share
    ids with the full space. Used for small campaigns: ``max_width=16`` makes KWS models of
    0.3-1.2 M ops that the virtual boards run in about a second.
    """
    sp = get_space(space)
    if max_width < 1:
        raise CampaignError(f"max width {max_width}: give at least 1 channel")
    nodes = []
    for node in sp.nodes:
        if node.kind == "width":
            widths = [c for c in node.choices if isinstance(c, int)]
            kept = tuple(c for c in widths if c <= max_width) or (min(widths),)
            node = dataclasses.replace(node, choices=kept)
        nodes.append(node)
    return dataclasses.replace(sp, nodes=tuple(nodes))


def default_name(space: str, seed: int, *, max_width: int | None = None,
                 input_size: int | None = None) -> str:
    """``<space>-seed<seed>[-w<max width>][-<size>px]``: the campaign's name and folder."""
    name = f"{space}-seed{seed}"
    if max_width is not None:
        name += f"-w{max_width}"
    if input_size is not None:
        name += f"-{input_size}px"
    return name


def default_out(name: str) -> Path:
    """``campaigns/<name>`` under the working directory."""
    return Path("campaigns") / name


def plan_models(space: str | SearchSpace, n: int, seed: int, models_dir: Path, *,
                max_width: int | None = None, input_shape: Shape | None = None,
                weight_seed: int = 0) -> list[Job]:
    """The conversion jobs of a campaign's first ``n`` architectures (pure: no TensorFlow).

    The sampler's prefix property holds (the first ``k`` of ``n`` are the ``k`` of a
    smaller campaign), so a campaign can be extended by rerunning it with a larger ``n``."""
    from search.convert import Job

    sp = get_space(space)
    sub = restrict_widths(sp, max_width) if max_width is not None else sp
    where = f"sampled from {sp.name!r}" + (f" (widths <= {max_width})" if max_width else "")
    return [Job(name=a.name, out_dir=str(models_dir), network=a.network().to_dict(),
                arch=a.to_dict(), backbone=sp.name, weight_seed=weight_seed,
                source=f"{where} with seed {seed}, index {i}")
            for i, a in enumerate(sample(sub, n, seed, input_shape=input_shape))]


def check_devices(devices: Sequence[str]) -> list[str]:
    """The device classes, checked as the server checks them (known backend and board, no
    board id); raises CampaignError naming the bad one and the known ones."""
    from service.queue import parse_device_class

    if not devices:
        raise CampaignError("give at least one device, e.g. --device virtual:nucleo-f446re")
    out: list[str] = []
    for device in devices:
        try:
            name = parse_device_class(device.strip()).name
        except McuprofError as e:
            raise CampaignError(str(e)) from e
        if name not in out:
            out.append(name)
    return out


# --------------------------------------------------------------------------------------------
# The journal


@dataclass
class JobRecord:
    """One job of a model on one device class, as the journal knows it."""

    job_id: int
    state: str = "submitted"  # "submitted" until a terminal state is recorded
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass
class ModelRecord:
    """What the journal knows about one sampled model."""

    name: str
    sha256: str | None = None
    ops: int | None = None
    macs: int | None = None
    conversion_error: str | None = None
    model_ids: dict[str, int] = field(default_factory=dict)  # server -> model id
    upload_errors: dict[str, str] = field(default_factory=dict)  # server -> error
    jobs: dict[tuple[str, str], JobRecord] = field(default_factory=dict)  # (server, device)


IDENTITY_KEYS = ("space", "seed", "max_width", "input_shape", "weight_seed")


class CampaignState:
    """The journal ``<out>/state.jsonl``: appended after every step, replayed on open.

    Events (one JSON object per line, key ``e``): ``campaign`` (identity, first line),
    ``run`` (one per invocation), ``converted``, ``conversion_failed``, ``uploaded``,
    ``upload_failed``, ``reset`` (the server no longer has the model: forget its upload and
    jobs there), ``submitted``, ``finished``.
    """

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity
        self.models: dict[str, ModelRecord] = {}
        self._lock = threading.Lock()
        self._lock_file: Any = None

    @classmethod
    def open(cls, out: Path, identity: Mapping[str, Any]) -> CampaignState:
        """The campaign in ``out``, created when new; refuses one with another identity."""
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CampaignError(f"cannot create campaign directory {out}: {e.strerror}") from e
        path = out / STATE_FILE
        want = {"version": STATE_VERSION, **identity}
        state = cls(path, want)
        state._lock_folder(out)
        try:
            state._load(out, want)
        except BaseException:
            state.close()
            raise
        return state

    def _load(self, out: Path, want: dict[str, Any]) -> None:
        """Replays the journal (or starts it with the identity line ``want``)."""
        path = self.path
        events = self._read()
        if not events:
            self._append({"e": "campaign", **want})
            return
        head = events[0]
        if head.get("e") != "campaign":
            raise CampaignError(f"{path} is not a campaign journal (its first line is not the "
                                f"campaign's identity); give another --out")
        if head.get("version") != STATE_VERSION:
            raise CampaignError(f"{path} was written by another mcuprof version (journal "
                                f"version {head.get('version')}, this one reads "
                                f"{STATE_VERSION}); give another --out")
        diff = [k for k in IDENTITY_KEYS if head.get(k) != want.get(k)]
        if diff:
            theirs = ", ".join(f"{k}={head.get(k)!r}" for k in diff)
            ours = ", ".join(f"{k}={want.get(k)!r}" for k in diff)
            raise CampaignError(f"{out} holds another campaign ({theirs}; this one has "
                                f"{ours}); give another --out, or the same options to resume")
        for event in events[1:]:
            self._apply(event)

    def _lock_folder(self, out: Path) -> None:
        """Holds ``out/.lock`` (flock) until :meth:`close`: two runs of one campaign at once
        would both submit what the other has not recorded yet."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        try:
            self._lock_file = open(out / LOCK_FILE, "a+")  # held until close()
        except OSError as e:
            raise CampaignError(f"cannot create {out / LOCK_FILE}: {e.strerror}") from e
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._lock_file.close()
            self._lock_file = None
            raise CampaignError(f"another process is running the campaign in {out} (it holds "
                                f"{out / LOCK_FILE}); wait for it, or stop it first") from e

    def close(self) -> None:
        """Releases the folder's lock."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> CampaignState:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _read(self) -> list[dict[str, Any]]:
        """The journal's events; a torn last line (a crash mid-write) is cut off."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise CampaignError(f"cannot read {self.path}: {e.strerror}") from e
        lines = data.split(b"\n")
        events: list[dict[str, Any]] = []
        good = 0  # bytes of whole, valid lines
        for i, line in enumerate(lines):
            if not line.strip():
                good += len(line) + 1
                continue
            try:
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                if i >= len(lines) - 2:  # the last line (before the final newline)
                    logger.warning("%s: dropping a torn last line", self.path)
                    break
                raise CampaignError(f"{self.path} line {i + 1} is not a JSON object ({e}); "
                                    f"fix or delete the line") from e
            events.append(event)
            good += len(line) + 1
        if good < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(min(good, len(data)))
        return events

    def _append(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
        except OSError as e:
            raise CampaignError(f"cannot write {self.path}: {e.strerror}") from e

    def record(self, event: str, **fields: Any) -> None:
        """Applies ``event`` and appends it to the journal."""
        entry = {"e": event, **fields}
        with self._lock:
            self._apply(entry)
            self._append(entry)

    def model(self, name: str) -> ModelRecord:
        rec = self.models.get(name)
        if rec is None:
            rec = self.models[name] = ModelRecord(name)
        return rec

    def _apply(self, ev: Mapping[str, Any]) -> None:
        kind = ev.get("e")
        if kind in ("campaign", "run"):
            return
        rec = self.model(str(ev["name"]))
        if kind == "converted":
            if rec.sha256 is not None and rec.sha256 != ev["sha256"]:  # rebuilt: new bytes
                rec.model_ids.clear()
                rec.upload_errors.clear()
                rec.jobs.clear()
            rec.sha256, rec.ops, rec.macs = ev["sha256"], ev.get("ops"), ev.get("macs")
            rec.conversion_error = None
        elif kind == "conversion_failed":
            rec.conversion_error = str(ev["error"])
        elif kind == "uploaded":
            rec.model_ids[ev["server"]] = int(ev["model_id"])
            rec.upload_errors.pop(ev["server"], None)
        elif kind == "upload_failed":
            rec.upload_errors[ev["server"]] = str(ev["error"])
        elif kind == "reset":
            rec.model_ids.pop(ev["server"], None)
            rec.jobs = {k: v for k, v in rec.jobs.items() if k[0] != ev["server"]}
        elif kind == "submitted":
            rec.jobs[(ev["server"], ev["device"])] = JobRecord(int(ev["job_id"]))
        elif kind == "finished":
            job = rec.jobs.get((ev["server"], ev["device"]))
            if job is not None and job.job_id == int(ev["job_id"]):
                job.state, job.error = str(ev["state"]), ev.get("error")
        else:
            raise CampaignError(f"{self.path}: unknown event {kind!r} (written by a newer "
                                f"mcuprof?); give another --out")


# --------------------------------------------------------------------------------------------
# Events (progress)


@dataclass(frozen=True)
class CampaignEvent:
    """Something a campaign did, for progress displays.

    ``kind``: ``start`` (``total`` models, ``devices``), ``converted`` (``detail`` "reused"
    for an earlier conversion), ``conversion_failed``, ``uploaded``, ``upload_failed``,
    ``submitted`` (``detail`` "earlier" when recorded before, "reused" when the server
    already had the job), ``waiting`` (``total`` jobs still running), ``finished`` (``job``
    terminal), ``note`` (a warning in ``detail``).
    """

    kind: str
    name: str | None = None
    device: str | None = None
    job: JobOut | None = None
    detail: str | None = None
    total: int | None = None
    devices: tuple[str, ...] = ()


Observer = Callable[[CampaignEvent], None]


def _escape(text: str | None) -> str:
    """``text`` with rich's markup characters escaped (errors quote shapes like [1, 12])."""
    from rich.markup import escape

    return escape(text or "")


class RichProgress:
    """Progress bars on stderr (rich): converted, then submitted and done per device."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._totals: dict[str, int] = {}

    def __call__(self, event: CampaignEvent) -> None:
        if event.kind == "start":
            self._start(event.total or 0, event.devices)
            return
        if event.kind == "note":  # notes come before the bars too (the server check)
            console = self._progress.console if self._progress is not None else self.console
            console.print(f"[yellow]note[/]: {_escape(event.detail)}", highlight=False)
            return
        if self._progress is None:
            return
        p = self._progress
        if event.kind in ("converted", "conversion_failed"):
            p.advance(self._tasks["converted"])
        if event.kind in ("conversion_failed", "upload_failed"):
            for key, task in self._tasks.items():
                if key != "converted":
                    self._totals[key] -= 1
                    p.update(task, total=self._totals[key])
            p.console.print(f"[yellow]{event.kind.replace('_', ' ')}[/]: {event.name}: "
                            f"{_escape(event.detail)}", highlight=False)
        elif event.kind == "submitted" and event.device is not None:
            p.advance(self._tasks[f"submitted {event.device}"])
        elif event.kind == "finished" and event.device is not None and event.job is not None:
            p.advance(self._tasks[f"done {event.device}"])
            if event.job.state != "done":
                p.console.print(f"[red]job {event.job.id} {event.job.state}[/]: {event.name} "
                                f"on {event.device}: {_escape(event.job.error)}",
                                highlight=False)

    def _start(self, total: int, devices: Sequence[str]) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.close()
        self._progress = Progress(TextColumn("{task.description:<36}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=self.console, transient=False)
        self._tasks = {"converted": self._progress.add_task("converted", total=total)}
        for device in devices:
            for stage in ("submitted", "done"):
                key = f"{stage} {device}"
                self._totals[key] = total
                self._tasks[key] = self._progress.add_task(
                    f"{stage} {'->' if stage == 'submitted' else 'on'} {device}", total=total)
        self._progress.start()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class LineProgress:
    """Progress as a few plain lines (for logs and pipes): one when the campaign starts, one
    per failure, one when the conversions end, one when every job has finished."""

    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.total = 0
        self.converted = 0
        self.reused = 0
        self.failed = 0
        self.submitted: dict[str, int] = {}
        self.finished: dict[str, int] = {}
        self.earlier = 0  # jobs recorded by an earlier run or found on the server
        self.waiting = False
        self.started = time.monotonic()

    def __call__(self, event: CampaignEvent) -> None:
        if event.kind == "start":
            self.total, self.started = event.total or 0, time.monotonic()
            self.echo(f"{self.total} models on {', '.join(event.devices)}")
        elif event.kind in ("converted", "conversion_failed", "upload_failed"):
            if event.kind == "converted":
                self.converted += 1
                self.reused += event.detail == "reused"
            else:
                self.failed += 1
                self.echo(f"{event.kind.replace('_', ' ')}: {event.name}: {event.detail}")
            if event.kind != "upload_failed" and self.converted + self.failed == self.total:
                self.echo(f"converted {self.converted} of {self.total} ({self.reused} reused, "
                          f"{self.failed} failed) in {self._elapsed()}")
        elif event.kind == "submitted" and event.device:
            self.submitted[event.device] = self.submitted.get(event.device, 0) + 1
            self.earlier += event.detail is not None
        elif event.kind == "waiting":
            self.waiting = True
            jobs = sum(self.submitted.values())
            reused = f" ({self.earlier} from earlier runs or the server)" if self.earlier else ""
            self.echo(f"{jobs} jobs{reused}; waiting for the {event.total} not finished yet")
        elif event.kind == "finished" and event.device and event.job is not None:
            self.finished[event.device] = self.finished.get(event.device, 0) + 1
            if event.job.state != "done" and event.detail != "earlier":
                self.echo(f"job {event.job.id} {event.job.state}: {event.name} on "
                          f"{event.device}: {event.job.error}")
            if self.waiting and self.finished == self.submitted:
                self.echo(f"all {sum(self.finished.values())} jobs finished after "
                          f"{self._elapsed()}")
        elif event.kind == "note":
            self.echo(f"note: {event.detail}")

    def _elapsed(self) -> str:
        return _duration(time.monotonic() - self.started)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class ModelResult:
    """One sampled model: its architecture, upload and jobs, and measurements."""

    name: str
    arch_id: str
    arch: dict[str, Any]
    sha256: str | None
    ops: int | None
    macs: int | None
    model_id: int | None
    conversion_error: str | None
    upload_error: str | None
    jobs: dict[str, JobRecord]  # device -> job
    measurements: dict[str, MeasurementOut]  # device -> measurement


@dataclass
class DeviceResult:
    """One device class: its jobs, the stored fit and this campaign's own line.

    ``fit`` is the server's current op-count line for (device, backbone, kernels): it covers
    every measurement of that backbone on the server, this campaign's and any other.
    ``line`` is fitted here on this campaign's measurements only. ``url`` is the dashboard
    page with the latency-vs-ops plot."""

    device: str
    jobs: int
    done: int
    failed: int
    pending: int
    fit: FitOut | None
    line: LineFit | None
    url: str
    note: str | None = None


@dataclass
class CampaignResult:
    """What :func:`run_campaign` returns (and writes to ``<out>/result.json``)."""

    name: str
    space: str
    seed: int
    max_width: int | None
    devices: list[str]
    out: Path
    server: str
    kernels: str
    models: list[ModelResult]
    device_results: dict[str, DeviceResult]
    converted: int
    reused_conversions: int
    submitted: int
    reused_jobs: int
    elapsed_s: float
    fits_api: bool = True
    serve_hint: str | None = None

    @property
    def fits(self) -> dict[str, FitOut | None]:
        """The stored fit per device class (None where the server has none)."""
        return {d: r.fit for d, r in self.device_results.items()}

    @property
    def complete(self) -> bool:
        """Whether every job has finished (done or failed)."""
        return all(r.pending == 0 for r in self.device_results.values())

    @property
    def conversion_failures(self) -> list[tuple[str, str]]:
        return [(m.name, m.conversion_error) for m in self.models if m.conversion_error]

    @property
    def upload_failures(self) -> list[tuple[str, str]]:
        return [(m.name, m.upload_error) for m in self.models if m.upload_error]

    @property
    def job_failures(self) -> list[tuple[str, str, int, str]]:
        """(model, device, job id, error) of every job that failed or was cancelled."""
        return [(m.name, d, j.job_id, j.error or j.state) for m in self.models
                for d, j in m.jobs.items() if j.finished and j.state != "done"]

    @property
    def failed(self) -> bool:
        return bool(self.conversion_failures or self.upload_failures or self.job_failures)

    def frame(self) -> pd.DataFrame:
        """One row per measurement: model, arch id, device, ops, MACs, latency, cycles,
        energy, arena and plan bytes, model and job ids."""
        import pandas as pd

        rows = [{"name": m.name, "arch": m.arch_id, "device": d, "ops": x.ops, "macs": x.macs,
                 "latency_ms": x.latency_ms, "cycles": x.cycles, "energy_mj": x.energy_mj,
                 "arena_bytes": x.arena_bytes, "plan_bytes": x.plan_bytes,
                 "model_id": m.model_id, "job_id": x.job_id}
                for m in self.models for d, x in m.measurements.items()]
        return pd.DataFrame(rows, columns=["name", "arch", "device", "ops", "macs",
                                           "latency_ms", "cycles", "energy_mj", "arena_bytes",
                                           "plan_bytes", "model_id", "job_id"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: counts, fits, failures and one row per model."""
        def fit(r: DeviceResult) -> dict[str, Any] | None:
            return r.fit.model_dump(mode="json", exclude={"measurement_ids"}) if r.fit else None

        def line(r: DeviceResult) -> dict[str, Any] | None:
            return r.line.to_dict() if r.line is not None else None

        return {
            "name": self.name, "space": self.space, "seed": self.seed,
            "max_width": self.max_width, "devices": self.devices, "out": str(self.out),
            "server": self.server, "kernels": self.kernels, "complete": self.complete,
            "converted": self.converted, "reused_conversions": self.reused_conversions,
            "submitted": self.submitted, "reused_jobs": self.reused_jobs,
            "elapsed_s": round(self.elapsed_s, 3), "fits_api": self.fits_api,
            "device_results": {d: {"jobs": r.jobs, "done": r.done, "failed": r.failed,
                                   "pending": r.pending, "url": r.url, "note": r.note,
                                   "fit": fit(r), "campaign_line": line(r)}
                               for d, r in self.device_results.items()},
            "conversion_failures": self.conversion_failures,
            "upload_failures": self.upload_failures,
            "job_failures": self.job_failures,
            "models": [{"name": m.name, "arch_id": m.arch_id, "arch": m.arch,
                        "sha256": m.sha256, "ops": m.ops, "macs": m.macs,
                        "model_id": m.model_id,
                        "jobs": {d: dataclasses.asdict(j) for d, j in m.jobs.items()},
                        "latency_ms": {d: x.latency_ms for d, x in m.measurements.items()}}
                       for m in self.models],
        }

    def report(self) -> str:
        """The text ``mcuprof campaign`` prints: counts, then the fit per device."""
        n = len(self.models)
        failed_conv = len(self.conversion_failures)
        lines = [
            f"campaign {self.name}: {n} models from {self.space}"
            + (f" (widths <= {self.max_width})" if self.max_width else "")
            + f", seed {self.seed}, {self.kernels} kernels, server {self.server}",
            f"  models: {self.converted} converted, {self.reused_conversions} reused, "
            f"{failed_conv} failed to convert, {len(self.upload_failures)} refused",
            f"  jobs:   {self.submitted} submitted, {self.reused_jobs} reused; "
            f"{sum(r.done for r in self.device_results.values())} done, "
            f"{sum(r.failed for r in self.device_results.values())} failed, "
            f"{sum(r.pending for r in self.device_results.values())} still running; "
            f"{_duration(self.elapsed_s)}",
        ]
        for r in self.device_results.values():
            lines.append("")
            lines.append(f"{r.device}: {r.done} of {r.jobs} jobs done")
            if r.fit is not None:
                f = r.fit
                lines.append(f"  latency_ms = {(f.a_ms_per_op or 0) * 1e6:.4f} * Mops "
                             f"{'+' if (f.b_ms or 0) >= 0 else '-'} {abs(f.b_ms or 0):.4f}   "
                             f"(fit {f.version}, n {f.n})")
                lines.append(f"  r2 {f.r2:.4f} (cross-validated {f.metrics.r2:.4f})   "
                             f"+-10% accuracy {f.metrics.acc10:.1%}   "
                             f"MAPE {f.metrics.mape:.2%}   ({f.k}-fold CV)")
                if r.line is not None and r.line.n != f.n:
                    lines.append(f"  this campaign alone: {r.line.a * 1e6:.4f} * Mops + "
                                 f"{r.line.b:.4f}, r2 {r.line.r2:.4f}, n {r.line.n} (the "
                                 f"stored fit has {f.n - r.line.n} more measurements)")
            elif r.line is not None:
                line = r.line
                lines.append(f"  latency_ms = {line.a * 1e6:.4f} * Mops "
                             f"{'+' if line.b >= 0 else '-'} {abs(line.b):.4f}   "
                             f"(fitted here, n {line.n})")
                lines.append(f"  r2 {line.r2:.4f} (cross-validated {line.cv.r2:.4f})   "
                             f"+-10% accuracy {line.cv.acc10:.1%}   MAPE {line.cv.mape:.2%}   "
                             f"({line.k}-fold CV)")
            if r.note:
                lines.append(f"  {r.note}")
            lines.append(f"  plot: {r.url}")
        if self.serve_hint:
            lines.append("")
            lines.append(self.serve_hint)
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The campaign


def server_check(client: Client, *, default: bool) -> None:
    """Raises :class:`ServerNotFoundError` with what to do when ``client``'s server does
    not answer (``default``: the URL was not chosen by the user)."""
    try:
        client.request("GET", "/devices")
    except ServerUnavailableError as e:
        if default:
            raise ServerNotFoundError(
                f"no mcuprof server answers at {client.url}. Start one in another terminal "
                f"(`mcuprof demo`, or `mcuprof serve` and `mcuprof agent --server "
                f"{client.url} --board virtual:nucleo-f446re`), point --server or "
                f"MCUPROF_SERVER at yours, or add --local to run the campaign on a server "
                f"and virtual boards in this process") from e
        raise ServerNotFoundError(f"{e}") from e


class _Campaign:
    """One run of a campaign (see :func:`run_campaign`)."""

    def __init__(self, *, space: SearchSpace, n: int, devices: list[str], client: Client,
                 seed: int, out: Path, name: str, workers: int, runs: int, warmup: int,
                 kernels: str, max_width: int | None, input_shape: Shape | None,
                 weight_seed: int, retry_failed: bool, server_key: str, poll_s: float,
                 timeout_s: float | None, observer: Observer, check_boards: bool,
                 dashboard: str, server_label: str,
                 need_boards: Callable[[], None] | None = None,
                 check_local: Callable[[], None] | None = None) -> None:
        self.space, self.n, self.devices, self.client = space, n, devices, client
        self.seed, self.out, self.name, self.workers = seed, out, name, workers
        self.runs, self.warmup, self.kernels = runs, warmup, kernels
        self.max_width, self.input_shape, self.weight_seed = max_width, input_shape, weight_seed
        self.retry_failed, self.server, self.poll_s = retry_failed, server_key, poll_s
        self.timeout_s, self.emit, self.check_boards = timeout_s, observer, check_boards
        self.dashboard, self.server_label = dashboard.rstrip("/"), server_label
        self.need_boards = need_boards or (lambda: None)
        self.check_local = check_local or (lambda: None)
        self.models_dir = out / MODELS_DIR
        self.converted = 0
        self.reused_conversions = 0
        self.submitted = 0
        self.reused_jobs = 0
        self.state: CampaignState | None = None
        self.plan: list[Job] = []

    # -- run -------------------------------------------------------------------------------

    def run(self, *, wait: bool) -> CampaignResult:
        start = time.monotonic()
        self.plan = plan_models(self.space, self.n, self.seed, self.models_dir,
                                max_width=self.max_width, input_shape=self.input_shape,
                                weight_seed=self.weight_seed)
        identity = {"name": self.name, "space": self.space.name, "seed": self.seed,
                    "max_width": self.max_width,
                    "input_shape": list(self.plan[0].network["input_shape"]),
                    "weight_seed": self.weight_seed}
        self.state = state = CampaignState.open(self.out, identity)
        try:
            state.record("run", name=self.name, n=self.n, devices=self.devices,
                         server=self.server, runs=self.runs, warmup=self.warmup,
                         kernels=self.kernels, at=datetime.now(timezone.utc).isoformat())
            self._check_server()
            self._forget_missing_uploads()
            self.emit(CampaignEvent("start", total=len(self.plan),
                                    devices=tuple(self.devices)))
            self._convert_and_submit()
            if wait:
                self._wait()
            else:
                self._refresh_without_waiting()
            return self._result(time.monotonic() - start)
        finally:
            state.close()

    def _check_server(self) -> None:
        devices = self.client.devices()
        if not self.check_boards:
            return
        for device in self.devices:
            boards = [d for d in devices if d.device_class == device]
            if not boards:
                self.emit(CampaignEvent("note", detail=(
                    f"no board of class {device} is registered with {self.client.url}; its "
                    f"jobs wait until an agent serves one (`mcuprof agent --server "
                    f"{self.client.url} --board {device}`)")))
            elif all(b.health == "bad" for b in boards):
                self.emit(CampaignEvent("note", detail=(
                    f"every board of class {device} failed its health check; its jobs wait "
                    f"until one passes")))

    def _forget_missing_uploads(self) -> None:
        """Drop the uploads (and their jobs) the server no longer has: one listing of the
        models tagged with this campaign, compared by id and SHA-256."""
        assert self.state is not None
        recorded = {name: rec for name, rec in self.state.models.items()
                    if self.server in rec.model_ids}
        if not recorded:
            return
        known: set[tuple[int, str]] = set()
        offset = 0
        while True:
            page = self.client.models(tag=f"{CAMPAIGN_TAG}={self.name}", limit=PAGE_SIZE,
                                      offset=offset)
            known.update((m.id, m.sha256) for m in page)
            if len(page) < PAGE_SIZE:
                break
            offset += len(page)
        for name, rec in recorded.items():
            if (rec.model_ids[self.server], rec.sha256) not in known:
                logger.info("the server no longer has %s (model %d); uploading it again",
                            name, rec.model_ids[self.server])
                self.state.record("reset", name=name, server=self.server)

    # -- conversion and submission -------------------------------------------------------

    def _convert_and_submit(self) -> None:
        from search.convert import existing_result

        assert self.state is not None
        todo: list[Job] = []
        for job in self.plan:
            rec = self.state.models.get(job.name)
            if rec is not None and rec.conversion_error and not self.retry_failed:
                self.emit(CampaignEvent("conversion_failed", name=job.name,
                                        detail=f"{rec.conversion_error} (earlier run; "
                                               f"--retry-failed tries again)"))
                continue
            earlier = existing_result(job)
            if earlier is not None:
                self.reused_conversions += 1
                self._converted(earlier)
            else:
                todo.append(job)
        if todo:
            self._convert(todo)

    def _convert(self, todo: list[Job]) -> None:
        from search.convert import run_job, worker_init

        assert self.state is not None
        ctx = multiprocessing.get_context("spawn")
        workers = max(1, min(self.workers, len(todo)))
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=worker_init)
        futures: dict[Future[dict[str, Any]], str] = {}
        try:
            futures.update((pool.submit(run_job, j), j.name) for j in todo)
            for fut in as_completed(futures):
                name = futures[fut]
                try:
                    meta = fut.result()
                except McuprofError as e:
                    self._conversion_failed(name, str(e))
                    continue
                except BrokenProcessPool as e:  # a worker died (killed, out of memory)
                    self._conversion_failed(name, f"a conversion worker died ({e}); the "
                                                  f"next run converts it again", record=False)
                    continue
                except Exception as e:
                    self._conversion_failed(name, f"{type(e).__name__}: {e}")
                    continue
                self.converted += 1
                self._converted(meta)
        except BaseException:
            # Interrupted: conversions in flight are redone by the next run, so end the
            # workers now rather than wait seconds for TensorFlow (the pool would, at exit).
            for fut in futures:
                fut.cancel()
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                if proc.is_alive():
                    proc.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _conversion_failed(self, name: str, error: str, *, record: bool = True) -> None:
        """A model that did not convert: journaled (a rerun skips it unless retry_failed),
        or with ``record=False`` only reported (a rerun converts it again)."""
        assert self.state is not None
        if record:
            self.state.record("conversion_failed", name=name, error=error)
        else:
            self.state.model(name).conversion_error = error
        self.emit(CampaignEvent("conversion_failed", name=name, detail=error))

    def _converted(self, meta: dict[str, Any]) -> None:
        """Record a converted model, then upload and submit it."""
        assert self.state is not None
        name = meta["name"]
        rec = self.state.models.get(name)
        if rec is None or rec.sha256 != meta["sha256"] or rec.conversion_error:
            self.state.record("converted", name=name, sha256=meta["sha256"], ops=meta["ops"],
                              macs=meta["macs"])
        self.emit(CampaignEvent("converted", name=name,
                                detail="reused" if meta.get("reused") else None))
        model_id = self._upload(name, meta)
        if model_id is not None:
            self._submit(name, model_id)

    def _upload(self, name: str, meta: dict[str, Any]) -> int | None:
        assert self.state is not None
        rec = self.state.model(name)
        if self.server in rec.model_ids:
            return rec.model_ids[self.server]
        if self.server in rec.upload_errors and not self.retry_failed:
            self.emit(CampaignEvent("upload_failed", name=name, detail=(
                f"{rec.upload_errors[self.server]} (earlier run; --retry-failed tries again)")))
            return None
        tags = {**meta.get("tags", {}), "backbone": self.space.name, CAMPAIGN_TAG: self.name}
        try:
            model = self.client.upload_model(self.models_dir / f"{name}.tflite", name=name,
                                             tags=tags)
        except ModelRejectedError as e:
            self.state.record("upload_failed", name=name, server=self.server, error=str(e))
            self.emit(CampaignEvent("upload_failed", name=name, detail=str(e)))
            return None
        if model.sha256 != rec.sha256:
            raise CampaignError(f"the server stored {name} with SHA-256 {model.sha256[:12]}..., "
                                f"the file has {str(rec.sha256)[:12]}...; was the file changed "
                                f"during the upload?")
        self.state.record("uploaded", name=name, server=self.server, model_id=model.id,
                          sha256=model.sha256)
        self.emit(CampaignEvent("uploaded", name=name))
        return model.id

    def _reusable(self, job: JobRecord | None) -> bool:
        """Whether a recorded job stands (a failed one does not under retry_failed)."""
        if job is None:
            return False
        return not (self.retry_failed and job.finished and job.state != "done")

    def _submit(self, name: str, model_id: int) -> None:
        """Submit ``name`` to every device that has no job for it yet, reusing jobs the
        server already has for the same model, device and kernels."""
        assert self.state is not None
        rec = self.state.model(name)
        missing: list[str] = []
        for device in self.devices:
            record = rec.jobs.get((self.server, device))
            if record is not None and self._reusable(record):
                self.emit(CampaignEvent("submitted", name=name, device=device,
                                        detail="earlier"))
                if record.finished:
                    self.emit(CampaignEvent("finished", name=name, device=device,
                                            job=_stub_job(record.job_id, device, record),
                                            detail="earlier"))
            else:
                missing.append(device)
        if not missing:
            return
        existing = self._server_jobs(model_id)
        new: list[str] = []
        for device in missing:
            candidates = [j for j in existing if j.device == device
                          and j.kernels == self.kernels and j.state in REUSE_ORDER
                          and not (self.retry_failed and j.state == "failed")]
            if candidates:
                found = min(candidates, key=lambda j: (REUSE_ORDER[j.state], -j.id))
                self.reused_jobs += 1
                self._record_job(name, device, found, reused=True)
            else:
                new.append(device)
        if not new:
            return
        self.need_boards()
        try:
            jobs = self.client.submit(model_id, new, runs=self.runs, warmup=self.warmup,
                                      kernels=self.kernels)
        except ApiError as e:
            raise CampaignError(f"the server refused the jobs of {name} (model {model_id}) "
                                f"for {', '.join(new)}: {e}") from e
        for created in jobs:
            self.submitted += 1
            self._record_job(name, created.device, created, reused=False)

    def _server_jobs(self, model_id: int) -> list[JobOut]:
        out: list[JobOut] = []
        offset = 0
        while True:
            page = self.client.jobs(model_id=model_id, limit=JOBS_PAGE, offset=offset)
            out.extend(page)
            if len(page) < JOBS_PAGE:
                return out
            offset += len(page)

    def _record_job(self, name: str, device: str, job: JobOut, *, reused: bool) -> None:
        assert self.state is not None
        self.state.record("submitted", name=name, server=self.server, device=device,
                          job_id=job.id)
        self.emit(CampaignEvent("submitted", name=name, device=device, job=job,
                                detail="reused" if reused else None))
        if job.state in TERMINAL_STATES:
            self._finished(name, device, job)

    def _finished(self, name: str, device: str, job: JobOut) -> None:
        assert self.state is not None
        self.state.record("finished", name=name, server=self.server, device=device,
                          job_id=job.id, state=job.state, error=job.error)
        self.emit(CampaignEvent("finished", name=name, device=device, job=job))

    # -- waiting -------------------------------------------------------------------------

    def _our_jobs(self) -> dict[int, tuple[str, str]]:
        """job id -> (model, device) of this run's models on this server."""
        assert self.state is not None
        out: dict[int, tuple[str, str]] = {}
        for job in self.plan:
            rec = self.state.models.get(job.name)
            if rec is None:
                continue
            for device in self.devices:
                record = rec.jobs.get((self.server, device))
                if record is not None:
                    out[record.job_id] = (job.name, device)
        return out

    def _pending(self) -> dict[int, tuple[str, str]]:
        assert self.state is not None
        return {jid: (name, dev) for jid, (name, dev) in self._our_jobs().items()
                if not self.state.models[name].jobs[(self.server, dev)].finished}

    def _wait(self) -> None:
        pending = self._pending()
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        first = True
        if not pending:
            self.emit(CampaignEvent("waiting", total=0))
        while pending:
            for jid, job in self._poll(pending).items():
                name, device = pending.pop(jid)
                self._finished(name, device, job)
            if first:  # after one look, so jobs that finished meanwhile are not counted
                self.emit(CampaignEvent("waiting", total=len(pending)))
                if pending:
                    self.need_boards()
                first = False
            if not pending:
                break
            self.check_local()
            if deadline is not None and time.monotonic() >= deadline:
                raise CampaignTimeoutError(
                    f"{len(pending)} jobs still running after {self.timeout_s:g} s; they keep "
                    f"running on the server: rerun the same command to collect them")
            time.sleep(self.poll_s)

    def _poll(self, pending: Mapping[int, tuple[str, str]]) -> dict[int, JobOut]:
        """The pending jobs that have finished, with their current state."""
        if len(pending) > GET_EACH_MAX:
            # The jobs still queued or running, by listing; only the others are fetched.
            active: set[int] = set()
            for device in sorted({d for _, d in pending.values()}):
                for state in ("queued", "leased"):
                    offset = 0
                    while True:
                        page = self.client.jobs(state=state, device=device, limit=JOBS_PAGE,
                                                offset=offset)
                        active.update(j.id for j in page)
                        if len(page) < JOBS_PAGE:
                            break
                        offset += len(page)
            candidates = [jid for jid in pending if jid not in active]
        else:
            candidates = list(pending)
        done: dict[int, JobOut] = {}
        for jid in candidates:
            try:
                job = self.client.job(jid)
            except NotFoundError:
                job = _stub_job(jid, pending[jid][1], JobRecord(
                    jid, "failed", f"the server has no job {jid} any more"))
            if job.state in TERMINAL_STATES:
                done[jid] = job
        return done

    def _refresh_without_waiting(self) -> None:
        """``wait=False``: record what has finished so far, wait for nothing."""
        pending = self._pending()
        for jid, job in self._poll(pending).items():
            name, device = pending[jid]
            self._finished(name, device, job)

    # -- results -------------------------------------------------------------------------

    def _measurements(self) -> dict[int, MeasurementOut]:
        """job id -> measurement of this campaign's done jobs (one listing per device)."""
        assert self.state is not None
        done = {jid for jid, (name, dev) in self._our_jobs().items()
                if self.state.models[name].jobs[(self.server, dev)].state == "done"}
        out: dict[int, MeasurementOut] = {}
        if not done:
            return out
        for device in self.devices:
            offset = 0
            while True:
                page = self.client.measurements(tag=f"{CAMPAIGN_TAG}={self.name}",
                                                device=device, limit=MEASUREMENTS_PAGE,
                                                offset=offset)
                out.update((m.job_id, m) for m in page if m.job_id in done)
                if len(page) < MEASUREMENTS_PAGE:
                    break
                offset += len(page)
        for jid in done - out.keys():  # e.g. a reused job of a model tagged by another run
            job = self.client.job(jid)
            if job.measurement is not None:
                out[jid] = job.measurement
        return out

    def _fit(self, device: str) -> tuple[FitOut | None, bool]:
        """The server's current op-count line for (device, backbone, kernels), and whether
        the server has the fits API."""
        try:
            fits = self.client.fits(device=device, backbone=self.space.name,
                                    kernels=self.kernels, kind="ops_line")
        except NotFoundError:
            return None, False
        return (fits[0] if fits else None), True

    def _result(self, elapsed: float) -> CampaignResult:
        from service.fitting import FitError, fit_ops_line

        assert self.state is not None
        measurements = self._measurements()
        models: list[ModelResult] = []
        per_device: dict[str, list[MeasurementOut]] = {d: [] for d in self.devices}
        for job in self.plan:
            rec = self.state.models.get(job.name) or ModelRecord(job.name)
            arch = job.arch or {}
            jobs = {d: rec.jobs[(self.server, d)] for d in self.devices
                    if (self.server, d) in rec.jobs}
            got = {d: measurements[j.job_id] for d, j in jobs.items()
                   if j.job_id in measurements}
            for d, m in got.items():
                per_device[d].append(m)
            models.append(ModelResult(
                name=job.name, arch_id=job.name.removeprefix(f"{self.space.name}-"),
                arch=arch, sha256=rec.sha256, ops=rec.ops, macs=rec.macs,
                model_id=rec.model_ids.get(self.server), conversion_error=rec.conversion_error,
                upload_error=rec.upload_errors.get(self.server), jobs=jobs, measurements=got))
        results: dict[str, DeviceResult] = {}
        fits_api = True
        for device in self.devices:
            records = [m.jobs[device] for m in models if device in m.jobs]
            points = [(m.ops, m.latency_ms) for m in per_device[device]
                      if m.latency_ms is not None and m.latency_ms > 0]
            line: LineFit | None = None
            note: str | None = None
            try:
                line = fit_ops_line([p[0] for p in points], [p[1] for p in points])
            except FitError as e:
                note = f"no line yet: {e}"
            fit, has_api = self._fit(device)
            fits_api = fits_api and has_api
            if not has_api:
                note = ("this server has no fits API (GET /api/v1/fits); the line above was "
                        "fitted here from the campaign's measurements") if line else note
            elif fit is None and line is not None:
                note = "the server has stored no fit for it yet"
            results[device] = DeviceResult(
                device=device, jobs=len(records),
                done=sum(j.state == "done" for j in records),
                failed=sum(j.finished and j.state != "done" for j in records),
                pending=sum(not j.finished for j in records), fit=fit, line=line,
                url=f"{self.dashboard}/device/{device}", note=note)
        return CampaignResult(
            name=self.name, space=self.space.name, seed=self.seed, max_width=self.max_width,
            devices=list(self.devices), out=self.out, server=self.server_label,
            kernels=self.kernels, models=models, device_results=results,
            converted=self.converted, reused_conversions=self.reused_conversions,
            submitted=self.submitted, reused_jobs=self.reused_jobs, elapsed_s=elapsed,
            fits_api=fits_api)


def _stub_job(job_id: int, device: str, record: JobRecord) -> JobOut:
    """A JobOut standing for a job known only from the journal (for events)."""
    now = datetime.now(timezone.utc)
    return JobOut(id=job_id, model_id=0, device=device, state=record.state  # type: ignore[arg-type]
                  if record.state in TERMINAL_STATES else "queued", runs=0, warmup=0,
                  kernels="dsp", attempts=0, max_attempts=0, error=record.error,
                  created_at=now, updated_at=now)


# --------------------------------------------------------------------------------------------
# A server and virtual boards in this process (--local)


# The agent processes of --local: ``mcuprof agent`` that ends with the campaign. On Linux
# the kernel sends it SIGTERM when the thread that started it ends (PR_SET_PDEATHSIG), so a
# campaign killed outright leaves no agent polling a server that is gone.
_AGENT_MAIN = """\
import os, sys
parent = int(sys.argv.pop(1))
if sys.platform.startswith("linux"):
    import ctypes, signal
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
if os.getppid() != parent:
    sys.exit(0)
from profiler_client.cli import main
main()
"""


class LocalService:
    """``--local``: the API on SQLite in ``out`` (``out/mcuprof.db``, kept between runs, so a
    rerun resumes), served from a thread of this process on a free loopback port as
    ``mcuprof demo`` serves it (``service.demo``), and one ``mcuprof agent`` process per
    device class with one virtual board each.

    The boards run in processes, not threads: the virtual boards' cycle model calls back
    into Python on every basic block, so boards in threads share one core through the GIL
    (measured with ``benchmarks/campaign_throughput.py``: four boards in threads were 3.7
    times slower than in processes on two cores, and starved heartbeats lost leases).

    Lifecycle: :meth:`start` (the server; returns its client) → :meth:`start_boards` (the
    agents, once; the campaign calls it with its first job) → :meth:`stop`.
    """

    def __init__(self, out: Path, devices: Sequence[str]) -> None:
        bad = [d for d in devices if not d.startswith("virtual:")]
        if bad:
            raise CampaignError(f"--local runs virtual boards only; {', '.join(bad)} needs a "
                                f"server with an agent that owns such a board (--server URL)")
        self.out = out
        self.devices = list(devices)
        self.database_url = f"sqlite:///{(out / LOCAL_DATABASE).resolve()}"
        self.log_path = out / LOCAL_AGENT_LOG
        self.url = ""
        self.client: Client | None = None
        self.agents: list[subprocess.Popen[bytes]] = []
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> Client:
        """Migrates the database and serves the API; returns a client for it."""
        import uvicorn

        from service.api.app import create_app
        from service.config import Settings
        from service.db.migrate import upgrade
        from service.demo import DEMO_HOST, SERVER_START_TIMEOUT_S, free_port

        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CampaignError(f"cannot create campaign directory {self.out}: "
                                f"{e.strerror}") from e
        port = free_port(DEMO_HOST)
        settings = Settings(database_url=self.database_url, host=DEMO_HOST, port=port,
                            auth="off")
        upgrade(self.database_url)
        # log_config=None: leave the host program's logging alone. uvicorn's own
        # configuration (dictConfig) closes every existing handler, and absl's (installed
        # by TensorFlow) then closes its stream: sys.stderr as it was when TF was imported.
        self._server = uvicorn.Server(uvicorn.Config(
            create_app(settings), host=DEMO_HOST, port=port, log_level="warning",
            log_config=None, lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, name="campaign-server",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise CampaignError(f"the local server did not start on {DEMO_HOST}:{port}")
            time.sleep(0.05)
        self.url = f"http://{DEMO_HOST}:{port}"
        self.client = Client(self.url, token="")
        return self.client

    def start_boards(self) -> None:
        """Starts one agent process per device class (once); they log to
        ``out/agents.log`` and take work after their board's health check."""
        from service.demo import AGENT_POLL_S

        if self.agents or not self.url:
            return
        env = {k: v for k, v in os.environ.items() if k not in ("MCUPROF_SERVER",
                                                                 "MCUPROF_TOKEN")}
        with open(self.log_path, "ab") as log:
            for device in self.devices:
                board = device.split(":")[1].removeprefix("nucleo-")
                self.agents.append(subprocess.Popen(
                    [sys.executable, "-c", _AGENT_MAIN, str(os.getpid()), "agent",
                     "--server", self.url, "--board", device, "--name", f"local-{board}",
                     "--poll", str(AGENT_POLL_S)],
                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log))

    def check(self) -> None:
        """Raises CampaignError when an agent process has ended (while jobs still wait)."""
        ended = [(d, p.returncode) for d, p in zip(self.devices, self.agents, strict=True)
                 if p.poll() is not None]
        if ended:
            which = ", ".join(f"{d} (exit status {code})" for d, code in ended)
            raise CampaignError(f"the local board agent(s) of {which} stopped; see "
                                f"{self.log_path}. Run the same command again to resume")

    def stop(self, *, hurry: bool = False) -> None:
        """Stops the agents (SIGTERM: a job in flight gets the agent's grace period to
        finish, and is released for a later run otherwise; ``hurry``: released at once),
        then the server."""
        for proc in self.agents:
            if proc.poll() is None:
                proc.terminate()
                if hurry:
                    time.sleep(0.05)  # the agent's second signal skips its grace
                    proc.terminate()
        deadline = time.monotonic() + LOCAL_STOP_GRACE_S
        for proc in self.agents:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.agents.clear()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self.client is not None:
            self.client.close()

    def __enter__(self) -> Client:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(hurry=exc_type is not None and issubclass(exc_type, KeyboardInterrupt))


def local_serve_hint(out: Path) -> str:
    """How to look at a --local campaign's results after the command has ended."""
    database = (out / LOCAL_DATABASE).resolve()
    return (f"The local server stopped with this command; to see the plots, serve its "
            f"database:\n  MCUPROF_DATABASE_URL=sqlite:///{database} mcuprof serve")


@contextlib.contextmanager
def _observers(progress: bool, on_event: Observer | None) -> Iterator[Observer]:
    bars = RichProgress() if progress else None

    def emit(event: CampaignEvent) -> None:
        if bars is not None:
            bars(event)
        if on_event is not None:
            on_event(event)

    try:
        yield emit
    finally:
        if bars is not None:
            bars.close()


def run_campaign(space: str | SearchSpace, n: int, devices: Sequence[str], *,
                 client: Client | None = None, seed: int = 0, out: str | Path | None = None,
                 jobs: int | None = None, runs: int = DEFAULT_RUNS,
                 warmup: int = DEFAULT_WARMUP, kernels: str = "dsp",
                 max_width: int | None = None, input_size: int | None = None,
                 name: str | None = None, weight_seed: int = 0, retry_failed: bool = False,
                 wait: bool = True, timeout_s: float | None = None, poll_s: float = POLL_S,
                 local: bool = False, progress: bool = False,
                 on_event: Observer | None = None) -> CampaignResult:
    """Run (or resume) a profiling campaign; returns its :class:`CampaignResult`.

    ``space``: ``kws``, ``vww`` or ``ad``; ``n`` architectures sampled uniformly with
    ``seed`` (``max_width``: only width choices up to that many channels, for small models;
    ``input_size``: vww's input side). ``devices``: device classes, e.g.
    ``virtual:nucleo-f446re``. ``client``: the server (default: ``Client()``, i.e.
    ``$MCUPROF_SERVER``); ``local``: a server on SQLite in ``out`` and one virtual agent per
    device in this process instead. ``out``: the campaign's directory (default
    ``campaigns/<name>``; the journal, the models and ``result.json``). ``jobs``: conversion
    worker processes (default: the CPU count). ``runs``/``warmup``/``kernels``: each job's
    settings. ``wait=False`` submits and returns (rerun to collect); ``timeout_s`` bounds the
    wait (:class:`CampaignTimeoutError`; the jobs go on). ``progress``: rich progress bars on
    stderr; ``on_event``: a callback for every :class:`CampaignEvent`.

    Rerunning with the same space, seed and ``max_width`` resumes: see the module docstring.
    Raises :class:`ServerNotFoundError` when the server does not answer.
    """
    sp = get_space(space)
    if n < 1:
        raise CampaignError(f"--n {n}: a campaign needs at least 1 model (a line at least 5)")
    if jobs is not None and jobs < 1:
        raise CampaignError(f"--jobs {jobs}: use at least 1 conversion worker")
    if kernels not in ("dsp", "ref"):
        raise CampaignError(f"kernels must be dsp or ref, not {kernels!r}")
    if not 1 <= runs <= 1000 or not 0 <= warmup <= 100:
        raise CampaignError(f"runs must be 1..1000 and warmup 0..100 (got {runs}, {warmup})")
    input_shape: Shape | None = None
    if input_size is not None:
        if not sp.variable_input:
            raise CampaignError(f"only the vww space takes a chosen input size; {sp.name} "
                                f"inputs are fixed ({'x'.join(map(str, sp.input_shape))})")
        input_shape = (input_size, input_size, sp.input_shape[2])
        sp.check_input_shape(input_shape)
    classes = check_devices(devices)
    name = name or default_name(sp.name, seed, max_width=max_width, input_size=input_size)
    if not name or any(c in name for c in "=/\\") or name.startswith("."):
        raise CampaignError(f"campaign name {name!r}: use letters, digits, '-' and '_'")
    out_dir = Path(out) if out is not None else default_out(name)
    service: LocalService | None = None
    own_client = False
    if local:
        service = LocalService(out_dir, classes)
        client = service.start()
        server_key = f"local:{(out_dir / LOCAL_DATABASE).resolve()}"
        dashboard, label = LOCAL_DASHBOARD, f"local ({out_dir / LOCAL_DATABASE})"
    else:
        if client is None:
            client, own_client = Client(), True
        server_check(client, default=own_client and not os.environ.get("MCUPROF_SERVER"))
        server_key = dashboard = label = client.url
    interrupted = False
    try:
        with _observers(progress, on_event) as emit:
            campaign = _Campaign(
                space=sp, n=n, devices=classes, client=client, seed=seed, out=out_dir,
                name=name, workers=jobs or os.cpu_count() or 1, runs=runs, warmup=warmup,
                kernels=kernels, max_width=max_width, input_shape=input_shape,
                weight_seed=weight_seed, retry_failed=retry_failed, server_key=server_key,
                poll_s=poll_s, timeout_s=timeout_s, observer=emit, check_boards=not local,
                dashboard=dashboard, server_label=label,
                # --local without waiting: the boards would be stopped at once; the jobs
                # wait in the campaign's database for the next run.
                need_boards=service.start_boards if service is not None and wait else None,
                check_local=service.check if service is not None else None)
            result = campaign.run(wait=wait)
        if local:
            result.serve_hint = local_serve_hint(out_dir)
        write_result(result)
        return result
    except KeyboardInterrupt:
        interrupted = True  # the boards release their jobs at once; a rerun takes them
        raise
    finally:
        if service is not None:
            service.stop(hurry=interrupted)
        if own_client:
            client.close()


def write_result(result: CampaignResult) -> Path:
    """``<out>/result.json``: the result's summary (:meth:`CampaignResult.to_dict`)."""
    path = result.out / RESULT_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SearchError(f"cannot write {path}: {e.strerror}") from e
    return path
