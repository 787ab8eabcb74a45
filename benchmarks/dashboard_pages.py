"""Dashboard page times with 10,000 measurements in the database.

    .venv/bin/python benchmarks/dashboard_pages.py [--measurements 10000] [--repeats 9]
        [--database sqlite|postgresql|both]

A fresh database (a temporary SQLite file by default; PostgreSQL in the cluster at
MCUPROF_TEST_PG_URL with ``postgresql`` or ``both``) is filled with synthetic measurements
(``tests/dashboard/seed.py``: sampled KWS, AD and VWW models with per-layer cycles), each model
measured on the four virtual boards, so every device page has a quarter of them. A real
``mcuprof serve`` answers over loopback HTTP. For each page: the first request (``cold``: the
device and model pages refit the latency models on it, the fits API too) and the median and
worst of ``--repeats`` more (``warm``: nothing to refit), with the page size. The database
is ANALYZEd after the bulk load (the statistics autovacuum keeps). Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx
from bench_server import database, server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package (the seeder)

from service.db.engine import Database, make_engine  # noqa: E402
from tests.dashboard import seed  # noqa: E402

DEVICES = ("virtual:nucleo-f446re", "virtual:nucleo-f746zg", "virtual:nucleo-f767zi",
           "virtual:nucleo-l4r5zi")
BACKBONES = ("kws", "ad", "vww")
REQUEST_TIMEOUT_S = 300.0  # a cold page refits; give it time


def fill(url: str, measurements: int) -> list[int]:
    """``measurements`` measurements: measurements / 4 models, each on the four boards."""
    n_models = measurements // len(DEVICES)
    per_backbone = -(-n_models // len(BACKBONES))
    models = seed.sample_models(per_backbone, backbones=BACKBONES)[:n_models]
    db = Database(make_engine(url))
    try:
        t0 = time.perf_counter()
        ids = seed.store_models(db, models)
        seeded = seed.seed(db, models, DEVICES, model_ids=ids)
        # Planner statistics as autovacuum would leave them: right after a bulk load,
        # PostgreSQL believes the new tables empty and plans the tag joins as nested loops.
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        print(f"  seeded {len(ids):,} models and {len(seeded.measurement_ids):,} measurements "
              f"in {time.perf_counter() - t0:.1f} s (then ANALYZE)")
        return ids
    finally:
        db.dispose()


def time_page(http: httpx.Client, path: str, repeats: int) -> tuple[float, float, float, int]:
    """(cold ms, warm median ms, warm max ms, bytes) of GET ``path``."""
    def once() -> tuple[float, int]:
        t0 = time.perf_counter()
        r = http.get(path)
        elapsed = (time.perf_counter() - t0) * 1e3
        if r.status_code != 200:
            raise SystemExit(f"GET {path}: {r.status_code} {r.text[:300]}")
        return elapsed, len(r.content)

    cold, size = once()
    warm = [once()[0] for _ in range(repeats)]
    return cold, statistics.median(warm), max(warm), size


def bench(kind: str, measurements: int, repeats: int) -> None:
    print(f"{kind}: {measurements:,} measurements")
    with database(kind) as url:
        model_ids = fill(url, measurements)
        with server(url) as base, httpx.Client(base_url=base,
                                               timeout=REQUEST_TIMEOUT_S) as http:
            pages = [("overview", "/"), (f"device {DEVICES[0]}", f"/device/{DEVICES[0]}"),
                     (f"device {DEVICES[3]}", f"/device/{DEVICES[3]}"),
                     ("model", f"/model/{model_ids[len(model_ids) // 2]}"),
                     ("jobs (newest)", "/jobs"),
                     ("jobs (deep page)", f"/jobs?before={measurements // 2}"),
                     ("jobs (filtered)", f"/jobs?state=done&device={DEVICES[1]}"),
                     ("API GET /fits", "/api/v1/fits")]
            print(f"  {'page':<34} {'cold ms':>9} {'warm median ms':>15} {'warm max ms':>12} "
                  f"{'KiB':>8}")
            for name, path in pages:
                cold, median, worst, size = time_page(http, path, repeats)
                print(f"  {name:<34} {cold:>9.1f} {median:>15.1f} {worst:>12.1f} "
                      f"{size / 1024:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measurements", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=9,
                        help="warm requests per page (the median is reported)")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"],
                        default="sqlite")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    for kind in kinds:
        bench(kind, args.measurements, args.repeats)


if __name__ == "__main__":
    main()
