"""``/api/v1/searches``: DNAS search runs (``service.searches``). A user token creates a run,
appends its epochs and candidates while it runs, and records what measuring the candidates
said; any token reads them. Agent tokens may not write searches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response, status
from pydantic import Field

from bench_firmware.errors import McuprofError
from profiler_client.schemas import (
    MAX_ID,
    MAX_SEARCH_EPOCHS_PER_POST,
    SearchCandidateIn,
    SearchCandidateOut,
    SearchCandidatePatch,
    SearchEpochIn,
    SearchEpochOut,
    SearchRunIn,
    SearchRunOut,
    SearchRunPatch,
    SearchState,
)
from service import searches
from service.api.deps import Reader, SearchWriter, SessionDep
from service.api.errors import ErrorOut, error_responses, http_error
from service.api.json_body import JSONRoute

router = APIRouter(prefix="/searches", tags=["searches"],
                   responses=error_responses(404, 409), route_class=JSONRoute)

DEFAULT_LIMIT = 100  # runs per page
MAX_LIMIT = 1000  # runs per page at most

RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="search run id")]
CandidateId = Annotated[int, Path(ge=1, le=MAX_ID, description="candidate id")]
EpochList = Annotated[list[SearchEpochIn], Field(min_length=1,
                                                 max_length=MAX_SEARCH_EPOCHS_PER_POST)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_search(body: SearchRunIn, session: SessionDep, user: SearchWriter) -> SearchRunOut:
    """Start recording a search run (state ``running``), created by the calling token."""
    try:
        run = searches.create(session, body, created_by=user.name)
    except McuprofError as e:
        raise http_error(e) from e
    out = searches.run_out(run)
    session.commit()
    return out


@router.get("")
def list_searches(
    session: SessionDep, _reader: Reader,
    state: SearchState | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="runs per page")]
    = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="runs to skip")] = 0,
) -> list[SearchRunOut]:
    """Runs, newest first, with the counts of their epochs and candidates (not the records:
    GET /searches/{id} has them)."""
    return searches.run_outs(session, searches.listed(session, state=state, limit=limit,
                                                      offset=offset))


@router.get("/{run_id}")
def get_search(session: SessionDep, _reader: Reader, run_id: RunId) -> SearchRunOut:
    """A run with its epochs (by round and epoch) and candidates (in the order added)."""
    try:
        run = searches.get_run(session, run_id)
    except McuprofError as e:
        raise http_error(e) from e
    return searches.full_run_out(session, run)


@router.patch("/{run_id}")
def update_search(body: SearchRunPatch, session: SessionDep, _user: SearchWriter,
                  run_id: RunId) -> SearchRunOut:
    """Set a run's state (running → done or failed; a finished run keeps its state: 409),
    error, result or fit versions. Fields left out are unchanged."""
    try:
        run = searches.patch_run(session, searches.get_run(session, run_id, lock=True), body)
        out = searches.run_outs(session, [run])[0]
    except McuprofError as e:
        raise http_error(e) from e
    session.commit()
    return out


@router.post("/{run_id}/epochs", status_code=status.HTTP_201_CREATED)
def add_epochs(body: Annotated[SearchEpochIn | EpochList, Body()], session: SessionDep,
               _user: SearchWriter, run_id: RunId) -> list[SearchEpochOut]:
    """Append one epoch record or a list of them to a running run (409 once it is finished).
    A (round, epoch) the run has already is replaced, so a retried request stores nothing
    twice."""
    epochs = body if isinstance(body, list) else [body]
    try:
        run = searches.get_run(session, run_id, lock=True)
        out = [searches.epoch_out(e) for e in searches.add_epochs(session, run, epochs)]
    except McuprofError as e:
        raise http_error(e) from e
    session.commit()
    return out


@router.post("/{run_id}/candidates", status_code=status.HTTP_201_CREATED, responses={
    200: {"model": SearchCandidateOut,
          "description": "the run had this (round, arch_id) already; it was updated"},
    409: {"model": ErrorOut, "description": "the run is finished"},
})
def add_candidate(body: SearchCandidateIn, session: SessionDep, _user: SearchWriter,
                  response: Response, run_id: RunId) -> SearchCandidateOut:
    """Add a candidate to a running run: 201 when new, 200 when the run has its (round,
    arch_id) already (its architecture, accuracy and predictions are replaced)."""
    try:
        run = searches.get_run(session, run_id, lock=True)
        row, created = searches.add_candidate(session, run, body)
        out = searches.candidate_out(row)
    except McuprofError as e:
        raise http_error(e) from e
    session.commit()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return out


@router.patch("/{run_id}/candidates/{candidate_id}")
def update_candidate(body: SearchCandidatePatch, session: SessionDep, _user: SearchWriter,
                     run_id: RunId, candidate_id: CandidateId) -> SearchCandidateOut:
    """Record what measuring a candidate said (``measured``, merged by device class), that it
    is verified, its model, its accuracy; also once the run is finished. Fields left out are
    unchanged."""
    try:
        run = searches.get_run(session, run_id, lock=True)
        out = searches.candidate_out(searches.patch_candidate(session, run, candidate_id,
                                                              body))
    except McuprofError as e:
        raise http_error(e) from e
    session.commit()
    return out
