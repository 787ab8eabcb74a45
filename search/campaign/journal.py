"""The campaign's journal, ``<out>/state.jsonl``: what happened, appended after it happened,
replayed on open (see the package docstring for what a rerun reuses)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from profiler_client.client import TERMINAL_STATES
from search.campaign.errors import CampaignError

logger = logging.getLogger("mcuprof.campaign")

STATE_FILE = "state.jsonl"  # the journal, in the campaign's directory
LOCK_FILE = ".lock"  # held (flock) by the process running the campaign
STATE_VERSION = 1  # bump when the journal's events change meaning


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
