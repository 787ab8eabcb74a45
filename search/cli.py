"""``mcuprof sample``: sampled or preset architectures as int8 ``.tflite`` files + sidecars.

::

    mcuprof sample --space kws --n 50 --seed 0 --out DIR [--jobs N]
    mcuprof sample --preset micronet-kws-s --out DIR

A thin layer: choose the networks (pure Python), convert them in spawned worker processes
(TensorFlow is imported in the workers only, so this module and ``mcuprof --help`` stay
fast), show progress on stderr, print a summary table on stdout. Models already in ``DIR``
with a matching sidecar are reused, so an interrupted run picks up where it stopped.
Declared in ``pyproject.toml`` (``mcuprof.commands``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import click

from bench_firmware.errors import McuprofError

#: Short board names for the summary table's "fits" columns.
_BOARD_COLUMNS = {"nucleo-f446re": "F446RE", "nucleo-f746zg": "F746ZG",
                  "nucleo-f767zi": "F767ZI", "nucleo-l4r5zi": "L4R5ZI"}


def plan_jobs(*, space: str | None, presets: tuple[str, ...], n: int, seed: int,
              out: Path, input_size: int | None, representative: Path | None,
              weight_seed: int, force: bool, weight_bits: int = 8) -> list[Any]:
    """The :class:`search.convert.Job` list for a ``sample`` invocation (pure: no TF)."""
    from search.convert import Job
    from search.presets import PRESETS, get_preset
    from search.sampler import sample
    from search.spaces import get_space

    def job(name: str, network: dict[str, Any], arch: dict[str, Any] | None,
            preset: str | None, backbone: str, source: str) -> Job:
        return Job(name=name, out_dir=str(out), network=network, arch=arch, preset=preset,
                   backbone=backbone, source=source, weight_seed=weight_seed, force=force,
                   representative=str(representative) if representative else None,
                   weight_bits=weight_bits)

    if space is not None:
        sp = get_space(space)
        shape = None
        if input_size is not None:
            shape = (input_size, input_size, sp.input_shape[2])
        return [job(a.name, a.network().to_dict(), a.to_dict(), None, a.space,
                    f"sampled from {sp.name!r} with seed {seed}, index {i}")
                for i, a in enumerate(sample(sp, n, seed, input_shape=shape))]
    names = list(PRESETS) if "all" in presets else list(dict.fromkeys(presets))
    jobs: list[Job] = []
    for name in names:
        p = get_preset(name)
        point = p.architecture()
        jobs.append(job(p.name, p.network().to_dict(), point.to_dict() if point else None,
                        p.name, p.backbone, p.source))
    return jobs


def _check_representative(path: Path, jobs: list[Any]) -> None:
    """Refuse calibration data whose sample shape is not every job's input shape, before
    any worker starts."""
    import numpy as np

    try:
        shape = tuple(np.load(path, mmap_mode="r").shape)
    except (OSError, ValueError) as e:
        raise click.BadParameter(f"cannot read {path} as .npy: {e}",
                                 param_hint="--representative") from e
    for job in jobs:
        want = tuple(job.network["input_shape"])
        if shape[1:] != want:
            raise click.BadParameter(
                f"{path} holds samples of shape {list(shape[1:])}; {job.name} takes "
                f"{list(want)} (give an array of shape [N, {', '.join(map(str, want))}])",
                param_hint="--representative")


def _fmt_bytes(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def run_jobs(jobs: list[Any], workers: int, *, progress: bool = True) -> tuple[
        list[dict[str, Any]], list[tuple[str, str]]]:
    """Convert ``jobs`` in ``workers`` spawned processes; returns (sidecars in job order,
    failures as (name, message))."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from search.convert import existing_result, run_job, worker_init

    results: dict[str, dict[str, Any]] = {}
    failures: list[tuple[str, str]] = []
    for job in jobs:  # reuse complete earlier results without starting TensorFlow
        earlier = existing_result(job)
        if earlier is not None:
            results[job.name] = earlier
    todo = [j for j in jobs if j.name not in results]
    if not todo:
        return [results[j.name] for j in jobs], failures
    workers = min(workers, len(todo))
    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                   disable=not progress, transient=False)
    ctx = multiprocessing.get_context("spawn")
    with bar, ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                  initializer=worker_init) as pool:
        task = bar.add_task("converting", total=len(todo))
        futures: dict[Future[dict[str, Any]], str] = {pool.submit(run_job, j): j.name
                                                      for j in todo}
        try:
            for fut in as_completed(futures):
                name = futures[fut]
                try:
                    results[name] = fut.result()
                except McuprofError as e:
                    failures.append((name, str(e)))
                except Exception as e:  # a crashed worker: BrokenProcessPool, MemoryError
                    failures.append((name, f"{type(e).__name__}: {e}"))
                bar.update(task, advance=1, description=f"converting ({name})")
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results[j.name] for j in jobs if j.name in results], failures


