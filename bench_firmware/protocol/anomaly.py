"""The host's model of what the firmware does for an anomaly-detection plan (``ad01``, int8
output the size of its int8 input): how it quantizes a float32 upload and the anomaly score it
sends in ``m-results``, so tests and hosts can check the board's numbers exactly.

The EEMBC anomaly-detection reference DUT takes its input as float32 feature values and answers
one score, the mean squared error between the dequantized autoencoder output and those values
(mlcommons/tiny, the reference anomaly_detection submission's th_load_tensor and th_results).
The firmware does the same (``bench_firmware/firmware/protocol/cmd_mlperf.c``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

INT8_MIN, INT8_MAX = -128, 127


def quantize_features(values: npt.ArrayLike, scale: float, zero_point: int) -> bytes:
    """float32 values to the int8 input bytes, as the firmware quantizes a float32 upload:
    TFLite's reference AffineQuantize (``round(x / scale) + zero_point``, rounded half away from
    zero, clamped to int8), the division in float32, as its QUANTIZE kernel. NaN gives the
    zero point."""
    x = np.asarray(values, dtype=np.float32)
    v = x / np.float32(scale)
    v = np.where(np.isnan(v), np.float32(0.0), v)
    v = np.clip(v, np.float32(-512.0), np.float32(512.0))
    q = np.trunc(v)
    frac = v - q
    q = q + (frac >= 0.5) - (frac <= -0.5)
    q = np.clip(q.astype(np.int32) + int(zero_point), INT8_MIN, INT8_MAX)
    return q.astype(np.int8).tobytes()


def dequantize(data: bytes, scale: float, zero_point: int) -> np.ndarray:
    """int8 bytes to float32 values, ``(q - zero_point) * scale`` in float32."""
    q = np.frombuffer(data, dtype=np.int8).astype(np.int32) - int(zero_point)
    return q.astype(np.float32) * np.float32(scale)


def anomaly_score(output: bytes, output_scale: float, output_zero_point: int,
                  features: npt.ArrayLike) -> float:
    """The score the firmware sends: the mean squared error between the dequantized int8
    ``output`` and ``features`` (the float32 upload, or the int8 input dequantized), summed in
    float32 in element order and divided by the element count in float32."""
    y = dequantize(output, output_scale, output_zero_point)
    x = np.asarray(features, dtype=np.float32)
    if x.shape != y.shape:
        raise ValueError(f"the output has {y.size} values and the features {x.size}")
    d = y - x
    total = np.float32(0.0)
    for term in d * d:  # in order, as the board adds them (numpy's sum pairs them up)
        total = np.float32(total + term)
    return float(np.float32(total / np.float32(y.size)))
