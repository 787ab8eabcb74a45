"""A concrete network as plain data: the layer list the Keras builder turns into a model.

Search spaces resolve an architecture into a :class:`Network`; presets that no space can
express (the MLPerf Tiny networks, Hello Edge's DS-CNNs) are written as one directly. A
network is JSON-able (:meth:`Network.to_dict` / :meth:`Network.from_dict`), so a sidecar
file rebuilds it exactly, and this module is pure Python: shapes and MACs are known without
TensorFlow (``tests/search`` checks them against ``bench_firmware.analysis`` on the converted
model).

Layer semantics follow Keras (``padding="same"`` is TensorFlow's SAME: output
``ceil(in / stride)``). Convolutions with ``bn=True`` are written as conv (no bias) +
BatchNormalization + activation, the way the source networks are trained; the TFLite
converter folds the BatchNormalization into the convolution's weights and bias and fuses the
activation, so each becomes one ``CONV_2D`` / ``DEPTHWISE_CONV_2D`` / ``FULLY_CONNECTED``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from search.errors import SearchError

ACTIVATIONS = ("relu", "relu6", None)
PADDINGS = ("same", "valid")

Shape = tuple[int, ...]


def _pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


def _out_len(n: int, k: int, s: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(n / s)
    return (n - k) // s + 1


def _check_act(act: str | None) -> None:
    if act not in ACTIVATIONS:
        raise SearchError(f"unknown activation {act!r}; use one of {ACTIVATIONS}")


@dataclass(frozen=True)
class Conv:
    """Conv2D (``CONV_2D``): ``filters`` output channels, ``kernel`` (kh, kw), ``stride``."""

    filters: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    act: str | None = "relu6"
    bn: bool = True
    padding: str = "same"
    type: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel))
        object.__setattr__(self, "stride", _pair(self.stride))
        _check_act(self.act)
        if self.filters < 1:
            raise SearchError(f"a convolution needs at least one filter, not {self.filters}")

    def out_shape(self, shape: Shape) -> Shape:
        h, w, _ = _spatial(self, shape)
        return (_out_len(h, self.kernel[0], self.stride[0], self.padding),
                _out_len(w, self.kernel[1], self.stride[1], self.padding), self.filters)

    def macs(self, shape: Shape) -> int:
        oh, ow, oc = self.out_shape(shape)
        return oh * ow * oc * self.kernel[0] * self.kernel[1] * shape[2]


@dataclass(frozen=True)
class DepthwiseConv:
    """DepthwiseConv2D with depth multiplier 1 (``DEPTHWISE_CONV_2D``)."""

    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    act: str | None = "relu6"
    bn: bool = True
    padding: str = "same"
    type: ClassVar[str] = "dwconv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel))
        object.__setattr__(self, "stride", _pair(self.stride))
        _check_act(self.act)

    def out_shape(self, shape: Shape) -> Shape:
        h, w, c = _spatial(self, shape)
        return (_out_len(h, self.kernel[0], self.stride[0], self.padding),
                _out_len(w, self.kernel[1], self.stride[1], self.padding), c)

    def macs(self, shape: Shape) -> int:
        oh, ow, oc = self.out_shape(shape)
        return oh * ow * oc * self.kernel[0] * self.kernel[1]


@dataclass(frozen=True)
class AvgPool:
    """AveragePooling2D (``AVERAGE_POOL_2D``); ``stride`` defaults to ``pool`` as in Keras."""

    pool: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: str = "valid"
    type: ClassVar[str] = "avgpool"

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool", _pair(self.pool))
        object.__setattr__(self, "stride", _pair(self.stride or self.pool))

    def out_shape(self, shape: Shape) -> Shape:
        h, w, c = _spatial(self, shape)
        assert self.stride is not None
        oh = _out_len(h, self.pool[0], self.stride[0], self.padding)
        ow = _out_len(w, self.pool[1], self.stride[1], self.padding)
        if oh < 1 or ow < 1:
            raise SearchError(f"average pool {self.pool} does not fit a {h}x{w} feature map")
        return (oh, ow, c)

    def macs(self, shape: Shape) -> int:
        return 0


@dataclass(frozen=True)
class Flatten:
    """Flatten to one vector (a ``RESHAPE``; folded away when a dense layer follows)."""

    type: ClassVar[str] = "flatten"

    def out_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)

    def macs(self, shape: Shape) -> int:
        return 0


@dataclass(frozen=True)
class Dense:
    """Dense (``FULLY_CONNECTED``); ``bn=True`` adds BatchNormalization before ``act``."""

    units: int
    act: str | None = None
    bn: bool = False
    type: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        _check_act(self.act)

    def out_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise SearchError(f"a dense layer needs a vector input, not shape {shape}; "
                              "put a Flatten before it")
        return (self.units,)

    def macs(self, shape: Shape) -> int:
        return shape[0] * self.units


@dataclass(frozen=True)
class Softmax:
    """Softmax over the last axis (``SOFTMAX``)."""

    type: ClassVar[str] = "softmax"

    def out_shape(self, shape: Shape) -> Shape:
        return shape

    def macs(self, shape: Shape) -> int:
        return 0


@dataclass(frozen=True)
class Residual:
    """``act(body(x) + shortcut(x))`` (an ``ADD``); an empty shortcut is the identity."""

    body: tuple[Layer, ...]
    shortcut: tuple[Layer, ...] = ()
    act: str | None = None
    type: ClassVar[str] = "residual"

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", tuple(self.body))
        object.__setattr__(self, "shortcut", tuple(self.shortcut))
        _check_act(self.act)

    def out_shape(self, shape: Shape) -> Shape:
        a = _run_shapes(self.body, shape)[-1]
        b = _run_shapes(self.shortcut, shape)[-1]
        if a != b:
            raise SearchError(f"residual branches disagree: body gives {a}, shortcut gives {b}")
        return a

    def macs(self, shape: Shape) -> int:
        return _run_macs(self.body, shape) + _run_macs(self.shortcut, shape)


Layer = Conv | DepthwiseConv | AvgPool | Flatten | Dense | Softmax | Residual

LAYER_TYPES: dict[str, type] = {
    cls.type: cls for cls in (Conv, DepthwiseConv, AvgPool, Flatten, Dense, Softmax, Residual)
}


def _spatial(layer: object, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise SearchError(f"{type(layer).__name__} needs an H x W x C input, not shape {shape}")
    return shape[0], shape[1], shape[2]


def _run_shapes(layers: tuple[Layer, ...], shape: Shape) -> list[Shape]:
    shapes = [shape]
    for layer in layers:
        shapes.append(layer.out_shape(shapes[-1]))
    return shapes


def _run_macs(layers: tuple[Layer, ...], shape: Shape) -> int:
    total = 0
    for layer in layers:
        total += layer.macs(shape)
        shape = layer.out_shape(shape)
    return total


def layer_to_dict(layer: Layer) -> dict[str, Any]:
    """One layer as JSON-able data: ``{"type": ..., field: value, ...}``."""
    out: dict[str, Any] = {"type": layer.type}
    for f in fields(layer):  # type: ignore[arg-type]
        value = getattr(layer, f.name)
        if isinstance(layer, Residual) and f.name in ("body", "shortcut"):
            value = [layer_to_dict(x) for x in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def layer_from_dict(data: dict[str, Any]) -> Layer:
    """Inverse of :func:`layer_to_dict`."""
    data = dict(data)
    kind = data.pop("type", None)
    cls = LAYER_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise SearchError(f"unknown layer type {kind!r}; known: {', '.join(LAYER_TYPES)}")
    if cls is Residual:
        data["body"] = tuple(layer_from_dict(x) for x in data.get("body", ()))
        data["shortcut"] = tuple(layer_from_dict(x) for x in data.get("shortcut", ()))
    else:
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**data)  # type: ignore[no-any-return]
    except TypeError as e:
        raise SearchError(f"bad {kind} layer {data}: {e}") from e


@dataclass(frozen=True)
class Network:
    """A named network: an input shape (no batch dimension; the batch is always 1) and
    a layer list."""

    name: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))

    def shapes(self) -> list[Shape]:
        """The input shape then every layer's output shape (no batch dimension)."""
        return _run_shapes(self.layers, self.input_shape)

    @property
    def output_shape(self) -> Shape:
        return self.shapes()[-1]

    def macs(self) -> int:
        """Multiply-accumulates of one inference, counted as ``bench_firmware.analysis``
        counts them on the converted model."""
        return _run_macs(self.layers, self.input_shape)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "input_shape": list(self.input_shape),
                "layers": [layer_to_dict(x) for x in self.layers]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Network:
        try:
            return cls(name=str(data["name"]), input_shape=tuple(data["input_shape"]),
                       layers=tuple(layer_from_dict(x) for x in data["layers"]))
        except KeyError as e:
            raise SearchError(f"a network description lacks {e.args[0]!r}") from e

    def digest(self) -> str:
        """A short stable id of the structure (not the name): 12 hex digits of SHA-256."""
        body = {"input_shape": list(self.input_shape),
                "layers": [layer_to_dict(x) for x in self.layers]}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# Building blocks shared by the spaces and the presets
