"""What the plan compiler would say about a network, without TensorFlow: exact costs at a corner.

The DNAS costs are exact at one-hot architectures (issue #11: "at a one-hot architecture every
cost equals what ``mcuprof analyze`` says for the exported model"). The differentiable
expectations in :mod:`search.dnas.relaxed` are exact there for ops, parameters and the latency
models by construction; the arena is not a smooth function of the widths (TFLite Micro's
greedy planner places buffers by size and lifetime, and kernel scratch buffers join them), and
the plan adds alignment, requantization tables and records. So the search asks the compiler
itself: :func:`skeleton_graph` writes the operator graph the TFLite converter emits for a
:class:`~search.network.Network` (the mapping is fixed and checked by
``tests/search/test_dnas_costs.py`` against real conversions) with seeded random int8 weights
of the right shapes, and :func:`exact_costs` compiles it for a board with
:func:`bench_firmware.compiler.compile_graph`: the same planner, scratch rules and plan
layout as ``mcuprof analyze`` and ``mcuprof compile``.

The converter's mapping (``search/keras_builders.py``): Conv → ``CONV_2D`` (BatchNorm folded,
activation fused), DepthwiseConv → ``DEPTHWISE_CONV_2D``, AvgPool → ``AVERAGE_POOL_2D``,
Flatten → nothing before a Dense (``FULLY_CONNECTED`` flattens its 4-D input itself), else
``RESHAPE``; Dense → ``FULLY_CONNECTED``; Residual → its body, then ``ADD`` of the block's
input and the body's output; Softmax → ``SOFTMAX``. Tensors are int8 with a batch dimension
of 1, biases int32, weights int8 or int4.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench_firmware.boards import Board
from bench_firmware.compiler import compile_graph
from bench_firmware.tflite_model import Graph, Operator, Tensor
from search.errors import SearchError
from search.network import (
    AvgPool,
    Conv,
    Dense,
    DepthwiseConv,
    Flatten,
    Layer,
    Network,
    Residual,
    Softmax,
)

_ACT = {"relu": "RELU", "relu6": "RELU6", None: "NONE"}


class _Writer:
    """Appends tensors and operators to a graph under construction."""

    def __init__(self, seed: int, weight_bits: int) -> None:
        self.tensors: list[Tensor] = []
        self.ops: list[Operator] = []
        self.rng = np.random.default_rng(seed)
        self.weight_bits = weight_bits

    def activation(self, shape: tuple[int, ...], like: Tensor | None = None) -> Tensor:
        """An int8 activation; ``like``: with that tensor's quantization (pools and reshapes
        keep their input's scale, as the converter quantizes them)."""
        if like is not None:
            scales, zero_points = like.scales, like.zero_points
        else:
            scales = np.array([0.02 + 0.01 * self.rng.random()], np.float32)
            zero_points = np.array([int(self.rng.integers(-20, 20))], np.int64)
        t = Tensor(len(self.tensors), f"t{len(self.tensors)}", (1, *shape), "int8",
                   scales=scales, zero_points=zero_points)
        self.tensors.append(t)
        return t

    def weights(self, shape: tuple[int, ...], channel_axis: int, bits: int) -> Tensor:
        hi = 7 if bits == 4 else 127
        data = self.rng.integers(-hi, hi + 1, size=shape, dtype=np.int64).astype(np.int8)
        channels = shape[channel_axis]
        t = Tensor(len(self.tensors), f"w{len(self.tensors)}", shape,
                   "int4" if bits == 4 else "int8",
                   scales=(0.001 + 0.01 * self.rng.random(channels)).astype(np.float32),
                   zero_points=np.zeros(channels, np.int64), quantized_dimension=channel_axis,
                   data=data)
        self.tensors.append(t)
        return t

    def bias(self, n: int) -> Tensor:
        data = self.rng.integers(-2000, 2000, size=n, dtype=np.int64).astype(np.int32)
        t = Tensor(len(self.tensors), f"b{len(self.tensors)}", (n,), "int32",
                   scales=np.ones(n, np.float32) * 1e-5, zero_points=np.zeros(n, np.int64),
                   data=data)
        self.tensors.append(t)
        return t

    def op(self, name: str, inputs: list[Tensor | None], out: Tensor,
           options: dict[str, Any]) -> Tensor:
        self.ops.append(Operator(len(self.ops), name, inputs, [out], options))
        return out


def _conv_options(layer: Conv | DepthwiseConv) -> dict[str, Any]:
    return {"activation": _ACT[layer.act], "padding": layer.padding.upper(),
            "stride_h": layer.stride[0], "stride_w": layer.stride[1],
            "dilation_h": 1, "dilation_w": 1}


