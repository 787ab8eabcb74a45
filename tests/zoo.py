"""A zoo of small int8 ``.tflite`` models built with the real TensorFlow Lite converter.

Every model is a tiny Keras network with seeded random weights (non-zero biases, BatchNorm
with random statistics where natural) converted to full-integer int8 with
``TFLiteConverter``: ``optimizations=[DEFAULT]``, a seeded representative dataset,
``supported_ops=[TFLITE_BUILTINS_INT8]`` and int8 input/output (except ``float_io``, which
keeps float32 I/O so the converter adds QUANTIZE/DEQUANTIZE). Inputs are declared with
``batch_size=1`` so the converter emits static shapes (no SHAPE/STRIDED_SLICE/PACK).

Usage from tests::

    from tests.zoo import ZOO_NAMES, ZOO_OPS, build_zoo, random_input

    @pytest.mark.parametrize("name", ZOO_NAMES)
    def test_something(zoo, name):          # ``zoo`` is the fixture in conftest.py
        model = zoo[name].read_bytes()
        x = random_input(model, seed=0)

``ZOO_NAMES``, ``ZOO_OPS`` (name -> the set of builtin ops the converted model contains,
checked against the real conversion by ``tests/integration/test_zoo_oracle.py``) and
``ZOO_SPECS`` are available at import time without importing TensorFlow; TensorFlow is
imported only when a model actually has to be built. Built models are cached under
``cache_dir/<key>/<name>.tflite`` (plus ``ops.json``, each model's op list in execution
order) where ``<key>`` hashes this file's source and the TensorFlow/Keras/NumPy versions, so
a rerun with an unchanged zoo costs nothing. Conversion is byte-for-byte deterministic.

Inputs: ``random_input(model, seed)`` draws from the calibration distribution (``signal``)
and quantizes it with the model's input parameters; ``kind="uniform"`` gives i.i.d.
full-range int8 instead (saturates many layers: a clamping stress test).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import io
import json
import os
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tflite

from tests.tflite_convert import import_tf, to_int8_tflite

#: The TFLite builtin ops the zoo must cover, and the only ones it may contain.
REQUIRED_OPS: frozenset[str] = frozenset(
    {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "AVERAGE_POOL_2D",
        "MAX_POOL_2D",
        "ADD",
        "PAD",
        "RESHAPE",
        "SOFTMAX",
        "RELU",
        "RELU6",
        "MEAN",
        "CONCATENATION",
        "QUANTIZE",
        "DEQUANTIZE",
    }
)

_REPRESENTATIVE_SAMPLES = 32

_BUILTIN_NAMES: dict[int, str] = {
    getattr(tflite.BuiltinOperator, n): n
    for n in dir(tflite.BuiltinOperator)
    if not n.startswith("_")
}
_NUMPY_TYPES: dict[int, type[np.generic]] = {
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT16: np.int16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.FLOAT32: np.float32,
}


# --------------------------------------------------------------------------------------------
# Layer helpers (receive the imported ``keras`` module so nothing imports TF at module load)
# --------------------------------------------------------------------------------------------


class _Kit:
    """Keras layer factories with seeded, deliberately non-trivial initialisers.

    Kernels use He (variance-preserving) initialisation -- for depthwise kernels with the
    true fan-in (kh * kw), which Keras' ``fan_in`` mode gets wrong by a factor of the channel
    count -- so the input-dependent part of the signal survives deep stacks instead of
    vanishing under the random biases (with Glorot, ``ds_cnn_kws`` gave one output for
    every input).
    """

    def __init__(self, keras: Any) -> None:
        self.keras = keras
        self.L = keras.layers

    def _bias(self) -> Any:
        return self.keras.initializers.RandomNormal(stddev=0.3)

    def _he(self, mode: str = "fan_in") -> Any:
        return self.keras.initializers.VarianceScaling(2.0, mode, "truncated_normal")

    def conv(self, x: Any, filters: int, kernel: Any, **kw: Any) -> Any:
        """Conv2D with He-initialised kernel and random biases (unless ``use_bias=False``)."""
        kw.setdefault("padding", "same")
        kw.setdefault("kernel_initializer", self._he())
        if kw.get("use_bias", True):
            kw.setdefault("bias_initializer", self._bias())
        return self.L.Conv2D(filters, kernel, **kw)(x)

    def dw(self, x: Any, kernel: Any, **kw: Any) -> Any:
        """DepthwiseConv2D (He on kh * kw) with random biases (unless ``use_bias=False``)."""
        kw.setdefault("padding", "same")
        kw.setdefault("depthwise_initializer", self._he("fan_out"))
        if kw.get("use_bias", True):
            kw.setdefault("bias_initializer", self._bias())
        return self.L.DepthwiseConv2D(kernel, **kw)(x)

    def dense(self, x: Any, units: int, **kw: Any) -> Any:
        """Dense (He-initialised) with random biases (unless ``use_bias=False``)."""
        kw.setdefault("kernel_initializer", self._he())
        if kw.get("use_bias", True):
            kw.setdefault("bias_initializer", self._bias())
        return self.L.Dense(units, **kw)(x)

    def bn(self, x: Any) -> Any:
        """BatchNormalization with random gamma/beta/moving statistics (the converter folds it)."""
        init = self.keras.initializers
        return self.L.BatchNormalization(
            gamma_initializer=init.RandomUniform(0.5, 1.5),
            beta_initializer=init.RandomNormal(stddev=0.1),
            moving_mean_initializer=init.RandomNormal(stddev=0.1),
            moving_variance_initializer=init.RandomUniform(0.5, 1.5),
        )(x)

    def conv_bn(
        self, x: Any, filters: int, kernel: Any, act: str | None = "relu", **kw: Any
    ) -> Any:
        """Conv (no bias) + BN + optional activation, as real networks are written."""
        y = self.bn(self.conv(x, filters, kernel, use_bias=False, **kw))
        return self.L.Activation(act)(y) if act else y

    def dw_bn(self, x: Any, kernel: Any, act: str | None = "relu", **kw: Any) -> Any:
        """Depthwise (no bias) + BN + optional activation."""
        y = self.bn(self.dw(x, kernel, use_bias=False, **kw))
        return self.L.Activation(act)(y) if act else y


@dataclass(frozen=True)
class ZooSpec:
    """One zoo entry: how to build it and which TFLite builtin ops the converter must emit."""

    name: str
    input_shape: tuple[int, ...]  # without the batch dimension (batch is always 1)
    build: Callable[[_Kit, Any], Any]
    ops: frozenset[str]
    float_io: bool = False
    per_tensor: bool = False
    description: str = ""


ZOO_SPECS: dict[str, ZooSpec] = {}


def _model(
    name: str,
    input_shape: tuple[int, ...],
    ops: set[str],
    *,
    float_io: bool = False,
    per_tensor: bool = False,
) -> Callable[[Callable[[_Kit, Any], Any]], Callable[[_Kit, Any], Any]]:
    def register(fn: Callable[[_Kit, Any], Any]) -> Callable[[_Kit, Any], Any]:
        assert name not in ZOO_SPECS, name
        ZOO_SPECS[name] = ZooSpec(
            name=name,
            input_shape=input_shape,
            build=fn,
            ops=frozenset(ops),
            float_io=float_io,
            per_tensor=per_tensor,
            description=(fn.__doc__ or "").strip(),
        )
        return fn

    return register


# --------------------------------------------------------------------------------------------
# CONV_2D
# --------------------------------------------------------------------------------------------


@_model("conv_same_s1", (8, 8, 3), {"CONV_2D"})
def _conv_same_s1(k: _Kit, x: Any) -> Any:
    """3x3 SAME stride 1, 3 -> 7 channels, fused RELU."""
    return k.conv(x, 7, 3, padding="same", activation="relu")


@_model("conv_valid_s2", (9, 9, 5), {"CONV_2D"})
def _conv_valid_s2(k: _Kit, x: Any) -> Any:
    """3x3 VALID stride 2, 5 -> 13 channels, fused RELU6."""
    return k.conv(x, 13, 3, padding="valid", strides=2, activation="relu6")


@_model("conv_1x1", (6, 5, 5), {"CONV_2D"})
def _conv_1x1(k: _Kit, x: Any) -> Any:
    """1x1 pointwise, 5 -> 13 channels, no activation, non-square map."""
    return k.conv(x, 13, 1, padding="valid")


@_model("conv_5x3_same_s2x1", (10, 9, 3), {"CONV_2D"})
def _conv_5x3(k: _Kit, x: Any) -> Any:
    """Non-square 5x3 kernel, SAME, strides (2, 1), 3 -> 8 channels, fused RELU6."""
    return k.conv(x, 8, (5, 3), padding="same", strides=(2, 1), activation="relu6")


@_model("conv_5x3_valid_s2", (11, 8, 4), {"CONV_2D"})
def _conv_5x3_valid(k: _Kit, x: Any) -> Any:
    """Non-square 5x3 kernel, VALID, stride 2, 4 -> 6 channels, no activation."""
    return k.conv(x, 6, (5, 3), padding="valid", strides=2)


@_model("conv_dilation2_same", (11, 11, 4), {"CONV_2D"})
def _conv_dil_same(k: _Kit, x: Any) -> Any:
    """3x3 dilation 2, SAME, 4 -> 6 channels, fused RELU."""
    return k.conv(x, 6, 3, padding="same", dilation_rate=2, activation="relu")


@_model("conv_dilation2_valid", (10, 9, 3), {"CONV_2D"})
def _conv_dil_valid(k: _Kit, x: Any) -> Any:
    """3x3 dilation 2, VALID, 3 -> 5 channels, no activation."""
    return k.conv(x, 5, 3, padding="valid", dilation_rate=2)


@_model("conv_per_tensor", (8, 8, 3), {"CONV_2D"}, per_tensor=True)
def _conv_per_tensor(k: _Kit, x: Any) -> Any:
    """Two convs with per-tensor (not per-channel) quantized weights."""
    y = k.conv(x, 7, 3, padding="same", activation="relu")
    return k.conv(y, 5, 3, padding="valid", strides=2)


@_model("conv_bn_stack", (10, 10, 3), {"CONV_2D"})
def _conv_bn_stack(k: _Kit, x: Any) -> Any:
    """Conv+BatchNorm+ReLU, Conv+BN+ReLU6 stride 2 (BN is folded by the converter)."""
    y = k.conv_bn(x, 8, 3, act="relu")
    return k.conv_bn(y, 12, 3, act="relu6", strides=2)


# --------------------------------------------------------------------------------------------
# DEPTHWISE_CONV_2D
# --------------------------------------------------------------------------------------------


@_model("dw_m1_same_s1", (8, 8, 8), {"DEPTHWISE_CONV_2D"})
def _dw_m1(k: _Kit, x: Any) -> Any:
    """Depthwise 3x3, multiplier 1, SAME, stride 1, fused RELU6."""
    return k.dw(x, 3, padding="same", activation="relu6")


@_model("dw_m1_same_s2", (10, 9, 6), {"DEPTHWISE_CONV_2D"})
def _dw_m1_s2(k: _Kit, x: Any) -> Any:
    """Depthwise 3x3 + BN + ReLU, multiplier 1, SAME, stride 2 (odd width)."""
    return k.dw_bn(x, 3, act="relu", padding="same", strides=2)


@_model("dw_m2_valid_s2", (9, 9, 4), {"DEPTHWISE_CONV_2D"})
def _dw_m2(k: _Kit, x: Any) -> Any:
    """Depthwise 3x3, multiplier 2, VALID, stride 2, fused RELU."""
    return k.dw(x, 3, padding="valid", strides=2, depth_multiplier=2, activation="relu")


@_model("dw_m3_odd", (7, 7, 5), {"DEPTHWISE_CONV_2D"})
def _dw_m3(k: _Kit, x: Any) -> Any:
    """Depthwise 3x3, multiplier 3 on 5 input channels, SAME, stride 1, no activation."""
    return k.dw(x, 3, padding="same", depth_multiplier=3)


@_model("dw_5x3_valid", (9, 8, 7), {"DEPTHWISE_CONV_2D"})
def _dw_5x3(k: _Kit, x: Any) -> Any:
    """Depthwise non-square 5x3 kernel, VALID, strides (1, 2), 7 channels."""
    return k.dw(x, (5, 3), padding="valid", strides=(1, 2))


@_model("dw_dilation2", (11, 11, 6), {"DEPTHWISE_CONV_2D"})
def _dw_dil(k: _Kit, x: Any) -> Any:
    """Depthwise 3x3 dilation 2: VALID then SAME with multiplier 2."""
    y = k.dw(x, 3, padding="valid", dilation_rate=2, activation="relu")
    return k.dw(y, 3, padding="same", dilation_rate=2, depth_multiplier=2)


# --------------------------------------------------------------------------------------------
# FULLY_CONNECTED
# --------------------------------------------------------------------------------------------


@_model("fc_bias", (37,), {"FULLY_CONNECTED"})
def _fc_bias(k: _Kit, x: Any) -> Any:
    """Rank-2 input: Dense 37 -> 19 (fused RELU) -> 11 (none)."""
    y = k.dense(x, 19, activation="relu")
    return k.dense(y, 11)


@_model("fc_nobias", (23,), {"FULLY_CONNECTED"})
def _fc_nobias(k: _Kit, x: Any) -> Any:
    """Dense 23 -> 9 without bias (use_bias=False), then 9 -> 5 with RELU6."""
    y = k.dense(x, 9, use_bias=False)
    return k.dense(y, 5, activation="relu6")


@_model("fc_flatten", (5, 5, 3), {"CONV_2D", "RESHAPE", "FULLY_CONNECTED"})
def _fc_flatten(k: _Kit, x: Any) -> Any:
    """Conv 1x1 then Flatten (RESHAPE) of the 4D map, Dense 100 -> 10."""
    y = k.conv(x, 4, 1, activation="relu")
    return k.dense(k.L.Flatten()(y), 10)


@_model("fc_rows", (5, 7), {"FULLY_CONNECTED"})
def _fc_rows(k: _Kit, x: Any) -> Any:
    """Dense on a [1, 5, 7] input: one FULLY_CONNECTED over 5 rows (keep_num_dims)."""
    return k.dense(x, 6, activation="relu")


# --------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------


@_model("avgpool_valid", (9, 8, 5), {"CONV_2D", "AVERAGE_POOL_2D"})
def _avgpool_valid(k: _Kit, x: Any) -> Any:
    """Conv 1x1 then AveragePooling (3, 2) strides (2, 2) VALID."""
    y = k.conv(x, 5, 1)
    return k.L.AveragePooling2D((3, 2), strides=(2, 2), padding="valid")(y)


@_model("avgpool_same", (7, 6, 3), {"AVERAGE_POOL_2D"})
def _avgpool_same(k: _Kit, x: Any) -> Any:
    """AveragePooling (3, 2) strides (2, 1) SAME directly on the input (edge windows short)."""
    return k.L.AveragePooling2D((3, 2), strides=(2, 1), padding="same")(x)


@_model("maxpool_valid", (9, 9, 4), {"CONV_2D", "MAX_POOL_2D"})
def _maxpool_valid(k: _Kit, x: Any) -> Any:
    """Conv 3x3 then MaxPooling 2x2 stride 2 VALID (odd map, last row dropped)."""
    y = k.conv(x, 6, 3)
    return k.L.MaxPooling2D(2, strides=2, padding="valid")(y)


@_model("maxpool_same", (7, 6, 3), {"MAX_POOL_2D"})
def _maxpool_same(k: _Kit, x: Any) -> Any:
    """MaxPooling (3, 2) strides (2, 1) SAME directly on the input."""
    return k.L.MaxPooling2D((3, 2), strides=(2, 1), padding="same")(x)


# --------------------------------------------------------------------------------------------
# ADD, PAD, RESHAPE, CONCATENATION, standalone RELU/RELU6, MEAN, SOFTMAX
# --------------------------------------------------------------------------------------------


@_model("add_residual", (6, 6, 4), {"CONV_2D", "ADD"})
def _add_residual(k: _Kit, x: Any) -> Any:
    """Residual: input + conv3x3(input) -- two operands with different scales, no act."""
    y = k.conv(x, 4, 3, kernel_initializer=k.keras.initializers.RandomNormal(stddev=0.6))
    return k.L.Add()([x, y])


@_model("add_relu", (6, 7, 3), {"CONV_2D", "ADD"})
def _add_relu(k: _Kit, x: Any) -> Any:
    """Two conv branches of different scales, Add then ReLU (fused into ADD)."""
    a = k.conv(x, 5, 3)
    b = k.conv(x, 5, 1, kernel_initializer=k.keras.initializers.RandomNormal(stddev=2.0))
    return k.L.ReLU()(k.L.Add()([a, b]))


@_model("pad_conv_valid", (6, 6, 3), {"PAD", "CONV_2D"})
def _pad_conv(k: _Kit, x: Any) -> Any:
    """Asymmetric ZeroPadding2D ((2,1),(1,2)) then 3x3 VALID conv (not foldable into SAME)."""
    y = k.L.ZeroPadding2D(((2, 1), (1, 2)))(x)
    return k.conv(y, 5, 3, padding="valid", activation="relu")


@_model("reshape_between_convs", (6, 6, 4), {"CONV_2D", "RESHAPE"})
def _reshape(k: _Kit, x: Any) -> Any:
    """Conv, Reshape [1,6,6,4] -> [1,3,12,4], conv 1x1."""
    y = k.conv(x, 4, 3)
    y = k.L.Reshape((3, 12, 4))(y)
    return k.conv(y, 3, 1)


@_model("concat_channels", (6, 6, 3), {"CONV_2D", "CONCATENATION"})
def _concat(k: _Kit, x: Any) -> Any:
    """Concatenate input (3 ch) with two conv branches (5 and 7 ch) along channels."""
    a = k.conv(x, 5, 1)
    b = k.conv(x, 7, 3, activation="relu")
    return k.L.Concatenate(axis=-1)([x, a, b])


@_model("concat_relu", (6, 6, 3), {"CONV_2D", "CONCATENATION", "RELU"})
def _concat_relu(k: _Kit, x: Any) -> Any:
    """Standalone RELU after a CONCATENATION of two conv branches."""
    a = k.conv(x, 4, 1)
    b = k.conv(x, 5, 3)
    return k.L.ReLU()(k.L.Concatenate()([a, b]))


@_model("concat_relu6", (6, 6, 3), {"CONV_2D", "CONCATENATION", "RELU6"})
def _concat_relu6(k: _Kit, x: Any) -> Any:
    """Standalone RELU6 after a CONCATENATION of two conv branches."""
    a = k.conv(x, 4, 1, kernel_initializer=k.keras.initializers.RandomNormal(stddev=2.0))
    b = k.conv(x, 5, 3)
    return k.L.ReLU(6.0)(k.L.Concatenate()([a, b]))


@_model("relu_standalone", (5, 5, 3), {"RELU", "CONV_2D", "MEAN", "RELU6"})
def _relu_standalone(k: _Kit, x: Any) -> Any:
    """Standalone RELU on the input; conv; MEAN (keepdims); standalone RELU6 after the MEAN.

    (A RELU6 after a RESHAPE is not kept: the converter fuses it into the conv before it.)
    """
    y = k.L.ReLU()(x)
    y = k.conv(y, 4, 3)
    y = k.L.GlobalAveragePooling2D(keepdims=True)(y)
    return k.L.ReLU(6.0)(y)


@_model("conv_pad_relu6", (5, 5, 3), {"CONV_2D", "PAD", "RELU6"})
def _conv_pad_relu6(k: _Kit, x: Any) -> Any:
    """Conv, ZeroPadding2D(1) of its output (PAD with a non-zero zero point), RELU6."""
    y = k.conv(x, 4, 3)
    return k.L.ReLU(6.0)(k.L.ZeroPadding2D(1)(y))


@_model("gap_mean", (6, 6, 3), {"CONV_2D", "MEAN", "FULLY_CONNECTED"})
def _gap_mean(k: _Kit, x: Any) -> Any:
    """Conv, GlobalAveragePooling2D (-> MEAN over H,W), Dense."""
    y = k.conv(x, 8, 3, activation="relu")
    return k.dense(k.L.GlobalAveragePooling2D()(y), 4)


@_model("gap_mean_keepdims", (6, 5, 3), {"CONV_2D", "MEAN"})
def _gap_mean_keepdims(k: _Kit, x: Any) -> Any:
    """Conv, GlobalAveragePooling2D(keepdims=True) (-> MEAN keep_dims), conv 1x1."""
    y = k.conv(x, 6, 3)
    y = k.L.GlobalAveragePooling2D(keepdims=True)(y)
    return k.conv(y, 5, 1)


@_model("softmax_head", (16,), {"FULLY_CONNECTED", "SOFTMAX"})
def _softmax(k: _Kit, x: Any) -> Any:
    """Dense 16 -> 10 then Softmax (int8 output, scale 1/256, zero point -128)."""
    return k.L.Softmax()(k.dense(x, 10))


@_model(
    "float_io",
    (6, 6, 3),
    {"QUANTIZE", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "DEQUANTIZE"},
    float_io=True,
)
def _float_io(k: _Kit, x: Any) -> Any:
    """Float32 in/out: QUANTIZE, conv, maxpool, flatten, dense, DEQUANTIZE."""
    y = k.conv(x, 4, 3, activation="relu")
    y = k.L.MaxPooling2D(2)(y)
    return k.dense(k.L.Flatten()(y), 5)


# --------------------------------------------------------------------------------------------
# Bigger networks
# --------------------------------------------------------------------------------------------


@_model(
    "ds_cnn_kws",
    (49, 10, 1),
    {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"},
)
def _ds_cnn(k: _Kit, x: Any) -> Any:
    """DS-CNN KWS (MLPerf Tiny layout, 24 channels): conv 10x4 s2, 4 DS blocks, pool, FC 12.

    The Flatten after the 25x5 average pool is elided by the converter: the FULLY_CONNECTED
    reads the [1, 1, 1, 24] pool output directly.
    """
    c = 24
    y = k.conv_bn(x, c, (10, 4), act="relu", strides=2)
    for _ in range(4):
        y = k.dw_bn(y, 3, act="relu")
        y = k.conv_bn(y, c, 1, act="relu")
    y = k.L.AveragePooling2D(pool_size=(25, 5))(y)
    y = k.L.Flatten()(y)
    return k.L.Softmax()(k.dense(y, 12))


def _inverted_residual(k: _Kit, x: Any, expand: int, out: int, stride: int) -> Any:
    cin = x.shape[-1]
    y = k.conv_bn(x, cin * expand, 1, act="relu6")
    y = k.dw_bn(y, 3, act="relu6", strides=stride)
    y = k.conv_bn(y, out, 1, act=None)
    if stride == 1 and cin == out:
        y = k.L.Add()([x, y])
    return y


@_model(
    "mobilenetv2_block",
    (24, 24, 3),
    {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"},
)
def _mobilenetv2(k: _Kit, x: Any) -> Any:
    """MobileNetV2-style: stem, 3 inverted bottlenecks (2 with residual ADD), GAP, FC 2."""
    y = k.conv_bn(x, 8, 3, act="relu6", strides=2)
    y = _inverted_residual(k, y, 3, 8, 1)
    y = _inverted_residual(k, y, 3, 12, 2)
    y = _inverted_residual(k, y, 3, 12, 1)
    y = k.conv_bn(y, 16, 1, act="relu6")
    y = k.L.GlobalAveragePooling2D()(y)
    return k.L.Softmax()(k.dense(y, 2))


def _res_block(k: _Kit, x: Any, filters: int, stride: int) -> Any:
    y = k.conv_bn(x, filters, 3, act="relu", strides=stride)
    y = k.conv_bn(y, filters, 3, act=None)
    if stride != 1 or x.shape[-1] != filters:
        x = k.conv(x, filters, 1, strides=stride)
    return k.L.Activation("relu")(k.L.Add()([x, y]))


@_model(
    "resnet_small",
    (16, 16, 3),
    {"CONV_2D", "ADD", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"},
)
def _resnet(k: _Kit, x: Any) -> Any:
    """ResNet-8-like (MLPerf Tiny IC layout): 3 residual stacks, 1x1 conv shortcuts.

    As in ``ds_cnn_kws`` the Flatten of the [1, 1, 1, 16] pool output is elided (no RESHAPE).
    """
    y = k.conv_bn(x, 8, 3, act="relu")
    y = _res_block(k, y, 8, 1)
    y = _res_block(k, y, 12, 2)
    y = _res_block(k, y, 16, 2)
    y = k.L.AveragePooling2D(pool_size=4)(y)
    y = k.L.Flatten()(y)
    return k.L.Softmax()(k.dense(y, 10))


#: All zoo model names, in a stable order (usable in ``pytest.mark.parametrize``).
ZOO_NAMES: list[str] = list(ZOO_SPECS)
#: name -> the set of TFLite builtin op names the converted model contains.
ZOO_OPS: dict[str, frozenset[str]] = {n: s.ops for n, s in ZOO_SPECS.items()}


# --------------------------------------------------------------------------------------------
# Building and caching
# --------------------------------------------------------------------------------------------


def _seed_for(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def cache_key() -> str:
    """A hash of this file's source and the TensorFlow/Keras versions (the cache directory)."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update((Path(__file__).parent / "tflite_convert.py").read_bytes())
    for dist in ("tensorflow", "keras", "numpy"):
        h.update(f"{dist}={_version(dist)};".encode())
    return h.hexdigest()[:16]


