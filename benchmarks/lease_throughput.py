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
from service.config import Settings

DEVICE_CLASS = "virtual:nucleo-f746zg"


def agent_loop(url: str, index: int, seconds: float, start_at: float, separate: bool,
               out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One agent: register, then lease and report until no work or time is up (a lease
    request, then a report request per job with ``separate``; else one request per job, the
    report of the last job riding with the next lease request)."""
    name = f"bench-{index}"
    device = f"{DEVICE_CLASS}:{name}-0"
    lease_ms: list[float] = []
    report_ms: list[float] = []
    with Client(url, token="", retries=2) as client:
        client.register_agent(name, [device])
        measurement = fake_measurement(device)
        time.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + seconds
        if separate:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                lease = client.lease(device)
                t1 = time.perf_counter()
                if lease is None:
                    break
                lease_ms.append((t1 - t0) * 1e3)
                client.report_result(lease.lease_id, measurement)
                report_ms.append((time.perf_counter() - t1) * 1e3)
        else:  # as `mcuprof agent` does: each result goes with the next lease request
            t0 = time.perf_counter()
            lease = client.lease(device)
            while lease is not None and time.monotonic() < deadline:
                lease_ms.append((time.perf_counter() - t0) * 1e3)
                t0 = time.perf_counter()
                lease = client.report_and_lease(lease.lease_id, measurement, device)
            if lease is not None:  # time is up: finish the one held
                client.report_result(lease.lease_id, measurement)
    out.put((index, lease_ms, report_ms, time.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=800)
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound of the run")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--workers", type=int, default=0,
                        help="API processes of the server (0: its default, MCUPROF_WORKERS)")
    parser.add_argument("--separate", action="store_true",
                        help="a lease request and a report request per job (the protocol "
                             "before results rode with the next lease request)")
    args = parser.parse_args()

    env = {"MCUPROF_WORKERS": str(args.workers)} if args.workers else {}
    workers = Settings(database_url=f"{args.database}://", workers=args.workers).worker_processes
    with database(args.database) as db_url, server(db_url, **env) as url, \
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
                             args=(url, i, args.seconds, start_at, args.separate, results))
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

    print(f"database {args.database}, {args.agents} agent processes, server: `mcuprof serve` "
          f"with {workers} API process(es), {os.cpu_count()} CPUs on this host; "
          f"{'lease and report requests' if args.separate else 'one request per job'}")
    print(f"queued {args.jobs} jobs in {submit_s:.1f} s ({args.jobs / submit_s:.0f} submits/s, "
          f"one request each)")
    print(f"lease throughput: {len(leases) / wall:.1f} leases/s "
          f"({len(leases)} lease+report cycles in {wall:.2f} s; {done} jobs done)")
    what = "lease request: " if args.separate else "report+lease:  "
    print(f"{what} p50 {percentile(leases, 50):.1f} ms  p99 {percentile(leases, 99):.1f} ms")
    if reports:
        print(f"report request: p50 {percentile(reports, 50):.1f} ms  "
              f"p99 {percentile(reports, 99):.1f} ms")
    print(f"leases per agent: min {min(per_agent.values())}, max {max(per_agent.values())}")


if __name__ == "__main__":
    main()
