"""The DSP kernels' scratch buffers in compiled zoo plans (convolutions, depthwise, fully
connected with 4-bit weights, ADD's lookup tables): sized as the kernels expect,
inside the arena, apart from the model input and from every tensor live during their op; and
the cost rules that give kernels extra scratch where it makes them faster: convolutions room to
copy their weights into SRAM, depthwise 3x3 layers a planar int16 image or a band of padded
input rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench_firmware import compiler
from bench_firmware import plan_format as pf
from bench_firmware.backends.virtual.timing.memory import M7_CACHE_BYTES
from bench_firmware.boards import BOARDS, HOST
from bench_firmware.compiler import compile_model
from bench_firmware.ops.conv import (
    M7_COPY_MIN_PIXELS,
    QUAD_SHORT_PIXELS,
    conv_extra_scratch,
    conv_scratch_bytes,
    conv_stream_bytes,
    conv_wide_bytes,
    depthwise_extra_scratch,
    depthwise_planar,
    depthwise_scratch_bytes,
)
from bench_firmware.ops.fully_connected import FC_RECORD_EXTRA_BYTES, fc_layer
from bench_firmware.tflite_model import read_tflite
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
        kind = pf.OP_NAMES[int(op["code"])]
        if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"):
            assert layer.scratch_bytes == 0
            continue
        struct = {"FULLY_CONNECTED": pf.FULLY_CONNECTED, "ADD": pf.ADD}.get(kind, pf.CONV)
        params = struct.unpack(data, int(op["params_off"]))
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


@pytest.mark.parametrize("board_name", ["nucleo-f446re", "nucleo-l4r5zi", "nucleo-f746zg",
                                        "nucleo-f767zi"])
def test_conv_weights_go_to_sram_on_the_cortex_m4_boards(zoo: dict[str, Path],
                                                         board_name: str) -> None:
    """The cost rule (ops/conv.py conv_extra_scratch): on the Cortex-M4 boards every convolution
    with more than one pixel pair gets room to copy its weights into SRAM; on the Cortex-M7
    boards one whose weight stream is larger than half the L1 data cache (which would refill
    every line for every pixel pair) or whose output has M7_COPY_MIN_PIXELS pixels or more;
    smaller ones read flash through the cache."""
    board = BOARDS[board_name]
    data = zoo["ds_cnn_kws"].read_bytes()
    graph = read_tflite(data)
    plan = compile_model(data, board)
    convs = [(op, layer) for op, layer in zip(graph.operators, plan.layers, strict=True)
             if op.name == "CONV_2D"]
    assert convs
    for op, layer in convs:
        base = conv_scratch_bytes(op)
        copy = conv_extra_scratch(op, BOARDS["nucleo-l4r5zi"])
        out_c, kh, kw, in_c = op.inputs[1].shape  # type: ignore[union-attr]
        row_bytes = -(-kh * kw * in_c // 4) * 4
        # The copy is the stream widened to halfword pairs (4 bytes per weight pair), then the
        # four-pixel column the widened loop reads and 8 bytes the Cortex-M7 loop reads past it.
        assert copy == conv_wide_bytes(out_c, row_bytes) + 8 * row_bytes + 8
        assert conv_wide_bytes(out_c, row_bytes) > conv_stream_bytes(out_c, row_bytes)
        if board.core == "cortex-m4":
            expected = base + copy
        else:
            stream = conv_stream_bytes(out_c, row_bytes)
            _, out_h, out_w, _ = op.outputs[0].shape
            copied = (stream > M7_CACHE_BYTES[board.mcu] // 2
                      or out_h * out_w >= M7_COPY_MIN_PIXELS)
            expected = base + (copy if copied else 0)
        assert layer.scratch_bytes == expected, (op.index, layer.scratch_bytes, base, copy)


def test_large_conv_streams_are_copied_on_the_f746zg() -> None:
    """A 1x1 convolution of 64 to 64 channels (4,352-byte stream) gets its copy, widened (32
    pairs of 8 bias bytes, 4 * 64 weight bytes and 24 bytes of requantization table words) and
    followed by the four-pixel column (8 * 64 bytes, and 8 bytes the Cortex-M7 loop reads past
    it), on the F746ZG (4 KiB data cache) but not on the F767ZI (16 KiB)."""
    from bench_firmware.tflite_model import Operator, Tensor

    def tensor(index: int, shape: tuple[int, ...]) -> Tensor:
        return Tensor(index=index, name=f"t{index}", shape=shape, dtype="int8")

    op = Operator(0, "CONV_2D", [tensor(0, (1, 5, 5, 64)), tensor(1, (64, 1, 1, 64)), None],
                  [tensor(2, (1, 5, 5, 64))], {})
    assert conv_extra_scratch(op, BOARDS["nucleo-f746zg"]) == 32 * (8 + 4 * 64 + 24) + 8 * 64 + 8
    assert conv_extra_scratch(op, BOARDS["nucleo-f767zi"]) == 0


@pytest.mark.parametrize("board_name", ["nucleo-f446re", "nucleo-l4r5zi", "nucleo-f746zg"])
def test_short_pixel_counts_get_the_8bit_copy_on_the_cortex_m4(board_name: str) -> None:
    """On the Cortex-M4 boards a convolution whose output pixel count would leave the
    four-pixel loop's last block mostly empty (3x3: 9 pixels) gets room for the 8-bit stream
    only, so the kernel runs the two-pixel loop over an SRAM copy; 4x4 (16 pixels) gets the
    widened copy and the column. The Cortex-M7's widened loop takes both."""
    from bench_firmware.tflite_model import Operator, Tensor

    def conv(side: int) -> Operator:
        def tensor(index: int, shape: tuple[int, ...]) -> Tensor:
            return Tensor(index=index, name=f"t{index}", shape=shape, dtype="int8")
        return Operator(0, "CONV_2D", [tensor(0, (1, side, side, 128)),
                                       tensor(1, (256, 1, 1, 128)), None],
                        [tensor(2, (1, side, side, 256))], {})

    board = BOARDS[board_name]
    wide = conv_wide_bytes(256, 128) + 8 * 128 + 8
    assert 9 in QUAD_SHORT_PIXELS and 16 not in QUAD_SHORT_PIXELS
    short = conv_stream_bytes(256, 128) if board.core == "cortex-m4" else wide
    assert conv_extra_scratch(conv(3), board) == short
    assert conv_extra_scratch(conv(4), board) == wide


