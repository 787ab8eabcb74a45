"""Final training of a found architecture, quantization-aware fine-tuning, int8 export.

The architecture is trained from scratch (MicroNets §5: the DNAS result is retrained), as the
Keras model :func:`search.keras_builders.build_keras` makes of its network, so the exported
graph is the one every other mcuprof model has.

**Quantization-aware training without tfmot.** The pinned Keras 3 stack has no TensorFlow
Model Optimization toolkit, so the fine-tuning is ours: after the float epochs, ``qat_epochs``
more run with every convolution, depthwise and dense kernel fake-quantized in the forward pass
(symmetric, per output channel, 127 levels, or 7 for 4-bit weights: what the converter and
``search/int4.py`` do) and the gradient applied to the float kernel (the straight-through
estimator of Bengio et al. 2013 / Jacob et al. CVPR 2018 §3). Activations are not fake-quantized
in training: the converter calibrates their int8 ranges on real training inputs (post-training,
``representative`` data), and batch normalization is folded at conversion, after the
fine-tuning, so the quantized kernels the fine-tuning saw are the unfolded ones. This is
weight-QAT plus calibrated activations; the int8 model's accuracy is measured, not assumed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.keras_builders import build_keras, import_keras, quiet
from search.network import Network

BN_MOMENTUM = 0.9  # Keras' 0.99 needs thousands of steps to forget the initial statistics
CALIBRATION_SAMPLES = 200  # training inputs the converter calibrates activations on


@dataclass
class Trained:
    """A trained network: the float Keras model (batch size 1), its int8 ``.tflite`` and
    accuracies (float validation; int8 on every test set)."""

    keras_model: Any
    tflite: bytes
    float_val_accuracy: float
    int8_accuracy: dict[str, float]
    history: list[dict[str, float]]


def _fake_quant(tf: Any, w: Any, axis: int, levels: int) -> Any:
    """Symmetric per-channel quantize-dequantize of ``w`` along ``axis`` (``levels`` = 127 or
    7 positive steps)."""
    reduce = [i for i in range(len(w.shape)) if i != axis % len(w.shape)]
    scale = tf.reduce_max(tf.abs(w), axis=reduce, keepdims=True) / levels
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    return tf.clip_by_value(tf.round(w / scale), -levels, levels) * scale


def _quantized_kernels(model: Any) -> list[tuple[Any, int]]:
    """(kernel variable, its channel axis) of every conv, depthwise and dense layer."""
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "DepthwiseConv2D":
            out.append((layer.kernel, 2))
        elif kind in ("Conv2D", "Dense"):
            out.append((layer.kernel, -1))
    return out


def train_network(network: Network, data: Any, *, epochs: int, qat_epochs: int,
                  weight_bits: int = 8, seed: int = 0, batch_size: int = 32,
                  lr: float = 1e-2, progress: Callable[[str], None] | None = None,
                  ) -> Trained:
    """Train ``network`` on ``data`` (a :class:`search.data.Dataset`), fine-tune with weight
    fake-quantization, convert to int8 with real calibration data, and measure accuracy."""
    tf, keras = import_keras()
    from search.convert import to_int8_tflite

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    say = progress or (lambda _msg: None)
    with quiet():
        model = build_keras(network, seed=seed, batch_size=None)
    for layer in model.layers:  # moving statistics that settle within a short training
        if type(layer).__name__ == "BatchNormalization":
            layer.momentum = BN_MOMENTUM
    levels_w = 7 if weight_bits == 4 else 127
    kernels = _quantized_kernels(model)
    history: list[dict[str, float]] = []
    total = epochs + qat_epochs
    steps = max(1, int(np.ceil(len(data.x_train) / batch_size)))
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total * steps),
                                                      alpha=0.05)
    opt = keras.optimizers.Adam(schedule)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True, autograph=False)
    def step(x: Any, y: Any, qat: Any) -> Any:
        saved = [tf.identity(k.value) for k, _ in kernels]
        for (k, axis), w in zip(kernels, saved, strict=True):
            k.assign(tf.cond(qat, lambda w=w, axis=axis: _fake_quant(tf, w, axis, levels_w),
                             lambda w=w: w))
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        for (k, _), w in zip(kernels, saved, strict=True):
            k.assign(w)  # the straight-through estimator: the float kernel takes the step
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    rng = np.random.default_rng(seed)
    for epoch in range(total):
        qat = epoch >= epochs
        order = rng.permutation(len(data.x_train))
        losses = []
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            losses.append(float(step(tf.constant(data.x_train[idx]),
                                     tf.constant(data.y_train[idx]), tf.constant(qat))))
        acc = accuracy_float(model, data.x_val, data.y_val)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_acc": acc,
                        "qat": float(qat)})
        say(f"final training epoch {epoch + 1}/{total}{' (QAT)' if qat else ''}: "
            f"loss {np.mean(losses):.3f}, float val accuracy {acc:.3f}")
    # The converter takes a batch-1 model of the same layers.
    with quiet():
        export = build_keras(network, seed=seed, batch_size=1)
    export.set_weights(model.get_weights())
    calib = data.x_train[rng.permutation(len(data.x_train))[:CALIBRATION_SAMPLES]]
    tflite = to_int8_tflite(export, calib)
    if weight_bits == 4:
        from search.int4 import int4_weights

        tflite = int4_weights(tflite, name=network.name)
    int8_acc = {data.test_name: accuracy_tflite(tflite, data.x_test, data.y_test,
                                                weight_bits=weight_bits)}
    for name, (x, y) in data.extra_tests.items():
        int8_acc[name] = accuracy_tflite(tflite, x, y, weight_bits=weight_bits)
    int8_acc["validation"] = accuracy_tflite(tflite, data.x_val, data.y_val,
                                             weight_bits=weight_bits)
    return Trained(export, tflite, history[-1]["val_acc"] if history else 0.0, int8_acc,
                   history)


def accuracy_float(model: Any, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy of a Keras model."""
    if len(x) == 0:
        return 0.0
    hits = 0
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch], training=False)
        hits += int(np.sum(np.argmax(np.asarray(logits), axis=-1) == y[i:i + batch]))
    return hits / len(x)


def tflite_logits(tflite: bytes, x: np.ndarray, *, weight_bits: int = 8) -> np.ndarray:
    """Dequantized outputs of the int8 model on every input (TFLite's interpreter; a 4-bit
    model is run as its int8 widening, the documented reference of search/int4.py)."""
    tf, _ = import_keras()
    if weight_bits == 4:
        from search.int4 import widen_int4

        tflite = widen_int4(tflite)
    with warnings.catch_warnings():  # its notice that LiteRT will replace it
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_content=tflite, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    s_in, z_in = inp["quantization"]
    s_out, z_out = out["quantization"]
    rows = []
    for sample in x:
        q = np.clip(np.round(sample / s_in) + z_in, -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], q[None])
        interp.invoke()
        rows.append((interp.get_tensor(out["index"])[0].astype(np.float32) - z_out) * s_out)
    return np.asarray(rows)


def accuracy_tflite(tflite: bytes, x: np.ndarray, y: np.ndarray, *, weight_bits: int = 8
                    ) -> float:
    if len(x) == 0:
        return 0.0
    logits = tflite_logits(tflite, x, weight_bits=weight_bits)
    return float(np.mean(np.argmax(logits, axis=-1) == y))
