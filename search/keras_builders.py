"""Keras models from :class:`search.network.Network` descriptions (TensorFlow imported lazily).

One builder, :func:`build_keras`, turns any network into a ``keras.Model``; the per-space
builders (:data:`BUILDERS`: ``kws``, ``vww``, ``ad``) resolve an architecture of their space
into its network first, so the space description is the single source of the structure.

The input is declared with ``batch_size=1`` so the converter emits static shapes (no
``SHAPE`` / ``STRIDED_SLICE`` / ``PACK``), and every layer maps onto an operator the bench
firmware runs: Conv2D / DepthwiseConv2D (+ folded BatchNormalization, fused ReLU / ReLU6)
-> ``CONV_2D`` / ``DEPTHWISE_CONV_2D``; AveragePooling2D -> ``AVERAGE_POOL_2D``; Flatten ->
``RESHAPE`` (or nothing: ``FULLY_CONNECTED`` flattens its input itself, and the converter
drops a Flatten before it); Dense -> ``FULLY_CONNECTED``; Add -> ``ADD``; Softmax ->
``SOFTMAX``.

Weights are random but seeded (``keras.utils.set_random_seed``): latency does not depend on
their values, and the model must be rebuilt bit for bit from its description and seed.
Kernels use He initialisation -- for depthwise kernels with the true fan-in (kh * kw), which
Keras' ``fan_in`` mode overstates by the channel count -- so the signal survives deep stacks
(the same choice as ``tests/zoo.py``); BatchNormalization gets random statistics near 1 so the
folded per-channel scales differ, as in a trained network.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from search.errors import ConversionError
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
from search.spaces import Architecture


def import_keras() -> tuple[Any, Any]:
    """``(tensorflow, keras)``, imported with TensorFlow's start-up chatter silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import keras
            import tensorflow as tf
    except ImportError as e:
        raise ConversionError(
            "building models needs TensorFlow; install mcuprof with its ml extra: "
            "pip install -e '.[ml]'") from e
    return tf, keras


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Python warnings and stdout prints while building and converting."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


