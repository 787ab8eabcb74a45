"""Progress of a campaign: the events it emits, and two displays of them (rich bars on a
terminal, a few plain lines for logs and pipes)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from profiler_client.schemas import JobOut

Echo = Callable[[str], None]


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
        return duration(time.monotonic() - self.started)


def duration(seconds: float) -> str:
    """``12.3 s`` or ``4 min 05 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"


@contextlib.contextmanager
def observers(progress: bool, on_event: Observer | None) -> Iterator[Observer]:
    """One observer calling rich bars (``progress``) and ``on_event``; the bars end with
    the block."""
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
