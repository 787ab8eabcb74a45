"""Client commands of the ``mcuprof`` CLI that talk to a server: submit, jobs, results.

A thin layer over :class:`profiler_client.client.Client`: parse options, call, print.
``--json`` prints JSON Lines (one object per line) on stdout; progress goes to stderr.
Declared in ``pyproject.toml`` (``mcuprof.commands``), where the CLI is assembled.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import click

from bench_firmware.errors import McuprofError
from profiler_client.client import (
    DEFAULT_POLL_S,
    TERMINAL_STATES,
    Client,
    measurements_to_csv,
)
from profiler_client.schemas import JobOut, MeasurementOut

F = TypeVar("F", bound=Callable[..., Any])

ERROR_WIDTH = 60  # characters of a job's error shown in a table row


def _server_options(func: F) -> F:
    """``--server`` and ``--token``; when not given, :class:`Client` takes them from the
    client settings (``profiler_client.settings``: MCUPROF_SERVER, MCUPROF_TOKEN or
    MCUPROF_TOKEN_FILE, else the per-user token file for a server on this machine), the one
    place those variables are read."""
    func = click.option("--token", default=None,
                        help="API token (a user token; see `mcuprof token create`).  [env var: "
                             "MCUPROF_TOKEN, or MCUPROF_TOKEN_FILE; default for a server on "
                             "this machine: ~/.config/mcuprof/token, which `mcuprof demo` "
                             "writes]")(func)
    return click.option("--server", default=None,
                        help="Server URL [default: http://127.0.0.1:8000].  [env var: "
                             "MCUPROF_SERVER]")(func)


def _tags(items: tuple[str, ...]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value (e.g. backbone=kws)",
                                     param_hint="--tag")
        tags[key] = value
    return tags


def measurement_fields(m: MeasurementOut) -> dict[str, Any]:
    """A measurement as the fields of ``mcuprof run --json`` (plus where it ran)."""
    return {
        "board": m.board,
        "measured_on": m.device,
        "measurement_id": m.id,
        "output": m.output,
        "cycles": m.cycles,
        "cycles_per_run": m.cycles_per_run,
        "cycles_min": min(m.cycles_per_run) if m.cycles_per_run else None,
        "cycles_max": max(m.cycles_per_run) if m.cycles_per_run else None,
        "cycle_source": m.cycle_source,
        "latency_ms": m.latency_ms,
        "mac_per_cycle": m.macs / m.cycles if m.cycles else None,
        "energy_mj": m.energy_mj,
        "energy_source": m.energy_source,
        "arena_bytes": m.arena_bytes,
        "plan_bytes": m.plan_bytes,
        "flash_bytes": m.flash_bytes,
        "ops": m.ops,
        "macs": m.macs,
        "layers": [layer.model_dump() for layer in m.layers],
        "kernels": m.kernels,
        "firmware_id": m.firmware_id,
        "plan_id": m.plan_id,
        "error_band_pct": m.error_band_pct,
        "error_band_basis": m.error_band_basis,
        "error_band_label": m.error_band_label,
        "calibrated_cycles": m.calibrated_cycles,
        "calibrated_latency_ms": m.calibrated_latency_ms,
        "calibrated_error_pct": m.calibrated_error_pct,
        "calibrated_label": m.calibrated_label,
        "calibration_id": m.calibration_id,
        "calibrated_at": m.calibrated_at.isoformat() if m.calibrated_at else None,
    }


def job_record(job: JobOut) -> dict[str, Any]:
    """One ``--json`` line for a job: job_id, state, device, and once done the measurement."""
    record: dict[str, Any] = {
        "job_id": job.id, "state": job.state, "device": job.device, "model_id": job.model_id,
        "runs": job.runs, "warmup": job.warmup, "attempts": job.attempts, "error": job.error,
    }
    if job.measurement is not None:
        record |= measurement_fields(job.measurement)
    return record


def _echo_json(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, default=str))


def _short(text: str | None, width: int = ERROR_WIDTH) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _age(when: datetime) -> str:
    now = datetime.now(timezone.utc)
    stamp = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    seconds = max(0, int((now - stamp).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _job_result(job: JobOut) -> str:
    m = job.measurement
    if m is not None:
        parts = [f"{m.latency_ms:.3f} ms" if m.latency_ms is not None else "outputs only"]
        if m.cycles is not None:
            parts.append(f"{m.cycles:,} cycles")
        if m.energy_mj is not None:
            parts.append(f"{m.energy_mj:.4f} mJ ({m.energy_source})")
        return ", ".join(parts) + f" on {m.device}"
    return _short(job.error)


def _print_jobs(jobs: list[JobOut]) -> None:
    width = max(len("device"), *(len(j.device) for j in jobs))
    click.echo(f"{'job':>6}  {'model':>5}  {'device':<{width}}  {'state':<9} {'tries':>5}  "
               f"{'updated':<9}  result")
    for job in jobs:
        tries = f"{job.attempts}/{job.max_attempts}"
        click.echo(f"{job.id:>6}  {job.model_id:>5}  {job.device:<{width}}  {job.state:<9} "
                   f"{tries:>5}  {_age(job.updated_at):<9}  {_job_result(job)}")


def _summary(jobs: list[JobOut]) -> str:
    counts = Counter("running" if j.state == "leased" else j.state for j in jobs)
    order = ("done", "running", "queued", "failed", "cancelled")
    return ", ".join(f"{counts[s]} {s}" for s in order if counts[s])


@contextmanager
def _progress(total: int) -> Iterator[Callable[[list[JobOut]], None]]:
    """A progress bar on stderr (only its label when stderr is not a terminal); yields the
    ``on_progress`` callback for :meth:`Client.wait`."""
    state = {"text": ""}

    def show(_: int | None) -> str:
        return state["text"]

    with click.progressbar(length=total, label="waiting for jobs", file=sys.stderr,
                           show_eta=False, show_percent=False, show_pos=True,
                           item_show_func=show) as bar:
        def update(jobs: list[JobOut]) -> None:
            done = sum(1 for j in jobs if j.state in TERMINAL_STATES)
            state["text"] = _summary(jobs)
            bar.update(done - bar.pos)

        yield update


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--device", "devices", multiple=True, required=True,
              help="Device class, e.g. virtual:nucleo-f446re. Repeatable: one job each.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Tag the model (e.g. backbone=kws). Repeatable.")
@click.option("--name", default=None, help="Model name [default: the file name].")
@click.option("--runs", default=5, show_default=True, help="Timed inferences.")
@click.option("--warmup", default=1, show_default=True, help="Untimed inferences first.")
@click.option("--kernels", type=click.Choice(["dsp", "ref"]), default="dsp", show_default=True,
              help="Kernel path on the board.")
@click.option("--priority", default=0, show_default=True, help="Higher runs first.")
@click.option("--wait", "wait_", is_flag=True,
              help="Wait for the jobs to finish (progress on stderr); exit status 1 if any "
                   "did not finish done.")
@click.option("--timeout", "timeout_s", type=float, default=None,
              help="With --wait: give up after this many seconds (the jobs keep running).")
@click.option("--poll", "poll_s", type=float, default=DEFAULT_POLL_S, show_default=True,
              help="With --wait: seconds between polls.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line per job (job_id, state, device, and when done "
                   "the fields of `mcuprof run --json`).")
@_server_options
def submit(model: Path, devices: tuple[str, ...], tags: tuple[str, ...], name: str | None,
           runs: int, warmup: int, kernels: str, priority: int, wait_: bool,
           timeout_s: float | None, poll_s: float, as_json: bool, server: str | None,
           token: str | None) -> None:
    """Upload MODEL and queue a profiling job on each --device."""
    with Client(server, token) as api:
        uploaded = api.upload_model(model, name=name, tags=_tags(tags))
        jobs = api.submit(uploaded.id, list(devices), runs=runs, warmup=warmup, kernels=kernels,
                          priority=priority)
        if not as_json:
            click.echo(f"model {uploaded.id} {uploaded.name} (sha256 {uploaded.sha256[:16]}, "
                       f"{uploaded.analysis.ops:,} ops)", err=wait_)
        if not wait_:
            for job in jobs:
                if as_json:
                    _echo_json(job_record(job))
                else:
                    click.echo(f"job {job.id}: {job.device} {job.state}"
                               + (f": {job.error}" if job.error else ""))
            return
        printed: set[int] = set()

        def stream(current: list[JobOut]) -> None:
            for job in current:
                if job.state in TERMINAL_STATES and job.id not in printed:
                    printed.add(job.id)
                    _echo_json(job_record(job))

        with _progress(len(jobs)) as progress:
            def on_progress(current: list[JobOut]) -> None:
                progress(current)
                if as_json:
                    stream(current)

            try:
                finished = api.wait(jobs, poll_s=poll_s, timeout_s=timeout_s,
                                    on_progress=on_progress)
            except KeyboardInterrupt:
                ids = " ".join(str(j.id) for j in jobs)
                click.echo(f"\nstopped waiting; the jobs keep running on the server (jobs "
                           f"{ids}): follow them with `mcuprof jobs`", err=True)
                sys.exit(130)
    if not as_json:
        _print_jobs(finished)
    if any(job.state != "done" for job in finished):
        sys.exit(1)


@click.command()
@click.option("--state", type=click.Choice(["queued", "leased", "done", "failed", "cancelled"]),
              default=None, help="Only jobs in this state.")
@click.option("--device", default=None, help="Only jobs for this device class.")
@click.option("--model", "model_id", type=int, default=None, help="Only jobs of this model id.")
@click.option("--limit", default=50, show_default=True, help="At most this many (newest first).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per job.")
@_server_options
def jobs(state: str | None, device: str | None, model_id: int | None, limit: int,
         as_json: bool, server: str | None, token: str | None) -> None:
    """List jobs on the server."""
    with Client(server, token) as api:
        found = api.jobs(state=state, device=device, model_id=model_id, limit=limit,
                         embed=True)
    if as_json:
        for job in found:
            _echo_json(job_record(job))
        return
    if not found:
        click.echo("no jobs" + (" match" if state or device or model_id else " yet"))
        return
    _print_jobs(found)


@click.command()
@click.argument("target", metavar="MODEL|JOB")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one row per measurement.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per measurement.")
@_server_options
def results(target: str, as_csv: bool, as_json: bool, server: str | None,
            token: str | None) -> None:
    """Measurements of a model or a job.

    MODEL|JOB is a .tflite path (found by its SHA-256), a model id (12 or model:12), a
    SHA-256 (8+ hex digits), or a job id as job:34."""
    if as_csv and as_json:
        raise McuprofError("give --csv or --json, not both")
    with Client(server, token) as api:
        found = api.results(target)
    if as_csv:
        click.echo(measurements_to_csv(found), nl=False)
        return
    if as_json:
        for m in found:
            _echo_json({"job_id": m.job_id, "model_id": m.model_id, "device": m.device_class}
                       | measurement_fields(m))
        return
    if not found:
        click.echo(f"no measurements of {target} yet")
        return
    width = max(len("measured on"), *(len(m.device) for m in found))
    click.echo(f"{'id':>6}  {'job':>6}  {'measured on':<{width}}  {'kernels':<7} "
               f"{'cycles':>12}  {'latency ms':>10}  {'vs silicon':>10}  {'energy mJ':>10}  "
               f"{'arena':>9}  {'plan':>9}")
    for m in found:
        energy = _fmt(m.energy_mj, ".4f") + ("*" if m.energy_source == "modeled" else "")
        click.echo(f"{m.id:>6}  {m.job_id:>6}  {m.device:<{width}}  {m.kernels:<7} "
                   f"{_fmt(m.cycles, ',d'):>12}  {_fmt(m.latency_ms, '.3f'):>10}  "
                   f"{_versus_silicon(m.cycle_source, m.error_band_pct):>10}  "
                   f"{energy:>10}  {m.arena_bytes:>9,}  {m.plan_bytes:>9,}")
    if any(m.energy_source == "modeled" for m in found):
        click.echo("* modeled energy: the board's active power x latency (no monitor attached)")
    _echo_bands((m.board, m.error_band_label, m.error_band_basis) for m in found)
    for m in found:
        if m.calibrated_latency_ms is not None and m.calibrated_at is not None:
            click.echo(f"measurement {m.id}: calibrated {m.calibrated_latency_ms:.3f} ms "
                       f"({m.calibrated_cycles:,} cycles; {m.calibrated_label}, calibration "
                       f"{m.calibration_id} of {m.calibrated_at:%Y-%m-%d})")


def _versus_silicon(cycle_source: str | None, band_pct: float | None) -> str:
    """The results column: a twin's error band, 'silicon' for DWT cycles, '-' otherwise."""
    if band_pct is not None:
        return f"±{band_pct:g} %"
    return "silicon" if cycle_source == "dwt-cyccnt" else "-"


