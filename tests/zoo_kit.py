"""The model zoo's building blocks: Keras layer factories with seeded, non-trivial
initialisers (:class:`_Kit`), and the registry of zoo entries (:data:`ZOO_SPECS`, filled by
the ``@_model`` decorator in ``tests/zoo_models.py``). See ``tests/zoo.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    weight_bits: int = 8  # 4: conv and FC weights made 4-bit by search/int4.py


ZOO_SPECS: dict[str, ZooSpec] = {}


def _model(
    name: str,
    input_shape: tuple[int, ...],
    ops: set[str],
    *,
    float_io: bool = False,
    per_tensor: bool = False,
    weight_bits: int = 8,
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
            weight_bits=weight_bits,
        )
        return fn

    return register

