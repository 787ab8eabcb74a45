"""Fuzz the whole REST API for longer than ``make test`` does, and print what was found.

    .venv/bin/python benchmarks/fuzz_api.py [--examples 200] [--seconds 600]
        [--database sqlite|postgresql] [--seed N]

The same run as ``tests/fuzz/test_api_fuzz.py`` (schemathesis, every operation of
``/openapi.json``, schema-following and schema-breaking requests, the app in-process over a
seeded throwaway database), with ``--examples`` cases per operation and mode, stopped after
``--seconds``. Prints the cases tried, the answers by status, the 5xx count with the first
requests that caused them, and the cases that could not be sent; exits 1 when there is a
5xx or a failure. Figures, not a pass/fail test of speed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bench_server import database

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package

from tests.fuzz.api_fuzz import fuzz_app  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200,
                        help="cases per operation and generation mode")
    parser.add_argument("--seconds", type=float, default=600.0, help="time budget")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # refused requests log warnings by design

    with database(args.database) as url:
        report = fuzz_app(url, examples=args.examples, seed_value=args.seed,
                          time_budget_s=args.seconds)
    print(f"database: {args.database}; {args.examples} examples per operation and mode; "
          f"seed {args.seed}")
    print(f"operations:   {report.operations}")
    print(f"cases tried:  {report.cases} in {report.seconds:.1f} s "
          f"({report.cases / max(report.seconds, 1e-9):.1f} cases/s)")
    print("statuses:     " + ", ".join(f"{status}: {n}"
                                       for status, n in sorted(report.statuses.items())))
    print(f"5xx:          {report.server_error_count}")
    print(f"failures:     {len(report.failures)} (cases that got no answer)")
    print("slowest operations (s): " + ", ".join(
        f"{name} {s:.1f}" for name, s in sorted(report.seconds_per_operation.items(),
                                                 key=lambda kv: -kv[1])[:5]))
    for finding in report.server_errors + report.failures:
        print(finding)
    return 1 if report.server_error_count or report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
