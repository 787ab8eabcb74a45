"""The one way tests turn a Keras model into an int8 ``.tflite``: TensorFlow's own converter
with full-integer quantization, quietly (TF's warnings and prints do not reach pytest)."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

Representative = Callable[[], Iterator[list[np.ndarray]]]


def import_tf() -> tuple[Any, Any]:
    """``(tensorflow, keras)``, imported with TF's start-up chatter silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import keras
        import tensorflow as tf
    return tf, keras


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence warnings and stdout while building and converting models."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def to_int8_tflite(model: Any, representative: Representative, *, float_io: bool = False,
                   per_tensor: bool = False) -> bytes:
    """Full-integer conversion: int8 weights and activations, int8 input and output unless
    ``float_io`` (then QUANTIZE / DEQUANTIZE at the ends); per-channel weights unless
    ``per_tensor``."""
    tf, _ = import_tf()
    with quiet():
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if not float_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        if per_tensor:
            conv._experimental_disable_per_channel = True
        return bytes(conv.convert())


def to_float_tflite(model: Any) -> bytes:
    """Plain float32 conversion (for tests of the float-model error)."""
    tf, _ = import_tf()
    with quiet():
        return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
