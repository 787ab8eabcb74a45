"""The plan: the binary a board runs. One definition, used by the compiler (Python) and,
through the generated header ``firmware/include/mp_plan.h``, by the firmware (C).

Layout (all little-endian, every section 8-byte aligned, offsets from the plan's start)::

    header     mp_plan_header_t
    tensors    mp_tensor_t[n_tensors]      activation tensors (arena offsets), model I/O
    ops        mp_op_t[n_ops]
    data       op parameter structs, tensor index lists, weights, biases, multipliers

The CRC (CRC-32 as zlib computes it) covers every byte after the ``crc32`` field up to
``total_bytes``. The firmware refuses a plan whose magic, version, board, size or CRC is wrong.

Run ``python -m bench_firmware.plan_format`` to regenerate the C header after a change;
``tests/unit/test_plan_format.py`` fails when the committed header is stale.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"MCUP"
VERSION = 6  # 2: CONV_2D / DEPTHWISE_CONV_2D scratch buffers and the depthwise DSP block;
#              3: 4-bit weights (weight_bits) and FULLY_CONNECTED scratch;
#              4: 8-bit CONV_2D weights in the DSP kernel's pair order, 12-byte
#                 requantization tables in the conv scratch, ADD scratch;
#              5: 8-bit FULLY_CONNECTED rows in fours, interleaved word by word, and
#                 its rq_short flag;
#              6: FULLY_CONNECTED weights copied into the arena when the plan loads
#                 (resident_off, resident_bytes)
ALIGN = 8  # every section and every data item starts on this boundary

# C type → struct format character
_FMT = {"u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "f32": "f"}
_CTYPE = {
    "u8": "uint8_t", "i8": "int8_t", "u16": "uint16_t", "i16": "int16_t",
    "u32": "uint32_t", "i32": "int32_t", "f32": "float",
}


@dataclass(frozen=True)
class Struct:
    """A C struct with fixed-width fields and no implicit padding (checked)."""

    c_name: str
    fields: tuple[tuple[str, str], ...]  # (name, type); type may be "u16[4]"
    doc: str = ""

    def _items(self) -> list[tuple[str, str, int]]:
        items = []
        for name, typ in self.fields:
            count = 1
            if "[" in typ:
                typ, rest = typ.split("[")
                count = int(rest.rstrip("]"))
            items.append((name, typ, count))
        return items

    @property
    def format(self) -> str:
        return "<" + "".join(f"{n}{_FMT[t]}" if n > 1 else _FMT[t] for _, t, n in self._items())

    @property
    def size(self) -> int:
        return struct.calcsize(self.format)

    def check_layout(self) -> None:
        """Natural alignment for every field, so C adds no padding."""
        offset = 0
        for name, typ, count in self._items():
            width = struct.calcsize(_FMT[typ])
            if offset % width:
                raise AssertionError(f"{self.c_name}.{name} at {offset} is misaligned")
            offset += width * count
        if offset % 4:
            raise AssertionError(f"{self.c_name} size {offset} is not a multiple of 4")

    def pack(self, **values: object) -> bytes:
        args: list[object] = []
        names = {name for name, _, _ in self._items()}
        unknown = set(values) - names
        if unknown:
            raise TypeError(f"{self.c_name}: unknown fields {sorted(unknown)}")
        for name, _typ, count in self._items():
            value = values.get(name, [0] * count if count > 1 else 0)
            if count > 1:
                seq = list(value)  # type: ignore[call-overload]
                if len(seq) != count:
                    raise ValueError(f"{self.c_name}.{name} needs {count} values")
                args.extend(seq)
            else:
                args.append(value)
        return struct.pack(self.format, *args)

    def unpack(self, data: bytes, offset: int = 0) -> dict[str, object]:
        raw = struct.unpack_from(self.format, data, offset)
        out: dict[str, object] = {}
        i = 0
        for name, _typ, count in self._items():
            out[name] = list(raw[i : i + count]) if count > 1 else raw[i]
            i += count
        return out

    def c_definition(self) -> str:
        lines = [f"/* {self.doc} */"] if self.doc else []
        lines.append("typedef struct {")
        for name, typ, count in self._items():
            suffix = f"[{count}]" if count > 1 else ""
            lines.append(f"  {_CTYPE[typ]} {name}{suffix};")
        lines.append(f"}} {self.c_name};")
        lines.append(f"MP_STATIC_ASSERT(sizeof({self.c_name}) == {self.size}, {self.c_name}_size);")
        return "\n".join(lines)


HEADER = Struct("mp_plan_header_t", (
    ("magic", "u8[4]"),
    ("version", "u16"),
    ("header_bytes", "u16"),
    ("total_bytes", "u32"),
    ("crc32", "u32"),
    ("model_id", "u8[8]"),       # first 8 bytes of the .tflite's SHA-256
    ("board_code", "u16"),       # bench_firmware.boards.Board.code; 0 = host build
    ("n_tensors", "u16"),
    ("n_ops", "u16"),
    ("input_tensor", "u16"),
    ("output_tensor", "u16"),
    ("flags", "u16"),
    ("arena_bytes", "u32"),      # from the memory planner
    ("tensors_off", "u32"),
    ("ops_off", "u32"),
    ("macs_lo", "u32"),          # total MACs, for the firmware's own report
    ("macs_hi", "u32"),
), "Plan header; the CRC covers bytes [16, total_bytes).")
CRC_START = 16

TENSOR = Struct("mp_tensor_t", (
    ("arena_off", "u32"),
    ("bytes", "u32"),
    ("shape", "u16[4]"),         # NHWC, left-padded with 1s to rank 4
    ("type", "u8"),              # MP_TYPE_*
    ("rank", "u8"),              # the rank in the .tflite (1..4)
    ("reserved", "u16"),
    ("zero_point", "i32"),
    ("scale", "f32"),
), "An activation tensor in the arena.")

OP = Struct("mp_op_t", (
    ("code", "u16"),             # MP_OP_*
    ("n_inputs", "u16"),
    ("output", "u16"),           # tensor index
    ("reserved", "u16"),
    ("inputs_off", "u32"),       # u16[n_inputs] tensor indices in the data section
    ("params_off", "u32"),       # the op's parameter struct in the data section (0: none)
), "One operator, in execution order.")

# Per-op parameter structs. Per-tensor quantization is expanded to per-channel arrays.
CONV = Struct("mp_conv_params_t", (
    ("input_offset", "i32"),     # -input zero point
    ("output_offset", "i32"),    # output zero point
    ("act_min", "i32"),
    ("act_max", "i32"),
    ("kernel_h", "u16"),
    ("kernel_w", "u16"),
    ("stride_h", "u16"),
    ("stride_w", "u16"),
    ("dilation_h", "u16"),
    ("dilation_w", "u16"),
    ("pad_top", "i16"),
    ("pad_left", "i16"),
    ("depth_multiplier", "u16"), # depthwise only
    ("weight_bits", "u16"),      # 8, or 4 (conv only): rows packed two weights per byte
                                 # (ops/__init__.py weight_rows), ceil(row_bytes / 8) * 4
                                 # bytes each
    ("row_bytes", "u32"),        # conv: weights per output channel's OHWI row, padded to 4
                                 # (bytes at 8 bits); dw: bytes per kernel tap (out_c
                                 # padded to 4)
    ("weights_off", "u32"),      # conv: rows in pair order (ops/conv.py conv_weight_stream),
                                 # 4-bit: [out_c] packed rows;
                                 # dw: [kh][kw][row_bytes]
    ("bias_off", "u32"),         # i32[out_c]
    ("mult_off", "u32"),         # i32[out_c]
    ("shift_off", "u32"),        # i32[out_c]
    ("scratch_off", "u32"),      # arena offset of the DSP path's scratch buffer (planner)
    ("scratch_bytes", "u32"),    # its size; 0: the op needs none
    ("dsp_off", "u32"),          # dw, depth multiplier 1: per 4 channels, [kh*kw][4] weights
                                 # then bias[4] (i32); 0: none
), "CONV_2D and DEPTHWISE_CONV_2D.")

FULLY_CONNECTED = Struct("mp_fc_params_t", (
    ("input_offset", "i32"),
    ("output_offset", "i32"),
    ("act_min", "i32"),
    ("act_max", "i32"),
    ("in_features", "u32"),
    ("out_features", "u32"),
    ("row_bytes", "u32"),        # weights per output row (in_features padded to 4; bytes
                                 # at 8 bits)
    ("weights_off", "u32"),      # [out_features][row_bytes], 4-bit: packed rows
    ("bias_off", "u32"),         # i32[out_features]
    ("folded_bias_off", "u32"),  # i32[out_features]: bias + input_offset * sum(row)
    ("mult_off", "u32"),         # i32[out_features]
    ("shift_off", "u32"),        # i32[out_features]
    ("weight_bits", "u32"),      # 8, or 4: rows packed two weights per byte (weight_rows)
    ("scratch_off", "u32"),      # arena offset of the DSP path's scratch (4-bit weights:
    ("scratch_bytes", "u32"),    # rows unpacked there); 0 bytes: none
    ("rq_short", "u32"),         # 1: every output's requantization takes the short path
                                 # (mp_requant.h; fully_connected.py fc_short_requant)
    ("resident_off", "u32"),     # arena offset where the runtime copies the 8-bit weights
    ("resident_bytes", "u32"),   # when the plan loads, for the DSP path to read from SRAM
                                 # (fully_connected.py fc_resident_bytes); 0 bytes: none
), "FULLY_CONNECTED; rows = input elements / in_features.")

POOL = Struct("mp_pool_params_t", (
    ("act_min", "i32"),
    ("act_max", "i32"),
    ("filter_h", "u16"),
    ("filter_w", "u16"),
    ("stride_h", "u16"),
    ("stride_w", "u16"),
    ("pad_top", "i16"),
    ("pad_left", "i16"),
), "AVERAGE_POOL_2D and MAX_POOL_2D.")

ADD = Struct("mp_add_params_t", (
    ("input1_offset", "i32"),
    ("input2_offset", "i32"),
    ("output_offset", "i32"),
    ("left_shift", "i32"),
    ("input1_mult", "i32"),
    ("input1_shift", "i32"),
    ("input2_mult", "i32"),
    ("input2_shift", "i32"),
    ("output_mult", "i32"),
    ("output_shift", "i32"),
    ("act_min", "i32"),
    ("act_max", "i32"),
    ("input2_elements", "u32"),  # input2 repeats every this many output elements (1: scalar)
    ("input2_const_off", "u32"), # input2 is constant data at this plan offset; 0: an input
    ("input1_slot", "u32"),      # which of the op's inputs is input1 (0 or 1); input2 the other
    ("scratch_off", "u32"),      # arena offset of the DSP path's lookup tables (ops/add.py)
    ("scratch_bytes", "u32"),    # 0: none, the kernel scales every element
), "ADD (int8); input1 has the output's shape, input2 may broadcast its trailing dims.")

SOFTMAX = Struct("mp_softmax_params_t", (
    ("input_mult", "i32"),
    ("input_left_shift", "i32"),
    ("diff_min", "i32"),
    ("depth", "u32"),            # size of the last dimension
), "SOFTMAX (int8 in, int8 out with scale 1/256 and zero point -128).")

ACTIVATION = Struct("mp_activation_params_t", (
    ("input_offset", "i32"),
    ("output_offset", "i32"),
    ("mult", "i32"),
    ("shift", "i32"),
    ("act_min", "i32"),
    ("act_max", "i32"),
    ("mode", "u32"),             # MP_ACT_REQUANT: requantize then clamp; MP_ACT_CLAMP: clamp only
), "RELU and RELU6.")

PAD = Struct("mp_pad_params_t", (
    ("pad_value", "i32"),
    ("before", "u16[4]"),
    ("after", "u16[4]"),
), "PAD / PADV2 on rank-4 NHWC tensors.")

MEAN = Struct("mp_mean_params_t", (
    ("input_offset", "i32"),
    ("output_offset", "i32"),
    ("mult", "i32"),
    ("shift", "i32"),
    ("count", "u32"),            # elements averaged per output (H * W)
    ("reserved", "u32"),
), "MEAN over H and W of an NHWC tensor; mult and shift include 1 / count.")

CONCATENATION = Struct("mp_concat_params_t", (
    ("axis", "u32"),             # in the rank-4 NHWC view
    ("reserved", "u32"),
), "CONCATENATION; all inputs share the output's quantization.")

QUANTIZE = Struct("mp_quantize_params_t", (
    ("input_offset", "i32"),
    ("output_offset", "i32"),
    ("mult", "i32"),             # int8 → int8 requantization
    ("shift", "i32"),
    ("scale", "f32"),            # float → int8: 1/scale is not used, TFLM divides
    ("mode", "u32"),             # MP_QUANT_FROM_FLOAT | MP_QUANT_REQUANT
), "QUANTIZE.")

DEQUANTIZE = Struct("mp_dequantize_params_t", (
    ("zero_point", "i32"),
    ("scale", "f32"),
), "DEQUANTIZE int8 → float32.")

STRUCTS = (HEADER, TENSOR, OP, CONV, FULLY_CONNECTED, POOL, ADD, SOFTMAX, ACTIVATION, PAD,
           MEAN, CONCATENATION, QUANTIZE, DEQUANTIZE)

# Operator codes in the plan (our own numbering, stable across versions).
OP_CODES: dict[str, int] = {
    "CONV_2D": 1,
    "DEPTHWISE_CONV_2D": 2,
    "FULLY_CONNECTED": 3,
    "AVERAGE_POOL_2D": 4,
    "MAX_POOL_2D": 5,
    "ADD": 6,
    "PAD": 7,
    "RESHAPE": 8,
    "SOFTMAX": 9,
    "RELU": 10,
    "RELU6": 11,
    "MEAN": 12,
    "CONCATENATION": 13,
    "QUANTIZE": 14,
    "DEQUANTIZE": 15,
}
OP_NAMES = {code: name for name, code in OP_CODES.items()}

TYPE_CODES = {"int8": 1, "float32": 2, "int32": 3}
CONSTANTS = {
    "MP_PLAN_VERSION": VERSION,
    "MP_PLAN_CRC_START": CRC_START,
    "MP_PLAN_ALIGN": ALIGN,
    "MP_TYPE_INT8": 1,
    "MP_TYPE_FLOAT32": 2,
    "MP_TYPE_INT32": 3,
    "MP_ACT_REQUANT": 0,
    "MP_ACT_CLAMP": 1,
    "MP_QUANT_FROM_FLOAT": 0,
    "MP_QUANT_REQUANT": 1,
    # A record of a fully connected layer's SRAM copy (ops/fully_connected.py
    # fc_resident_bytes) holds, besides its four rows, their 4 folded biases and 4 x 3
    # requantization words.
    "MP_FC_RECORD_EXTRA": 4 * 4 + 4 * 3 * 4,
    "MP_FLAG_FLOAT_INPUT": 1,
    "MP_FLAG_FLOAT_OUTPUT": 2,
    # Bits 2-4 of the header's flags: the plan's EEMBC model name (MLPERF_NAMES), which
    # `profile%` answers as m-model-[...]; 0: none, the model id is answered instead.
    "MP_FLAG_MLPERF_SHIFT": 2,
    "MP_FLAG_MLPERF_MASK": 0x1C,
}

# The EEMBC / MLPerf Tiny model names a DUT answers in `m-model-[...]`, by their code in the
# flags (the index here; 0 is none). The MLPerf Tiny runner picks its test script by this name
# (mlcommons/tiny benchmark/runner tests_performance.yaml / tests_accuracy.yaml keys;
# benchmark/api/internally_implemented.h EE_MODEL_VERSION_*). The firmware keeps the same
# table (firmware/protocol/cmd_mlperf.c); append only.
MLPERF_NAMES = ("", "kws01", "vww01", "ic01", "ad01")


def mlperf_flags(name: str | None) -> int:
    """The header flag bits for an EEMBC model name (0 for None or "")."""
    if not name:
        return 0
    try:
        code = MLPERF_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown MLPerf Tiny model name {name!r}; use one of "
                         f"{', '.join(MLPERF_NAMES[1:])}") from None
    return code << CONSTANTS["MP_FLAG_MLPERF_SHIFT"]


def mlperf_name(flags: int) -> str | None:
    """The EEMBC model name in a header's flags, or None."""
    code = (flags & CONSTANTS["MP_FLAG_MLPERF_MASK"]) >> CONSTANTS["MP_FLAG_MLPERF_SHIFT"]
    return MLPERF_NAMES[code] if 0 < code < len(MLPERF_NAMES) else None


