"""One run of a campaign: convert in worker processes, upload, submit (reusing what the
journal and the server already have), wait, and collect the result."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_firmware.errors import McuprofError
from profiler_client.client import TERMINAL_STATES, ApiError, Client, ModelRejectedError
from profiler_client.fitting.errors import FitError
from profiler_client.fitting.linear import LineFit, fit_ops_line
from profiler_client.schemas import JobOut, MeasurementOut
from search.campaign.errors import CampaignError, CampaignTimeoutError
from search.campaign.journal import CampaignState, JobRecord, ModelRecord
from search.campaign.plan import plan_models
from search.campaign.progress import CampaignEvent, Observer
from search.campaign.result import CampaignResult, DeviceResult, ModelResult
from search.campaign.server import (
    CAMPAIGN_TAG,
    campaign_measurements,
    campaign_models,
    finished_jobs,
    model_jobs,
    stored_fit,
    stub_job,
)
from search.network import Shape
from search.spaces import SearchSpace

if TYPE_CHECKING:
    from search.convert import Job

logger = logging.getLogger("mcuprof.campaign")

MODELS_DIR = "models"  # the .tflite files and sidecars, under the campaign's directory
# The order in which an existing job of the same model and device is preferred for reuse.
REUSE_ORDER = {"done": 0, "leased": 1, "queued": 2, "failed": 3}


class CampaignRun:
    """One run of a campaign (see :func:`~search.campaign.run.run_campaign`): :meth:`run`
    once."""

    def __init__(self, *, space: SearchSpace, n: int, devices: list[str], client: Client,
                 seed: int, out: Path, name: str, workers: int, runs: int, warmup: int,
                 kernels: str, max_width: int | None, input_shape: Shape | None,
                 weight_seed: int, retry_failed: bool, server_key: str, poll_s: float,
                 timeout_s: float | None, observer: Observer, check_boards: bool,
                 dashboard: str, server_label: str,
                 check_local: Callable[[], None] | None = None) -> None:
        self.space, self.n, self.devices, self.client = space, n, devices, client
        self.seed, self.out, self.name, self.workers = seed, out, name, workers
        self.runs, self.warmup, self.kernels = runs, warmup, kernels
        self.max_width, self.input_shape, self.weight_seed = max_width, input_shape, weight_seed
        self.retry_failed, self.server, self.poll_s = retry_failed, server_key, poll_s
        self.timeout_s, self.emit, self.check_boards = timeout_s, observer, check_boards
        self.dashboard, self.server_label = dashboard.rstrip("/"), server_label
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
        known = campaign_models(self.client, self.name)
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
                                            job=stub_job(record.job_id, device, record),
                                            detail="earlier"))
            else:
                missing.append(device)
        if not missing:
            return
        existing = model_jobs(self.client, model_id)
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
        try:
            jobs = self.client.submit(model_id, new, runs=self.runs, warmup=self.warmup,
                                      kernels=self.kernels)
        except ApiError as e:
            raise CampaignError(f"the server refused the jobs of {name} (model {model_id}) "
                                f"for {', '.join(new)}: {e}") from e
        for created in jobs:
            self.submitted += 1
            self._record_job(name, created.device, created, reused=False)

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
            for jid, job in finished_jobs(self.client, pending).items():
                name, device = pending.pop(jid)
                self._finished(name, device, job)
            if first:  # after one look, so jobs that finished meanwhile are not counted
                self.emit(CampaignEvent("waiting", total=len(pending)))
                first = False
            if not pending:
                break
            self.check_local()
            if deadline is not None and time.monotonic() >= deadline:
                raise CampaignTimeoutError(
                    f"{len(pending)} jobs still running after {self.timeout_s:g} s; they keep "
                    f"running on the server: rerun the same command to collect them")
            time.sleep(self.poll_s)

    def _refresh_without_waiting(self) -> None:
        """``wait=False``: record what has finished so far, wait for nothing."""
        pending = self._pending()
        for jid, job in finished_jobs(self.client, pending).items():
            name, device = pending[jid]
            self._finished(name, device, job)

    # -- results -------------------------------------------------------------------------

    def _measurements(self) -> dict[int, MeasurementOut]:
        """job id -> measurement of this campaign's done jobs."""
        assert self.state is not None
        done = {jid for jid, (name, dev) in self._our_jobs().items()
                if self.state.models[name].jobs[(self.server, dev)].state == "done"}
        return campaign_measurements(self.client, self.name, self.devices, done)

    def _result(self, elapsed: float) -> CampaignResult:
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
            fit, has_api = stored_fit(self.client, device, self.space.name, self.kernels)
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
                measured=len(per_device[device]),
                url=f"{self.dashboard}/device/{device}", note=note)
        return CampaignResult(
            name=self.name, space=self.space.name, seed=self.seed, max_width=self.max_width,
            devices=list(self.devices), out=self.out, server=self.server_label,
            kernels=self.kernels, models=models, device_results=results,
            converted=self.converted, reused_conversions=self.reused_conversions,
            submitted=self.submitted, reused_jobs=self.reused_jobs, elapsed_s=elapsed,
            fits_api=fits_api)