@pytest.mark.parametrize(("name", "rule", "field"), [
    ("ds_cnn_kws", "extra_scratch_ops", "scratch_bytes"),  # weight copies, depthwise bands
    ("fc_bias", "resident_ops", "resident_bytes"),  # fully connected weights kept in SRAM
])
def test_speedups_never_cost_the_fit(zoo: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                     name: str, rule: str, field: str) -> None:
    """On a board with just the SRAM the model needs without a rule's extra room, the compiler
    drops the extras and copies (largest first) until the arena fits, instead of refusing the
    model."""
    data = zoo[name].read_bytes()
    l4 = BOARDS["nucleo-l4r5zi"]
    with_copies = compile_model(data, l4)
    with monkeypatch.context() as m:
        m.setattr(compiler, rule, lambda *args: {})
        without = compile_model(data, l4)
    assert with_copies.arena_bytes > without.arena_bytes
    tight = replace(l4, sram_bytes=l4.sram_bytes - (l4.arena_capacity - without.arena_bytes))
    assert tight.arena_capacity == without.arena_bytes
    plan = compile_model(data, tight)
    assert plan.arena_bytes <= tight.arena_capacity
    copied = sum(getattr(layer, field) for layer in plan.layers)
    assert sum(getattr(layer, field) for layer in without.layers) <= copied
    assert copied < sum(getattr(layer, field) for layer in with_copies.layers)


@pytest.mark.parametrize("name", ["ds_cnn_kws", "dw_m1_same_s1", "dw_m1_same_s2",
                                  "mobilenetv2_block"])