def _echo_bands(bands: Iterable[tuple[str, str | None, str | None]]) -> None:
    """One footnote per board whose twin's error band the table shows, with its provenance."""
    seen: dict[str, tuple[str, str]] = {}
    for board, label, basis in bands:
        if label is not None and basis is not None:
            seen.setdefault(board, (label, basis))
    for board, (label, basis) in sorted(seen.items()):
        click.echo(f"{board}: {label} ({basis})")




# --------------------------------------------------------------------------------------------
# Latency models: mcuprof fits, mcuprof predict


def _fit_kind(kind: str) -> str:
    return "op-count line" if kind == "ops_line" else "per-layer model"


def _interval(value: float | None, lo: float | None, hi: float | None, spec: str) -> str:
    if value is None:
        return "-"
    return f"{value:{spec}} ({_fmt(lo, spec)}-{_fmt(hi, spec)})"


@click.command()
@click.option("--device", default=None, help="Only this device class, e.g. virtual:nucleo-f446re.")
@click.option("--backbone", default=None,
              help="Only this backbone's lines (and the per-layer models, which predict any).")
@click.option("--kernels", type=click.Choice(["dsp", "ref"]), default=None,
              help="Only this kernel path.")
@click.option("--kind", type=click.Choice(["ops_line", "per_layer"]), default=None,
              help="Only op-count lines or only per-layer models.")
