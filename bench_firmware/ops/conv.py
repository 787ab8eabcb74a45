"""CONV_2D and DEPTHWISE_CONV_2D: validation, TFLM's quantization parameters, packed weights.

Both follow TensorFlow Lite Micro's int8 kernels (``micro/kernels/conv_common.cc``,
``depthwise_conv_common.cc``, ``reference/integer_ops/conv.h``, ``depthwise_conv.h``):

* one multiplier per output channel from ``PopulateConvolutionQuantizationParams``
  (``kernels/kernel_util.cc``): ``double(input_scale) * double(filter_scale) /
  double(output_scale)``, every factor widened from float32 first; per-tensor filters are
  broadcast to every channel, so the kernels only know the per-channel form;
* padding from ``ComputePaddingHeightWidth`` (``kernels/padding.h``) on the output size
  TFLM recomputes from the padding mode, not on the output tensor's shape;
* the filter zero point is ignored by TFLM's conv kernels; we refuse a non-zero one instead
  of silently matching that.
"""

from __future__ import annotations

import numpy as np

from bench_firmware import plan_format as pf
from bench_firmware.backends.virtual.timing.memory import M7_CACHE_BYTES
from bench_firmware.boards import Board
from bench_firmware.ops import (
    WEIGHT_BITS,
    DataSink,
    fail,
    register,
    require_int8,
    require_weights,
    weight_rows,
)
from bench_firmware.quantization import activation_range, quantize_multiplier
from bench_firmware.tflite_model import Operator, Tensor

_U16 = 0xFFFF
_I16 = 0x7FFF


def align4(n: int) -> int:
    return (n + 3) & ~3


def out_size(padding: str, in_size: int, kernel: int, stride: int, dilation: int) -> int:
    """TFLM ``ComputeOutSize`` (kernels/padding.h)."""
    effective = (kernel - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride


def pad_before(in_size: int, kernel: int, stride: int, dilation: int, out: int) -> int:
    """TFLM ``ComputePaddingWithOffset``: the smaller half of the total padding goes first."""
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - in_size, 0)
    return total // 2


