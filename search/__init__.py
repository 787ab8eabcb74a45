"""mcuprof search: search spaces, architecture sampling, Keras builders, int8 conversion.

The only package of mcuprof that imports TensorFlow, and only inside the functions that
build or convert models (``search.keras_builders``, ``search.convert``). The names exported
here are pure Python::

    from search import sample, get_preset
    archs = sample("kws", 50, seed=0)          # uniform over the MicroNets KWS space
    arch = archs[0]; arch.id; arch.to_json()   # a stable id; JSON that rebuilds it

    from search.convert import convert_architecture
    model = convert_architecture(arch)         # int8 .tflite bytes + sidecar data
    model.write(Path("out"))                   # out/kws-<id>.tflite, out/kws-<id>.json

Modules: ``network`` (layer descriptions, shapes, MACs), ``spaces`` (kws, vww, ad),
``sampler``, ``presets`` (MicroNets Table 5, DS-CNN, MLPerf Tiny), ``keras_builders``,
``convert``, ``cli`` (``mcuprof sample``).
"""

from __future__ import annotations

from search.network import Network
from search.presets import PRESETS, Preset, get_preset
from search.sampler import sample
from search.spaces import SPACES, Architecture, DecisionNode, SearchSpace, get_space, tags_for

__all__ = [
    "PRESETS",
    "SPACES",
    "Architecture",
    "DecisionNode",
    "Network",
    "Preset",
    "SearchSpace",
    "get_preset",
    "get_space",
    "sample",
    "tags_for",
]