def _emit(w: _Writer, layers: tuple[Layer, ...], x: Tensor, shape: tuple[int, ...]
          ) -> tuple[Tensor, tuple[int, ...]]:
    """Emit ``layers`` applied to ``x`` (of ``shape``, no batch); returns the output."""
    for i, layer in enumerate(layers):
        out_shape = layer.out_shape(shape)
        if isinstance(layer, Conv):
            kh, kw = layer.kernel
            weights = w.weights((layer.filters, kh, kw, shape[2]), 0, w.weight_bits)
            x = w.op("CONV_2D", [x, weights, w.bias(layer.filters)], w.activation(out_shape),
                     _conv_options(layer))
        elif isinstance(layer, DepthwiseConv):
            kh, kw = layer.kernel
            weights = w.weights((1, kh, kw, shape[2]), 3, 8)  # int4 depthwise: refused
            x = w.op("DEPTHWISE_CONV_2D", [x, weights, w.bias(shape[2])],
                     w.activation(out_shape), {**_conv_options(layer), "depth_multiplier": 1})
        elif isinstance(layer, AvgPool):
            assert layer.stride is not None
            x = w.op("AVERAGE_POOL_2D", [x], w.activation(out_shape, like=x), {
                "activation": "NONE", "padding": layer.padding.upper(),
                "stride_h": layer.stride[0], "stride_w": layer.stride[1],
                "filter_h": layer.pool[0], "filter_w": layer.pool[1]})
        elif isinstance(layer, Flatten):
            if i + 1 < len(layers) and isinstance(layers[i + 1], Dense):
                pass  # FULLY_CONNECTED flattens its input itself; the converter drops it
            else:
                x = w.op("RESHAPE", [x], w.activation(out_shape, like=x),
                         {"new_shape": (1, *out_shape)})
        elif isinstance(layer, Dense):
            features = math.prod(shape)
            weights = w.weights((layer.units, features), 0, w.weight_bits)
            x = w.op("FULLY_CONNECTED", [x, weights, w.bias(layer.units)],
                     w.activation(out_shape), {"activation": _ACT[layer.act],
                                               "keep_num_dims": False, "weights_format": 0})
        elif isinstance(layer, Residual):
            if layer.shortcut:
                raise SearchError("a residual with a shortcut branch has no DNAS cost model")
            body, _ = _emit(w, layer.body, x, shape)
            x = w.op("ADD", [x, body], w.activation(out_shape),
                     {"activation": _ACT[layer.act]})
        elif isinstance(layer, Softmax):
            x = w.op("SOFTMAX", [x], w.activation(out_shape), {"beta": 1.0})
        else:  # pragma: no cover - the Layer union is closed
            raise SearchError(f"no graph mapping for {type(layer).__name__}")
        shape = out_shape
    return x, shape


def skeleton_graph(network: Network, *, weight_bits: int = 8, seed: int = 0) -> Graph:
    """The operator graph the TFLite converter emits for ``network``, with seeded random
    weights (their values change no size the compiler reports)."""
    if weight_bits not in (4, 8):
        raise SearchError(f"weights are 8 or 4 bits, not {weight_bits}")
    w = _Writer(seed, weight_bits)
    x = w.activation(tuple(network.input_shape))
    out, _ = _emit(w, network.layers, x, tuple(network.input_shape))
    digest = hashlib.sha256(f"{network.digest()}:{weight_bits}".encode()).hexdigest()
    return Graph(tensors=w.tensors, operators=w.ops, inputs=[x], outputs=[out], sha256=digest,
                 size_bytes=0, description=f"skeleton of {network.name}")


@dataclass(frozen=True)
class ExactCosts:
    """What ``mcuprof analyze --board B`` reports for the converted network."""

    ops: int
    macs: int
    param_bytes: int
    arena_bytes: int
    plan_bytes: int
    layers: tuple[dict[str, Any], ...]  # LayerOut-shaped: op, macs, ops, output_shape, ...

    def to_dict(self) -> dict[str, Any]:
        return {"ops": self.ops, "macs": self.macs, "param_bytes": self.param_bytes,
                "arena_bytes": self.arena_bytes, "plan_bytes": self.plan_bytes}


def exact_costs(network: Network, board: Board, *, weight_bits: int = 8) -> ExactCosts:
    """Compile the network's skeleton for ``board`` (no fit check) and read its costs."""
    plan = compile_graph(skeleton_graph(network, weight_bits=weight_bits), board,
                         check_fit=False)
    return ExactCosts(ops=plan.ops, macs=plan.macs, param_bytes=plan.param_bytes,
                      arena_bytes=plan.arena_bytes, plan_bytes=plan.plan_bytes,
                      layers=tuple(layer.as_dict() for layer in plan.layers))