class _Builder:
    """Applies IR layers to Keras tensors with seeded, non-trivial initialisers."""

    def __init__(self, keras: Any, seed: int = 0) -> None:
        self.keras = keras
        self.L = keras.layers
        self.count = 0
        self.seed = seed
        self.draws = 0

    def _seed(self) -> int:
        """A seed of its own for every initializer: Keras 3 gives an unseeded initializer
        instance the same values on every call, so layers of one shape sharing an instance got
        identical weights (which the converter then stored once), unlike any trained model."""
        self.draws += 1
        return (self.seed * 1_000_003 + self.draws) % 2**31

    def he_in(self) -> Any:
        return self.keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal",
                                                       seed=self._seed())

    def he_out(self) -> Any:
        return self.keras.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal",
                                                       seed=self._seed())

    def bias(self) -> Any:
        return self.keras.initializers.RandomNormal(stddev=0.1, seed=self._seed())

    def name(self, kind: str) -> str:
        """Explicit, sequential layer names: Keras' automatic names count every layer ever
        made in the process, and the converter copies them into tensor names, so the same
        network would convert to different bytes depending on what was built before it."""
        self.count += 1
        return f"{kind}_{self.count}"

    def bn(self, x: Any) -> Any:
        init = self.keras.initializers
        return self.L.BatchNormalization(
            name=self.name("bn"),
            gamma_initializer=init.RandomUniform(0.5, 1.5, seed=self._seed()),
            beta_initializer=init.RandomNormal(stddev=0.1, seed=self._seed()),
            moving_mean_initializer=init.RandomNormal(stddev=0.1, seed=self._seed()),
            moving_variance_initializer=init.RandomUniform(0.5, 1.5, seed=self._seed()),
        )(x)

    def act(self, x: Any, act: str | None) -> Any:
        if act == "relu":
            return self.L.ReLU(name=self.name("relu"))(x)
        if act == "relu6":
            return self.L.ReLU(max_value=6.0, name=self.name("relu6"))(x)
        return x

    def apply(self, layer: Layer, x: Any) -> Any:
        L = self.L
        if isinstance(layer, Conv):
            y = L.Conv2D(layer.filters, layer.kernel, strides=layer.stride, padding=layer.padding,
                         use_bias=not layer.bn, kernel_initializer=self.he_in(),
                         bias_initializer=self.bias(), name=self.name("conv"))(x)
            return self.act(self.bn(y) if layer.bn else y, layer.act)
        if isinstance(layer, DepthwiseConv):
            y = L.DepthwiseConv2D(layer.kernel, strides=layer.stride, padding=layer.padding,
                                  use_bias=not layer.bn, depthwise_initializer=self.he_out(),
                                  bias_initializer=self.bias(), name=self.name("dwconv"))(x)
            return self.act(self.bn(y) if layer.bn else y, layer.act)
        if isinstance(layer, AvgPool):
            return L.AveragePooling2D(layer.pool, strides=layer.stride, padding=layer.padding,
                                      name=self.name("avgpool"))(x)
        if isinstance(layer, Flatten):
            return L.Flatten(name=self.name("flatten"))(x)
        if isinstance(layer, Dense):
            y = L.Dense(layer.units, use_bias=not layer.bn, kernel_initializer=self.he_in(),
                        bias_initializer=self.bias(), name=self.name("dense"))(x)
            return self.act(self.bn(y) if layer.bn else y, layer.act)
        if isinstance(layer, Softmax):
            return L.Softmax(name=self.name("softmax"))(x)
        if isinstance(layer, Residual):
            y = x
            for sub in layer.body:
                y = self.apply(sub, y)
            s = x
            for sub in layer.shortcut:
                s = self.apply(sub, s)
            return self.act(L.Add(name=self.name("add"))([s, y]), layer.act)
        raise ConversionError(f"no Keras builder for layer {layer!r}")


def build_keras(network: Network, *, seed: int = 0, batch_size: int | None = 1) -> Any:
    """A ``keras.Model`` of ``network`` with seeded random weights (batch size 1: what the
    converter takes; ``batch_size=None`` for training, with the same layers and names, so
    ``set_weights`` carries trained weights over)."""
    network.shapes()  # fail early, without TensorFlow, on a malformed description
    _, keras = import_keras()
    try:
        with quiet():
            keras.utils.set_random_seed(seed)
            inp = keras.Input(network.input_shape, batch_size=batch_size, name="input")
            builder = _Builder(keras, seed)
            x = inp
            for layer in network.layers:
                x = builder.apply(layer, x)
            return keras.Model(inp, x, name=_keras_name(network.name))
    except ConversionError:
        raise
    except Exception as e:  # Keras raises ValueError / TypeError for bad shapes
        raise ConversionError(f"Keras could not build {network.name}: {e}",
                              name=network.name) from e


def _keras_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name) or "model"


def _space_builder(space: str) -> Callable[..., Any]:
    def build(arch: Architecture, *, seed: int = 0, name: str | None = None) -> Any:
        if arch.space != space:
            raise ConversionError(f"the {space} builder got an architecture of {arch.space}")
        return build_keras(arch.network(name), seed=seed)

    build.__name__ = f"build_{space}"
    build.__doc__ = f"A Keras model of an architecture of the {space!r} space."
    return build


build_kws = _space_builder("kws")
build_vww = _space_builder("vww")
build_ad = _space_builder("ad")

#: Keras builder per search space.
BUILDERS: dict[str, Callable[..., Any]] = {"kws": build_kws, "vww": build_vww, "ad": build_ad}


def build_architecture(arch: Architecture, *, seed: int = 0, name: str | None = None) -> Any:
    """A Keras model of ``arch`` with its space's builder."""
    return BUILDERS[arch.space](arch, seed=seed, name=name)
