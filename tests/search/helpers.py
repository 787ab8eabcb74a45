"""Checks shared by the search tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench_firmware.boards import HOST
from bench_firmware.compiler import compile_model
from bench_firmware.host import run_plan
from bench_firmware.tflite_model import read_tflite
from tests.oracle import tflm_run
from tests.zoo import random_input


def assert_bit_exact(model: bytes, name: str, seeds: tuple[int, ...] = (0, 1)) -> None:
    """Compile ``model`` for the host build, run it with both kernel paths and compare every
    output byte with TFLite Micro's interpreter."""
    plan = compile_model(model, HOST, name=name)
    out_bytes = int(np.prod(plan.output_shape))
    assert plan.output_dtype == "int8" and plan.input_dtype == "int8"
    for seed in seeds:
        x = random_input(model, seed)
        expected = np.asarray(tflm_run(model, x)).astype(np.int8).reshape(-1)
        for kernels in ("ref", "dsp"):
            got = np.frombuffer(run_plan(plan.data, x, output_bytes=out_bytes, kernels=kernels),
                                dtype=np.int8)
            bad = np.flatnonzero(got != expected)
            assert bad.size == 0, (f"{name} seed {seed} {kernels}: {bad.size} of {got.size} "
                                   f"outputs differ from TFLM")


def layer_table(model: bytes) -> list[tuple[Any, ...]]:
    """The converted model's operators as comparable rows:
    ``("CONV_2D", (kh, kw), out_channels, (sh, sw), activation)``,
    ``("DEPTHWISE_CONV_2D", (kh, kw), channels, (sh, sw), activation)``,
    ``("AVERAGE_POOL_2D", (fh, fw), (sh, sw))``, ``("FULLY_CONNECTED", units, activation)``,
    ``("ADD", activation)``, and the bare name of any other operator."""
    rows: list[tuple[Any, ...]] = []
    for op in read_tflite(model).operators:
        o = op.options
        w = op.inputs[1] if len(op.inputs) > 1 else None
        if op.name == "CONV_2D":
            assert w is not None
            rows.append((op.name, tuple(w.shape[1:3]), w.shape[0],
                         (o["stride_h"], o["stride_w"]), o["activation"]))
        elif op.name == "DEPTHWISE_CONV_2D":
            assert w is not None and o["depth_multiplier"] in (0, 1)
            rows.append((op.name, tuple(w.shape[1:3]), w.shape[3],
                         (o["stride_h"], o["stride_w"]), o["activation"]))
        elif op.name == "AVERAGE_POOL_2D":
            rows.append((op.name, (o["filter_h"], o["filter_w"]),
                         (o["stride_h"], o["stride_w"])))
        elif op.name == "FULLY_CONNECTED":
            assert w is not None
            rows.append((op.name, w.shape[0], o["activation"]))
        elif op.name == "ADD":
            rows.append((op.name, o["activation"]))
        else:
            rows.append((op.name,))
    return rows
