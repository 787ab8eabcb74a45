"""API latency percentiles under 32 concurrent loopback clients.

    .venv/bin/python benchmarks/api_latency.py [--clients 32] [--rounds 20] [--seconds 60]
        [--database postgresql|sqlite]

A throwaway database (PostgreSQL by default) behind a real ``mcuprof serve`` subprocess,
seeded with one model, 300 jobs and 150 measurements (reported by a fake agent). Then
``--clients`` concurrent clients (asyncio, one HTTP connection each) run ``--rounds`` rounds
of: list jobs (50), list measurements (50), submit a job. Prints p50/p99 per request kind
and the request rate. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import defaultdict

import httpx
from bench_server import SAMPLE, database, fake_measurement, percentile, server

from profiler_client.client import Client
from service.config import Settings

DEVICE_CLASS = "virtual:nucleo-f446re"
SEED_JOBS = 300
SEED_MEASUREMENTS = 150
PAGE = 50


def seed(url: str) -> int:
    """One model, SEED_JOBS jobs, SEED_MEASUREMENTS of them done; returns the model id."""
    with Client(url, token="") as client:
        model = client.upload_model(SAMPLE, tags={"backbone": "kws"})
        for _ in range(SEED_JOBS):
            client.submit(model.id, [DEVICE_CLASS])
        device = f"{DEVICE_CLASS}:seed-0"
        client.register_agent("seed", [device])
        measurement = fake_measurement(device)
        for _ in range(SEED_MEASUREMENTS):
            lease = client.lease(device)
            assert lease is not None
            client.report_result(lease.lease_id, measurement)
        return model.id


async def one_client(url: str, model_id: int, rounds: int, deadline: float,
                     timings: dict[str, list[float]]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as http:
        body = {"model_id": model_id, "devices": [DEVICE_CLASS], "runs": 5, "warmup": 1}
        calls = (("list jobs", "GET", "/api/v1/jobs", {"params": {"limit": PAGE}}),
                 ("list measurements", "GET", "/api/v1/measurements",
                  {"params": {"limit": PAGE}}),
                 ("submit", "POST", "/api/v1/jobs", {"json": body}))
        for _ in range(rounds):
            for kind, method, path, kwargs in calls:
                if time.monotonic() > deadline:
                    return
                t0 = time.perf_counter()
                response = await http.request(method, path, **kwargs)  # type: ignore[arg-type]
                elapsed = (time.perf_counter() - t0) * 1e3
                response.raise_for_status()
                timings[kind].append(elapsed)


async def load(url: str, model_id: int, clients: int, rounds: int,
               seconds: float) -> tuple[dict[str, list[float]], float]:
    timings: dict[str, list[float]] = defaultdict(list)
    deadline = time.monotonic() + seconds
    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(url, model_id, rounds, deadline, timings)
                           for _ in range(clients)))
    return timings, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=20, help="rounds of 3 requests each")
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound of the load")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()

    with database(args.database) as db_url, server(db_url) as url:
        model_id = seed(url)
        timings, wall = asyncio.run(load(url, model_id, args.clients, args.rounds,
                                         args.seconds))

    total = sum(len(v) for v in timings.values())
    workers = Settings(database_url=f"{args.database}://").worker_processes
    print(f"database {args.database}, {args.clients} concurrent clients over loopback HTTP, "
          f"server: `mcuprof serve` with {workers} API process(es), {os.cpu_count()} CPUs on "
          f"this host")
    print(f"seeded {SEED_JOBS} jobs, {SEED_MEASUREMENTS} measurements; lists return {PAGE}")
    print(f"{total} requests in {wall:.1f} s ({total / wall:.0f} requests/s)")
    for kind in ("list jobs", "list measurements", "submit"):
        values = timings[kind]
        print(f"{kind:<18} n={len(values):<5} p50 {percentile(values, 50):7.1f} ms   "
              f"p99 {percentile(values, 99):7.1f} ms")


if __name__ == "__main__":
    main()
