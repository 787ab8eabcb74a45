"""Synthetic measurements for the fitting tests: layer lists of three backbones shaped like
MicroNets' search spaces (DS-CNN KWS, DS-CNN AD, MobileNetV2 VWW), with cycles from a known
per-layer cost model, as ``MeasurementOut``-shaped dicts plus tags.

The known costs follow the per-layer model's form (``service.fitting.per_layer``), computed
from the *true* input channels and kernels the generator knows, so a fit can be checked against
them; noise is multiplicative per layer. KWS and AD keep channel counts at multiples of 4 (as
MicroNets' KWS space does); VWW widths are 10 %-steps of MobileNetV2's, mostly not multiples
of 4, with more depthwise layers, ADD and PAD: its cycles per op differ from the other two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLOCK_HZ = 180_000_000  # nucleo-f446re
DEVICE_CLASS = "virtual:nucleo-f446re"
OVERHEAD_CYCLES = 6_000.0
LANES = 4

# Known cycles per unit of feature, per op type (Cortex-M4-like magnitudes).
TRUE_WEIGHTS: dict[str, dict[str, float]] = {
    "CONV_2D": {"macs": 0.55, "tail_macs": 2.2, "out_elems": 18.0, "out_pixels": 45.0,
                "const": 400.0},
    "DEPTHWISE_CONV_2D": {"macs": 0.9, "tail_macs": 3.1, "out_elems": 22.0, "out_pixels": 70.0,
                          "const": 350.0},
    "FULLY_CONNECTED": {"macs": 0.6, "tail_macs": 2.0, "out_elems": 25.0, "out_pixels": 0.0,
                        "const": 250.0},
    "AVERAGE_POOL_2D": {"reduce_ops": 1.6, "out_elems": 30.0, "const": 200.0},
    "ADD": {"reduce_ops": 0.0, "out_elems": 11.0, "const": 180.0},
    "PAD": {"reduce_ops": 0.0, "out_elems": 3.0, "const": 120.0},
    "RESHAPE": {"reduce_ops": 0.0, "out_elems": 0.5, "const": 60.0},
    "SOFTMAX": {"reduce_ops": 0.0, "out_elems": 140.0, "const": 300.0},
}


def _tail(c: int) -> float:
    return (c % LANES) / c


@dataclass
class Chain:
    """A sequential model under construction: the current activation shape and its layers."""

    h: int
    w: int
    c: int
    layers: list[dict[str, Any]] = field(default_factory=list)
    input_shape: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.input_shape = [1, self.h, self.w, self.c]

    @property
    def shape(self) -> list[int]:
        return [1, self.h, self.w, self.c]

    def _add(self, op: str, shape: list[int], macs: int, ops: int, feats: dict[str, float],
             param_bytes: int = 0) -> None:
        out_elems = int(np.prod(shape))
        feats = {"out_elems": out_elems, "const": 1.0, **feats}
        if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            feats.setdefault("out_pixels", out_elems / shape[-1])
            feats["macs"] = macs
        true = sum(TRUE_WEIGHTS[op].get(k, 0.0) * v for k, v in feats.items())
        self.layers.append({"index": len(self.layers), "op": op, "macs": macs, "ops": ops,
                            "param_bytes": param_bytes, "plan_bytes": param_bytes + 64,
                            "output_shape": shape, "true_cycles": true})

    def conv(self, c_out: int, k: int = 1, stride: int = 1, kw: int | None = None) -> Chain:
        kw = kw or k
        oh, ow = -(-self.h // stride), -(-self.w // stride)
        macs = oh * ow * c_out * k * kw * self.c
        self._add("CONV_2D", [1, oh, ow, c_out], macs, 2 * macs,
                  {"tail_macs": macs * _tail(self.c)}, c_out * (k * kw * self.c + 4))
        self.h, self.w, self.c = oh, ow, c_out
        return self

    def dw(self, k: int = 3, stride: int = 1) -> Chain:
        if stride > 1:
            self.pad(k - 1)
        oh, ow = -(-self.h // stride), -(-self.w // stride)
        macs = oh * ow * self.c * k * k
        self._add("DEPTHWISE_CONV_2D", [1, oh, ow, self.c], macs, 2 * macs,
                  {"tail_macs": macs * _tail(self.c)}, self.c * (k * k + 4))
        self.h, self.w = oh, ow
        return self

    def pad(self, p: int) -> Chain:
        self.h, self.w = self.h + p, self.w + p
        self._add("PAD", self.shape, 0, 0, {})
        return self

    def add(self) -> Chain:
        n = int(np.prod(self.shape))
        self._add("ADD", self.shape, 0, n, {})
        return self

    def head(self, classes: int) -> Chain:
        window = self.h * self.w
        self._add("AVERAGE_POOL_2D", [1, 1, 1, self.c], 0, self.c * window,
                  {"reduce_ops": self.c * window - self.c})
        self._add("RESHAPE", [1, self.c], 0, 0, {})
        macs = self.c * classes
        self._add("FULLY_CONNECTED", [1, classes], macs, 2 * macs,
                  {"tail_macs": macs * _tail(self.c), "out_pixels": 1.0},
                  classes * (self.c + 4))
        self._add("SOFTMAX", [1, classes], 0, classes, {})
        self.h = self.w = 1
        self.c = classes
        return self


def kws(rng: np.random.Generator) -> Chain:
    """DS-CNN on 49×10×1 MFCCs: conv 10×4 stride 2, 2–6 DS blocks, channels multiples of 4."""
    ch = Chain(49, 10, 1).conv(4 * int(rng.integers(8, 40)), k=10, kw=4, stride=2)
    for _ in range(int(rng.integers(2, 7))):
        ch.dw(3).conv(4 * int(rng.integers(8, 40)))
    return ch.head(12)


def ad(rng: np.random.Generator) -> Chain:
    """DS-CNN on 32×32×1 patches: conv 3×3, DS blocks, the last two stride 2."""
    ch = Chain(32, 32, 1).conv(4 * int(rng.integers(4, 16)), k=3, stride=2)
    n = int(rng.integers(3, 6))
    for i in range(n):
        ch.dw(3, stride=2 if i >= n - 2 else 1).conv(4 * int(rng.integers(4, 24)))
    return ch.head(4)


# MobileNetV2 blocks (output channels, stride) down to 50×50 input; widths 10 %–100 %.
_MBV2 = ((16, 1), (24, 2), (24, 1), (32, 2), (32, 1), (64, 2), (64, 1), (96, 1))


def vww(rng: np.random.Generator) -> Chain:
    """MobileNetV2 on 50×50×1: conv 3×3 s2, inverted bottlenecks (expand, depthwise, project,
    ADD where shapes match), widths searched in 10 % steps of MobileNetV2's (expansion 6)."""
    def width(c: int) -> int:
        return max(1, round(c * int(rng.integers(1, 11)) / 10))

    ch = Chain(50, 50, 1).conv(width(32), k=3, stride=2)
    for c, stride in _MBV2:
        c_in = ch.c
        ch.conv(width(6 * c)).dw(3, stride=stride).conv(width(c) if stride > 1 else c_in)
        if stride == 1 and ch.c == c_in:
            ch.add()
    return ch.conv(width(320)).head(2)


