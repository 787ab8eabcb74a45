"""The plan compiler: an int8 ``.tflite`` → the plan a board runs (see ``plan_format``).

    plan = compile_model(Path("kws.tflite").read_bytes(), get_board("nucleo-f446re"))
    Path("kws.plan").write_bytes(plan.data)

No TensorFlow import: the flatbuffer is read with the ``tflite`` schema package.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from bench_firmware import ops as op_registry
from bench_firmware import plan_format as pf
from bench_firmware.analysis import layer_macs, layer_ops, param_bytes
from bench_firmware.boards import Board
from bench_firmware.errors import (
    CorruptModelError,
    DoesNotFitError,
    McuprofError,
    ModelError,
    NotInt8Error,
    PlanError,
    UnsupportedOpError,
)
from bench_firmware.planner import Buffer, align_up, plan_memory, plan_with_scratch
from bench_firmware.tflite_model import Graph, Tensor, read_tflite

op_registry.load_all()

_SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK"}
# Builtins that run on another op's kernel: PADV2 is PAD with an explicit fill value.
_OP_ALIASES = {"PADV2": "PAD"}
_INT8_RECIPE = (
    "Convert it with full-integer quantization: converter.optimizations = "
    "[tf.lite.Optimize.DEFAULT], a representative_dataset, converter.target_spec."
    "supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8], inference_input_type and "
    "inference_output_type = tf.int8."
)


@dataclass
class Layer:
    index: int
    op: str
    macs: int
    ops: int
    param_bytes: int
    plan_bytes: int
    output_shape: tuple[int, ...]
    scratch_bytes: int = 0  # the kernel's arena scratch buffer (part of arena_bytes)
    resident_bytes: int = 0  # its weights copied into the arena at load (part of arena_bytes)

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index, "op": self.op, "macs": self.macs, "ops": self.ops,
            "param_bytes": self.param_bytes, "plan_bytes": self.plan_bytes,
            "scratch_bytes": self.scratch_bytes, "resident_bytes": self.resident_bytes,
            "output_shape": list(self.output_shape),
        }


@dataclass
class Plan:
    data: bytes
    board: Board
    model_id: str  # 16 hex digits: the first 8 bytes of the .tflite's SHA-256
    sha256: str
    arena_bytes: int  # activations and kernel scratch buffers, as planned
    input_shape: tuple[int, ...]
    input_dtype: str
    output_shape: tuple[int, ...]
    output_dtype: str
    layers: list[Layer] = field(default_factory=list)
    activation_bytes: int = 0  # the arena the activations alone would need
    mlperf_name: str | None = None  # EEMBC model name `profile%` answers (kws01, ...)

    @property
    def plan_bytes(self) -> int:
        return len(self.data)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def ops(self) -> int:
        return sum(layer.ops for layer in self.layers)

    @property
    def param_bytes(self) -> int:
        return sum(layer.param_bytes for layer in self.layers)

    def summary(self) -> dict[str, object]:
        """The fields ``mcuprof analyze --json`` prints."""
        return {
            "board": self.board.name,
            "model_id": self.model_id,
            "mlperf_name": self.mlperf_name,
            "sha256": self.sha256,
            "ops": self.ops,
            "macs": self.macs,
            "param_bytes": self.param_bytes,
            "plan_bytes": self.plan_bytes,
            "arena_bytes": self.arena_bytes,
            "activation_arena_bytes": self.activation_bytes,
            "scratch_bytes": max((layer.scratch_bytes for layer in self.layers), default=0),
            "resident_bytes": sum(layer.resident_bytes for layer in self.layers),
            "arena_capacity": self.board.arena_capacity,
            "model_region_bytes": self.board.model_region_bytes,
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "output_shape": list(self.output_shape),
            "output_dtype": self.output_dtype,
            "layers": [layer.as_dict() for layer in self.layers],
        }


class _DataSection:
    """The plan's data section; offsets are absolute in the finished plan.

    The firmware only reads it, so identical arrays are stored once: a second array equal to
    an earlier one (weights of identical layers, the per-channel multipliers of layers with
    the same scales, equal parameter records) gets the earlier one's offset, as the TFLite
    converter shares equal constant buffers."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.buf = bytearray()
        self.scratch_off = 0  # the current op's scratch buffer in the arena
        self.scratch_bytes = 0  # and its size
        self.resident_off = 0  # where the runtime copies the current op's weights at load
        self.resident_bytes = 0  # and their size (0: they stay in flash)
        self._stored: dict[bytes, int] = {}  # array -> its offset
        self.shared_bytes = 0  # bytes that equal arrays did not take again

    def add_data(self, data: bytes | np.ndarray, align: int = pf.ALIGN) -> int:
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        earlier = self._stored.get(raw)
        if earlier is not None and earlier % align == 0:
            self.shared_bytes += len(raw)
            return earlier
        pad = (-(self.base + len(self.buf))) % align
        self.buf += b"\0" * pad
        offset = self.base + len(self.buf)
        self.buf += raw
        self._stored.setdefault(raw, offset)
        return offset


