"""Sampling + int8 conversion throughput: models per minute with N worker processes.

    .venv/bin/python benchmarks/sampling_throughput.py [--space kws] [--n 24]
        [--workers 1,2] [--max-width 16] [--seed 0]

For each worker count, samples ``--n`` architectures (a new seed per run, so nothing is
reused from disk), converts them with ``search.convert.run_job`` in spawned worker processes
exactly as ``mcuprof sample`` and ``mcuprof campaign`` do, and prints: the sampling time (pure
Python), the time to the first model (worker start-up: importing TensorFlow), the total
time, models per minute overall and in the steady state (after the first model), and the
mean ops per model. ``--max-width`` samples the restricted sub-space campaigns use for small
models (``search.campaign.restrict_widths``); 0 samples the full space. Prints figures, not
pass/fail.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from search.campaign import plan_models
from search.convert import run_job, worker_init


def run(space: str, n: int, seed: int, workers: int, max_width: int | None,
        out: Path) -> dict[str, float]:
    """Sample and convert ``n`` models with ``workers`` processes; returns the timings."""
    t0 = time.perf_counter()
    jobs = plan_models(space, n, seed, out, max_width=max_width)
    t_sampled = time.perf_counter()
    first: float | None = None
    ops = 0
    failed = 0
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                             initializer=worker_init) as pool:
        for fut in as_completed([pool.submit(run_job, j) for j in jobs]):
            try:
                ops += fut.result()["ops"]
            except Exception:
                failed += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None
    done = n - failed
    steady = (done - 1) / (end - first) * 60 if done > 1 and end > first else float("nan")
    return {"sample_s": t_sampled - t0, "first_s": first - t0, "total_s": end - t0,
            "per_min": done / (end - t0) * 60, "steady_per_min": steady,
            "mean_mops": ops / max(done, 1) / 1e6, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="kws", choices=["kws", "vww", "ad"])
    parser.add_argument("--n", type=int, default=24, help="models per run")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--max-width", type=int, default=16,
                        help="width cap of the sampled sub-space (0: the full space)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first run")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    max_width = args.max_width or None
    space = f"{args.space} (widths <= {max_width})" if max_width else args.space
    print(f"sampling + int8 conversion: {args.n} models of {space} per run, "
          f"{os.cpu_count()} CPUs")
    print(f"{'workers':>7} {'sample':>9} {'1st model':>10} {'total':>8} {'models/min':>11} "
          f"{'steady':>8} {'Mops/model':>11}")
    for i, workers in enumerate(counts):
        with tempfile.TemporaryDirectory(prefix="mcuprof-sampling-") as tmp:
            r = run(args.space, args.n, args.seed + i, workers, max_width, Path(tmp))
        print(f"{workers:>7} {r['sample_s'] * 1e3:>7.1f}ms {r['first_s']:>9.1f}s "
              f"{r['total_s']:>7.1f}s {r['per_min']:>11.1f} {r['steady_per_min']:>8.1f} "
              f"{r['mean_mops']:>11.2f}"
              + (f"   ({r['failed']:.0f} failed)" if r["failed"] else ""))


if __name__ == "__main__":
    main()
