"""Fixed-point quantization parameters, computed exactly as TensorFlow Lite Micro computes
them (``tensorflow/lite/kernels/internal/quantization_util.cc`` and ``kernel_util.cc``), so
the firmware's integer arithmetic matches TFLM bit for bit.

Python floats are IEEE doubles, so double arithmetic here is TFLM's double arithmetic; where
TFLM multiplies in float32 first, we do the same with numpy float32.
"""

from __future__ import annotations

import math

import numpy as np


def tflite_round(x: float) -> int:
    """``std::round``: halves away from zero (not Python's banker's rounding)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """A positive real multiplier as (int32 Q31 significand, power-of-two exponent).

    ``real ≈ significand / 2**31 * 2**shift``; TFLM ``QuantizeMultiplier``.
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed > (1 << 31):
        raise ValueError(f"multiplier {real} rounds out of range")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    """TFLM ``QuantizeMultiplierSmallerThanOneExp``: requires 0 < real < 1."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier {real} is not in (0, 1)")
    mult, shift = quantize_multiplier(real)
    return mult, shift


def f32(x: float) -> float:
    """Round to float32 and widen back, as C does for ``float`` values."""
    return float(np.float32(x))


def quantize_value(value: float, scale: float, zero_point: int) -> int:
    """TFLM ``Quantize`` in kernel_util.cc: ``zero_point + (int)round(value / scale)`` with
    the division in float32."""
    q = float(np.float32(np.float32(value) / np.float32(scale)))
    return zero_point + tflite_round(q)


def activation_range(activation: str, scale: float, zero_point: int,
                     qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """TFLM ``CalculateActivationRangeQuantized`` for a fused activation."""
    if activation in ("NONE", None):
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, quantize_value(0.0, scale, zero_point)), qmax
    if activation == "RELU6":
        return (max(qmin, quantize_value(0.0, scale, zero_point)),
                min(qmax, quantize_value(6.0, scale, zero_point)))
    if activation == "RELU_N1_TO_1":
        return (max(qmin, quantize_value(-1.0, scale, zero_point)),
                min(qmax, quantize_value(1.0, scale, zero_point)))
    raise ValueError(f"fused activation {activation} is not supported on int8")