def extra_scratch_ops(graph: Graph, board: Board, kernel_scratch: dict[int, int]
                      ) -> dict[int, int]:
    """The scratch beyond what their kernels need that operators get on ``board``, by operator
    index: each op spec's ``extra`` says what makes its kernel faster there (the per-layer
    cost rules: ``bench_firmware/ops/conv.py`` conv_extra_scratch and
    depthwise_extra_scratch). Only kernels with a scratch buffer (the DSP paths) get any.
    The caller drops extras, largest first, while the arena would not fit the board's SRAM;
    an extra moves cycles only, the outputs are the same bytes."""
    extras = {}
    for i, op in enumerate(graph.operators):
        if kernel_scratch[i] > 0:
            size = op_registry.REGISTRY[op.name].extra_scratch_bytes(op, board)
            if size > 0:
                extras[i] = size
    return extras


def _check_types(graph: Graph) -> None:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ModelError(
            f"the model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
            "the bench firmware runs single-input, single-output models"
        )
    for op in graph.operators:
        if op.name not in op_registry.REGISTRY:
            continue  # _check_ops names it; its operand types say nothing useful
        for t in op.inputs:
            if t is None or t.is_constant:
                continue
            if t.dtype == "float32" and op.name != "QUANTIZE":
                raise NotInt8Error(
                    f"this is a float model: tensor {t.name!r} (input of operator {op.index}, "
                    f"{op.name}) is float32. mcuprof runs int8 models. {_INT8_RECIPE}",
                    tensor=t.name, dtype=t.dtype,
                )
            if t.dtype not in ("int8", "float32", "int32"):  # int32: computed shapes
                raise NotInt8Error(
                    f"tensor {t.name!r} (input of operator {op.index}, {op.name}) is {t.dtype}; "
                    f"the bench firmware runs int8 activations only (no 16x8 or uint8 models). "
                    f"{_INT8_RECIPE}",
                    tensor=t.name, dtype=t.dtype,
                )


def _check_ops(graph: Graph) -> None:
    for op in graph.operators:
        if op.name in op_registry.REGISTRY:
            continue
        supported = ", ".join(sorted(op_registry.REGISTRY))
        hint = ""
        if op.name in _SHAPE_OPS:
            hint = (" It computes a shape at run time, which the converter emits for a dynamic "
                    "batch size: build the Keras model with keras.Input(shape, batch_size=1).")
        raise UnsupportedOpError(
            f"operator {op.index} is {op.name}, which the bench firmware does not implement."
            f"{hint} Supported operators: {supported}.",
            op=op.name, index=op.index,
        )


def _activation_tensors(graph: Graph) -> tuple[list[Tensor], dict[int, Buffer]]:
    """Non-constant tensors in first-use order, with their lifetimes."""
    n_ops = len(graph.operators)
    order: list[Tensor] = []
    life: dict[int, Buffer] = {}

    def touch(t: Tensor, i: int) -> None:
        if t.index not in life:
            order.append(t)
            life[t.index] = Buffer(key=t.index, size=t.nbytes, first=i, last=i)
        buf = life[t.index]
        buf.first, buf.last = min(buf.first, i), max(buf.last, i)

    for t in graph.inputs:
        touch(t, 0)
    for i, op in enumerate(graph.operators):
        for src in op.inputs:
            if src is not None and not src.is_constant:
                touch(src, i)
        for t in op.outputs:
            touch(t, i)
    for t in graph.outputs:
        touch(t, n_ops - 1)
    return order, life


