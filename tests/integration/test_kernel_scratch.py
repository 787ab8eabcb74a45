"""The DSP kernels' scratch buffers in compiled zoo plans: sized as the kernels expect,
inside the arena, apart from the model input and from every tensor live during their op."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_firmware import plan_format as pf
from bench_firmware.boards import HOST
from bench_firmware.compiler import compile_model
from tests.zoo import ZOO_NAMES

pytestmark = pytest.mark.slow


def _ranges_overlap(a: int, a_len: int, b: int, b_len: int) -> bool:
    return a < b + b_len and b < a + a_len


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_scratch_buffers_are_planned(zoo: dict[str, Path], name: str) -> None:
    plan = compile_model(zoo[name].read_bytes(), HOST, name=name)
    data = plan.data
    header = pf.HEADER.unpack(data)
    tensors = [pf.TENSOR.unpack(data, int(header["tensors_off"]) + i * pf.TENSOR.size)
               for i in range(int(header["n_tensors"]))]
    model_input = tensors[int(header["input_tensor"])]
    ops = [pf.OP.unpack(data, int(header["ops_off"]) + i * pf.OP.size)
           for i in range(int(header["n_ops"]))]
    assert plan.activation_bytes <= plan.arena_bytes == header["arena_bytes"]
    for i, (op, layer) in enumerate(zip(ops, plan.layers, strict=True)):
        if pf.OP_NAMES[int(op["code"])] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            assert layer.scratch_bytes == 0
            continue
        params = pf.CONV.unpack(data, int(op["params_off"]))
        off, size = int(params["scratch_off"]), int(params["scratch_bytes"])
        assert size == layer.scratch_bytes
        if size == 0:
            continue
        assert off % 4 == 0 and off + size <= plan.arena_bytes
        assert not _ranges_overlap(off, size, int(model_input["arena_off"]),
                                   int(model_input["bytes"]))
        ins = [int(x) for x in data[int(op["inputs_off"]): int(op["inputs_off"]) +
                                    2 * int(op["n_inputs"])][::2]]
        for t in [*ins, int(op["output"])]:
            tensor = tensors[t]
            assert not _ranges_overlap(off, size, int(tensor["arena_off"]),
                                       int(tensor["bytes"])), f"op {i} scratch overlaps {t}"
