"""FULLY_CONNECTED: validation, TFLM's quantization parameters, packed weights.

TensorFlow Lite Micro (``micro/kernels/fully_connected_common.cc``,
``CalculateOpDataFullyConnected``) derives the multiplier two ways:

* per-tensor filter scale: ``GetQuantizedConvolutionMultipler`` (``kernels/kernel_util.cc``)
  multiplies ``input_scale * filter_scale`` in float32 first, then widens to double and
  divides by ``double(output_scale)``;
* per-channel filter scales: ``double(input_scale) * double(filter_scale[c]) /
  double(output_scale)``, as for convolutions.

The kernel (``reference/integer_ops/fully_connected.h``) treats the input as
``rows = output elements / out_features`` rows of ``in_features`` values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench_firmware import plan_format as pf
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
from bench_firmware.ops.conv import (
    align4,
    bias_array,
    check_filter_zero_points,
    fused_range,
)
from bench_firmware.quantization import quantize_multiplier
from bench_firmware.tflite_model import Operator, Tensor

_WEIGHTS_FORMAT_DEFAULT = 0  # tflite.FullyConnectedOptionsWeightsFormat.DEFAULT


def fc_multipliers(op: Operator, input_t: Tensor, filter_t: Tensor, output_t: Tensor,
                   channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q31 multiplier, shift) per output feature, as ``CalculateOpDataFullyConnected``."""
    scales = np.asarray(filter_t.scales, dtype=np.float32)
    in_scale, out_scale = input_t.scale, output_t.scale
    if len(scales) == 1:
        product = float(np.float32(in_scale) * scales[0])  # float32 product, then double
        mult, shift = quantize_multiplier(product / out_scale)
        return np.full(channels, mult, dtype="<i4"), np.full(channels, shift, dtype="<i4")
    if len(scales) != channels or filter_t.quantized_dimension != 0:
        raise fail(op, f"weights have {len(scales)} scales along dimension "
                       f"{filter_t.quantized_dimension} for {channels} output features")
    mults = np.empty(channels, dtype="<i4")
    shifts = np.empty(channels, dtype="<i4")
    for c in range(channels):
        mults[c], shifts[c] = quantize_multiplier(in_scale * float(scales[c]) / out_scale)
    return mults, shifts


FC_ROWS = 3  # rows of weights the DSP path's inner loop reads at once (fully_connected.c)


def fc_scratch_bytes(op: Operator) -> int:
    """The DSP path's scratch: with 4-bit weights, room for FC_ROWS rows unpacked to int8
    (``FC_ROWS * row_bytes``); 8-bit weights need none."""
    filt = op.inputs[1] if len(op.inputs) > 1 else None
    if filt is None or filt.dtype != "int4" or len(filt.shape) != 2:
        return 0
    return FC_ROWS * align4(filt.shape[1])


# A record of the SRAM copy (fc_resident_bytes): per four rows, their 4 folded biases and 4 x 3
# requantization words besides the rows.
FC_RECORD_EXTRA_BYTES = pf.CONSTANTS["MP_FC_RECORD_EXTRA"]