BACKBONES = {"kws": kws, "ad": ad, "vww": vww}


def random_chain(rng: np.random.Generator) -> Chain:
    """A sequential model of varied shapes (kernels 1–7, any channel count) so every feature
    of every op type varies independently: the data a weight-recovery test needs."""
    ch = Chain(int(rng.integers(8, 33)), int(rng.integers(8, 33)), int(rng.integers(1, 40)))
    for _ in range(int(rng.integers(3, 9))):
        kind = int(rng.integers(0, 3))
        if kind == 0:
            ch.conv(int(rng.integers(1, 120)), k=int(rng.choice([1, 3, 5])),
                    stride=int(rng.choice([1, 2])) if ch.h > 4 else 1)
        elif kind == 1:
            ch.dw(int(rng.choice([3, 5, 7])), stride=int(rng.choice([1, 2])) if ch.h > 4 else 1)
        else:
            ch.add()
    return ch.head(int(rng.integers(2, 40)))


def record(chain: Chain, *, measurement_id: int, model_id: int, backbone: str | None,
           rng: np.random.Generator, layer_noise: float = 0.0,
           device_class: str = DEVICE_CLASS, clock_hz: float = CLOCK_HZ) -> dict[str, Any]:
    """A ``MeasurementOut``-shaped dict (plus ``tags`` and ``input_shape``) for one run of
    ``chain``: each layer's known cycles times (1 + N(0, layer_noise)), plus the overhead."""
    layers = []
    for layer in chain.layers:
        cycles = layer["true_cycles"] * (1.0 + layer_noise * rng.standard_normal())
        layers.append({k: v for k, v in layer.items() if k != "true_cycles"}
                      | {"cycles": max(int(round(cycles)), 1)})
    total = sum(layer["cycles"] for layer in layers) + int(OVERHEAD_CYCLES)
    return {
        "id": measurement_id, "job_id": measurement_id, "model_id": model_id,
        "device": f"{device_class}:host-0", "device_class": device_class,
        "board": device_class.split(":")[-1], "cycles": total,
        "cycles_per_run": [total], "cycle_source": "cycle-model",
        "latency_ms": total / clock_hz * 1e3, "energy_mj": None, "energy_source": None,
        "arena_bytes": 10_000, "plan_bytes": 20_000, "flash_bytes": None,
        "ops": sum(layer["ops"] for layer in layers),
        "macs": sum(layer["macs"] for layer in layers), "layers": layers, "output": [],
        "kernels": "dsp", "firmware_id": None, "plan_id": None, "created_at": None,
        "tags": {"backbone": backbone} if backbone else {},
        "input_shape": chain.input_shape,
    }


def dataset(per_backbone: int, *, seed: int = 0, layer_noise: float = 0.02,
            backbones: tuple[str, ...] = ("kws", "ad", "vww")) -> list[dict[str, Any]]:
    """``per_backbone`` sampled models of each backbone, one measurement each."""
    rng = np.random.default_rng(seed)
    records: list[dict[str, Any]] = []
    for backbone in backbones:
        for _ in range(per_backbone):
            mid = len(records) + 1
            records.append(record(BACKBONES[backbone](rng), measurement_id=mid, model_id=mid,
                                  backbone=backbone, rng=rng, layer_noise=layer_noise))
    return records