@click.option("--history", is_flag=True, help="Every version, not only the current fits.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line per fit (coefficients, metrics, n, version).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the fits table as CSV to this file ('-': stdout).")
@click.option("--parquet", "parquet_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the fits table as Parquet to this file.")
@_server_options
def fits(device: str | None, backbone: str | None, kernels: str | None, kind: str | None,
         history: bool, as_json: bool, csv_path: Path | None, parquet_path: Path | None,
         server: str | None, token: str | None) -> None:
    """Latency models fitted from the measurements: latency = a·ops + b per device class and
    backbone, and the per-layer model per device class, with cross-validated r², MAPE and
    ±10 % accuracy, and the version to cite."""
    chosen = [name for name, on in (("--json", as_json), ("--csv", csv_path is not None),
                                    ("--parquet", parquet_path is not None)) if on]
    if len(chosen) > 1:
        raise click.UsageError(f"give one of {', '.join(chosen)}")
    with Client(server, token) as api:
        if csv_path is not None or parquet_path is not None:
            fmt = "csv" if csv_path is not None else "parquet"
            data = api.fits_export(fmt, device=device, backbone=backbone, kernels=kernels,
                                   history=history)
            target = csv_path if csv_path is not None else parquet_path
            assert target is not None
            if str(target) == "-":
                click.echo(data.decode(), nl=False)
            else:
                target.write_bytes(data)
                click.echo(f"wrote {target} ({len(data):,} bytes)", err=True)
            return
        found = api.fits(device=device, backbone=backbone, kernels=kernels, kind=kind,
                         history=history)
    if as_json:
        for fit in found:
            _echo_json(fit.model_dump(mode="json"))
        return
    if not found:
        click.echo("no latency models yet: a line needs at least 5 measured models of one "
                   "backbone on a device (mcuprof submit MODEL --device D --tag backbone=B)")
        return
    width = max(len("device"), *(len(f.device_class) for f in found))
    bwidth = max(len("backbone"), *(len(f.backbone or "any") for f in found))
    click.echo(f"{'device':<{width}}  {'kernels':<7} {'model':<15} {'backbone':<{bwidth}} "
               f"{'n':>5}  {'a ms/Mop':>9} {'b ms':>8}  {'r2':>6} {'CV MAPE':>8} "
               f"{'±10%':>5}  {'vs silicon':>10}  version" + ("  current" if history else ""))
    for f in found:
        a = _fmt(f.a_ms_per_op * 1e6 if f.a_ms_per_op is not None else None, ".4g")
        band = f"±{f.error_band_pct:g} %" if f.error_band_pct is not None else "-"
        click.echo(f"{f.device_class:<{width}}  {f.kernels:<7} {_fit_kind(f.kind):<15} "
                   f"{f.backbone or 'any':<{bwidth}} {f.n:>5}  {a:>9} {_fmt(f.b_ms, '.4g'):>8}"
                   f"  {f.r2:>6.3f} {f.metrics.mape:>8.1%} {f.metrics.acc10:>5.0%}  "
                   f"{band:>10}  "
                   f"{f.version}" + (f"  {'yes' if f.current else 'no'}" if history else ""))
    _echo_bands((f.device_class, f.error_band_label, f.error_band_basis) for f in found)
    _echo_bands((f.device_class, f.calibrated_label, f.calibrated_basis) for f in found)
    if any(f.error_band_pct is not None for f in found):
        click.echo("fits on a twin fit its cycle-model latency; mcuprof predict widens their "
                   "intervals by the twin's band to cover silicon")