# --------------------------------------------------------------------------------------------


def ds_block(filters: int, stride: int | tuple[int, int] = 1, *, kernel: int = 3,
             act: str | None = "relu6") -> tuple[Layer, ...]:
    """Depthwise-separable block: 3x3 depthwise (+BN+act) then 1x1 pointwise (+BN+act).

    MobileNets (Howard et al. 2017, Fig. 3); DS-CNN (Hello Edge, ML-KWS-for-MCU
    ``models.py: _depthwise_separable_conv``); MicroNets Table 5 ("DS blocks are 3x3
    depthwise + 1x1 pointwise").
    """
    return (DepthwiseConv(kernel=(kernel, kernel), stride=_pair(stride), act=act),
            Conv(filters, (1, 1), act=act))


def inverted_residual(expand: int | None, out: int, stride: int, *, residual: bool,
                      act: str | None = "relu6") -> tuple[Layer, ...]:
    """MobileNetV2 inverted bottleneck (Sandler et al. 2018, Table 1): 1x1 expansion
    (+BN+ReLU6; absent when ``expand`` is None, as in the t=1 block), 3x3 depthwise
    (+BN+ReLU6), 1x1 linear projection (+BN, no activation), and the residual ADD when
    ``residual`` (MobileNetV2: every block of a stage but the first, stride 1, same width).
    """
    body: list[Layer] = []
    if expand is not None:
        body.append(Conv(expand, (1, 1), act=act))
    body.append(DepthwiseConv((3, 3), (stride, stride), act=act))
    body.append(Conv(out, (1, 1), act=None))
    if residual:
        return (Residual(tuple(body)),)
    return tuple(body)
