"""Job leases per second with 8 concurrent agents on PostgreSQL, over loopback HTTP.

    .venv/bin/python benchmarks/lease_throughput.py [--agents 8] [--jobs 800] [--seconds 60]
        [--database postgresql|sqlite]

A throwaway PostgreSQL database and a real ``mcuprof serve`` subprocess; ``--jobs`` jobs
queued for one device class; ``--agents`` agent processes, each registered with one board of
that class, loop lease → report a (made-up) measurement with the agent's own client until the
queue is empty or ``--seconds`` pass. No board runs: this measures the queue (``FOR UPDATE
SKIP LOCKED``, the lease/report transactions, HTTP), which bounds how many boards one server
can keep busy. Prints figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections import Counter

from bench_server import SAMPLE, database, fake_measurement, percentile, server

from profiler_client.client import Client

DEVICE_CLASS = "virtual:nucleo-f746zg"


def agent_loop(url: str, index: int, seconds: float, start_at: float,
               out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One agent: register, then lease and report until no work or time is up."""
    name = f"bench-{index}"
    device = f"{DEVICE_CLASS}:{name}-0"
    lease_ms: list[float] = []
    report_ms: list[float] = []
    with Client(url, token="", retries=2) as client:
        client.register_agent(name, [device])
        measurement = fake_measurement(device)
        time.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            lease = client.lease(device)
            t1 = time.perf_counter()
            if lease is None:
                break
            lease_ms.append((t1 - t0) * 1e3)
            client.report_result(lease.lease_id, measurement)
            report_ms.append((time.perf_counter() - t1) * 1e3)
    out.put((index, lease_ms, report_ms, time.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=800)
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound of the run")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()

    with database(args.database) as db_url, server(db_url) as url, \
            Client(url, token="") as client:
        model = client.upload_model(SAMPLE)
        t0 = time.perf_counter()
        for _ in range(args.jobs):
            client.submit(model.id, [DEVICE_CLASS], runs=5, warmup=1)
        submit_s = time.perf_counter() - t0

        ctx = multiprocessing.get_context("spawn")
        results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        start_at = time.time() + 3.0  # every agent registered and waiting by then
        procs = [ctx.Process(target=agent_loop,
                             args=(url, i, args.seconds, start_at, results))
                 for i in range(args.agents)]
        for p in procs:
            p.start()
        gathered = [results.get(timeout=args.seconds + 60) for _ in procs]
        for p in procs:
            p.join()
        wall = max(end for *_, end in gathered) - start_at

        leases = [ms for _, lease_ms, _, _ in gathered for ms in lease_ms]
        reports = [ms for _, _, report_ms, _ in gathered for ms in report_ms]
        per_agent = Counter({i: len(lease_ms) for i, lease_ms, _, _ in gathered})
        done = 0
        while page := client.jobs(state="done", limit=1000, offset=done):
            done += len(page)

    print(f"database {args.database}, {args.agents} agent processes, server: one "
          f"`mcuprof serve` process, {os.cpu_count()} CPUs on this host")
    print(f"queued {args.jobs} jobs in {submit_s:.1f} s ({args.jobs / submit_s:.0f} submits/s, "
          f"one request each)")
    print(f"lease throughput: {len(leases) / wall:.1f} leases/s "
          f"({len(leases)} lease+report cycles in {wall:.2f} s; {done} jobs done)")
    print(f"lease request:  p50 {percentile(leases, 50):.1f} ms  "
          f"p99 {percentile(leases, 99):.1f} ms")
    print(f"report request: p50 {percentile(reports, 50):.1f} ms  "
          f"p99 {percentile(reports, 99):.1f} ms")
    print(f"leases per agent: min {min(per_agent.values())}, max {max(per_agent.values())}")


if __name__ == "__main__":
    main()
