"""What the search pages show (``/searches``, ``/searches/{id}``): the runs with their counts
and best candidate, and one run's epochs and candidates checked against its budgets, each
latency labelled with what it is (``service.dashboard.labels``: a twin's is a cycle-model
latency, not silicon).

A candidate's figure is checked against its budget with the measured figure where there is
one, else the predicted one, and the table says which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench_firmware.backends.virtual.error_band import ErrorBand
from service.dashboard.labels import LatencyKind
from service.dashboard.search_figures import (
    CandidatePoint,
    EpochPoint,
    device_kind,
    measured_kind,
)
from service.db.models import SearchCandidate, SearchRun
from service.searches import candidates_of, counts, epochs_of
from service.twin_band import TwinView, device_class_view

SEARCHES_PAGE = 50  # runs on one page of /searches
BEST_OF = 200  # most accurate candidates of a run the list page checks for the best one
CHECKS = (("latency_ms", "latency"), ("sram_bytes", "SRAM"), ("flash_bytes", "flash"))


@dataclass(frozen=True)
class Best:
    """A run's best candidate: what the run says it found (``result``), else the most accurate
    candidate within every budget."""

    arch_id: str
    accuracy: float | None
    candidate_id: int | None
    source: str  # "result" or "candidate"


@dataclass(frozen=True)
class SearchRow:
    id: int
    name: str
    space: str
    devices: list[str]
    state: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    epochs: int
    candidates: int
    verified: int
    best: Best | None


@dataclass(frozen=True)
class SearchesPage:
    rows: list[SearchRow]
    before: int | None  # the ``before`` of the next (older) page, None on the last
    first: bool


@dataclass(frozen=True)
class Check:
    """One figure of a candidate against its budget: the figure checked (measured if
    measured, else predicted), the budget, and whether it is within (None: no budget or no
    figure)."""

    value: float | None
    budget: float | None
    measured: bool

    @property
    def ok(self) -> bool | None:
        if self.value is None or self.budget is None:
            return None
        return self.value <= self.budget


@dataclass(frozen=True)
class DeviceFigures:
    """A candidate on one device class: predicted and measured figures, what the measured
    latency is, the relative error of the prediction, and the checks against the budgets."""

    device: str
    predicted: Mapping[str, Any] | None
    measured: Mapping[str, Any] | None
    kind: LatencyKind
    checks: dict[str, Check]

    @property
    def relative_error(self) -> float | None:
        """(predicted − measured) / measured latency."""
        if not self.predicted or not self.measured:
            return None
        measured = float(self.measured["latency_ms"])
        return (float(self.predicted["latency_ms"]) - measured) / measured


@dataclass(frozen=True)
class CandidateRow:
    id: int
    round: int
    arch_id: str
    accuracy: float | None
    verified: bool
    model_id: int | None
    devices: list[DeviceFigures]

    @property
    def fits(self) -> bool | None:
        """Within every budget it has a figure for (None: nothing to check)."""
        results = [c.ok for d in self.devices for c in d.checks.values() if c.ok is not None]
        return all(results) if results else None


@dataclass(frozen=True)
class DeviceNote:
    """A device class of the run: what its latencies are and, for a twin, its error band."""

    device: str
    kind: LatencyKind
    twin: TwinView | None

    @property
    def band(self) -> ErrorBand | None:
        return self.twin.applied if self.twin is not None else None


@dataclass
class RunView:
    run: SearchRun
    epochs: list[EpochPoint] = field(default_factory=list)
    candidates: list[CandidatePoint] = field(default_factory=list)
    rows: list[CandidateRow] = field(default_factory=list)
    devices: list[DeviceNote] = field(default_factory=list)
    best: Best | None = None


def _checks(device: str, predicted: Mapping[str, Any] | None,
            measured: Mapping[str, Any] | None,
            budgets: Mapping[str, Mapping[str, Any]]) -> dict[str, Check]:
    out = {}
    budget = budgets.get(device) or {}
    for key, _label in CHECKS:
        m = (measured or {}).get(key)
        p = (predicted or {}).get(key)
        value = m if m is not None else p
        cap = budget.get(key)
        out[key] = Check(value=float(value) if value is not None else None,
                         budget=float(cap) if cap is not None else None,
                         measured=m is not None)
    return out


def candidate_row(c: CandidatePoint, model_id: int | None, devices: Sequence[str],
                  budgets: Mapping[str, Mapping[str, Any]]) -> CandidateRow:
    figures = []
    for device in devices:
        predicted = (c.predicted or {}).get(device)
        measured = (c.measured or {}).get(device)
        if predicted is None and measured is None:
            continue
        kind = measured_kind(device, measured) if measured else device_kind(device)
        figures.append(DeviceFigures(device=device, predicted=predicted, measured=measured,
                                     kind=kind,
                                     checks=_checks(device, predicted, measured, budgets)))
    return CandidateRow(id=c.id, round=c.round, arch_id=c.arch_id, accuracy=c.accuracy,
                        verified=c.verified, model_id=model_id, devices=figures)


def best(result: Mapping[str, Any] | None, rows: Sequence[CandidateRow]) -> Best | None:
    """What the run found, else its most accurate candidate within every budget."""
    if result and result.get("arch_id"):
        accuracy = result.get("accuracy")
        match = next((r for r in rows if r.arch_id == str(result["arch_id"])), None)
        return Best(arch_id=str(result["arch_id"]),
                    accuracy=float(accuracy) if isinstance(accuracy, int | float)
                    else (match.accuracy if match else None),
                    candidate_id=match.id if match else None, source="result")
    within = [r for r in rows if r.accuracy is not None and r.fits is not False]
    if not within:
        return None
    top = max(within, key=lambda r: (r.accuracy or 0.0, -r.id))
    return Best(arch_id=top.arch_id, accuracy=top.accuracy, candidate_id=top.id,
                source="candidate")


def _point(c: SearchCandidate) -> CandidatePoint:
    return CandidatePoint(id=c.id, arch_id=c.arch_id, round=c.round, accuracy=c.accuracy,
                          predicted=c.predicted, measured=c.measured, verified=c.verified)


def searches_page(session: Session, *, before: int | None = None,
                  limit: int = SEARCHES_PAGE) -> SearchesPage:
    """One page of runs, newest first, older than run ``before`` (keyset pagination)."""
    query = select(SearchRun).order_by(SearchRun.id.desc())
    if before is not None:
        query = query.where(SearchRun.id < before)
    runs = list(session.scalars(query.limit(limit + 1)))
    more = len(runs) > limit
    runs = runs[:limit]
    found = counts(session, [r.id for r in runs])
    rows = []
    for run in runs:
        top = session.scalars(
            select(SearchCandidate).where(SearchCandidate.run_id == run.id,
                                          SearchCandidate.accuracy.is_not(None))
            .order_by(SearchCandidate.accuracy.desc(), SearchCandidate.id)
            .limit(BEST_OF)).all()
        cand_rows = [candidate_row(_point(c), c.model_id, run.devices, run.budgets)
                     for c in top]
        n_epochs, n_candidates, n_verified = found[run.id]
        rows.append(SearchRow(
            id=run.id, name=run.name, space=run.space, devices=list(run.devices),
            state=run.state, created_by=run.created_by, created_at=run.created_at,
            updated_at=run.updated_at, epochs=n_epochs, candidates=n_candidates,
            verified=n_verified, best=best(run.result, cand_rows)))
    return SearchesPage(rows=rows, before=runs[-1].id if more else None,
                        first=before is None)


def run_view(session: Session, run: SearchRun, *, kernels: str = "dsp") -> RunView:
    """Everything the page of one run shows."""
    stored = epochs_of(session, run.id)
    epochs = [EpochPoint(step=i if len({e.round for e in stored}) > 1 else e.epoch,
                         round=e.round, epoch=e.epoch, accuracy=e.accuracy, costs=e.costs,
                         arch_id=(e.candidate or {}).get("arch_id"))
              for i, e in enumerate(stored)]
    candidates = candidates_of(session, run.id)
    points = [_point(c) for c in candidates]
    rows = [candidate_row(p, c.model_id, run.devices, run.budgets)
            for p, c in zip(points, candidates, strict=True)]
    notes = [DeviceNote(device=d, kind=device_kind(d),
                        twin=device_class_view(session, d, kernels)) for d in run.devices]
    return RunView(run=run, epochs=epochs, candidates=points, rows=rows, devices=notes,
                   best=best(run.result, rows))