def _tensor_record(t: Tensor, offset: int) -> bytes:
    if t.dtype not in pf.TYPE_CODES:
        raise NotInt8Error(f"tensor {t.name!r} is {t.dtype}", tensor=t.name, dtype=t.dtype)
    shape = op_registry.nhwc(t.shape)
    if max(shape) > 0xFFFF:
        raise ModelError(f"tensor {t.name!r} has a dimension over 65535: {t.shape}")
    return pf.TENSOR.pack(
        arena_off=offset, bytes=t.nbytes, shape=shape, type=pf.TYPE_CODES[t.dtype],
        rank=len(t.shape), zero_point=t.zero_point, scale=t.scale,
    )


def resident_ops(graph: Graph, board: Board) -> dict[int, int]:
    """The constant data the runtime copies into the arena when the plan loads, by operator
    index: each op spec's ``resident`` says what its kernel reads faster from SRAM than from
    the board's flash (the per-layer cost rule: ``bench_firmware/ops/fully_connected.py``
    fc_resident_bytes). The caller drops copies with the extras, largest first, while the
    arena would not fit the board's SRAM; a copy moves cycles only, the outputs are the same
    bytes."""
    sizes = {i: op_registry.REGISTRY[op.name].resident_bytes(op, board)
             for i, op in enumerate(graph.operators)}
    return {i: size for i, size in sizes.items() if size > 0}


