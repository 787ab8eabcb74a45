"""Regenerate the demo's fit set: a few int8 KWS models sampled from one search space.

    .venv/bin/python benchmarks/make_demo_fitset.py [--n 10] [--seed 0] [--max-width 64]
        [--out service/demo_fits] [--workers 2]

``mcuprof demo`` (``make run``) profiles these models, tagged ``backbone=kws``, on its
virtual boards so that the first run ends with a latency-vs-ops line per device on the
dashboard (``service/demo.py``, ``submit_fit_set``). They are the first ``--n``
architectures that ``mcuprof campaign --space kws --seed SEED --max-width W`` would sample
(``search.campaign.plan_models``), converted by ``search.convert.run_job`` exactly as the
campaign converts them (random weights of weight seed 0, random calibration of seed 0), so
the same command gives the same files with the same TensorFlow. Writes the ``.tflite`` files
and ``manifest.json`` (the command, seed, converter, and per model its SHA-256, ops, MACs,
arena bytes and server tags) into ``--out``; the service ships them as package data and
never imports TensorFlow. Prints what it wrote, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from search.campaign import plan_models
from search.convert import run_job, worker_init

MANIFEST = "manifest.json"
FIT_SET_TAG = "demo-fitset"  # the source tag of every fit-set model on the demo's server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="kws")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-width", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("service/demo_fits"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        jobs = plan_models(args.space, args.n, args.seed, Path(tmp), max_width=args.max_width)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx,
                                 initializer=worker_init) as pool:
            metas = list(pool.map(run_job, jobs))
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.glob("*.tflite"):
            old.unlink()
        models = []
        for meta in metas:
            shutil.copyfile(Path(tmp) / meta["file"], args.out / meta["file"])
            models.append({
                "file": meta["file"], "name": meta["name"], "sha256": meta["sha256"],
                "ops": meta["ops"], "macs": meta["macs"], "arena_bytes": meta["arena_bytes"],
                "tflite_bytes": meta["tflite_bytes"], "tags": meta["tags"],
                "source": meta["source"]})
            print(f"{meta['file']}: {meta['ops']:,} ops, {meta['tflite_bytes']:,} B, "
                  f"arena {meta['arena_bytes']:,} B")
    cmd = (f".venv/bin/python benchmarks/make_demo_fitset.py --space {args.space} "
           f"--n {args.n} --seed {args.seed} --max-width {args.max_width} --out {args.out}")
    manifest = {
        "command": cmd,
        "space": args.space, "seed": args.seed, "max_width": args.max_width,
        "weight_seed": 0, "calibration": metas[0]["calibration"],
        "converter": metas[0]["converter"], "source_tag": FIT_SET_TAG,
        "python": sys.version.split()[0],
        "models": models,
    }
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(m["tflite_bytes"] for m in models)
    print(f"{len(models)} models, {total:,} B, manifest {args.out / MANIFEST}")


if __name__ == "__main__":
    main()
