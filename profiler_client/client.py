"""The typed Python client of the mcuprof REST API
(``/api/v1``, see ``profiler_client/schemas.py``).

::

    from profiler_client.client import Client

    with Client() as api:                      # MCUPROF_SERVER, MCUPROF_TOKEN
        jobs = api.submit("kws.tflite", devices=["virtual:nucleo-f446re"], tags={"backbone": "kws"})
        for job in api.wait(jobs):
            print(job.state, job.measurement.latency_ms if job.measurement else job.error)

The transport is injectable (``http=`` an ``httpx.Client``, e.g. FastAPI's ``TestClient``; or
``transport=`` an ``httpx.BaseTransport`` such as ``httpx.MockTransport``), so the same client
runs against a real server, the app in-process, or a fake in unit tests.

Requests, retries and errors are ``profiler_client/transport.py``'s (its names are importable
from here too); the server and token not given come from ``profiler_client/settings.py``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from bench_firmware.errors import McuprofError
from profiler_client.errors import QueueError
from profiler_client.schemas import (
    MAX_ERROR_CHARS,
    MAX_HEALTH_DETAIL_CHARS,
    MAX_SEARCH_EPOCHS_PER_POST,
    AgentIn,
    AgentOut,
    BoardIn,
    CalibrationIn,
    CalibrationOut,
    DeviceOut,
    FailureIn,
    FinishedIn,
    FitOut,
    HealthIn,
    HeartbeatIn,
    HeartbeatOut,
    JobOut,
    JobsIn,
    LayerIn,
    LayerOut,
    LeaseIn,
    LeaseOut,
    MeasurementIn,
    MeasurementOut,
    ModelOut,
    PredictIn,
    PredictOut,
    SearchCandidateIn,
    SearchCandidateOut,
    SearchCandidatePatch,
    SearchEpochIn,
    SearchEpochOut,
    SearchRunIn,
    SearchRunOut,
    SearchRunPatch,
    WhoamiOut,
    clip,
    log_tail,
    measurement_row,
)
from profiler_client.settings import DEFAULT_SERVER, check_url, client_settings
from profiler_client.transport import (
    API_PREFIX,
    BACKOFF_BASE_S,
    BACKOFF_JITTER,
    BACKOFF_MAX_S,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    USER_AGENT,
    ApiError,
    AuthError,
    HttpClient,
    LeaseLostError,
    ModelRejectedError,
    NotFoundError,
    ServerUnavailableError,
    parse_body,
)

__all__ = [
    "API_PREFIX", "BACKOFF_BASE_S", "BACKOFF_JITTER", "BACKOFF_MAX_S", "DEFAULT_POLL_S",
    "DEFAULT_RETRIES", "DEFAULT_SERVER", "DEFAULT_TIMEOUT_S", "LIST_POLL_MIN", "PAGE_SIZE",
    "TERMINAL_STATES", "USER_AGENT", "ApiError", "AuthError", "Client", "LeaseLostError",
    "ModelRejectedError", "NotFoundError", "ServerUnavailableError", "WaitTimeoutError",
    "measurements_to_csv", "sha256_file",
]

DEFAULT_POLL_S = 1.0  # seconds between two polls of wait()
PAGE_SIZE = 500  # items per page when the client pages through a listing
LIST_POLL_MIN = 4  # jobs of one model still running above which wait() lists instead of gets

TERMINAL_STATES = frozenset({"done", "failed", "cancelled"})


class WaitTimeoutError(QueueError):
    """Jobs were still running when ``wait`` gave up."""

    def __init__(self, message: str, jobs: list[JobOut]) -> None:
        super().__init__(message)
        self.jobs = jobs


def sha256_file(data: bytes) -> str:
    """The hex SHA-256 the server identifies a model by."""
    return hashlib.sha256(data).hexdigest()


def _tag_list(tags: Mapping[str, str] | Iterable[str] | None) -> list[str]:
    """``{"backbone": "kws"}`` or ``["backbone=kws"]`` → ``["backbone=kws"]`` (checked)."""
    if tags is None:
        return []
    items = [f"{k}={v}" for k, v in tags.items()] if isinstance(tags, Mapping) else list(tags)
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise McuprofError(f"tag {item!r} is not key=value (e.g. backbone=kws)")
    return items


class Client(HttpClient):
    """A client for one mcuprof server.

    ``url`` defaults to ``$MCUPROF_SERVER`` (else :data:`DEFAULT_SERVER`), ``token`` to
    ``$MCUPROF_TOKEN`` (see :class:`~profiler_client.settings.ClientSettings`). ``http``: an
    ``httpx.Client`` to send requests with (it is not closed by :meth:`close`); ``transport``:
    a transport for the client made here. ``sleep`` is what waits between retries and polls
    (tests pass a fake clock).

    Thread-safe as ``httpx.Client`` is: an agent's board threads share one.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 http: httpx.Client | None = None, transport: httpx.BaseTransport | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                 backoff_s: float = BACKOFF_BASE_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if url is None and http is not None and str(http.base_url):
            url = str(http.base_url)
        try:
            url = check_url(url) if url is not None else None
        except ValueError as e:
            raise McuprofError(str(e)) from e
        if url is None or token is None:
            # Only what the caller did not give comes from the environment, read now (with
            # the URL given: the per-user token file is read only for a server on this host).
            env = client_settings(server=url)
            url = url or env.server or DEFAULT_SERVER
            token = token if token is not None else env.token
        try:
            url = check_url(url)
        except ValueError as e:
            raise McuprofError(str(e)) from e
        super().__init__(url, token or None, http=http, transport=transport,
                         timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, sleep=sleep)

    # -- models --------------------------------------------------------------------------

    def upload_model(self, model: str | os.PathLike[str] | bytes, name: str | None = None,
                     tags: Mapping[str, str] | Iterable[str] | None = None) -> ModelOut:
        """Uploads a ``.tflite`` (a path or its bytes); the server deduplicates by SHA-256,
        merges tags, and analyzes it. Refused models raise :class:`ModelRejectedError`."""
        data, default_name = _read_model(model)
        form: dict[str, Any] = {"name": name or default_name}
        tag_items = _tag_list(tags)
        if tag_items:
            form["tag"] = tag_items
        files = {"file": (f"{default_name}.tflite" if not default_name.endswith(".tflite")
                          else default_name, data, "application/octet-stream")}
        return self._one("POST", "/models", ModelOut, data=form, files=files)

    def models(self, *, tag: str | None = None, limit: int | None = None,
               offset: int | None = None) -> list[ModelOut]:
        """``GET /models``, optionally only those with tag ``k=v``."""
        return self._many("GET", "/models", _MODELS, params=self._params(
            tag=tag, limit=limit, offset=offset))

    def model(self, model_id: int) -> ModelOut:
        return self._one("GET", f"/models/{model_id}", ModelOut)

    def find_model(self, sha256: str) -> ModelOut | None:
        """The model with this SHA-256 (or unique prefix of at least 8 hex digits), if the
        server has it."""
        digest = sha256.lower()
        if len(digest) < 8:
            raise McuprofError(f"{sha256!r}: give at least 8 hex digits of the SHA-256")
        offset = 0
        while True:
            page: list[ModelOut] = self._many("GET", "/models", _MODELS, params={
                "sha256": digest, "limit": PAGE_SIZE, "offset": offset})
            hits = [m for m in page if m.sha256.startswith(digest)]
            if hits:
                if len({m.sha256 for m in hits}) > 1:
                    raise McuprofError(f"{sha256!r} matches {len(hits)} models; give more digits")
                return hits[0]
            if len(page) < PAGE_SIZE:
                return None
            offset += len(page)

    def model_file(self, model: int | str) -> bytes:
        """The ``.tflite`` bytes: by model id, or by the ``model_url`` a lease gave."""
        path = model if isinstance(model, str) else f"/models/{model}/file"
        return self.request("GET", path).content

    # -- jobs ----------------------------------------------------------------------------

    def submit(self, model: str | os.PathLike[str] | bytes | int, devices: Sequence[str], *,
               tags: Mapping[str, str] | Iterable[str] | None = None, runs: int = 5,
               warmup: int = 1, kernels: str = "dsp", priority: int = 0,
               name: str | None = None) -> list[JobOut]:
        """Uploads ``model`` (unless it is a model id) and queues one job per device class."""
        if not devices:
            raise McuprofError("give at least one device, e.g. --device virtual:nucleo-f446re")
        model_id = model if isinstance(model, int) else self.upload_model(model, name, tags).id
        try:
            body = JobsIn(model_id=model_id, devices=list(devices), runs=runs, warmup=warmup,
                          kernels=kernels, priority=priority)  # type: ignore[arg-type]
        except ValidationError as e:
            raise McuprofError("bad job request: " + "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
            ) from e
        return self._many("POST", "/jobs", _JOBS, idempotent=False,
                          json=body.model_dump(mode="json"))

    def jobs(self, *, state: str | None = None, device: str | None = None,
             model_id: int | None = None, limit: int | None = None,
             offset: int | None = None, embed: bool = False) -> list[JobOut]:
        """``GET /jobs`` with optional filters; a done job names its measurement
        (``measurement_id``), or carries it with ``embed``."""
        return self._many("GET", "/jobs", _JOBS, params=self._params(
            state=state, device=device, model_id=model_id, limit=limit, offset=offset,
            embed="true" if embed else None))

    def job(self, job_id: int) -> JobOut:
        return self._one("GET", f"/jobs/{job_id}", JobOut)

    def cancel(self, job_id: int) -> JobOut:
        return self._one("POST", f"/jobs/{job_id}/cancel", JobOut)

    def wait(self, jobs: Iterable[JobOut | int], *, poll_s: float = DEFAULT_POLL_S,
             timeout_s: float | None = None,
             on_progress: Callable[[list[JobOut]], None] | None = None) -> list[JobOut]:
        """Polls until every job is done, failed or cancelled; returns them in the order
        given. ``on_progress(jobs)`` is called with the current state of all of them after
        every poll that changed something (and once at the start). Raises
        :class:`WaitTimeoutError` after ``timeout_s`` seconds."""
        current: dict[int, JobOut | None] = {}
        for job in jobs:
            if isinstance(job, JobOut):
                current[job.id] = job
            else:
                current[int(job)] = None
        for job_id, known in current.items():
            if known is None:
                current[job_id] = self.job(job_id)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last: list[tuple[int, str, int]] | None = None
        while True:
            snapshot = [j for j in current.values() if j is not None]
            key: list[tuple[int, str, int]] = [(j.id, j.state, j.attempts) for j in snapshot]
            if on_progress is not None and key != last:
                on_progress(snapshot)
            last = key
            pending = [j.id for j in snapshot if j.state not in TERMINAL_STATES]
            if not pending:
                return snapshot
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"{len(pending)} of {len(snapshot)} jobs still running after {timeout_s:g} s "
                    f"(jobs {', '.join(map(str, pending[:20]))}); they keep running on the "
                    f"server: follow them with `mcuprof jobs` or `mcuprof results job:ID`",
                    snapshot)
            self._sleep(poll_s)
            current.update(self._poll({j.id: j.model_id for j in snapshot if j.id in pending}))

    def _poll(self, pending: dict[int, int]) -> dict[int, JobOut]:
        """The current state of the ``pending`` jobs (id → model id): one listing per model
        with many of them, one request per job otherwise."""
        found: dict[int, JobOut] = {}
        by_model: dict[int, set[int]] = {}
        for job_id, model_id in pending.items():
            by_model.setdefault(model_id, set()).add(job_id)
        for model_id, ids in by_model.items():
            if len(ids) < LIST_POLL_MIN:
                continue
            offset = 0
            while not ids <= found.keys():
                page = self.jobs(model_id=model_id, limit=PAGE_SIZE, offset=offset)
                found.update((j.id, j) for j in page if j.id in ids)
                if len(page) < PAGE_SIZE:
                    break
                offset += len(page)
        for job_id in pending.keys() - found.keys():
            found[job_id] = self.job(job_id)
        for job_id, job in found.items():
            if job.measurement is None and job.measurement_id is not None:
                found[job_id] = self.job(job_id)  # lists name a measurement; fetch it once
        return found

    # -- devices, measurements -------------------------------------------------------------

    def devices(self) -> list[DeviceOut]:
        return self._many("GET", "/devices", _DEVICES)

    def measurements(self, *, device: str | None = None, model_id: int | None = None,
                     tag: str | None = None, limit: int | None = None,
                     offset: int | None = None) -> list[MeasurementOut]:
        """``GET /measurements`` as JSON, with optional filters."""
        return self._many("GET", "/measurements", _MEASUREMENTS,
                          params=self._params(device=device, model_id=model_id, tag=tag,
                                              limit=limit, offset=offset, format="json"))

    def measurements_csv(self, *, device: str | None = None, model_id: int | None = None,
                         tag: str | None = None) -> str:
        """``GET /measurements?format=csv``: the server's CSV, as text."""
        return self.request("GET", "/measurements", params=self._params(
            device=device, model_id=model_id, tag=tag, format="csv")).text

    def model_measurements(self, model_id: int) -> list[MeasurementOut]:
        return self._many("GET", f"/models/{model_id}/measurements",
                          _MEASUREMENTS)

    def resolve_model(self, model: str | os.PathLike[str] | bytes | int) -> ModelOut:
        """A model by id, by the bytes or path of its ``.tflite`` (hashed here; nothing is
        uploaded), or by its SHA-256 (or 8+ hex digit prefix)."""
        if isinstance(model, int):
            return self.model(model)
        if isinstance(model, bytes) or Path(model).is_file():
            data, label = _read_model(model)
            digest = sha256_file(data)
        else:
            label = digest = str(model)
            if not all(c in "0123456789abcdefABCDEF" for c in digest):
                raise McuprofError(f"{label}: no such file, and not a model id (12 or model:12), "
                                   f"a job (job:34) or a SHA-256")
        found = self.find_model(digest)
        if found is None:
            raise NotFoundError(f"the server has no model with SHA-256 {digest[:16]}... "
                                f"({label}); upload it with `mcuprof submit {label} --device D`")
        return found

    def results(self, model_or_job: str | os.PathLike[str] | bytes | int | JobOut | ModelOut,
                ) -> list[MeasurementOut]:
        """Measurements of a model (a :class:`ModelOut`, a path, bytes, or ``"model:ID"``) or
        of one job (a :class:`JobOut` or ``"job:ID"``). A bare int is a model id."""
        target: Any = model_or_job
        if isinstance(target, JobOut):
            target = f"job:{target.id}"
        if isinstance(target, ModelOut):
            return self.model_measurements(target.id)
        if isinstance(target, str) and target.startswith("job:"):
            job = self.job(_int_id(target[4:], "job"))
            return [job.measurement] if job.measurement is not None else []
        if isinstance(target, str) and target.startswith("model:"):
            target = _int_id(target[6:], "model")
        if isinstance(target, str) and target.isdigit() and not Path(target).exists():
            target = int(target)
        return self.model_measurements(self.resolve_model(target).id)

    # -- agents --------------------------------------------------------------------------

    def whoami(self) -> WhoamiOut:
        """The token's name and role, and the agent an agent token is bound to."""
        return self._one("GET", "/whoami", WhoamiOut)

    def register_agent(self, name: str, boards: Sequence[str], version: str | None = None,
                       energy_monitors: Collection[str] = ()) -> AgentOut:
        """Registers (or re-registers, by name) an agent and its boards' full device names;
        ``energy_monitors``: the boards an energy monitor measures."""
        body = AgentIn(name=name, boards=[BoardIn(device=b, energy_monitor=b in energy_monitors)
                                          for b in boards], version=version)
        return self._one("POST", "/agents", AgentOut,
                         json=body.model_dump(mode="json"))

    def heartbeat(self, agent_id: int, leases: Iterable[int] = ()) -> HeartbeatOut:
        """Extends the leases still being worked on; the answer names those that are lost."""
        body = HeartbeatIn(leases=list(leases))
        return self._one("POST", f"/agents/{agent_id}/heartbeat",
                         HeartbeatOut, json=body.model_dump(mode="json"))

    def lease(self, device: str) -> LeaseOut | None:
        """A job for the idle board ``device`` (full name), or None when there is no work."""
        response = self.request("POST", "/leases", idempotent=False, expect=(204,),
                                json=LeaseIn(device=device).model_dump(mode="json"))
        if response.status_code == 204 or not response.content:
            return None
        return parse_body(response, LeaseOut.model_validate_json)

    def report_and_lease(self, lease_id: int, measurement: MeasurementIn,
                         device: str) -> LeaseOut | None:
        """Reports the measurement of ``lease_id`` and leases the next job for the same
        board in one request (None: stored, no more work). A refused report (the lease no
        longer holds its job) raises as :meth:`report_result` does, and nothing is leased."""
        body = LeaseIn(device=device, finished=FinishedIn(lease_id=lease_id,
                                                          result=measurement))
        response = self.request("POST", "/leases", idempotent=False, expect=(204,),
                                json=body.model_dump(mode="json"))
        if response.status_code == 204 or not response.content:
            return None
        return parse_body(response, LeaseOut.model_validate_json)

    def report_result(self, lease_id: int, measurement: MeasurementIn) -> JobOut:
        """Reports a measurement (idempotent on the server: a repeat changes nothing)."""
        return self._one("POST", f"/leases/{lease_id}/result",
                         JobOut, json=measurement.model_dump(mode="json"))

    def report_failure(self, lease_id: int, error: str, *, retryable: bool = True,
                       serial_log: Sequence[str] = ()) -> JobOut:
        """Reports that a leased job failed; ``retryable`` puts it back in the queue."""
        body = FailureIn(error=clip(error, MAX_ERROR_CHARS), retryable=retryable,
                         serial_log=log_tail(serial_log))
        return self._one("POST", f"/leases/{lease_id}/failure",
                         JobOut, json=body.model_dump(mode="json"))

    def report_health(self, device: str, ok: bool, detail: str | None = None) -> DeviceOut:
        """Reports a board's health check; a bad board gets no work until it reports ok."""
        return self._one("POST", f"/devices/{device}/health",
                         DeviceOut, json=HealthIn(
                             ok=ok, detail=clip(detail, MAX_HEALTH_DETAIL_CHARS)
                             if detail is not None else None).model_dump(mode="json"))


    # -- calibrations -----------------------------------------------------------------------

    def upload_calibration(self, calibration: CalibrationIn) -> CalibrationOut:
        """``POST /calibrations``: a twin against its real board (``mcuprof calibrate``)."""
        return self._one("POST", "/calibrations", CalibrationOut,
                         json=calibration.model_dump(mode="json"))

    def calibrations(self, *, board: str | None = None) -> list[CalibrationOut]:
        """``GET /calibrations``, newest first, optionally of one board."""
        return self._many("GET", "/calibrations", _CALIBRATIONS,
                          params=self._params(board=board))

    # -- search runs ------------------------------------------------------------------------
    # Creating a run is the one write that is not repeatable (a repeat would start a second
    # run), so it is retried only when the request never reached the server. The others are:
    # an epoch is named by its (round, epoch) and a candidate by its (round, arch_id), so a
    # repeat replaces what the first attempt stored; patches set values.

    def create_search(self, run: SearchRunIn) -> SearchRunOut:
        """``POST /searches``: start recording a search run (state ``running``)."""
        return self._one("POST", "/searches", SearchRunOut, idempotent=False,
                         json=run.model_dump(mode="json"))

    def searches(self, limit: int | None = None, *, state: str | None = None,
                 offset: int | None = None) -> list[SearchRunOut]:
        """``GET /searches``: runs, newest first, with the counts of their epochs and
        candidates (``epochs`` and ``candidates`` are None: :meth:`search` has them)."""
        return self._many("GET", "/searches", _SEARCHES, params=self._params(
            limit=limit, state=state, offset=offset))

    def search(self, run_id: int) -> SearchRunOut:
        """One run with its epochs (by round and epoch) and candidates."""
        return self._one("GET", f"/searches/{run_id}", SearchRunOut)

    def add_search_epochs(self, run_id: int,
                          epochs: Sequence[SearchEpochIn]) -> list[SearchEpochOut]:
        """``POST /searches/{id}/epochs``: append epoch records, at most
        ``MAX_SEARCH_EPOCHS_PER_POST`` a request (more are sent in several); a (round,
        epoch) the run has already is replaced. A finished run refuses them (ApiError, 409)."""
        out: list[SearchEpochOut] = []
        batch = [e.model_dump(mode="json") for e in epochs]
        for start in range(0, len(batch), MAX_SEARCH_EPOCHS_PER_POST):
            stored: list[SearchEpochOut] = self._many(
                "POST", f"/searches/{run_id}/epochs", _SEARCH_EPOCHS,
                json=batch[start:start + MAX_SEARCH_EPOCHS_PER_POST])
            out.extend(stored)
        return out

    def add_search_candidate(self, run_id: int, cand: SearchCandidateIn) -> SearchCandidateOut:
        """``POST /searches/{id}/candidates``: add a candidate, or update the one with its
        (round, arch_id)."""
        return self._one("POST", f"/searches/{run_id}/candidates", SearchCandidateOut,
                         json=cand.model_dump(mode="json"))

    def update_search_candidate(self, run_id: int, cid: int,
                                patch: SearchCandidatePatch) -> SearchCandidateOut:
        """``PATCH /searches/{id}/candidates/{cid}``: the fields ``patch`` was given
        (``measured`` is merged by device class)."""
        return self._one("PATCH", f"/searches/{run_id}/candidates/{cid}", SearchCandidateOut,
                         json=patch.model_dump(mode="json", exclude_unset=True))

    def update_search(self, run_id: int, patch: SearchRunPatch) -> SearchRunOut:
        """``PATCH /searches/{id}``: state (running → done or failed), error, result, fit
        versions; the fields ``patch`` was given."""
        return self._one("PATCH", f"/searches/{run_id}", SearchRunOut,
                         json=patch.model_dump(mode="json", exclude_unset=True))

    # -- fits and predictions ------------------------------------------------------------

    def fits(self, *, device: str | None = None, backbone: str | None = None,
             kernels: str | None = None, kind: str | None = None,
             history: bool = False) -> list[FitOut]:
        """``GET /fits``: the current latency models (every version with ``history``), by
        device class, backbone (its lines and the per-layer models), kernels and kind."""
        return self._many("GET", "/fits", _FITS, params=self._params(
            device=device, backbone=backbone, kernels=kernels, kind=kind,
            history="true" if history else None))

    def fit(self, version: str) -> FitOut:
        """One fit by version, with the ids of the measurements it came from."""
        return self._one("GET", f"/fits/{version}", FitOut)

    def fits_export(self, format: str = "csv", *, device: str | None = None,
                    backbone: str | None = None, kernels: str | None = None,
                    history: bool = False) -> bytes:
        """The fits table (``service.fitting.frames.fits_frame``) as CSV or Parquet bytes."""
        return self.request("GET", "/fits", params=self._params(
            device=device, backbone=backbone, kernels=kernels, format=format,
            history="true" if history else None)).content

    def measurements_parquet(self, *, device: str | None = None, model_id: int | None = None,
                             tag: str | None = None, limit: int | None = None) -> bytes:
        """``GET /measurements?format=parquet``: the measurements frame as Parquet bytes
        (``pandas.read_parquet(io.BytesIO(data))``)."""
        return self.request("GET", "/measurements", params=self._params(
            device=device, model_id=model_id, tag=tag, limit=limit, format="parquet")).content

    def predict(self, devices: Sequence[str] = (), *, ops: int | None = None,
                backbone: str | None = None,
                model: str | os.PathLike[str] | bytes | None = None,
                model_id: int | None = None, layers: Sequence[LayerOut] | None = None,
                kernels: str = "dsp") -> PredictOut:
        """Predicted latency and energy on ``devices`` (device classes; none: every class
        with a fit) from ``ops`` + ``backbone`` (the op-count line), a ``.tflite``
        (``model``: a path or bytes, analyzed by the server and not stored: both models), a
        stored ``model_id``, or a layer list. A prediction has no side effects, so it is
        retried like a read."""
        if model is not None:
            data, name = _read_model(model)
            form: dict[str, Any] = {"kernels": kernels}
            if devices:
                form["device"] = list(devices)
            if backbone:
                form["backbone"] = backbone
            filename = name if name.endswith(".tflite") else f"{name}.tflite"
            return self._one("POST", "/predict", PredictOut, data=form,
                             files={"file": (filename, data, "application/octet-stream")})
        try:
            body = PredictIn(devices=list(devices), ops=ops, backbone=backbone,
                             model_id=model_id,
                             layers=[LayerIn.model_validate(layer.model_dump())
                                     for layer in layers] if layers else None,
                             kernels=kernels)  # type: ignore[arg-type]
        except ValidationError as e:
            raise McuprofError("bad prediction request: " + "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
            ) from e
        return self._one("POST", "/predict", PredictOut,
                         json=body.model_dump(mode="json", exclude_none=True))