def compile_graph(graph: Graph, board: Board, *, check_fit: bool = True,
                  mlperf_name: str | None = None) -> Plan:
    """Compile a parsed graph for ``board``. ``mlperf_name``: the EEMBC model name the board
    answers to ``profile%`` (``kws01``, ``vww01``, ``ic01``, ``ad01``; see
    :data:`bench_firmware.plan_format.MLPERF_NAMES`), so the MLPerf Tiny runner picks its
    script for the model; without one the board answers the model id."""
    try:
        name_flags = pf.mlperf_flags(mlperf_name)
    except ValueError as e:
        raise McuprofError(str(e)) from None
    _check_types(graph)  # a float model is the more useful diagnosis than its ops
    _check_ops(graph)
    tensors, life = _activation_tensors(graph)
    # Kernel scratch buffers live in the arena too, each alive during its own op only.
    # They never overlap the model input: the firmware keeps a copy of the input to restore
    # before each run only when an operator's output overwrites it, and knows no scratch.
    model_input = frozenset(t.index for t in graph.inputs)
    kernel_scratch = {i: op_registry.REGISTRY[op.name].scratch_bytes(op)
                      for i, op in enumerate(graph.operators)}
    extras = extra_scratch_ops(graph, board, kernel_scratch)
    # Weights the runtime copies into the arena when the plan loads: alive for the whole graph
    # (and between inferences), so they share bytes with nothing.
    n_ops = len(graph.operators)
    resident = resident_ops(graph, board)
    activation_bytes = plan_memory([Buffer(b.key, b.size, b.first, b.last)
                                    for b in life.values()])
    while True:
        scratch = {i: Buffer(key=-1 - i, size=size + extras.get(i, 0), first=i, last=i,
                             apart=model_input)
                   for i, size in kernel_scratch.items() if size > 0}
        kept = {i: Buffer(key=-1 - n_ops - i, size=size, first=0, last=max(n_ops - 1, 0))
                for i, size in resident.items()}
        arena = plan_with_scratch(list(life.values()), [*scratch.values(), *kept.values()])
        if arena <= board.arena_capacity or not (extras or resident):
            break
        # The largest extra or copy goes first; either only moves cycles, never outputs.
        if not resident or (extras and max(extras.values()) >= max(resident.values())):
            del extras[max(extras, key=extras.__getitem__)]
        else:
            del resident[max(resident, key=resident.__getitem__)]
    if check_fit and arena > board.arena_capacity:
        big = max(tensors, key=lambda t: t.nbytes)
        raise DoesNotFitError(
            f"the model needs a {arena}-byte tensor arena but {board.name} has "
            f"{board.arena_capacity} bytes of SRAM for it (largest activation: {big.name!r}, "
            f"{big.nbytes} bytes, shape {list(big.shape)}). Shrink the input resolution or the "
            f"widest layers, or choose a board with more SRAM.",
            what="arena", needed=arena, available=board.arena_capacity,
        )
    plan_index = {t.index: i for i, t in enumerate(tensors)}
    tensors_off = align_up(pf.HEADER.size, pf.ALIGN)
    ops_off = align_up(tensors_off + len(tensors) * pf.TENSOR.size, pf.ALIGN)
    data = _DataSection(align_up(ops_off + n_ops * pf.OP.size, pf.ALIGN))

    op_records: list[bytes] = []
    layers: list[Layer] = []
    for i, op in enumerate(graph.operators):
        before = len(data.buf)
        data.scratch_off = scratch[i].offset if i in scratch else 0
        data.scratch_bytes = scratch[i].size if i in scratch else 0
        data.resident_off = kept[i].offset if i in kept else 0
        data.resident_bytes = kept[i].size if i in kept else 0
        params = op_registry.REGISTRY[op.name].compile(op, data)
        params_off = data.add_data(params) if params else 0
        acts = [plan_index[t.index] for t in op.inputs if t is not None and not t.is_constant]
        inputs_off = data.add_data(np.asarray(acts, dtype="<u2"))
        op_records.append(pf.OP.pack(
            code=pf.OP_CODES[_OP_ALIASES.get(op.name, op.name)], n_inputs=len(acts),
            output=plan_index[op.outputs[0].index], inputs_off=inputs_off, params_off=params_off,
        ))
        macs = layer_macs(op)
        layers.append(Layer(op.index, op.name, macs, layer_ops(op, macs), param_bytes(op),
                            pf.OP.size + len(data.buf) - before, op.outputs[0].shape,
                            scratch[i].size if i in scratch else 0,
                            kept[i].size if i in kept else 0))

    flags = name_flags
    if graph.inputs[0].dtype == "float32":
        flags |= pf.CONSTANTS["MP_FLAG_FLOAT_INPUT"]
    if graph.outputs[0].dtype == "float32":
        flags |= pf.CONSTANTS["MP_FLAG_FLOAT_OUTPUT"]
    total_macs = sum(layer.macs for layer in layers)
    body = bytearray()
    body += b"\0" * (tensors_off - pf.HEADER.size)
    body += b"".join(_tensor_record(t, life[t.index].offset) for t in tensors)
    body += b"\0" * (ops_off - tensors_off - len(tensors) * pf.TENSOR.size)
    body += b"".join(op_records)
    body += b"\0" * (data.base - ops_off - n_ops * pf.OP.size)
    body += data.buf
    total = pf.HEADER.size + len(body)
    total_padded = align_up(total, pf.ALIGN)
    body += b"\0" * (total_padded - total)
    model_id = bytes.fromhex(graph.sha256[:16])
    header = pf.HEADER.pack(
        magic=list(pf.MAGIC), version=pf.VERSION, header_bytes=pf.HEADER.size,
        total_bytes=total_padded, crc32=0, model_id=list(model_id), board_code=board.code,
        n_tensors=len(tensors), n_ops=n_ops,
        input_tensor=plan_index[graph.inputs[0].index],
        output_tensor=plan_index[graph.outputs[0].index], flags=flags, arena_bytes=arena,
        tensors_off=tensors_off, ops_off=ops_off,
        macs_lo=total_macs & 0xFFFFFFFF, macs_hi=total_macs >> 32,
    )
    blob = bytearray(header + body)
    crc = zlib.crc32(bytes(blob[pf.CRC_START:])) & 0xFFFFFFFF
    blob[12:16] = crc.to_bytes(4, "little")
    if check_fit and len(blob) > board.model_region_bytes:
        raise DoesNotFitError(
            f"the plan is {len(blob)} bytes but {board.name}'s model region holds "
            f"{board.model_region_bytes} bytes (weights stay in flash). Reduce the parameter "
            f"count or choose a board with more flash.",
            what="plan", needed=len(blob), available=board.model_region_bytes,
        )
    return Plan(
        data=bytes(blob), board=board, model_id=graph.sha256[:16], sha256=graph.sha256,
        arena_bytes=arena, input_shape=graph.inputs[0].shape, input_dtype=graph.inputs[0].dtype,
        output_shape=graph.outputs[0].shape, output_dtype=graph.outputs[0].dtype, layers=layers,
        activation_bytes=activation_bytes, mlperf_name=mlperf_name or None,
    )


