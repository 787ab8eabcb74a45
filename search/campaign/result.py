"""What a campaign returns: per model, per device (the stored fit) and the whole, with its
report text and its JSON summary ``<out>/result.json``."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from profiler_client.fitting.linear import LineFit
from profiler_client.schemas import FitOut, MeasurementOut
from search.campaign.journal import JobRecord
from search.campaign.progress import duration
from search.errors import SearchError

if TYPE_CHECKING:
    import pandas as pd

RESULT_FILE = "result.json"  # the last run's result (CampaignResult.to_dict)


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

    ``fit`` is the server's current op-count line for (device, backbone, kernels), from
    ``GET /api/v1/fits``: it covers every measurement of that backbone on the server, this
    campaign's and any other. ``line`` is fitted here on this campaign's measurements only
    (``measured`` of them). ``url`` is the dashboard page with the latency-vs-ops plot."""

    device: str
    jobs: int
    done: int
    failed: int
    pending: int
    fit: FitOut | None
    line: LineFit | None
    measured: int
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
                                   "fit": fit(r), "campaign_line": line(r),
                                   "measured": r.measured}
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
            f"{duration(self.elapsed_s)}",
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
