"""4-bit weights: TFLite INT4 conv and fully connected weights, packed two per byte in the
plan, unpacked by the kernels. The zoo's ``conv_int4``, ``fc_int4`` and ``ds_cnn_kws_int4``
run bit-exact on the host and on every twin with the rest of the zoo
(``test_zoo_bitexact.py``, ``test_virtual_zoo.py``); here: the reference they are compared
with, flash, the kernels' fallbacks, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench_firmware import compiler
from bench_firmware.boards import BOARDS, HOST
from bench_firmware.compiler import compile_graph, compile_model
from bench_firmware.errors import CorruptModelError, UnsupportedOpError
from bench_firmware.host import run_plan
from bench_firmware.tflite_model import pack_int4, read_tflite, unpack_int4
from tests.oracle import has_int4, tflm_run
from tests.zoo import random_input

pytestmark = pytest.mark.slow

INT4_MODELS = ("conv_int4", "fc_int4", "ds_cnn_kws_int4")


def test_pack_and_unpack_are_tflites_layout() -> None:
    values = np.array([-8, 7, -1, 0, 3, -5, 1], dtype=np.int8)
    packed = pack_int4(values)
    assert packed == bytes([0x78, 0x0F, 0xB3, 0x01])  # first value in the low nibble
    assert unpack_int4(packed, 7).tolist() == values.tolist()
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        pack_int4(np.array([8], dtype=np.int8))


@pytest.mark.parametrize("name", INT4_MODELS)
def test_the_zoo_models_have_4_bit_weights(zoo: dict[str, Path], name: str) -> None:
    data = zoo[name].read_bytes()
    assert has_int4(data)
    graph = read_tflite(data)
    for op in graph.operators:
        filt = op.inputs[1] if len(op.inputs) > 1 else None
        if op.name in ("CONV_2D", "FULLY_CONNECTED"):
            assert filt is not None and filt.dtype == "int4"
            assert filt.data is not None and -7 <= filt.data.min() and filt.data.max() <= 7
        elif op.name == "DEPTHWISE_CONV_2D":
            assert filt is not None and filt.dtype == "int8"


def test_tflm_runs_4_bit_convolutions_as_the_widened_reference(zoo: dict[str, Path]) -> None:
    """Where TFLite Micro takes INT4 weights (CONV_2D), its output is the output of the
    model widened to int8, the reference the zoo tests use for every 4-bit model."""
    from search.int4 import widen_int4
    from tests.oracle import _runtime

    data = zoo["conv_int4"].read_bytes()
    wide = widen_int4(data)
    assert not has_int4(wide)
    runtime = _runtime()
    for seed in range(3):
        x = random_input(data, seed)
        direct = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
        direct.set_input(x, 0)
        direct.invoke()
        assert np.array_equal(direct.get_output(0), tflm_run(wide, x))


@pytest.mark.parametrize("name", INT4_MODELS)
def test_4_bit_weights_halve_the_weight_bytes(zoo: dict[str, Path], name: str) -> None:
    """The plan stores the 4-bit rows packed: about half the bytes of the same model at 8 bits
    (rows padded to 8 weights before packing); `mcuprof analyze` counts the packed bytes."""
    from search.int4 import widen_int4

    data = zoo[name].read_bytes()
    four = compile_model(data, HOST)
    eight = compile_model(widen_int4(data), HOST)
    graph = read_tflite(data)
    saved = packed = 0
    for op, l4, l8 in zip(graph.operators, four.layers, eight.layers, strict=True):
        filt = op.inputs[1] if len(op.inputs) > 1 else None
        if filt is None or filt.dtype != "int4":
            assert l4.param_bytes == l8.param_bytes
            continue
        rows = filt.shape[0]
        row_bytes = -(-filt.elements // rows // 4) * 4
        saved += rows * (row_bytes - -(-row_bytes // 8) * 4)  # packed: 8 weights in 4 bytes
        if op.name == "CONV_2D":  # the 8-bit stream also carries each channel pair's biases
            saved += 8 * (rows // 2)
        packed += 1
        assert l8.param_bytes - l4.param_bytes == filt.elements - filt.nbytes
    assert saved > 0
    # up to one word-alignment pad (8 bytes) more or less per packed array
    assert abs(len(eight.data) - len(four.data) - saved) <= 8 * packed


@pytest.mark.parametrize("name", ["conv_int4", "fc_int4"])
def test_without_room_to_unpack_the_reference_loops_run(zoo: dict[str, Path], name: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The DSP paths unpack 4-bit weights into scratch; a plan without that room (the
    convolution's extra scratch dropped) still gives the same bytes, on the reference loops."""
    data = zoo[name].read_bytes()
    x = random_input(data, 0)
    expected = tflm_run(data, x).tobytes()
    with monkeypatch.context() as m:
        m.setattr(compiler, "extra_scratch_ops", lambda *args: {})
        tight = compile_model(data, HOST)
    roomy = compile_model(data, HOST)
    for plan in (tight, roomy):
        for kernels in ("ref", "dsp"):
            got = run_plan(plan.data, x, output_bytes=len(expected), kernels=kernels)
            assert got == expected, (kernels, plan.arena_bytes)


def test_depthwise_4_bit_weights_are_refused(zoo: dict[str, Path]) -> None:
    graph = read_tflite(zoo["ds_cnn_kws_int4"].read_bytes())
    dw = next(op for op in graph.operators if op.name == "DEPTHWISE_CONV_2D")
    filt = dw.inputs[1]
    assert filt is not None
    filt.dtype = "int4"
    with pytest.raises(UnsupportedOpError, match=r"4-bit weights.*CONV_2D and FULLY_CONNECTED"):
        compile_graph(graph, BOARDS["nucleo-f446re"])


def test_a_truncated_4_bit_buffer_is_a_corrupt_model(zoo: dict[str, Path]) -> None:
    import importlib

    import flatbuffers

    schema = importlib.import_module("tensorflow.lite.python.schema_py_generated")
    m = schema.ModelT.InitFromPackedBuf(bytearray(zoo["fc_int4"].read_bytes()), 0)
    t = next(t for t in m.subgraphs[0].tensors if t.type == schema.TensorType.INT4)
    m.buffers[t.buffer].data = m.buffers[t.buffer].data[:-1]
    b = flatbuffers.Builder(4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(CorruptModelError, match=r"int4, \d+ bytes packed two per byte"):
        read_tflite(bytes(b.Output()))


def test_the_converter_needs_conv_or_fc_weights(zoo: dict[str, Path]) -> None:
    from search.errors import ConversionError
    from search.int4 import int4_weights

    with pytest.raises(ConversionError, match="no CONV_2D or FULLY_CONNECTED weights"):
        int4_weights(zoo["dw_m1_same_s1"].read_bytes(), name="dw_m1_same_s1")
    # Per output channel, the largest weight takes the 4-bit range's end.
    graph = read_tflite(zoo["conv_int4"].read_bytes())
    for op in graph.operators:
        filt = op.inputs[1]
        assert filt is not None and filt.data is not None
        peaks = np.abs(filt.data.reshape(filt.shape[0], -1)).max(axis=1)
        assert set(peaks.tolist()) <= {7}