def test_padded_depthwise_layers_get_a_band(zoo: dict[str, Path], name: str) -> None:
    """A 3x3 depthwise layer gets, on every board, the planar path's room when its channels are
    a multiple of 4 and a side's stride is 1 or 2 (the input widened to int16, one image row
    per padded row and channel, weights and channel-major accumulators); otherwise, with SAME
    padding, room for three padded input rows; an unpadded or other-sized one none."""
    data = zoo[name].read_bytes()
    graph = read_tflite(data)
    for board_name in ("nucleo-f446re", "nucleo-f746zg"):
        plan = compile_model(data, BOARDS[board_name])
        for op, layer in zip(graph.operators, plan.layers, strict=True):
            if op.name != "DEPTHWISE_CONV_2D":
                continue
            base = depthwise_scratch_bytes(op)
            band = depthwise_extra_scratch(op, BOARDS[board_name])
            _, kh, kw, channels = op.inputs[1].shape  # type: ignore[union-attr]
            opts = op.options
            _, out_h, out_w, _ = op.outputs[0].shape
            sh, sw = opts.get("stride_h", 1), opts.get("stride_w", 1)
            three = (kh, kw) == (3, 3) and opts.get("dilation_h", 1) == 1 \
                and opts.get("dilation_w", 1) == 1 and base > 0
            planar = depthwise_planar(out_h, out_w, sh, sw, channels) if three else None
            if planar is not None:
                ph, w2, opad = planar
                assert band == (ph * w2 * 2 + 40 + 4 * opad) * channels
                assert opad in ((out_w + 3) // 4 * 4, (out_h + 3) // 4 * 4)
            elif three and opts.get("padding") == "SAME":
                assert band == 3 * ((out_w - 1) * sw + 3) * channels
            else:
                assert band == 0
            assert layer.scratch_bytes == base + band


def test_planar_depthwise_lanes_run_along_the_side_that_wastes_less() -> None:
    """The planar path's lanes go along the output width, or along the height when that pads
    fewer pixels to a multiple of four (KWS's 25 x 5 maps) or only the height's stride fits."""
    assert depthwise_planar(25, 5, 1, 1, 64) == (5 - 1 + 3, 28 + 2, 28)   # transposed
    assert depthwise_planar(48, 48, 1, 1, 16) == (48 - 1 + 3, 48 + 2, 48)
    assert depthwise_planar(24, 24, 2, 2, 32) == (2 * 23 + 3, 2 * 24 + 2, 24)
    assert depthwise_planar(12, 6, 1, 3, 8) == (3 * 5 + 3, 12 + 2, 12)   # only the height's stride
    assert depthwise_planar(12, 12, 3, 3, 8) is None
    assert depthwise_planar(12, 12, 1, 1, 6) is None  # channels not a multiple of 4


def _fc_params(plan: compiler.Plan) -> list[dict[str, object]]:
    header = pf.HEADER.unpack(plan.data)
    ops = [pf.OP.unpack(plan.data, int(header["ops_off"]) + i * pf.OP.size)
           for i in range(int(header["n_ops"]))]
    return [pf.FULLY_CONNECTED.unpack(plan.data, int(op["params_off"])) for op in ops
            if pf.OP_NAMES[int(op["code"])] == "FULLY_CONNECTED"]


# fc_bias: rows of 37 and 19 bytes (the stored rows copied); softmax_head: 16-byte rows on the
# short requantization path (records with biases and requantization words).
FC_MODELS = {"fc_bias": (False, False), "softmax_head": (True,)}


@pytest.mark.parametrize("name", [*FC_MODELS])
@pytest.mark.parametrize("board_name", [*BOARDS, HOST.name])
def test_fc_weights_are_copied_to_sram_where_flash_waits(zoo: dict[str, Path], name: str,
                                                        board_name: str) -> None:
    """The cost rule (ops/fully_connected.py fc_resident_bytes): on a board whose flash has
    wait states every 8-bit fully connected layer gets a copy of its weights in the arena,
    made when the plan loads (its stored rows, or records of four rows with their biases and
    requantization words), clear of every tensor and scratch buffer (it lives for the whole
    graph and between inferences) and counted in the arena; on the host, none."""
    board = BOARDS.get(board_name, HOST)
    graph = read_tflite(zoo[name].read_bytes(), name=name)
    plan = compile_model(zoo[name].read_bytes(), board, name=name)
    params = _fc_params(plan)
    fc_layers = [layer for layer in plan.layers if layer.op == "FULLY_CONNECTED"]
    fc_ops = [op for op in graph.operators if op.name == "FULLY_CONNECTED"]
    assert [fc_layer(op).records for op in fc_ops] == list(FC_MODELS[name])
    header = pf.HEADER.unpack(plan.data)
    tensors = [pf.TENSOR.unpack(plan.data, int(header["tensors_off"]) + i * pf.TENSOR.size)
               for i in range(int(header["n_tensors"]))]
    spans = [(int(t["arena_off"]), int(t["bytes"])) for t in tensors]
    for p, layer, op in zip(params, fc_layers, fc_ops, strict=True):
        size = int(p["resident_bytes"])
        assert size == layer.resident_bytes
        if board.flash_wait_states == 0:
            assert size == 0
            continue
        rows = int(p["out_features"]) * int(p["row_bytes"])
        records = int(p["out_features"]) // 4 * FC_RECORD_EXTRA_BYTES
        assert size == rows + (records if fc_layer(op).records else 0)
        off = int(p["resident_off"])
        assert off % 4 == 0 and off + size <= plan.arena_bytes
        assert all(not _ranges_overlap(off, size, a, n) for a, n in spans)
        spans.append((off, size))  # the next copy must stay clear of this one too
    assert plan.summary()["resident_bytes"] == sum(layer.resident_bytes for layer in fc_layers)


@pytest.mark.parametrize("name", [*FC_MODELS])
def test_resident_weights_give_the_same_bytes_and_a_bad_copy_is_refused(
        zoo: dict[str, Path], name: str) -> None:
    """An L4R5ZI plan (weights copied at load) run by the host build of the runtime, which
    runs any board's plan: the same output bytes as the host's own plan (weights read in
    place), both kernel paths; a plan whose copy does not match its rows, or does not lie in
    the arena, is refused at load."""
    import struct
    import zlib

    import numpy as np

    from bench_firmware.errors import BoardError
    from bench_firmware.host import run_plan

    data = zoo[name].read_bytes()
    resident = compile_model(data, BOARDS["nucleo-l4r5zi"], name=name)
    in_place = compile_model(data, HOST, name=name)
    assert sum(layer.resident_bytes for layer in resident.layers) > 0
    assert sum(layer.resident_bytes for layer in in_place.layers) == 0
    x = np.random.default_rng(3).integers(-128, 128, resident.input_shape, dtype=np.int8)
    out_bytes = int(np.prod(resident.output_shape))
    for kernels in ("dsp", "ref"):
        assert (run_plan(resident.data, x, output_bytes=out_bytes, kernels=kernels)
                == run_plan(in_place.data, x, output_bytes=out_bytes, kernels=kernels))

    header = pf.HEADER.unpack(resident.data)
    first_fc = next(int(op["params_off"]) for op in (
        pf.OP.unpack(resident.data, int(header["ops_off"]) + i * pf.OP.size)
        for i in range(int(header["n_ops"]))) if pf.OP_NAMES[int(op["code"])] ==
        "FULLY_CONNECTED")
    names = [name for name, _ in pf.FULLY_CONNECTED.fields]

    def corrupt(field: str, value: int) -> bytes:
        out = bytearray(resident.data)
        at = first_fc + 4 * names.index(field)
        out[at:at + 4] = struct.pack("<I", value)
        out[12:16] = struct.pack("<I", zlib.crc32(bytes(out[pf.CRC_START:])))
        return bytes(out)

    p = _fc_params(resident)[0]
    with pytest.raises(BoardError, match="malformed operator"):
        run_plan(corrupt("resident_bytes", int(p["resident_bytes"]) + 4), x,
                 output_bytes=out_bytes)
    with pytest.raises(BoardError, match="arena"):
        run_plan(corrupt("resident_off", int(header["arena_bytes"])), x,
                 output_bytes=out_bytes)