def print_summary(sidecars: list[dict[str, Any]]) -> None:
    """The summary table: name, MACs, params, arena, plan and whether each board fits it."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col, justify in (("name", "left"), ("MACs", "right"), ("params", "right"),
                         ("arena", "right"), ("plan", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for short in _BOARD_COLUMNS.values():
        table.add_column(short, justify="center")
    for meta in sidecars:
        fits = [("yes" if meta["boards"][board]["fits"] else "no")
                for board in _BOARD_COLUMNS]
        name = meta["name"] + (" (reused)" if meta.get("reused") else "")
        table.add_row(name, f"{meta['macs']:,}", _fmt_bytes(meta["param_bytes"]),
                      _fmt_bytes(meta["arena_bytes"]), _fmt_bytes(meta["plan_bytes"]), *fits)
    Console(width=max(120, len(max((m["name"] for m in sidecars), key=len, default="")) + 90),
            soft_wrap=True).print(table)


@click.command("sample")
@click.option("--space", help="Search space to sample: kws, vww or ad.")
@click.option("--preset", "presets", multiple=True,
              help="Named network (repeatable; 'all' for every preset), e.g. micronet-kws-s.")
@click.option("--n", "n", type=int, default=10, show_default=True,
              help="How many architectures to sample (with --space).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Sampling seed: the same seed gives the same architectures.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for the .tflite files and their .json sidecars.")
@click.option("--jobs", type=int, default=None,
              help="Worker processes converting in parallel [default: CPU count].")
@click.option("--input-size", type=int, default=None,
              help="vww only: side of the square grayscale input [default: 50].")
@click.option("--representative", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Calibration inputs as .npy, shape [N, *input_shape] "
                   "[default: seeded random inputs].")
@click.option("--weight-seed", type=int, default=0, show_default=True,
              help="Seed of the random weights.")
@click.option("--weight-bits", type=click.Choice(["8", "4"]), default="8", show_default=True,
              help="4: make the conv and fully connected weights 4-bit (TFLite INT4, packed two "
                   "per byte; a post-training re-quantization, search/int4.py); depthwise "
                   "weights stay 8-bit.")
@click.option("--force", is_flag=True, help="Rebuild models that already exist in --out.")
@click.option("--json", "as_json", is_flag=True,
              help="Print each model's sidecar as one JSON line instead of the table.")
def sample_cmd(space: str | None, presets: tuple[str, ...], n: int, seed: int, out: Path,
               jobs: int | None, input_size: int | None, representative: Path | None,
               weight_seed: int, weight_bits: str, force: bool, as_json: bool) -> None:
    """Write int8 .tflite models sampled from a search space, or named presets.

    Each model NAME.tflite comes with NAME.json: its space, architecture and id, the server
    tags (backbone=SPACE, arch=ID), the layer list that rebuilds it, ops, MACs, parameter,
    arena and plan bytes, and whether it fits each board.
    """
    if (space is None) == (not presets):
        raise click.UsageError("give either --space SPACE (with --n) or --preset NAME")
    if n < 1:
        raise click.BadParameter(f"{n}; sample at least 1 architecture", param_hint="--n")
    if jobs is not None and jobs < 1:
        raise click.BadParameter(f"{jobs}; use at least 1 worker", param_hint="--jobs")
    if input_size is not None and space != "vww":
        raise click.BadParameter("only the vww space takes a chosen input size; kws and ad "
                                 "inputs are fixed (49x10x1, 32x32x1)",
                                 param_hint="--input-size")
    todo = plan_jobs(space=space, presets=presets, n=n, seed=seed, out=out,
                     input_size=input_size, representative=representative,
                     weight_seed=weight_seed, force=force, weight_bits=int(weight_bits))
    if representative is not None:
        _check_representative(representative, todo)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise McuprofError(f"cannot create output directory {out}: {e.strerror}") from e
    workers = min(jobs or os.cpu_count() or 1, len(todo))
    click.echo(f"{len(todo)} model(s) -> {out} with {workers} worker(s)", err=True)
    start = time.monotonic()
    sidecars, failures = run_jobs(todo, workers, progress=sys.stderr.isatty())
    elapsed = time.monotonic() - start
    if as_json:
        for meta in sidecars:
            click.echo(json.dumps(meta))
    elif sidecars:
        print_summary(sidecars)
    made = sum(1 for m in sidecars if not m.get("reused"))
    rate = f", {made / elapsed * 60:.1f} models/min" if made and elapsed > 0 else ""
    click.echo(f"{len(sidecars)} model(s) in {out} ({made} converted, "
               f"{len(sidecars) - made} reused) in {elapsed:.1f} s{rate}", err=True)
    for name, message in failures:
        click.echo(f"failed: {name}: {message}", err=True)
    if failures:
        raise McuprofError(f"{len(failures)} of {len(todo)} model(s) failed to convert "
                           "(listed above); the others are written")