def fc_resident_bytes(op: Operator, board: Board) -> int:
    """The per-layer cost rule for a fully connected layer's weights: copied into the arena
    once, when the plan loads, on every board whose flash has wait states; 8-bit weights
    only (4-bit rows are unpacked per pass, fc_scratch_bytes). A layer reads each weight
    once per inference (per row of its input), so within an inference no cache saves a flash
    read: from flash every weight pays the wait states (on the L4R5ZI a 32-byte data row is
    four 64-bit reads of 5 wait states each, RM0432 §3.3.4; on the F7 boards a 32-byte L1
    line fill at 7, ST AN4839 §1), from SRAM none. The compiler drops the copy, largest first
    with the other extras, when the arena would not fit the board's SRAM.

    The copy is the stored rows (``out_features * row_bytes``), or, where FcLayer.records
    holds, one record per four rows: their folded biases, their rows interleaved as stored
    (fc_weight_quads), their requantization words ({multiplier, right shift, rounding
    constant} per row, as mp_requant_init makes them), then the rows past the last four as
    they are; the DSP loop then reads each four's operands in one stream
    (``firmware/kernels/fully_connected.c``)."""
    filt = op.inputs[1] if len(op.inputs) > 1 else None
    if (board.flash_wait_states == 0 or filt is None or filt.dtype != "int8"
            or len(filt.shape) != 2):
        return 0
    fc = fc_layer(op)
    plain = fc.out_features * fc.row_bytes
    return plain + (fc.out_features // 4) * FC_RECORD_EXTRA_BYTES if fc.records else plain


# mp_requant.h: the short requantization path needs 2 * acc in int32 and the output offset
# folded into the rounding constant, which holds for shifts down to -22.
_SHORT_ACC_LIMIT = 2**30
_SHORT_MAX_RIGHT = 22


def fc_short_requant(folded_bias: np.ndarray, mults: np.ndarray, shifts: np.ndarray,
                     in_features: int, act_min: int, act_max: int) -> bool:
    """Whether every output of the DSP path may take the short requantization
    (``firmware/include/mp_requant.h``): the DSP loop sums raw int8 products from the folded
    bias, so |acc| <= |folded_bias| + 128 * 128 * in_features, which must stay below 2^30;
    every shift in [-22, -1], every multiplier >= 0, and the clamp the full int8 range (SSAT)."""
    bound = np.abs(folded_bias.astype(np.int64)) + 128 * 128 * in_features
    return bool(act_min == -128 and act_max == 127 and (bound < _SHORT_ACC_LIMIT).all()
                and (shifts <= -1).all() and (shifts >= -_SHORT_MAX_RIGHT).all()
                and (mults >= 0).all())


def fc_weight_quads(rows: np.ndarray) -> np.ndarray:
    """8-bit weight rows (``[out][row_bytes]``, row_bytes a multiple of 4) in the order the DSP
    loop reads them (``firmware/kernels/fully_connected.c``): rows in fours (4q .. 4q + 3),
    each four interleaved word by word (word g of row 4q, of 4q + 1, of 4q + 2, of 4q + 3, then
    word g + 1 ...), so one LDM fetches the next four weights of four rows; the rows past the
    last four follow as they are."""
    out_features, row_bytes = rows.shape
    quads = out_features // 4
    head = rows[:4 * quads].reshape(quads, 4, row_bytes // 4, 4).transpose(0, 2, 1, 3)
    return np.concatenate([head.reshape(-1), rows[4 * quads:].reshape(-1)])


@dataclass(frozen=True)
class FcLayer:
    """A fully connected layer's numbers, as the plan stores them (checked)."""

    in_features: int
    out_features: int
    row_bytes: int  # in_features padded to a word
    weights: np.ndarray  # [out_features][row_bytes] int8, padding 0
    bits: int
    bias: np.ndarray
    folded_bias: np.ndarray  # bias + input_offset * sum(row), int32 wrap-around
    mults: np.ndarray
    shifts: np.ndarray
    input_offset: int
    output_offset: int
    act_min: int
    act_max: int

    @property
    def rq_short(self) -> bool:
        return fc_short_requant(self.folded_bias, self.mults, self.shifts, self.in_features,
                                self.act_min, self.act_max)

    @property
    def records(self) -> bool:
        """Whether a copy in SRAM takes the record layout (fc_resident_bytes): 8-bit rows of
        whole words on the short requantization path, at least one four of rows."""
        return (self.bits == 8 and self.rq_short and self.row_bytes == self.in_features
                and self.out_features >= 4)


def fc_layer(op: Operator) -> FcLayer:
    """The layer's numbers (TFLM's multipliers, the folded bias, the padded rows), or an
    error saying what about the operator is unsupported."""
    if len(op.inputs) not in (2, 3) or len(op.outputs) != 1:
        raise fail(op, f"expected 2 or 3 inputs and 1 output, got {len(op.inputs)} and "
                       f"{len(op.outputs)}")
    input_t = require_int8(op, op.inputs[0], "input")
    filter_t = require_weights(op, op.inputs[1], "weights")
    output_t = require_int8(op, op.outputs[0], "output")
    bias_t = op.inputs[2] if len(op.inputs) == 3 else None
    if filter_t.data is None:
        raise fail(op, f"weights {filter_t.name!r} are not a constant",
                   "the bench firmware keeps weights in flash; they must be constant")
    if op.options.get("weights_format", _WEIGHTS_FORMAT_DEFAULT) != _WEIGHTS_FORMAT_DEFAULT:
        raise fail(op, "shuffled weights formats are not supported")
    if len(filter_t.shape) != 2:
        raise fail(op, f"weights have shape {list(filter_t.shape)}, expected rank 2")
    check_filter_zero_points(op, filter_t)
    out_features, in_features = filter_t.shape
    if in_features == 0 or out_features == 0 or not output_t.shape \
            or output_t.shape[-1] != out_features:
        raise fail(op, f"output shape {list(output_t.shape)} does not end with the weights' "
                       f"{out_features} output features")
    rows = output_t.elements // out_features
    if input_t.elements != rows * in_features:
        raise fail(op, f"input has {input_t.elements} values, expected {rows} rows of "
                       f"{in_features}")
    act_min, act_max = fused_range(op, output_t)
    mults, shifts = fc_multipliers(op, input_t, filter_t, output_t, out_features)
    bias = bias_array(op, bias_t, out_features)

    w = np.asarray(filter_t.data, dtype=np.int8).reshape(out_features, in_features)
    row_bytes = align4(in_features)
    weights = np.zeros((out_features, row_bytes), dtype=np.int8)
    weights[:, :in_features] = w
    input_offset = -input_t.zero_point
    # int32 wrap-around is what the firmware's accumulator does too, so the folded sum equals
    # TFLM's sum of w * (x + input_offset) + bias modulo 2**32 in every case.
    folded = (bias.astype(np.int64) + input_offset * w.astype(np.int64).sum(axis=1))
    folded_bias = ((folded + 2**31) % 2**32 - 2**31).astype("<i4")
    return FcLayer(in_features, out_features, row_bytes, weights, WEIGHT_BITS[filter_t.dtype],
                   bias, folded_bias, np.asarray(mults), np.asarray(shifts), input_offset,
                   output_t.zero_point, act_min, act_max)


@register("FULLY_CONNECTED", scratch=fc_scratch_bytes, resident=fc_resident_bytes)
def compile_fully_connected(op: Operator, ctx: DataSink) -> bytes:
    """Weights as [out][row_bytes] word-aligned rows (8-bit: in fours, fc_weight_quads; 4-bit:
    packed two per byte), plus the bias with the input offset folded in (bias + input_offset *
    sum(row)) for the DSP path."""
    fc = fc_layer(op)
    stored = fc_weight_quads(fc.weights) if fc.bits == 8 else weight_rows(fc.weights, fc.bits)
    return pf.FULLY_CONNECTED.pack(
        input_offset=fc.input_offset, output_offset=fc.output_offset,
        act_min=fc.act_min, act_max=fc.act_max, in_features=fc.in_features,
        out_features=fc.out_features, row_bytes=fc.row_bytes,
        weights_off=ctx.add_data(stored), bias_off=ctx.add_data(fc.bias),
        folded_bias_off=ctx.add_data(fc.folded_bias),
        mult_off=ctx.add_data(fc.mults), shift_off=ctx.add_data(fc.shifts), weight_bits=fc.bits,
        scratch_off=getattr(ctx, "scratch_off", 0),
        scratch_bytes=getattr(ctx, "scratch_bytes", fc_scratch_bytes(op)),
        rq_short=int(fc.rq_short),
        resident_off=getattr(ctx, "resident_off", 0),
        resident_bytes=getattr(ctx, "resident_bytes", 0),
    )
