"""End-to-end campaign throughput with 4 virtual boards: profiled models per minute.

    .venv/bin/python benchmarks/campaign_throughput.py [--n 24] [--max-width 16]
        [--mode agents|local] [--workers 2] [--runs 1] [--warmup 0] [--timeout 540]

``--mode agents`` (default): ``mcuprof serve`` in a subprocess on a throwaway SQLite
database and four ``mcuprof agent`` processes, each owning one virtual board of another
class (F446RE, F746ZG, F767ZI, L4R5ZI), the multi-host deployment on one machine. The
agents are started and pass their health checks first; the clock then runs from
``run_campaign`` (sampling, conversion in ``--workers`` processes, upload, submission) to
the last measurement and the fits. ``--mode local``: ``run_campaign(local=True)`` as
``mcuprof campaign --local`` runs it (the server in this process, one agent process per
board), start-up and health checks included.

Prints: models, time to the last conversion, wall time, models profiled on all four boards
per minute, measurements per minute, and each board's fit (r², ±10 % accuracy). Bounded by
``--timeout``. Prints figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_server import MCUPROF, database, server

from profiler_client.client import Client
from search.campaign import CampaignEvent, CampaignResult, run_campaign

DEVICES = ["virtual:nucleo-f446re", "virtual:nucleo-f746zg", "virtual:nucleo-f767zi",
           "virtual:nucleo-l4r5zi"]
HEALTHY_TIMEOUT_S = 120.0  # seconds the agents get to register and pass their health checks


def start_agents(url: str, cache: Path) -> list[subprocess.Popen[bytes]]:
    """One ``mcuprof agent`` process per device class; returns once every board is healthy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCUPROF_")}
    env["MCUPROF_CACHE_DIR"] = str(cache)
    procs = [subprocess.Popen([*MCUPROF, "agent", "--server", url, "--board", device,
                               "--name", f"bench-{device.split('-')[-1]}", "--poll", "0.5"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for device in DEVICES]
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    with Client(url, token="") as client:
        while True:
            healthy = {d.device_class for d in client.devices() if d.health == "ok"}
            if healthy >= set(DEVICES):
                return procs
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                stop(procs)
                raise SystemExit(f"the agents did not all become healthy in "
                                 f"{HEALTHY_TIMEOUT_S:.0f} s (healthy: {sorted(healthy)})")
            time.sleep(0.5)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def report(result: CampaignResult, converted_at: float, wall: float, mode: str) -> None:
    n = len(result.models)
    done = sum(r.done for r in result.device_results.values())
    profiled = sum(all(m.jobs.get(d) is not None and m.jobs[d].state == "done"
                       for d in DEVICES) for m in result.models)
    mops = [m.ops / 1e6 for m in result.models if m.ops]
    print(f"campaign on {len(DEVICES)} virtual boards ({mode}), {os.cpu_count()} CPUs: "
          f"{n} models of {min(mops):.2f}-{max(mops):.2f} Mops")
    print(f"  conversions done after   {converted_at:7.1f} s")
    print(f"  last measurement + fits  {wall:7.1f} s")
    print(f"  models profiled on every board: {profiled}  -> {profiled / wall * 60:.1f} "
          f"models/min end to end")
    print(f"  measurements: {done}  -> {done / wall * 60:.1f} per minute")
    for device, r in result.device_results.items():
        fit = r.fit
        if fit is not None:
            print(f"  {device:<24} r2 {fit.r2:.4f}  +-10% {fit.metrics.acc10:6.1%}  "
                  f"MAPE {fit.metrics.mape:6.2%}  n {fit.n}")
        else:
            print(f"  {device:<24} no fit ({r.note})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="models in the campaign")
    parser.add_argument("--max-width", type=int, default=16,
                        help="width cap of the sampled sub-space (0: the full space)")
    parser.add_argument("--mode", choices=["agents", "local"], default="agents")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="conversion worker processes")
    parser.add_argument("--runs", type=int, default=1, help="timed inferences per job")
    parser.add_argument("--warmup", type=int, default=0, help="untimed inferences per job")
    parser.add_argument("--boards", type=int, default=4, choices=[1, 2, 3, 4],
                        help="virtual boards (one per class, in the order F446RE, F746ZG, "
                             "F767ZI, L4R5ZI)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=540.0, help="seconds, at most")
    args = parser.parse_args()
    del DEVICES[args.boards:]
    started = time.monotonic()
    converted_at = float("nan")
    left = args.n

    def on_event(event: CampaignEvent) -> None:
        nonlocal converted_at, left
        if event.kind in ("converted", "conversion_failed"):
            left -= 1
            if left == 0:
                converted_at = time.monotonic() - started
        if event.kind == "finished" and event.job is not None and event.job.state != "done":
            print(f"  job {event.job.id} {event.job.state}: {event.job.error}", file=sys.stderr)

    options = dict(seed=args.seed, jobs=args.workers, runs=args.runs, warmup=args.warmup,
                   max_width=args.max_width or None, poll_s=0.5, timeout_s=args.timeout,
                   on_event=on_event)
    with tempfile.TemporaryDirectory(prefix="mcuprof-campaign-bench-") as tmp:
        out = Path(tmp) / "campaign"
        if args.mode == "local":
            started = time.monotonic()
            result = run_campaign("kws", args.n, DEVICES, out=out, local=True,
                                  **options)  # type: ignore[arg-type]
        else:
            with database("sqlite") as url_db, server(url_db) as url:
                procs = start_agents(url, Path(tmp) / "cache")
                try:
                    with Client(url, token="") as client:
                        started = time.monotonic()
                        result = run_campaign("kws", args.n, DEVICES, client=client, out=out,
                                              **options)  # type: ignore[arg-type]
                finally:
                    stop(procs)
        wall = time.monotonic() - started
    report(result, converted_at, wall, args.mode)


if __name__ == "__main__":
    main()