def compile_model(data: bytes, board: Board, *, name: str = "model",
                  check_fit: bool = True, mlperf_name: str | None = None) -> Plan:
    """Compile the bytes of a ``.tflite`` file for ``board``.

    Every failure is a ``ModelError``: a value the validator let through but the arithmetic
    cannot take (a requantization multiplier out of range, a field too wide for the plan
    format) is reported as a corrupt model rather than as a traceback.
    """
    graph = read_tflite(data, name=name)
    try:
        return compile_graph(graph, board, check_fit=check_fit, mlperf_name=mlperf_name)
    except McuprofError:
        raise
    except (ArithmeticError, ValueError, TypeError, IndexError, KeyError, struct.error) as e:
        raise CorruptModelError(
            f"{name} cannot be compiled: {type(e).__name__}: {e}. Its parameters are out of "
            f"the range TensorFlow Lite produces; re-export it with tf.lite.TFLiteConverter."
        ) from e


@dataclass
class PlanInfo:
    header: dict[str, object]
    model_id: str


def read_plan(data: bytes, board: Board | None = None) -> PlanInfo:
    """Validate a plan file as the firmware would (magic, version, size, CRC, board)."""
    if len(data) < pf.HEADER.size or data[:4] != pf.MAGIC:
        raise PlanError("not an mcuprof plan (bad magic); make one with `mcuprof compile`")
    hdr = pf.HEADER.unpack(data)
    if hdr["version"] != pf.VERSION:
        raise PlanError(f"plan version {hdr['version']}, this mcuprof writes {pf.VERSION}; "
                        "recompile the model")
    total = int(hdr["total_bytes"])  # type: ignore[call-overload]
    if total != len(data):
        raise PlanError(f"plan says {total} bytes but the file has {len(data)}: truncated?")
    crc = zlib.crc32(data[pf.CRC_START:]) & 0xFFFFFFFF
    if crc != hdr["crc32"]:
        raise PlanError(f"plan CRC mismatch (stored {hdr['crc32']:#010x}, computed {crc:#010x}): "
                        "the file is corrupt; recompile it")
    if board is not None and hdr["board_code"] != board.code:
        from bench_firmware.boards import board_by_code

        other = board_by_code(int(hdr["board_code"]))  # type: ignore[call-overload]
        raise PlanError(f"the plan was compiled for {other.name}, not {board.name}; "
                        f"run `mcuprof compile MODEL --board {board.name}`")
    model_id = bytes(hdr["model_id"])  # type: ignore[call-overload]
    return PlanInfo(hdr, model_id.hex())


# Which EEMBC model a preset or backbone tag (the sidecar ``mcuprof sample`` writes next to a
# model) stands for: the MLPerf Tiny task it solves.
_MLPERF_BY_PREFIX = (
    ("mlperf-kws", "kws01"), ("micronet-kws", "kws01"), ("ds-cnn", "kws01"), ("kws", "kws01"),
    ("mlperf-vww", "vww01"), ("vww", "vww01"), ("mobilenet-v1", "vww01"),
    ("mlperf-ic", "ic01"), ("ic", "ic01"), ("resnet", "ic01"),
    ("mlperf-ad", "ad01"), ("micronet-ad", "ad01"), ("ad", "ad01"), ("fc-autoencoder", "ad01"),
)


def default_mlperf_name(preset: str | None = None,
                        tags: dict[str, str] | None = None) -> str | None:
    """The EEMBC model name for a model's preset (``mlperf-kws``, ``micronet-ad-s``, ...) or,
    without one, its ``preset`` or ``backbone`` tag; None when neither says."""
    tags = tags or {}
    for key in (preset, tags.get("preset"), tags.get("backbone")):
        if not key:
            continue
        for prefix, name in _MLPERF_BY_PREFIX:
            if key == prefix or key.startswith(prefix + "-"):
                return name
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
