"""Regenerate the calibration microbenchmarks: one small int8 model per instruction class and
memory path of the bench firmware's kernels.

    .venv/bin/python benchmarks/make_calibration_set.py [--seed 0]
        [--out bench_firmware/samples/calibration]

``mcuprof calibrate`` runs each of them on a physical board and on its twin beside the sample
networks (``bench_firmware.calibration``), so a twin's error is stated per class (MAC-bound
from flash, SRAM-bound, scalar) and not only per network. Each model is one operator (two
where the operator needs a second operand), sized to run in well under a few ms on the
twins. Keras models with seeded random weights, converted by ``search.convert.to_int8_tflite``
(the campaign's converter: full-integer int8, seeded random representative inputs), so the
same command gives the same files with the same TensorFlow. Writes the ``.tflite`` files and
``manifest.json`` (per model its SHA-256, operators, what it exercises, MACs, weight bytes)
into ``--out``; bench_firmware ships them as package data and never imports TensorFlow.
Prints what it wrote.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_firmware.boards import get_board
from bench_firmware.compiler import compile_model
from search.convert import to_int8_tflite
from search.keras_builders import import_keras, quiet

MANIFEST = "manifest.json"
OUT = Path(__file__).resolve().parent.parent / "bench_firmware" / "samples" / "calibration"
BUDGET_BYTES = 300 * 1024  # the whole set, shipped in the wheel
REFERENCE_BOARD = "nucleo-f446re"  # MACs and weight bytes are board-independent


@dataclass(frozen=True)
class Bench:
    """One microbenchmark: ``build(keras)`` returns its Keras model."""

    name: str
    op: str  # the operator it times (the others, if any, only feed it)
    exercises: str  # the instruction class / memory path
    build: Callable[[Any], Any]


def _conv1x1(keras: Any) -> Any:
    x = keras.Input((12, 12, 32), batch_size=1)
    return keras.Model(x, keras.layers.Conv2D(32, 1)(x), name="conv1x1")


def _conv3x3(keras: Any) -> Any:
    x = keras.Input((12, 12, 16), batch_size=1)
    return keras.Model(x, keras.layers.Conv2D(16, 3, padding="same")(x), name="conv3x3")


def _conv_first(keras: Any) -> Any:
    x = keras.Input((16, 16, 1), batch_size=1)
    return keras.Model(x, keras.layers.Conv2D(16, 3, padding="same")(x), name="conv_first")


def _depthwise(keras: Any) -> Any:
    x = keras.Input((12, 12, 32), batch_size=1)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    return keras.Model(x, y, name="depthwise3x3")


def _fc_flash(keras: Any) -> Any:
    x = keras.Input((1024,), batch_size=1)
    return keras.Model(x, keras.layers.Dense(64)(x), name="fc_flash")


def _fc_cached(keras: Any) -> Any:
    # 16 x 8 weights (128 bytes: the F4 ART data cache, 8 lines of 16 bytes) reused by 128
    # rows: after the first row every weight read hits the cache.
    x = keras.Input((128, 16), batch_size=1)
    return keras.Model(x, keras.layers.Dense(8)(x), name="fc_cached")


def _avgpool(keras: Any) -> Any:
    x = keras.Input((16, 16, 32), batch_size=1)
    return keras.Model(x, keras.layers.AveragePooling2D(2)(x), name="avgpool")


def _add(keras: Any) -> Any:
    x = keras.Input((12, 12, 16), batch_size=1)
    # ADD needs two tensors with their own quantization: the input and its ReLU.
    y = keras.layers.Add()([x, keras.layers.ReLU()(x)])
    return keras.Model(x, y, name="add")


def _softmax(keras: Any) -> Any:
    x = keras.Input((32, 32), batch_size=1)
    return keras.Model(x, keras.layers.Softmax()(x), name="softmax")


BENCHES = (
    Bench("conv1x1_flash", "CONV_2D",
          "1x1 convolution: SMLAD MAC loop, weights streamed from flash", _conv1x1),
    Bench("conv3x3", "CONV_2D",
          "3x3 convolution: im2col copies in SRAM, then the SMLAD MAC loop", _conv3x3),
    Bench("conv_first_1ch", "CONV_2D",
          "first layer, 1 input channel: few-byte im2col copies, short MAC rows", _conv_first),
    Bench("depthwise3x3", "DEPTHWISE_CONV_2D",
          "3x3 depthwise: per-channel MACs, strided SRAM reads", _depthwise),
    Bench("fc_flash", "FULLY_CONNECTED",
          "fully connected, 64 KB of weights (larger than every flash data cache): flash "
          "data-read path", _fc_flash),
    Bench("fc_cached", "FULLY_CONNECTED",
          "fully connected, 128 bytes of weights reused by 128 rows (fit the flash data "
          "cache)", _fc_cached),
    Bench("avgpool", "AVERAGE_POOL_2D",
          "2x2 average pool: SRAM-bound loads and stores, no weights", _avgpool),
    Bench("add", "ADD", "elementwise add with requantization: SRAM-bound, no weights", _add),
    Bench("softmax", "SOFTMAX",
          "int8 softmax: scalar fixed-point exp (gemmlowp), branchy saturating arithmetic",
          _softmax),
)


def build(bench: Bench, seed: int) -> bytes:
    _, keras = import_keras()
    keras.utils.set_random_seed(seed)
    with quiet():
        model = bench.build(keras)
    return to_int8_tflite(model, seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    tf, _ = import_keras()
    board = get_board(REFERENCE_BOARD)
    args.out.mkdir(parents=True, exist_ok=True)
    entries = []
    total = 0
    for bench in BENCHES:
        data = build(bench, args.seed)
        plan = compile_model(data, board, name=bench.name)
        ops = [layer.op for layer in plan.layers]
        if bench.op not in ops:
            sys.exit(f"{bench.name}: the converter gave {ops}, not {bench.op}")
        path = args.out / f"{bench.name}.tflite"
        path.write_bytes(data)
        total += len(data)
        entries.append({"name": bench.name, "file": path.name,
                        "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                        "op": bench.op, "ops": ops, "exercises": bench.exercises,
                        "macs": plan.macs,
                        "weight_bytes": sum(layer.param_bytes for layer in plan.layers)})
        print(f"{path.name:<24} {len(data):>7,} B  {'+'.join(ops):<40} {plan.macs:>9,} MACs")
    if total > BUDGET_BYTES:
        sys.exit(f"the set is {total:,} bytes, over its budget of {BUDGET_BYTES:,}")
    manifest = {"command": "benchmarks/make_calibration_set.py", "seed": args.seed,
                "converter": f"search.convert.to_int8_tflite, TensorFlow {tf.__version__}",
                "models": entries}
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{len(entries)} models, {total:,} bytes, manifest {args.out / MANIFEST}")


if __name__ == "__main__":
    main()
