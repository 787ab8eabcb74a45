"""What a campaign asks its server, all through :class:`profiler_client.client.Client`:
is it there, which models and jobs it already has, which jobs have finished, their
measurements, and the stored fits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from profiler_client.client import (
    PAGE_SIZE,
    TERMINAL_STATES,
    Client,
    NotFoundError,
    ServerUnavailableError,
)
from profiler_client.schemas import FitOut, JobOut, MeasurementOut
from search.campaign.errors import ServerNotFoundError
from search.campaign.journal import JobRecord

CAMPAIGN_TAG = "campaign"  # the tag naming a model's campaign on the server
GET_EACH_MAX = 20  # pending jobs up to which a poll gets each one instead of listing
JOBS_PAGE = 1000  # rows per page of GET /jobs (the server's maximum)
MEASUREMENTS_PAGE = 5000  # rows per page of GET /measurements


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
                f"and virtual boards of its own") from e
        raise ServerNotFoundError(f"{e}") from e


def campaign_models(client: Client, name: str) -> set[tuple[int, str]]:
    """(model id, SHA-256) of every model the server has tagged ``campaign=<name>``."""
    known: set[tuple[int, str]] = set()
    offset = 0
    while True:
        page = client.models(tag=f"{CAMPAIGN_TAG}={name}", limit=PAGE_SIZE, offset=offset)
        known.update((m.id, m.sha256) for m in page)
        if len(page) < PAGE_SIZE:
            return known
        offset += len(page)


def model_jobs(client: Client, model_id: int) -> list[JobOut]:
    """Every job of one model, in any state."""
    out: list[JobOut] = []
    offset = 0
    while True:
        page = client.jobs(model_id=model_id, limit=JOBS_PAGE, offset=offset)
        out.extend(page)
        if len(page) < JOBS_PAGE:
            return out
        offset += len(page)


def finished_jobs(client: Client, pending: Mapping[int, tuple[str, str]]) -> dict[int, JobOut]:
    """The jobs of ``pending`` (job id -> (model, device)) that have finished, with their
    current state; one the server no longer has counts as failed."""
    if len(pending) > GET_EACH_MAX:
        # The jobs still queued or running, by listing; only the others are fetched.
        active: set[int] = set()
        for device in sorted({d for _, d in pending.values()}):
            for state in ("queued", "leased"):
                offset = 0
                while True:
                    page = client.jobs(state=state, device=device, limit=JOBS_PAGE,
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
            job = client.job(jid)
        except NotFoundError:
            job = stub_job(jid, pending[jid][1], JobRecord(
                jid, "failed", f"the server has no job {jid} any more"))
        if job.state in TERMINAL_STATES:
            done[jid] = job
    return done


def campaign_measurements(client: Client, name: str, devices: Iterable[str],
                          done: set[int]) -> dict[int, MeasurementOut]:
    """job id -> measurement of the ``done`` jobs (one listing per device of the
    measurements tagged ``campaign=<name>``, then each job not found there)."""
    out: dict[int, MeasurementOut] = {}
    if not done:
        return out
    for device in devices:
        offset = 0
        while True:
            page = client.measurements(tag=f"{CAMPAIGN_TAG}={name}", device=device,
                                       limit=MEASUREMENTS_PAGE, offset=offset)
            out.update((m.job_id, m) for m in page if m.job_id in done)
            if len(page) < MEASUREMENTS_PAGE:
                break
            offset += len(page)
    for jid in done - out.keys():  # e.g. a reused job of a model tagged by another run
        job = client.job(jid)
        if job.measurement is not None:
            out[jid] = job.measurement
    return out


def stored_fit(client: Client, device: str, backbone: str,
               kernels: str) -> tuple[FitOut | None, bool]:
    """The server's current op-count line for (device, backbone, kernels), and whether
    the server has the fits API at all."""
    try:
        fits = client.fits(device=device, backbone=backbone, kernels=kernels, kind="ops_line")
    except NotFoundError:
        return None, False
    return (fits[0] if fits else None), True


def stub_job(job_id: int, device: str, record: JobRecord) -> JobOut:
    """A JobOut standing for a job known only from the journal (for events)."""
    now = datetime.now(timezone.utc)
    return JobOut(id=job_id, model_id=0, device=device, state=record.state  # type: ignore[arg-type]
                  if record.state in TERMINAL_STATES else "queued", runs=0, warmup=0,
                  kernels="dsp", attempts=0, max_attempts=0, error=record.error,
                  created_at=now, updated_at=now)