def render_c_header() -> str:
    parts = [
        "/* Generated by `python -m bench_firmware.plan_format` from plan_format.py: do not edit.",
        " * The plan format shared by the host compiler and the firmware. */",
        "#ifndef MP_PLAN_H",
        "#define MP_PLAN_H",
        "",
        "#include <stdint.h>",
        "",
        "#define MP_STATIC_ASSERT(cond, name) \\",
        "  typedef char mp_static_assert_##name[(cond) ? 1 : -1]",
        "",
        '#define MP_PLAN_MAGIC "' + MAGIC.decode() + '"',
    ]
    parts += [f"#define {name} {value}" for name, value in CONSTANTS.items()]
    parts.append("")
    parts += [f"#define MP_OP_{name} {code}" for name, code in OP_CODES.items()]
    parts.append(f"#define MP_OP_MAX {max(OP_CODES.values())}")
    parts.append("")
    for s in STRUCTS:
        s.check_layout()
        parts.append(s.c_definition())
        parts.append("")
    parts.append("#endif /* MP_PLAN_H */")
    return "\n".join(parts) + "\n"


HEADER_PATH = Path(__file__).parent / "firmware" / "include" / "mp_plan.h"

if __name__ == "__main__":
    HEADER_PATH.write_text(render_c_header())
