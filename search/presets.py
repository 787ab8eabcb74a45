"""Named reference networks, layer by layer, each with its source.

- ``micronet-kws-{s,m,l}``, ``micronet-ad-{s,m,l}``: the architectures MicroNets found
  (arXiv 2010.11267, Table 5), expressed as points of the
  ``kws`` and ``ad`` search spaces, so they carry an architecture and its id.
- ``ds-cnn-{s,m,l}``: Hello Edge's DS-CNNs (Zhang et al. 2017, arXiv 1711.07128), built from
  the exact ``--model_size_info`` strings of ARM-software/ML-KWS-for-MCU
  ``train_commands.txt``, read the way ``models.py: create_ds_cnn_model`` reads them.
- ``mlperf-kws``, ``mlperf-vww``, ``mlperf-ic``, ``mlperf-ad``: the MLPerf Tiny v0.5
  reference networks (mlcommons/tiny ``v0.1/training/keyword_spotting/keras_model.py``,
  ``v0.1/benchmarks/visual_wake_words/vww_model.py``,
  ``v0.1/benchmarks/image_classification/keras_model.py``,
  ``v0.1/benchmarks/anomaly_detection/keras_model.py``).

Presets outside a search space are plain :class:`search.network.Network` descriptions; their
``arch`` tag is the network's structural digest. Dropout layers of the sources are left out:
they are the identity at inference and the converter drops them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from search.errors import UnknownNameError
from search.network import (
    AvgPool,
    Conv,
    Dense,
    Flatten,
    Layer,
    Network,
    Residual,
    Softmax,
    ds_block,
)
from search.spaces import KEEP, SKIP, Architecture, Choice, get_space


@dataclass(frozen=True)
class Preset:
    """A named network: ``backbone`` is its server tag (the space for MicroNets presets)."""

    name: str
    title: str
    backbone: str
    source: str
    build: Callable[[], Network | Architecture]

    def architecture(self) -> Architecture | None:
        """The search-space point (MicroNets presets) or None."""
        item = self.build()
        return item if isinstance(item, Architecture) else None

    def network(self) -> Network:
        """The concrete layer list, named after the preset."""
        item = self.build()
        if isinstance(item, Architecture):
            net = item.network(self.name)
        else:
            net = item
        return Network(self.name, net.input_shape, net.layers, source=self.source)


# --------------------------------------------------------------------------------------------
# MicroNets Table 5
# --------------------------------------------------------------------------------------------

#: MicroNets Table 5: first Conv2D channels; DS blocks as (channels, stride).
MICRONET_KWS: dict[str, tuple[int, tuple[tuple[int, int], ...]]] = {
    "l": (276, ((248, 2), (276, 1), (276, 1), (248, 1), (248, 1), (248, 1), (248, 1))),
    "m": (140, ((140, 2), (140, 1), (140, 1), (112, 1), (196, 1))),
    "s": (84, ((112, 2), (84, 1), (84, 1), (84, 1), (196, 1))),
}
MICRONET_AD: dict[str, tuple[int, tuple[tuple[int, int], ...]]] = {
    "l": (276, ((248, 2), (276, 1), (276, 1), (248, 2), (248, 2))),
    "m": (192, ((276, 2), (276, 1), (276, 1), (276, 2), (276, 2))),
    "s": (72, ((164, 2), (220, 1), (276, 2), (276, 2))),
}


def micronet_kws(size: str) -> Architecture:
    """KWS-S/M/L in the ``kws`` space: DS-CNN(L)'s five DS blocks are always there, the
    four extra blocks (``ds6``-``ds9``) are kept in the order Table 5 lists more blocks
    (KWS-L: seven blocks, so ``ds6``, ``ds7`` kept, ``ds8``, ``ds9`` skipped)."""
    stem, blocks = MICRONET_KWS[size]
    choices: dict[str, Choice | None] = {"stem.width": stem}
    for i in range(1, 10):
        if i <= len(blocks):
            choices[f"ds{i}.width"] = blocks[i - 1][0]
            if i >= 6:
                choices[f"ds{i}.depth"] = KEEP
        else:
            choices[f"ds{i}.depth"] = SKIP
    return Architecture("kws", choices)


#: The ``ad`` slots a Table 5 network leaves out (AD-S has four of the five blocks).
MICRONET_AD_SKIPPED: dict[str, tuple[int, ...]] = {"l": (), "m": (), "s": (3,)}


def micronet_ad(size: str) -> Architecture:
    """AD-S/M/L in the ``ad`` space. AD-S has four blocks, 164(2), 220, 276(2), 276(2):
    one of the two stride-1 blocks is skipped; the network is the same whichever it is, and
    we skip the second (``ds3``)."""
    stem, blocks = MICRONET_AD[size]
    slots = get_space("ad").blocks
    choices: dict[str, Choice | None] = {"stem.width": stem}
    queue = list(blocks)
    for i, slot in enumerate(slots, start=1):
        if i in MICRONET_AD_SKIPPED[size]:
            choices[f"ds{i}.depth"] = SKIP
            continue
        width, stride = queue.pop(0)
        if stride != slot.stride:  # type: ignore[union-attr]
            raise AssertionError(f"AD-{size.upper()} block {i} has stride {stride}, the ad "
                                 f"space's slot {slot.stride}")  # type: ignore[union-attr]
        choices[f"ds{i}.width"] = width
        choices[f"ds{i}.depth"] = KEEP
    return Architecture("ad", choices)


# --------------------------------------------------------------------------------------------
# Hello Edge DS-CNN (ARM-software/ML-KWS-for-MCU)
# --------------------------------------------------------------------------------------------

#: ``--model_size_info`` of the DS-CNN lines of ML-KWS-for-MCU ``train_commands.txt``:
#: number of layers, then per layer (features, kernel t, kernel f, stride t, stride f).
DS_CNN_SIZE_INFO: dict[str, str] = {
    "s": "5 64 10 4 2 2 64 3 3 1 1 64 3 3 1 1 64 3 3 1 1 64 3 3 1 1",
    "m": "5 172 10 4 2 1 172 3 3 2 2 172 3 3 1 1 172 3 3 1 1 172 3 3 1 1",
    "l": "6 276 10 4 2 1 276 3 3 2 2 276 3 3 1 1 276 3 3 1 1 276 3 3 1 1 276 3 3 1 1",
}
#: ``train_commands.txt`` DS-CNN runs: 10 MFCC coefficients, 40 ms windows, 20 ms stride
#: over 1 s at 16 kHz: spectrogram_length = 1 + (16000 - 640) // 320 = 49
#: (``models.py: prepare_model_settings``).
KWS_INPUT = (49, 10, 1)
KWS_CLASSES = 12  # silence, unknown + 10 words


def ds_cnn_from_size_info(name: str, size_info: str) -> Network:
    """``create_ds_cnn_model`` of ML-KWS-for-MCU: layer 0 a Conv2D (SAME) with BN + ReLU,
    the others depthwise (SAME, depth multiplier 1) + BN + ReLU then 1x1 Conv2D + BN + ReLU;
    average pool over ``[ceil(t / strides), ceil(f / strides)]``, squeeze (our Flatten),
    fully connected to 12 logits; ``freeze.py`` adds ``labels_softmax``."""
    values = [int(v) for v in size_info.split()]
    count, rest = values[0], values[1:]
    if len(rest) != 5 * count:
        raise ValueError(f"model_size_info {size_info!r}: {count} layers need {5 * count} values")
    t_dim, f_dim = KWS_INPUT[0], KWS_INPUT[1]
    layers: list[Layer] = []
    for i in range(count):
        feat, kt, kf, st, sf = rest[5 * i: 5 * i + 5]
        if i == 0:
            layers.append(Conv(feat, (kt, kf), (st, sf), act="relu"))
        else:
            layers.extend(ds_block(feat, (st, sf), kernel=kt, act="relu"))
            assert kt == kf, "DS layers use square kernels in train_commands.txt"
        t_dim, f_dim = math.ceil(t_dim / st), math.ceil(f_dim / sf)
    layers += [AvgPool((t_dim, f_dim)), Flatten(), Dense(KWS_CLASSES), Softmax()]
    return Network(name, KWS_INPUT, tuple(layers))


# --------------------------------------------------------------------------------------------
# MLPerf Tiny reference networks
# --------------------------------------------------------------------------------------------


def mlperf_kws() -> Network:
    """``keras_model.py`` ``ds_cnn``: Conv2D 64 (10, 4) stride (2, 2) SAME + BN + ReLU,
    four DS blocks of 64 (3x3 depthwise + BN + ReLU, 1x1 + BN + ReLU), AveragePooling2D
    (25, 5), Flatten, Dense 12 softmax."""
    layers: list[Layer] = [Conv(64, (10, 4), (2, 2), act="relu")]
    for _ in range(4):
        layers.extend(ds_block(64, 1, act="relu"))
    layers += [AvgPool((25, 5)), Flatten(), Dense(KWS_CLASSES), Softmax()]
    return Network("mlperf-kws", KWS_INPUT, tuple(layers))


def mlperf_vww() -> Network:
    """``vww_model.py`` ``mobilenet_v1`` (alpha 0.25, 96x96x3): Conv2D 8 3x3 stride 2, then
    13 DS layers (pointwise widths 16, 32(s2), 32, 64(s2), 64, 128(s2), 128 x5, 256(s2),
    256; the stride is on the depthwise conv), all with BN + ReLU, AveragePooling2D over the
    3x3 map, Flatten, Dense 2 softmax."""
    layers: list[Layer] = [Conv(8, (3, 3), (2, 2), act="relu")]
    plan = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2),
            (128, 1), (128, 1), (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)]
    for width, stride in plan:
        layers.extend(ds_block(width, stride, act="relu"))
    layers += [AvgPool((3, 3)), Flatten(), Dense(2), Softmax()]
    return Network("mlperf-vww", (96, 96, 3), tuple(layers))


def mlperf_ic() -> Network:
    """``keras_model.py`` ``resnet_v1_eembc`` (ResNet-8, 32x32x3): Conv2D 16 3x3 + BN +
    ReLU; three stacks of [3x3 (+BN+ReLU), 3x3 (+BN)] added to the input (identity in the
    first stack, a strided 1x1 conv in the others: 32 and 64 filters, stride 2), ReLU after
    each ADD; AveragePooling2D 8, Flatten, Dense 10 softmax."""
    layers: list[Layer] = [Conv(16, (3, 3), act="relu")]
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        body = (Conv(filters, (3, 3), (stride, stride), act="relu"),
                Conv(filters, (3, 3), act=None))
        shortcut: tuple[Layer, ...] = ()
        if stride != 1:
            shortcut = (Conv(filters, (1, 1), (stride, stride), act=None, bn=False),)
        layers.append(Residual(body, shortcut, act="relu"))
    layers += [AvgPool((8, 8)), Flatten(), Dense(10), Softmax()]
    return Network("mlperf-ic", (32, 32, 3), tuple(layers))


def mlperf_ad() -> Network:
    """``keras_model.py`` ``get_model(640)``: Dense 128 (+BN+ReLU) x4, Dense 8 (+BN+ReLU),
    Dense 128 (+BN+ReLU) x4, Dense 640 (linear); input [1, 640]."""
    widths = [128, 128, 128, 128, 8, 128, 128, 128, 128]
    layers: list[Layer] = [Dense(w, act="relu", bn=True) for w in widths]
    layers.append(Dense(640))
    return Network("mlperf-ad", (640,), tuple(layers))


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

_TABLE5 = "MicroNets arXiv 2010.11267, Table 5"
_KWS_REPO = "ARM-software/ML-KWS-for-MCU train_commands.txt + models.py create_ds_cnn_model"
_TINY = "mlcommons/tiny v0.1 "


def _presets() -> dict[str, Preset]:
    out: list[Preset] = []
    for size in ("s", "m", "l"):
        out.append(Preset(f"micronet-kws-{size}", f"MicroNet KWS-{size.upper()}", "kws",
                          _TABLE5, lambda size=size: micronet_kws(size)))  # type: ignore[misc]
    for size in ("s", "m", "l"):
        out.append(Preset(f"micronet-ad-{size}", f"MicroNet AD-{size.upper()}", "ad",
                          _TABLE5, lambda size=size: micronet_ad(size)))  # type: ignore[misc]
    for size in ("s", "m", "l"):
        out.append(Preset(
            f"ds-cnn-{size}", f"DS-CNN {size.upper()} (Hello Edge)", "ds-cnn",
            f"{_KWS_REPO}: --model_size_info {DS_CNN_SIZE_INFO[size]}",
            lambda size=size: ds_cnn_from_size_info(  # type: ignore[misc]
                f"ds-cnn-{size}", DS_CNN_SIZE_INFO[size])))
    out += [
        Preset("mlperf-kws", "MLPerf Tiny KWS: DS-CNN, 64 channels", "ds-cnn",
               _TINY + "training/keyword_spotting/keras_model.py (ds_cnn)", mlperf_kws),
        Preset("mlperf-vww", "MLPerf Tiny VWW: MobileNetV1 alpha 0.25, 96x96x3",
               "mobilenet-v1", _TINY + "benchmarks/visual_wake_words/vww_model.py",
               mlperf_vww),
        Preset("mlperf-ic", "MLPerf Tiny IC: ResNet-8, 32x32x3", "resnet",
               _TINY + "benchmarks/image_classification/keras_model.py (resnet_v1_eembc)",
               mlperf_ic),
        Preset("mlperf-ad", "MLPerf Tiny AD: FC autoencoder 640-128x4-8-128x4-640",
               "fc-autoencoder", _TINY + "benchmarks/anomaly_detection/keras_model.py",
               mlperf_ad),
    ]
    return {p.name: p for p in out}


PRESETS: dict[str, Preset] = _presets()


def get_preset(name: str) -> Preset:
    """The preset called ``name``; the error lists every valid name."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownNameError("preset", name, list(PRESETS)) from None
