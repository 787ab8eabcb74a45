"""Search runs (DNAS, ``search/``): stored when they start, appended to as they train (epochs,
candidates), their candidates verified by measurement afterwards, and read back for the API
and the dashboard.

A run is ``running`` until its search says ``done`` or ``failed``; a finished run keeps its
state and takes no more epochs or candidates, but its candidates may still be verified (the
measurements of the architecture it found arrive after the search ends). Every write is safe to
repeat: an epoch is named by its run's (round, epoch) and a candidate by (round, arch_id), so a
retried request replaces what the first one stored instead of adding a second copy.

Everything keyed by a device class (budgets, fit versions, costs, predictions, measurements)
must use one of the run's device classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from profiler_client.schemas import (
    MAX_SEARCH_CANDIDATES,
    MAX_SEARCH_EPOCHS,
    SearchArchOut,
    SearchBudget,
    SearchCandidateIn,
    SearchCandidateOut,
    SearchCandidatePatch,
    SearchCost,
    SearchEpochIn,
    SearchEpochOut,
    SearchMeasured,
    SearchPrediction,
    SearchRunIn,
    SearchRunOut,
    SearchRunPatch,
)
from service.db.models import (
    Job,
    Measurement,
    Model,
    SearchCandidate,
    SearchEpoch,
    SearchRun,
    utcnow,
)
from service.queue import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    parse_device_class,
)

RUNNING = "running"


# --------------------------------------------------------------------------------------------
# Looking up


def get_run(session: Session, run_id: int, *, lock: bool = False) -> SearchRun:
    """The run ``run_id`` (row-locked on PostgreSQL with ``lock``, so appends and state changes
    of one run take turns); :class:`NotFoundError` when there is none."""
    run = session.get(SearchRun, run_id, with_for_update=lock or None)
    if run is None:
        raise NotFoundError(f"there is no search run {run_id}; list them with "
                            f"GET /api/v1/searches")
    return run


def get_candidate(session: Session, run: SearchRun, candidate_id: int) -> SearchCandidate:
    row = session.get(SearchCandidate, candidate_id)
    if row is None or row.run_id != run.id:
        raise NotFoundError(f"search run {run.id} has no candidate {candidate_id}; GET "
                            f"/api/v1/searches/{run.id} lists its candidates")
    return row


def listed(session: Session, *, state: str | None = None, limit: int = 100,
           offset: int = 0) -> list[SearchRun]:
    """Runs, newest first."""
    query = select(SearchRun).order_by(SearchRun.id.desc())
    if state is not None:
        query = query.where(SearchRun.state == state)
    return list(session.scalars(query.limit(limit).offset(offset)))


def epochs_of(session: Session, run_id: int) -> list[SearchEpoch]:
    return list(session.scalars(select(SearchEpoch).where(SearchEpoch.run_id == run_id)
                                .order_by(SearchEpoch.round, SearchEpoch.epoch)))


def candidates_of(session: Session, run_id: int) -> list[SearchCandidate]:
    return list(session.scalars(select(SearchCandidate)
                                .where(SearchCandidate.run_id == run_id)
                                .order_by(SearchCandidate.id)))


def counts(session: Session, run_ids: Sequence[int]) -> dict[int, tuple[int, int, int]]:
    """(epochs, candidates, verified candidates) of each run, two grouped queries in all."""
    if not run_ids:
        return {}
    epochs = dict(session.execute(
        select(SearchEpoch.run_id, func.count()).where(SearchEpoch.run_id.in_(run_ids))
        .group_by(SearchEpoch.run_id)).tuples().all())
    candidates = {run_id: (int(n), int(v or 0)) for run_id, n, v in session.execute(
        select(SearchCandidate.run_id, func.count(),
               func.sum(case((SearchCandidate.verified.is_(True), 1), else_=0)))
        .where(SearchCandidate.run_id.in_(run_ids)).group_by(SearchCandidate.run_id))}
    return {i: (int(epochs.get(i, 0)), *candidates.get(i, (0, 0))) for i in run_ids}


# --------------------------------------------------------------------------------------------
# The API's view


def epoch_out(row: SearchEpoch) -> SearchEpochOut:
    return SearchEpochOut(
        id=row.id, run_id=row.run_id, round=row.round, epoch=row.epoch,
        temperature=row.temperature, loss=row.loss, accuracy=row.accuracy,
        costs={d: SearchCost.model_validate(c) for d, c in row.costs.items()},
        candidate=SearchArchOut.model_validate(row.candidate) if row.candidate else None,
        created_at=row.created_at)


def candidate_out(row: SearchCandidate) -> SearchCandidateOut:
    return SearchCandidateOut(
        id=row.id, run_id=row.run_id, round=row.round, arch_id=row.arch_id,
        architecture=row.architecture, accuracy=row.accuracy,
        predicted={d: SearchPrediction.model_validate(p) for d, p in row.predicted.items()},
        measured=({d: SearchMeasured.model_validate(m) for d, m in row.measured.items()}
                  if row.measured is not None else None),
        model_id=row.model_id, verified=row.verified, created_at=row.created_at,
        updated_at=row.updated_at)


def run_out(run: SearchRun, count: tuple[int, int, int] = (0, 0, 0), *,
            epochs: Iterable[SearchEpoch] | None = None,
            candidates: Iterable[SearchCandidate] | None = None) -> SearchRunOut:
    """A run as the API shows it; with its epochs and candidates when given."""
    return SearchRunOut(
        id=run.id, name=run.name, space=run.space, devices=list(run.devices),
        config=run.config,
        budgets={d: SearchBudget.model_validate(b) for d, b in run.budgets.items()},
        fit_versions={str(d): str(v) for d, v in run.fit_versions.items()},
        state=run.state, error=run.error,  # type: ignore[arg-type]
        created_by=run.created_by, created_at=run.created_at, updated_at=run.updated_at,
        result=run.result, n_epochs=count[0], n_candidates=count[1], n_verified=count[2],
        epochs=[epoch_out(e) for e in epochs] if epochs is not None else None,
        candidates=[candidate_out(c) for c in candidates] if candidates is not None else None)


def full_run_out(session: Session, run: SearchRun) -> SearchRunOut:
    """A run with its epochs and candidates."""
    epochs, candidates = epochs_of(session, run.id), candidates_of(session, run.id)
    count = (len(epochs), len(candidates), sum(1 for c in candidates if c.verified))
    return run_out(run, count, epochs=epochs, candidates=candidates)


def run_outs(session: Session, runs: Sequence[SearchRun]) -> list[SearchRunOut]:
    """Runs without their epochs and candidates, with the counts of them."""
    found = counts(session, [r.id for r in runs])
    return [run_out(r, found[r.id]) for r in runs]


# --------------------------------------------------------------------------------------------
# Writing


def _check_devices(run: SearchRun, what: str, keys: Iterable[str]) -> None:
    stray = sorted(set(keys) - set(run.devices))
    if stray:
        raise InvalidRequestError(
            f"{what} names {', '.join(map(repr, stray))}, not a device class of search run "
            f"{run.id} ({', '.join(run.devices)}); key it by one of those")


def _check_running(run: SearchRun, action: str) -> None:
    if run.state != RUNNING:
        raise ConflictError(f"search run {run.id} is {run.state}: cannot {action} a finished "
                            f"run; start a new one with POST /api/v1/searches")


def _check_model(session: Session, model_id: int, where: str) -> None:
    if session.get(Model, model_id) is None:
        raise InvalidRequestError(f"{where}: there is no model {model_id}; upload it first "
                                  f"(POST /api/v1/models, or mcuprof submit)")


def _touch(run: SearchRun, *rows: SearchCandidate) -> None:
    now = utcnow()
    run.updated_at = now
    for row in rows:
        row.updated_at = now


def create(session: Session, body: SearchRunIn, *, created_by: str) -> SearchRun:
    """Store a new run; :class:`InvalidRequestError` for a device class that cannot exist."""
    for device in body.devices:
        try:
            parse_device_class(device)
        except InvalidRequestError as e:
            raise InvalidRequestError(f"devices: {e}") from e
    run = SearchRun(
        name=body.name, space=body.space, devices=list(body.devices), config=body.config,
        budgets={d: b.model_dump(exclude_none=True) for d, b in body.budgets.items()},
        fit_versions=dict(body.fit_versions), state=RUNNING, created_by=created_by)
    session.add(run)
    session.flush()
    return run


def add_epochs(session: Session, run: SearchRun,
               epochs: Sequence[SearchEpochIn]) -> list[SearchEpoch]:
    """Store epoch records of a running run; a (round, epoch) it has already is replaced (the
    last of a request wins). Returns the records sent, by (round, epoch)."""
    _check_running(run, "append epochs to")
    latest: dict[tuple[int, int], SearchEpochIn] = {}
    for epoch in epochs:
        _check_devices(run, f"costs of round {epoch.round} epoch {epoch.epoch}", epoch.costs)
        latest[(epoch.round, epoch.epoch)] = epoch
    rounds = {k[0] for k in latest}
    existing = {(row.round, row.epoch): row for row in session.scalars(
        select(SearchEpoch).where(SearchEpoch.run_id == run.id,
                                  SearchEpoch.round.in_(rounds),
                                  SearchEpoch.epoch.in_({k[1] for k in latest})))}
    new = len(latest.keys() - existing.keys())
    if new:
        stored = int(session.scalar(select(func.count()).select_from(SearchEpoch)
                                    .where(SearchEpoch.run_id == run.id)) or 0)
        if stored + new > MAX_SEARCH_EPOCHS:
            raise ConflictError(f"search run {run.id} has {stored} epoch records; a run keeps "
                                f"at most {MAX_SEARCH_EPOCHS}: start a new run")
    rows = []
    for key, epoch in sorted(latest.items()):
        row = existing.get(key)
        if row is None:
            row = SearchEpoch(run_id=run.id, round=epoch.round, epoch=epoch.epoch)
            session.add(row)
        row.temperature, row.loss, row.accuracy = epoch.temperature, epoch.loss, epoch.accuracy
        row.costs = {d: c.model_dump(exclude_none=True) for d, c in epoch.costs.items()}
        row.candidate = epoch.candidate.model_dump() if epoch.candidate else None
        rows.append(row)
    _touch(run)
    session.flush()
    return rows


def add_candidate(session: Session, run: SearchRun,
                  body: SearchCandidateIn) -> tuple[SearchCandidate, bool]:
    """Store a candidate of a running run, or update the one with its (round, arch_id);
    returns it and whether it is new."""
    _check_running(run, "add candidates to")
    _check_devices(run, "predicted", body.predicted)
    if body.model_id is not None:
        _check_model(session, body.model_id, "model_id")
    row = session.scalars(select(SearchCandidate).where(
        SearchCandidate.run_id == run.id, SearchCandidate.round == body.round,
        SearchCandidate.arch_id == body.arch_id)).first()
    created = row is None
    if row is None:
        stored = int(session.scalar(select(func.count()).select_from(SearchCandidate)
                                    .where(SearchCandidate.run_id == run.id)) or 0)
        if stored >= MAX_SEARCH_CANDIDATES:
            raise ConflictError(f"search run {run.id} has {stored} candidates; a run keeps at "
                                f"most {MAX_SEARCH_CANDIDATES}: start a new run")
        row = SearchCandidate(run_id=run.id, round=body.round, arch_id=body.arch_id,
                              measured=None, verified=False, created_at=utcnow())
        session.add(row)
    row.architecture = body.architecture
    row.accuracy = body.accuracy
    row.predicted = {d: p.model_dump(exclude_none=True) for d, p in body.predicted.items()}
    if body.model_id is not None:
        row.model_id = body.model_id
    _touch(run, row)
    session.flush()
    return row, created


def _measured(session: Session, run: SearchRun,
              measured: Mapping[str, SearchMeasured]) -> dict[str, dict[str, Any]]:
    """The measured figures to store: their job and measurement checked (they exist, on that
    device class), the cycle source taken from the measurement, not the client."""
    _check_devices(run, "measured", measured)
    out = {}
    for device, figures in measured.items():
        where = f"measured[{device!r}]"
        values = figures.model_dump(exclude_none=True)
        if figures.job_id is not None and session.get(Job, figures.job_id) is None:
            raise InvalidRequestError(f"{where}.job_id: there is no job {figures.job_id}; "
                                      f"give the job the candidate was measured by")
        if figures.measurement_id is not None:
            m = session.get(Measurement, figures.measurement_id)
            if m is None:
                raise InvalidRequestError(f"{where}.measurement_id: there is no measurement "
                                          f"{figures.measurement_id}")
            if m.device_class != device:
                raise InvalidRequestError(f"{where}: measurement {m.id} was made on "
                                          f"{m.device_class}, not {device}; key it by its "
                                          f"device class")
            if figures.job_id is not None and m.job_id != figures.job_id:
                raise InvalidRequestError(f"{where}: measurement {m.id} belongs to job "
                                          f"{m.job_id}, not {figures.job_id}")
            values.pop("cycle_source", None)
            if m.cycle_source is not None:
                values["cycle_source"] = m.cycle_source
        out[device] = values
    return out


def patch_candidate(session: Session, run: SearchRun, candidate_id: int,
                    patch: SearchCandidatePatch) -> SearchCandidate:
    """Change a candidate (of a running or a finished run): the fields the patch sets."""
    row = get_candidate(session, run, candidate_id)
    fields = patch.model_fields_set
    if "measured" in fields:
        if patch.measured is None:
            row.measured = None
        else:
            row.measured = (row.measured or {}) | _measured(session, run, patch.measured)
    if "model_id" in fields:
        if patch.model_id is not None:
            _check_model(session, patch.model_id, "model_id")
        row.model_id = patch.model_id
    if "accuracy" in fields:
        row.accuracy = patch.accuracy
    if patch.verified is not None:
        row.verified = patch.verified
    if row.verified and not row.measured:
        raise InvalidRequestError(f"candidate {row.id} cannot be verified without measured "
                                  f"figures: send measured (per device class: latency_ms, "
                                  f"sram_bytes, flash_bytes, job_id, measurement_id) with it")
    _touch(run, row)
    session.flush()
    return row


def patch_run(session: Session, run: SearchRun, patch: SearchRunPatch) -> SearchRun:
    """Change a run: its state (running → done or failed, once), error, result, fit versions."""
    fields = patch.model_fields_set
    if patch.state is not None and patch.state != run.state:
        if run.state != RUNNING:
            raise ConflictError(f"search run {run.id} is {run.state} already and a finished "
                                f"run keeps its state; start a new one with POST "
                                f"/api/v1/searches")
        run.state = patch.state
    if "error" in fields:
        run.error = patch.error
    if "result" in fields:
        run.result = patch.result
    if patch.fit_versions is not None:
        _check_devices(run, "fit_versions", patch.fit_versions)
        run.fit_versions = dict(patch.fit_versions)
    _touch(run)
    session.flush()
    return run