def build_model(name: str) -> bytes:
    """Build and convert one zoo model; returns the ``.tflite`` flatbuffer (deterministic)."""
    spec = ZOO_SPECS[name]
    _, keras = import_tf()
    seed = _seed_for(name)
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        inp = keras.Input(spec.input_shape, batch_size=1, name="input")
        out = spec.build(_Kit(keras), inp)
        model = keras.Model(inp, out, name=name)

        shape = (1, *spec.input_shape)

        def representative() -> Iterator[list[np.ndarray]]:
            rng = np.random.default_rng(seed)
            for _ in range(_REPRESENTATIVE_SAMPLES):
                yield [signal(rng, shape)]

        data = to_int8_tflite(model, representative, float_io=spec.float_io,
                              per_tensor=spec.per_tensor)
        keras.backend.clear_session()
    return data


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_zoo(cache_dir: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Build (or reuse from ``cache_dir``) the zoo; returns name -> ``.tflite`` path.

    Models live in ``cache_dir/<cache_key()>/``; only missing ones are built. Writes are
    atomic and serialised with a file lock, so concurrent test processes are safe.
    """
    wanted = list(ZOO_NAMES if names is None else names)
    unknown = [n for n in wanted if n not in ZOO_SPECS]
    if unknown:
        raise KeyError(f"unknown zoo models: {unknown}")
    root = Path(cache_dir) / cache_key()
    root.mkdir(parents=True, exist_ok=True)
    paths = {n: root / f"{n}.tflite" for n in wanted}
    if all(p.is_file() for p in paths.values()):
        return paths
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for name, path in paths.items():
                if path.is_file():
                    continue
                _atomic_write(path, build_model(name))
            if names is None:
                ops = {n: model_ops(p) for n, p in paths.items()}
                _atomic_write(root / "ops.json", json.dumps(ops, indent=1).encode())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return paths


# --------------------------------------------------------------------------------------------
# Reading models (no TensorFlow needed)
# --------------------------------------------------------------------------------------------


def _as_bytes(model: bytes | bytearray | str | Path) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    return Path(model).read_bytes()


def model_ops(model: bytes | bytearray | str | Path) -> list[str]:
    """The builtin op names of subgraph 0, in execution order."""
    m = tflite.Model.GetRootAsModel(_as_bytes(model), 0)
    sg = m.Subgraphs(0)
    names = []
    for i in range(sg.OperatorsLength()):
        code = m.OperatorCodes(sg.Operators(i).OpcodeIndex())
        op = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        names.append(_BUILTIN_NAMES.get(op, f"UNKNOWN_{op}"))
    return names


def input_details(model: bytes | bytearray | str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and numpy dtype of the model's (first) input tensor."""
    shape, dtype, _, _ = _input_tensor(model)
    return shape, dtype


def _input_tensor(
    model: bytes | bytearray | str | Path,
) -> tuple[tuple[int, ...], np.dtype, float, int]:
    m = tflite.Model.GetRootAsModel(_as_bytes(model), 0)
    sg = m.Subgraphs(0)
    t = sg.Tensors(sg.Inputs(0))
    shape = tuple(int(d) for d in t.ShapeAsNumpy())
    q = t.Quantization()
    scale, zero_point = 1.0, 0
    if q is not None and q.ScaleLength() > 0:
        scale, zero_point = float(q.Scale(0)), int(q.ZeroPoint(0))
    return shape, np.dtype(_NUMPY_TYPES[t.Type()]), scale, zero_point


def signal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 test signal: white noise + a per-sample per-channel offset + a ramp along H.

    I.i.d. noise alone is a poor probe: global pooling averages it to a constant, so deep
    models (``ds_cnn_kws``) give the same output for every input. The zoo is calibrated with
    this distribution and ``random_input`` draws from it by default.
    """
    x = 0.7 * rng.standard_normal(shape)
    x += 0.7 * rng.standard_normal((1,) * (len(shape) - 1) + (shape[-1],))
    if len(shape) >= 3:
        ramp = np.linspace(-1.0, 1.0, shape[1]).reshape((1, shape[1]) + (1,) * (len(shape) - 2))
        x += 0.7 * rng.standard_normal() * ramp
    return x.astype(np.float32)


def random_input(
    model: bytes | bytearray | str | Path, seed: int, kind: str = "signal"
) -> np.ndarray:
    """A seeded random input of the model's input dtype and shape.

    ``kind="signal"`` (default): ``signal()`` -- the calibration distribution -- as float32
    for float-input models, or quantized with the input's scale/zero point (round, clamp to
    [-128, 127]; tails reach the full int8 range) for int8 models.
    ``kind="uniform"``: i.i.d. uniform over the full int8 range (float models: U(-4, 4)),
    which drives many layers into saturation -- a stress test for clamping paths.
    """
    shape, dtype, scale, zero_point = _input_tensor(model)
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        if dtype == np.float32:
            return rng.uniform(-4.0, 4.0, size=shape).astype(np.float32)
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)
    if kind != "signal":
        raise ValueError(f"unknown input kind {kind!r} (use 'signal' or 'uniform')")
    x = signal(rng, shape)
    if dtype == np.float32:
        return x
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)