def channel_multipliers(op: Operator, input_t: Tensor, filter_t: Tensor, output_t: Tensor,
                        channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (Q31 multiplier, shift) exactly as ``PopulateConvolutionQuantizationParams``."""
    scales = np.asarray(filter_t.scales, dtype=np.float32)
    if len(scales) not in (1, channels):
        raise fail(op, f"filter has {len(scales)} scales for {channels} output channels")
    mults = np.empty(channels, dtype="<i4")
    shifts = np.empty(channels, dtype="<i4")
    in_scale, out_scale = input_t.scale, output_t.scale
    for c in range(channels):
        filter_scale = float(scales[c if len(scales) > 1 else 0])
        real = in_scale * filter_scale / out_scale  # double arithmetic, as TFLM
        mults[c], shifts[c] = quantize_multiplier(real)
    return mults, shifts


def check_filter_zero_points(op: Operator, filter_t: Tensor) -> None:
    zps = filter_t.zero_points
    if zps is not None and np.any(np.asarray(zps) != 0):
        raise fail(op, f"filter {filter_t.name!r} has a non-zero zero point",
                   "int8 weights must be symmetric (zero point 0), as the TFLite converter "
                   "makes them")


def bias_array(op: Operator, bias_t: Tensor | None, channels: int) -> np.ndarray:
    """The int32 bias per output channel (zeros when the op has none)."""
    if bias_t is None:
        return np.zeros(channels, dtype="<i4")
    if bias_t.dtype != "int32":
        raise fail(op, f"bias {bias_t.name!r} is {bias_t.dtype}, not int32")
    if bias_t.data is None:
        raise fail(op, f"bias {bias_t.name!r} is not a constant")
    if bias_t.elements != channels:
        raise fail(op, f"bias has {bias_t.elements} values for {channels} output channels")
    return np.asarray(bias_t.data, dtype="<i4").reshape(channels)


def fused_range(op: Operator, output_t: Tensor) -> tuple[int, int]:
    activation = op.options.get("activation", "NONE")
    try:
        return activation_range(activation, output_t.scale, output_t.zero_point)
    except ValueError as e:
        raise fail(op, f"fused activation {activation} is not supported on int8") from e


def _window(op: Operator, input_t: Tensor, output_t: Tensor, kh: int, kw: int) -> dict[str, int]:
    """Strides, dilations and TFLM's padding, checked against the output tensor."""
    padding = op.options.get("padding", "UNKNOWN")
    if padding not in ("SAME", "VALID"):
        raise fail(op, f"padding {padding} is not supported")
    sh, sw = op.options.get("stride_h", 1), op.options.get("stride_w", 1)
    dh, dw = op.options.get("dilation_h", 1), op.options.get("dilation_w", 1)
    if min(sh, sw, dh, dw) < 1 or max(sh, sw, dh, dw) > _U16:
        raise fail(op, f"strides ({sh}, {sw}) and dilations ({dh}, {dw}) must be in 1..65535")
    _, in_h, in_w, _ = input_t.shape
    _, o_h, o_w, _ = output_t.shape
    oh = out_size(padding, in_h, kh, sh, dh)
    ow = out_size(padding, in_w, kw, sw, dw)
    if (oh, ow) != (o_h, o_w):
        raise fail(op, f"output is {o_h}x{o_w} but {padding} padding gives {oh}x{ow}")
    pt = pad_before(in_h, kh, sh, dh, oh)
    pl = pad_before(in_w, kw, sw, dw, ow)
    if kh > _U16 or kw > _U16 or pt > _I16 or pl > _I16:
        raise fail(op, f"kernel {kh}x{kw} with padding ({pt}, {pl}) is too large")
    return {"kernel_h": kh, "kernel_w": kw, "stride_h": sh, "stride_w": sw,
            "dilation_h": dh, "dilation_w": dw, "pad_top": pt, "pad_left": pl}


def _tensors(op: Operator) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    if len(op.inputs) not in (2, 3) or len(op.outputs) != 1:
        raise fail(op, f"expected 2 or 3 inputs and 1 output, got {len(op.inputs)} and "
                       f"{len(op.outputs)}")
    input_t = require_int8(op, op.inputs[0], "input")
    filter_t = (require_weights if op.name == "CONV_2D" else require_int8)(
        op, op.inputs[1], "filter")
    output_t = require_int8(op, op.outputs[0], "output")
    bias_t = op.inputs[2] if len(op.inputs) == 3 else None
    if filter_t.data is None:
        raise fail(op, f"filter {filter_t.name!r} is not a constant",
                   "the bench firmware keeps weights in flash; they must be constant")
    for t, role in ((input_t, "input"), (filter_t, "filter"), (output_t, "output")):
        if len(t.shape) != 4:
            raise fail(op, f"{role} {t.name!r} has shape {list(t.shape)}, expected rank 4")
    if input_t.shape[0] != output_t.shape[0]:
        raise fail(op, "input and output batch sizes differ")
    check_filter_zero_points(op, filter_t)
    return input_t, filter_t, bias_t, output_t


def conv_direct(op: Operator) -> bool:
    """Whether the DSP conv reads its columns straight from the input: a 1x1 kernel (no
    padding, any stride) over a channel count the word loads cover exactly."""
    _, kh, kw, in_c = op.inputs[1].shape  # type: ignore[union-attr]
    return kh == 1 and kw == 1 and in_c % 4 == 0


def conv_scratch_bytes(op: Operator) -> int:
    """The DSP conv's scratch (``firmware/kernels/conv.c``): the columns of two output pixels,
    widened to int16, ``4 * row_bytes``; their int32 accumulator rows, ``8 * out_c``; the
    requantization table, ``12 * out_c``; and, unless it reads the input directly, one pixel's
    int8 column (``row_bytes``) gathered from the window with padding filled in, and 4 bytes
    after it that a first layer's word-wide row copies may run into."""
    filt = op.inputs[1]
    if filt is None or len(filt.shape) != 4:
        return 0  # compile_conv2d rejects the op
    out_c, kh, kw, in_c = filt.shape
    row_bytes = align4(kh * kw * in_c)
    return (4 * row_bytes if conv_direct(op) else 5 * row_bytes + 4) + 20 * out_c


# Output pixels from which a Cortex-M7 layer copies its weights even when the L1 data cache
# would hold them: the widened loop with its fused output stage then saves more over the
# layer's pixel pairs than the one pass of the copy costs (the MLPerf Tiny networks on the
# F746ZG and F767ZI twins, benchmarks/mlperf_tiny_latency.py: VWW -3 %, IC -1 to -4 %).
M7_COPY_MIN_PIXELS = 64

# Output pixel counts for which the conv copy holds the 8-bit stream rather than the widened one
# on the Cortex-M4 boards (conv_extra_scratch): the four-pixel loop would run its last block
# mostly empty.
QUAD_SHORT_PIXELS = frozenset({5, 6, 9, 10})


def conv_extra_scratch(op: Operator, board: Board) -> int:
    """Room after the DSP conv's scratch to copy its weight stream into SRAM, widened to
    halfword pairs (conv_wide_bytes), and the four-pixel column the widened loop reads
    (``8 * row_bytes``), on the boards where that pays: the per-layer cost rule.

    On the Cortex-M4 boards (F446RE, L4R5ZI) every data read from flash pays its wait states
    (5 at their clocks) unless the eight lines of the ART accelerator's data cache hold it
    (RM0390 and RM0432, chapter 3, the embedded flash memory interface), and the DSP conv
    reads each weight once per pair of output pixels; copied once per layer, each weight
    costs one flash read per inference. The Cortex-M7 boards read flash through their L1
    data cache (4 KiB on the F746ZG, 16 KiB on the F767ZI, ST AN4839 §1), which keeps a
    layer's weights near the core while they fit in half of it (the columns, accumulators
    and outputs take the rest); a larger stream is evicted before the next pixel pair comes
    back to it, so every pixel pair refills every line: the copy pays there too, as it does
    for a smaller stream in a layer of at least M7_COPY_MIN_PIXELS output pixels. A layer of
    one pixel pair reads its weights once anyway: 0. 4-bit weights get the room on every
    board: the DSP path unpacks them into it once per layer (without it the layer runs on the
    reference loops)."""
    filt = op.inputs[1]
    if filt is None or len(filt.shape) != 4 or len(op.outputs[0].shape) != 4:
        return 0
    out_c, kh, kw, in_c = filt.shape
    row_bytes = align4(kh * kw * in_c)
    # The copy holds the stream widened to halfword pairs (conv_wide_bytes): SXTB16 leaves the
    # inner loop, two of its twenty cycles per sixteen MACs on the Cortex-M4 (DDI 0439B Table
    # 3-1: LDM 1 + N, SMLAD 1), for twice the SRAM.
    # Then the four-pixel column, and 8 bytes the Cortex-M7 loop reads past it (conv.c).
    copy = conv_wide_bytes(out_c, row_bytes) + 8 * row_bytes + 8
    _, out_h, out_w, _ = op.outputs[0].shape
    if out_h * out_w in QUAD_SHORT_PIXELS and board.core == "cortex-m4":
        # The widened loop runs four pixels a block: these counts would leave two or three of
        # the last block's four slots empty, which on the Cortex-M4 costs more than the
        # two-pixel loop's SXTB16 (17 cycles per 16 MACs over 12 slots against 20 over 10, for
        # 9 pixels; the Cortex-M7's form of the widened loop is fast enough to waste them).
        # The 8-bit copy still keeps the weights out of flash (and holds unpacked 4-bit
        # weights).
        copy = conv_stream_bytes(out_c, row_bytes)
    if filt.dtype == "int4":
        return copy  # every board: the DSP path reads 4-bit weights unpacked into the copy
    if board.flash_wait_states == 0:
        return 0
    if board.core == "cortex-m7":
        if (conv_stream_bytes(out_c, row_bytes) <= M7_CACHE_BYTES.get(board.mcu, 0) // 2
                and out_h * out_w < M7_COPY_MIN_PIXELS):
            return 0
    elif board.core != "cortex-m4":
        return 0
    return copy if out_h * out_w > 2 else 0


def conv_weight_stream(rows: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """8-bit conv weight rows (``[out_c][row_bytes]``, row_bytes a multiple of 4) and int32
    biases in the order the DSP kernel reads them (``firmware/kernels/conv.c``): channels in
    pairs (2p, 2p + 1), each pair's two biases, then its rows interleaved word by word (word g
    of row 2p, word g of row 2p + 1, then word g + 1 ...), so one LDM fetches both channels'
    next four weights; an odd last row follows the pairs as it is (its bias stays in the bias
    array, which the plan keeps whole for the reference loops)."""
    out_c, row_bytes = rows.shape
    pairs = out_c // 2
    paired = rows[:2 * pairs].reshape(pairs, 2, row_bytes // 4, 4).transpose(0, 2, 1, 3)
    biases = np.asarray(bias[:2 * pairs], dtype="<i4").reshape(pairs, 2).view(np.int8)
    stream = np.concatenate([biases, paired.reshape(pairs, 2 * row_bytes)], axis=1)
    return np.concatenate([stream.reshape(-1), rows[2 * pairs:].reshape(-1)])


def conv_stream_bytes(out_c: int, row_bytes: int) -> int:
    """Bytes of the DSP weight stream (conv_weight_stream), which the SRAM copy holds."""
    return out_c * row_bytes + 8 * (out_c // 2)


def conv_wide_bytes(out_c: int, row_bytes: int) -> int:
    """Bytes of the stream widened to halfword pairs (``firmware/kernels/conv.c``
    conv_widen_stream): per channel pair its two biases, 4 bytes per weight pair and the two
    channels' requantization table words (3 each, ``mp_requant.h``); an odd last row stays
    8-bit. The SRAM copy holds it (conv_extra_scratch)."""
    return (out_c // 2) * (8 + 4 * row_bytes + 24) + (out_c & 1) * row_bytes


@register("CONV_2D", scratch=conv_scratch_bytes, extra=conv_extra_scratch)
def compile_conv2d(op: Operator, ctx: DataSink) -> bytes:
    """OHWI weights, one row per output channel padded to a word so DSP loads stay aligned;
    8-bit rows in the DSP kernel's order (conv_weight_stream), 4-bit rows packed."""
    input_t, filter_t, bias_t, output_t = _tensors(op)
    out_c, kh, kw, in_c = filter_t.shape
    if input_t.shape[3] != in_c:
        groups = input_t.shape[3] / in_c
        raise fail(op, f"grouped convolution ({input_t.shape[3]} input channels, filter depth "
                       f"{in_c}, {groups:g} groups) is not supported",
                   "use groups=1 or a depthwise convolution")
    if output_t.shape[3] != out_c:
        raise fail(op, f"output has {output_t.shape[3]} channels, filter has {out_c}")
    if filter_t.scales is not None and len(filter_t.scales) > 1 \
            and filter_t.quantized_dimension != 0:
        raise fail(op, "per-channel filter scales must be along dimension 0")
    window = _window(op, input_t, output_t, kh, kw)
    act_min, act_max = fused_range(op, output_t)
    mults, shifts = channel_multipliers(op, input_t, filter_t, output_t, out_c)
    bias = bias_array(op, bias_t, out_c)

    row = kh * kw * in_c
    row_bytes = align4(row)
    weights = np.zeros((out_c, row_bytes), dtype=np.int8)
    weights[:, :row] = np.asarray(filter_t.data, dtype=np.int8).reshape(out_c, row)
    bits = WEIGHT_BITS[filter_t.dtype]
    return pf.CONV.pack(
        input_offset=-input_t.zero_point, output_offset=output_t.zero_point,
        act_min=act_min, act_max=act_max, **window, depth_multiplier=1, row_bytes=row_bytes,
        weight_bits=bits,
        weights_off=ctx.add_data(conv_weight_stream(weights, bias) if bits == 8
                                 else weight_rows(weights, bits)),
        bias_off=ctx.add_data(bias),
        mult_off=ctx.add_data(mults), shift_off=ctx.add_data(shifts),
        scratch_off=getattr(ctx, "scratch_off", 0),
        scratch_bytes=getattr(ctx, "scratch_bytes", conv_scratch_bytes(op)),
    )


def depthwise_dsp_block(weights: np.ndarray, bias: np.ndarray, channels: int) -> np.ndarray:
    """The DSP depthwise kernel's data for depth multiplier 1, in the order it reads it: per
    group of four channels, each tap's four weights (``[kh*kw][4]`` bytes), then the group's
    four biases (``i32[4]``), so a group's flash reads are one sequential stream. Full groups
    only; the kernel does the last ``channels % 4`` from the plain arrays."""
    groups = channels // 4
    taps = weights.shape[0]
    w = weights[:, :groups * 4].reshape(taps, groups, 4).transpose(1, 0, 2)
    b = bias[:groups * 4].astype("<i4").reshape(groups, 4)
    block = np.concatenate([w.reshape(groups, taps * 4).view(np.uint8),
                            b.view(np.uint8)], axis=1)
    return np.ascontiguousarray(block)


def depthwise_scratch_bytes(op: Operator) -> int:
    """The DSP depthwise kernel's int32 accumulators of one output row (``out_w * out_c``)
    and its requantization table, 12 bytes per channel (``firmware/kernels/depthwise_conv.c``);
    only depth multiplier 1 takes that path."""
    filt = op.inputs[1]
    if filt is None or len(filt.shape) != 4 or op.options.get("depth_multiplier", 1) != 1:
        return 0
    out_c = filt.shape[3]
    out_w = op.outputs[0].shape[2] if len(op.outputs[0].shape) == 4 else 1
    return (4 * out_w + 12) * out_c if out_c >= 4 else 0


def depthwise_extra_scratch(op: Operator, board: Board) -> int:
    """Room after the DSP depthwise kernel's scratch (``firmware/kernels/depthwise_conv.c``).

    A 3x3 kernel (dilation 1, depth multiplier 1, horizontal stride 1 or 2, channels a multiple
    of 4) gets the planar path's room: the input widened to int16, one row of ``w2`` halfwords
    per padded row and channel (``ph * channels * w2 * 2`` bytes, ``ph = (out_h - 1) * stride_h
    + 3``; with ``opad`` = out_w rounded up to 4, ``w2 = opad + 2`` at stride 1, ``2 * opad + 2``
    at stride 2: the columns the last group of four pixels reads), the weight pairs, bias and
    requantization words (40 bytes per channel) and channel-major accumulators (``4 * opad``
    per channel, for layers whose requantization misses the short path): its lanes hold
    neighbouring columns (or rows: ``depthwise_planar`` picks the side), two MACs per multiply
    instead of one. Other padded 3x3 layers get a band of three padded input rows,
    ``3 * ((out_w - 1) * stride_w + 3) * channels`` bytes, so every pixel takes the unrolled 3x3
    path instead of the border pixels looping over their in-bounds taps. Every board gains; 0
    for other kernels and for unpadded layers outside the planar path."""
    filt = op.inputs[1]
    if depthwise_scratch_bytes(op) == 0 or filt is None or len(op.outputs[0].shape) != 4:
        return 0
    _, kh, kw, channels = filt.shape
    opts = op.options
    if (kh, kw) != (3, 3) or opts.get("dilation_h", 1) != 1 or opts.get("dilation_w", 1) != 1:
        return 0
    _, out_h, out_w, _ = op.outputs[0].shape
    stride_h, stride_w = int(opts.get("stride_h", 1)), int(opts.get("stride_w", 1))
    del board  # the same cost on every core
    planar = depthwise_planar(out_h, out_w, stride_h, stride_w, channels)
    if planar is not None:
        ph, w2, opad = planar
        return (ph * w2 * 2 + 40 + 4 * opad) * channels
    if opts.get("padding") != "SAME":
        return 0
    return 3 * ((out_w - 1) * stride_w + 3) * channels


def depthwise_planar(out_h: int, out_w: int, stride_h: int, stride_w: int,
                     channels: int) -> tuple[int, int, int] | None:
    """The planar 3x3 path's image shape (``firmware/kernels/depthwise_conv.c``
    dw_planar_shape): padded rows, halfwords per image row, padded lane count; None when the
    path does not apply. The lanes run along the output width, or along the height when that
    computes fewer padded pixels (or only the height's stride is 1 or 2)."""
    if channels % 4:
        return None
    rows_ok, cols_ok = stride_w in (1, 2), stride_h in (1, 2)
    if not rows_ok and not cols_ok:
        return None
    along_rows = out_h * ((out_w + 3) & ~3)
    along_cols = out_w * ((out_h + 3) & ~3)
    if not rows_ok or (cols_ok and along_cols < along_rows):
        out_h, out_w, stride_h, stride_w = out_w, out_h, stride_w, stride_h
    ph = (out_h - 1) * stride_h + 3
    opad = (out_w + 3) & ~3
    w2 = opad + 2 if stride_w == 1 else 2 * opad + 2
    return ph, w2, opad


@register("DEPTHWISE_CONV_2D", scratch=depthwise_scratch_bytes, extra=depthwise_extra_scratch)
def compile_depthwise_conv2d(op: Operator, ctx: DataSink) -> bytes:
    """TFLite's [1][kh][kw][out_c] weights with each tap's channels padded to a word, so the
    DSP path's four-channel loads are aligned."""
    input_t, filter_t, bias_t, output_t = _tensors(op)
    one, kh, kw, out_c = filter_t.shape
    in_c = input_t.shape[3]
    if one != 1:
        raise fail(op, f"filter shape {list(filter_t.shape)} does not start with 1")
    if output_t.shape[3] != out_c:
        raise fail(op, f"output has {output_t.shape[3]} channels, filter has {out_c}")
    multiplier = op.options.get("depth_multiplier", 1)
    if in_c * multiplier != out_c:
        raise fail(op, f"{in_c} input channels x depth multiplier {multiplier} != {out_c} "
                       "output channels")
    if multiplier > _U16:
        raise fail(op, f"depth multiplier {multiplier} is too large")
    if filter_t.scales is not None and len(filter_t.scales) > 1 \
            and filter_t.quantized_dimension != 3:
        raise fail(op, "per-channel filter scales must be along dimension 3")
    window = _window(op, input_t, output_t, kh, kw)
    act_min, act_max = fused_range(op, output_t)
    mults, shifts = channel_multipliers(op, input_t, filter_t, output_t, out_c)
    bias = bias_array(op, bias_t, out_c)

    tap_bytes = align4(out_c)
    weights = np.zeros((kh * kw, tap_bytes), dtype=np.int8)
    weights[:, :out_c] = np.asarray(filter_t.data, dtype=np.int8).reshape(kh * kw, out_c)
    dsp_off = 0
    if multiplier == 1 and out_c >= 4:
        dsp_off = ctx.add_data(depthwise_dsp_block(weights, bias, out_c))
    return pf.CONV.pack(
        input_offset=-input_t.zero_point, output_offset=output_t.zero_point,
        act_min=act_min, act_max=act_max, **window, depth_multiplier=multiplier,
        weight_bits=8, row_bytes=tap_bytes,
        weights_off=ctx.add_data(weights), bias_off=ctx.add_data(bias),
        mult_off=ctx.add_data(mults), shift_off=ctx.add_data(shifts),
        dsp_off=dsp_off, scratch_off=getattr(ctx, "scratch_off", 0),
        scratch_bytes=getattr(ctx, "scratch_bytes", depthwise_scratch_bytes(op)),
    )