@click.command()
@click.argument("model", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--ops", type=click.IntRange(min=0), default=None,
              help="Ops of the model (1 MAC = 2 ops), instead of MODEL.")
@click.option("--backbone", default=None,
              help="The model's backbone tag: picks the op-count line (needed with --ops).")
@click.option("--device", "devices", multiple=True,
              help="Device class, e.g. virtual:nucleo-f446re. Repeatable [default: every "
                   "class with a latency model].")
@click.option("--kernels", type=click.Choice(["dsp", "ref"]), default="dsp", show_default=True,
              help="Kernel path on the board.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line per device (latency, energy, intervals, which "
                   "model predicted them, every estimate).")
@_server_options
def predict(model: Path | None, ops: int | None, backbone: str | None,
            devices: tuple[str, ...], kernels: str, as_json: bool, server: str | None,
            token: str | None) -> None:
    """Predicted latency and energy of MODEL.tflite (op-count line and per-layer model), or
    of --ops N --backbone B (op-count line), on each --device.

    Exit status 1 when some device got no prediction (the reason is printed)."""
    if (model is None) == (ops is None):
        raise click.UsageError("give MODEL.tflite or --ops N (with --backbone B), not both")
    if ops is not None and not backbone:
        raise click.UsageError("--ops needs --backbone: the op-count line is per backbone")
    with Client(server, token) as api:
        out = api.predict(list(devices), ops=ops, backbone=backbone, model=model,
                          kernels=kernels)
    missing = [p for p in out.predictions if p.model is None]
    if as_json:
        for p in out.predictions:
            _echo_json({"name": out.name, "ops": out.ops, "backbone": out.backbone}
                       | p.model_dump(mode="json"))
    else:
        what = out.name or "model"
        ops_text = f"{out.ops:,} ops" if out.ops is not None else "ops unknown"
        click.echo(f"{what}: {ops_text}, backbone {out.backbone or '(none)'}, "
                   f"{kernels} kernels")
        width = max(len("device"), *(len(p.device) for p in out.predictions))
        click.echo(f"{'device':<{width}}  {'predicted by':<16} {'latency ms (interval)':<27} "
                   f"{'energy mJ (interval)':<27} fit")
        for p in out.predictions:
            if p.model is None:
                click.echo(f"{p.device:<{width}}  {'-':<16} {'-':<27} {'-':<27} -")
            else:
                latency = _interval(p.latency_ms, p.latency_lo_ms, p.latency_hi_ms, ".3f")
                energy = _interval(p.energy_mj, p.energy_lo_mj, p.energy_hi_mj, ".4f")
                click.echo(f"{p.device:<{width}}  {_fit_kind(p.model):<16} {latency:<27} "
                           f"{energy:<27} {p.fit_version}")
            for e in p.estimates:
                if e.model == p.model and e.fit_version == p.fit_version:
                    continue
                extra = ", extrapolated" if e.extrapolated else ""
                click.echo(f"{'':<{width}}    also {_fit_kind(e.model)}: "
                           f"{_interval(e.latency_ms, e.latency_lo_ms, e.latency_hi_ms, '.3f')}"
                           f" ms (CV MAPE {e.cv_mape:.1%}{extra}) {e.fit_version}")
            if p.model is not None and p.error_band_label is not None:
                click.echo(f"{'':<{width}}    interval includes the twin's error band: "
                           f"{p.error_band_label}")
            for problem in p.problems:
                click.echo(f"{'':<{width}}    {problem}")
    if missing:
        sys.exit(1)


