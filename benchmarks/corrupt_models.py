"""Feed many corrupt ``.tflite`` files to the compiler and the CLI, and print what happened.

    .venv/bin/python benchmarks/corrupt_models.py [--seed N] [--targeted 200] [--random 40]
        [--cli-every 5] [--no-zoo]

The generator of ``tests/fuzz/test_corrupt_models.py`` (the shipped samples and the built zoo,
each mutated with every invalid-parameter family and with random byte flips and
truncations), with more files per model. Prints the files tried, rejected, accepted
(and how many of those carry a targeted corruption: goal 0) and tracebacks (goal 0), with
the first few offenders; exits 1 when either goal is missed. ``--cli-every N`` also runs
``mcuprof analyze`` and ``mcuprof compile`` in-process on every Nth file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package

from click.testing import CliRunner  # noqa: E402

from tests.fuzz.test_corrupt_models import (  # noqa: E402
    CLI_COMMANDS,
    cli_outcome,
    compile_outcome,
    corpus,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targeted", type=int, default=200,
                        help="targeted mutations per source model (at most)")
    parser.add_argument("--random", type=int, default=40,
                        help="random flips/truncations per source model")
    parser.add_argument("--cli-every", type=int, default=5,
                        help="run the CLI on every Nth file (0: never)")
    parser.add_argument("--no-zoo", action="store_true", help="only the shipped samples")
    args = parser.parse_args()

    warnings.simplefilter("error")  # as pytest runs (filterwarnings = error): a warning is a bug
    started = time.perf_counter()
    files = corpus(args.seed, targeted_per_model=args.targeted,
                   random_per_model=args.random, with_zoo=not args.no_zoo)
    tried = rejected = accepted = accepted_bad = 0
    tracebacks: list[str] = []
    bad_accepts: list[str] = []
    by_family: Counter[str] = Counter()
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for k, item in enumerate(files):
            outcomes = [("api", compile_outcome(item.data))]
            if args.cli_every and k % args.cli_every == 0:
                path = tmp_path / "model.tflite"
                path.write_bytes(item.data)
                outcomes += [(cmd, cli_outcome(runner, path, build(tmp_path)))
                             for cmd, build in CLI_COMMANDS]
            for where, out in outcomes:
                tried += 1
                if out.traceback:
                    tracebacks.append(f"{where} {item.name}: {out.traceback.splitlines()[-1]}")
                elif out.accepted:
                    accepted += 1
                    if item.must_reject:
                        accepted_bad += 1
                        bad_accepts.append(f"{where} {item.name}")
                else:
                    rejected += 1
                    by_family[item.name.split("/")[1]] += 1
    elapsed = time.perf_counter() - started
    print(f"files: {len(files)} ({sum(f.must_reject for f in files)} targeted), "  # noqa: T201
          f"{tried} runs (API + CLI) in {elapsed:.1f} s")
    print(f"rejected: {rejected}  accepted: {accepted} "  # noqa: T201
          f"(targeted corruptions accepted: {accepted_bad}, goal 0)  "
          f"tracebacks: {len(tracebacks)} (goal 0)")
    print("rejected by family: " + ", ".join(  # noqa: T201
        f"{fam} {n}" for fam, n in sorted(by_family.items())))
    for line in (tracebacks[:5] + bad_accepts[:5]):
        print("  " + line)  # noqa: T201
    return 1 if tracebacks or accepted_bad else 0


if __name__ == "__main__":
    sys.exit(main())
