"""The model zoo's entries, registered in :data:`tests.zoo_kit.ZOO_SPECS` in this order (see
``tests/zoo.py``).
"""

from __future__ import annotations

from typing import Any

from tests.zoo_kit import ZOO_SPECS, _Kit, _model

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


# --------------------------------------------------------------------------------------------
# 4-bit weights (search/int4.py after conversion): TFLite INT4 conv and FC weight tensors
# --------------------------------------------------------------------------------------------


@_model("conv_int4", (9, 8, 5), {"CONV_2D"}, weight_bits=4)
def _conv_int4(k: _Kit, x: Any) -> Any:
    """4-bit weights: 3x3 SAME 5 -> 11 (RELU), 1x1 11 -> 12, 3x3 VALID stride 2 12 -> 7."""
    y = k.conv(x, 11, 3, padding="same", activation="relu")
    y = k.conv(y, 12, 1)
    return k.conv(y, 7, 3, padding="valid", strides=2)


@_model("fc_int4", (43,), {"FULLY_CONNECTED"}, weight_bits=4)
def _fc_int4(k: _Kit, x: Any) -> Any:
    """4-bit weights: Dense 43 -> 17 (RELU) -> 7, odd widths (TFLM runs no 4-bit FC: the
    reference is the model widened to int8, search/int4.py widen_int4)."""
    y = k.dense(x, 17, activation="relu")
    return k.dense(y, 7)


@_model(
    "ds_cnn_kws_int4",
    (49, 10, 1),
    {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"},
    weight_bits=4,
)
def _ds_cnn_int4(k: _Kit, x: Any) -> Any:
    """``ds_cnn_kws`` with 4-bit conv and FC weights (depthwise weights stay 8-bit)."""
    return _ds_cnn(k, x)


#: All zoo model names, in a stable order (usable in ``pytest.mark.parametrize``).
ZOO_NAMES: list[str] = list(ZOO_SPECS)
#: name -> the set of TFLite builtin op names the converted model contains.
ZOO_OPS: dict[str, frozenset[str]] = {n: s.ops for n, s in ZOO_SPECS.items()}