_MODELS: TypeAdapter[list[ModelOut]] = TypeAdapter(list[ModelOut])
_JOBS: TypeAdapter[list[JobOut]] = TypeAdapter(list[JobOut])
_DEVICES: TypeAdapter[list[DeviceOut]] = TypeAdapter(list[DeviceOut])
_MEASUREMENTS: TypeAdapter[list[MeasurementOut]] = TypeAdapter(list[MeasurementOut])
_FITS: TypeAdapter[list[FitOut]] = TypeAdapter(list[FitOut])
_CALIBRATIONS: TypeAdapter[list[CalibrationOut]] = TypeAdapter(list[CalibrationOut])
_SEARCHES: TypeAdapter[list[SearchRunOut]] = TypeAdapter(list[SearchRunOut])
_SEARCH_EPOCHS: TypeAdapter[list[SearchEpochOut]] = TypeAdapter(list[SearchEpochOut])


def _int_id(text: str, what: str) -> int:
    if not text.isdigit():
        raise McuprofError(f"{what} id {text!r} is not a number (e.g. {what}:12)")
    return int(text)


def _read_model(model: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
    """The model's bytes and a name for it (the file name, or its hash prefix)."""
    if isinstance(model, bytes):
        return model, f"model-{sha256_file(model)[:12]}"
    path = Path(model)
    try:
        return path.read_bytes(), path.name
    except OSError as e:
        raise McuprofError(f"cannot read model {path}: {e.strerror or e}") from e


def measurements_to_csv(measurements: Iterable[MeasurementOut]) -> str:
    """Measurements as CSV text, one row each (``profiler_client.schemas.measurement_row``)."""
    rows = [measurement_row(m) for m in measurements]
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()
