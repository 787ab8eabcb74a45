"""Helpers of the service tests: settings, test models made from the sample by patching its
flatbuffer (a float tensor, an unsupported operator: no TensorFlow needed), and the bodies
an agent sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tflite

from service.config import Settings

SAMPLE_MODEL = Path(__file__).resolve().parents[2] / "bench_firmware" / "samples" / \
    "kws_tiny.tflite"
TFLITE_FLOAT32 = 0  # tflite.TensorType.FLOAT32
TFLITE_TANH = 28  # tflite.BuiltinOperator.TANH
KWS_ACTIVATION_TENSOR = 21  # the first convolution's output in kws_tiny
KWS_SOFTMAX_OPCODE = 4  # operator code index of SOFTMAX in kws_tiny


def settings_for(db_url: str, **overrides: Any) -> Settings:
    """Settings for tests: everything explicit, so the developer's MCUPROF_* do not leak in.
    Auth is off (most tests are about something else; tests/service/test_api_auth.py and
    test_security.py turn it on), and ``testserver`` (TestClient's Host) is allowed."""
    values: dict[str, Any] = dict(database_url=db_url, host="127.0.0.1", port=8000,
                                  auth="off", allowed_hosts=["testserver"],
                                  lease_seconds=60.0, max_attempts=3,
                                  max_upload_bytes=1024 * 1024, expire_interval_seconds=0,
                                  db_pool_size=10, db_max_overflow=10)
    values.update(overrides)
    # An override of None: the setting's own default (e.g. auth, as a default server has it).
    return Settings(**{k: v for k, v in values.items() if v is not None})


def float_model(data: bytes) -> bytes:
    """``data`` with one activation tensor retyped float32 (as a float model has)."""
    out = bytearray(data)
    tensor = tflite.Model.GetRootAsModel(out, 0).Subgraphs(0).Tensors(KWS_ACTIVATION_TENSOR)
    out[tensor._tab.Pos + tensor._tab.Offset(6)] = TFLITE_FLOAT32  # Tensor.type (field 1)
    return bytes(out)


def tanh_model(data: bytes) -> bytes:
    """``data`` with its SOFTMAX turned into TANH (an operator the firmware lacks)."""
    out = bytearray(data)
    code = tflite.Model.GetRootAsModel(out, 0).OperatorCodes(KWS_SOFTMAX_OPCODE)
    for field in (4, 10):  # deprecated_builtin_code, builtin_code
        offset = code._tab.Offset(field)
        if offset:
            out[code._tab.Pos + offset] = TFLITE_TANH
    return bytes(out)


def measurement(device: str, **changes: Any) -> dict[str, Any]:
    """A MeasurementIn body as an agent sends it."""
    body: dict[str, Any] = {
        "device": device, "output": [0.0] * 11 + [1.0], "output_shape": [1, 12],
        "cycles": 1_234_567, "cycles_per_run": [1_234_567, 1_234_570],
        "cycle_source": "virtual", "latency_ms": 6.86, "energy_mj": 1.1,
        "energy_source": "modeled", "arena_bytes": 6016, "plan_bytes": 8504,
        "flash_bytes": 33_548, "ops": 1_035_588, "macs": 516_288,
        "layers": [{"index": 0, "op": "CONV_2D", "macs": 120_000, "ops": 240_000,
                    "cycles": 300_000}],
        "kernels": "dsp", "firmware_id": "fw-1", "plan_id": "plan-1",
        "serial_log": ["m-ready", "m-results-[...]"],
    }
    body.update(changes)
    return body


def relu_model(height: int, width: int, channels: int) -> bytes:
    """A one-operator int8 model, input [1, H, W, C] → RELU → output: its arena is twice the
    input, so the shape picks which boards it fits. Built with the flatbuffer builders of the
    ``tflite`` package (no TensorFlow)."""
    import importlib

    import flatbuffers

    def schema(name: str) -> Any:  # the module, not the class tflite/__init__ exports
        return importlib.import_module(f"tflite.{name}")

    Buffer, Model, Operator = schema("Buffer"), schema("Model"), schema("Operator")
    OperatorCode, SubGraph, Tensor = schema("OperatorCode"), schema("SubGraph"), schema("Tensor")
    QuantizationParameters = schema("QuantizationParameters")
    b = flatbuffers.Builder(1024)

    def vector(start: Any, items: list[int], prepend: str) -> int:
        start(b, len(items))
        for item in reversed(items):
            getattr(b, prepend)(item)
        return int(b.EndVector())

    def quantization() -> int:
        QuantizationParameters.StartScaleVector(b, 1)
        b.PrependFloat32(0.05)
        scale = b.EndVector()
        QuantizationParameters.StartZeroPointVector(b, 1)
        b.PrependInt64(-128)
        zero = b.EndVector()
        QuantizationParameters.Start(b)
        QuantizationParameters.AddScale(b, scale)
        QuantizationParameters.AddZeroPoint(b, zero)
        return int(QuantizationParameters.End(b))

    def tensor(name: str, buffer: int) -> int:
        label = b.CreateString(name)
        shape = vector(Tensor.StartShapeVector, [1, height, width, channels], "PrependInt32")
        quant = quantization()
        Tensor.Start(b)
        Tensor.AddShape(b, shape)
        Tensor.AddType(b, 9)  # INT8
        Tensor.AddBuffer(b, buffer)
        Tensor.AddName(b, label)
        Tensor.AddQuantization(b, quant)
        return int(Tensor.End(b))

    tensors = [tensor("input", 1), tensor("output", 2)]
    op_inputs = vector(Operator.StartInputsVector, [0], "PrependInt32")
    op_outputs = vector(Operator.StartOutputsVector, [1], "PrependInt32")
    Operator.Start(b)
    Operator.AddOpcodeIndex(b, 0)
    Operator.AddInputs(b, op_inputs)
    Operator.AddOutputs(b, op_outputs)
    operator = Operator.End(b)

    SubGraph.StartTensorsVector(b, len(tensors))
    for t in reversed(tensors):
        b.PrependUOffsetTRelative(t)
    tensor_vec = b.EndVector()
    sg_inputs = vector(SubGraph.StartInputsVector, [0], "PrependInt32")
    sg_outputs = vector(SubGraph.StartOutputsVector, [1], "PrependInt32")
    SubGraph.StartOperatorsVector(b, 1)
    b.PrependUOffsetTRelative(operator)
    ops_vec = b.EndVector()
    SubGraph.Start(b)
    SubGraph.AddTensors(b, tensor_vec)
    SubGraph.AddInputs(b, sg_inputs)
    SubGraph.AddOutputs(b, sg_outputs)
    SubGraph.AddOperators(b, ops_vec)
    subgraph = SubGraph.End(b)

    OperatorCode.Start(b)
    OperatorCode.AddDeprecatedBuiltinCode(b, 19)  # RELU
    OperatorCode.AddBuiltinCode(b, 19)
    OperatorCode.AddVersion(b, 1)
    opcode = OperatorCode.End(b)

    buffers = []
    for _ in range(3):  # buffer 0 is the empty sentinel; activations have empty buffers
        Buffer.Start(b)
        buffers.append(Buffer.End(b))

    def offsets(start: Any, items: list[int]) -> int:
        start(b, len(items))
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return int(b.EndVector())

    opcodes = offsets(Model.StartOperatorCodesVector, [opcode])
    subgraphs = offsets(Model.StartSubgraphsVector, [subgraph])
    buffer_vec = offsets(Model.StartBuffersVector, buffers)
    description = b.CreateString("relu test model")
    Model.Start(b)
    Model.AddVersion(b, 3)
    Model.AddOperatorCodes(b, opcodes)
    Model.AddSubgraphs(b, subgraphs)
    Model.AddDescription(b, description)
    Model.AddBuffers(b, buffer_vec)
    b.Finish(Model.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def upload(client: Any, data: bytes, *, name: str = "kws_tiny.tflite",
           tags: list[str] | None = None, headers: dict[str, str] | None = None) -> Any:
    """POST /api/v1/models as the client library does."""
    return client.post("/api/v1/models", files={"file": (name, data)},
                       data={"tag": tags or []}, headers=headers)


def register(client: Any, name: str, devices: list[str],
             headers: dict[str, str] | None = None) -> Any:
    return client.post("/api/v1/agents", json={"name": name, "version": "test",
                                               "boards": [{"device": d} for d in devices]},
                       headers=headers)
