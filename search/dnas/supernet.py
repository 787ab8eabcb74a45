"""The supernet: every architecture of a (sub-)space at once, mixed by the node weights ``z``.

Built from the same :class:`~search.spaces.SearchSpace` description the sampler and the cost
model read (MicroNets §5: ``y = Σ_k z_k f_k(x)`` over the choices of each decision node):

- a **width node** is one layer at the node's largest allowed width whose output channels are
  multiplied by a prefix mask ``m = Σ_k z_k · [j < c_k]`` (the first ``c_k`` channels for
  choice ``k``), as MicroNets masks channels of one max-width tensor; the depthwise layer
  after it keeps the mask (its channel ``j`` reads input channel ``j``);
- a **depth node** mixes the block and its parallel skip (identity, or a 2x2 average pool
  where the block strides): ``z_block · block(x) + z_skip · skip(x)``.

Feature maps of the DS spaces (``kws``, ``ad``) carry the largest width of any node, so the
block and its skip add up; masks zero the channels a choice does not have. BatchNormalization
follows every convolution and the activation every BatchNormalization, as in the networks the
space resolves to (``search/network.py``), so a one-hot ``z`` computes exactly the
sub-network's function with the supernet's weights.

``z`` comes from the caller (:mod:`search.dnas.search`: Gumbel-softmax samples of the
architecture logits); the supernet has no architecture state of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from search.dnas.relaxed import RelaxedSpace
from search.spaces import KEEP, SKIP, DSSlot, InvertedResidualSlot


class Supernet:
    """Keras layers at the largest widths, applied with masks from ``z``."""

    def __init__(self, rs: RelaxedSpace, classes: int, *, seed: int = 0) -> None:
        from search.keras_builders import import_keras

        tf, keras = import_keras()
        self.tf = tf
        self.rs = rs
        self.classes = classes
        sp = rs.space
        self.width_nodes = [n.name for n in sp.nodes if n.kind == "width"]
        self.max_width = {n: int(max(rs.choices[n])) for n in self.width_nodes}  # type: ignore
        # DS spaces: one channel dimension for every feature map (blocks and skips add).
        self.common = max(self.max_width.values()) if _ds_space(rs) else None
        self.prefix = {n: tf.constant(_prefix(rs.choices[n], self.common or self.max_width[n]))
                       for n in self.width_nodes}
        init = keras.initializers
        self._seed = seed
        L = keras.layers
        self.layers: list[Any] = []

        def he(i: int) -> Any:
            return init.HeNormal(seed=seed * 1000 + i)

        def conv(filters: int, kernel: tuple[int, int], stride: tuple[int, int]) -> Any:
            i = len(self.layers)
            layer = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                             kernel_initializer=he(i))
            self.layers.append(layer)
            return layer

        def dw(stride: int) -> Any:
            i = len(self.layers)
            layer = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                      depthwise_initializer=he(i))
            self.layers.append(layer)
            return layer

        def bn() -> Any:
            layer = L.BatchNormalization(momentum=0.9)
            self.layers.append(layer)
            return layer

        width = self._width
        self.stem = (conv(width(sp.stem.width), sp.stem.kernel, sp.stem.stride), bn())
        self.blocks: list[tuple[Any, ...]] = []
        for slot in sp.blocks:
            if isinstance(slot, DSSlot):
                self.blocks.append((dw(slot.stride), bn(), conv(width(slot.width), (1, 1),
                                                                (1, 1)), bn()))
            else:
                assert isinstance(slot, InvertedResidualSlot)
                expand = (conv(width(slot.expand), (1, 1), (1, 1)), bn()) \
                    if slot.expand is not None else None
                self.blocks.append((expand, dw(slot.stride), bn(),
                                    conv(width(slot.out), (1, 1), (1, 1)), bn()))
        self.head = (conv(width(sp.head.width), (1, 1), (1, 1)), bn()) \
            if sp.head.width is not None else None
        self.dense = L.Dense(classes, kernel_initializer=init.GlorotUniform(seed=seed * 1000 + 999))
        self.layers.append(self.dense)
        self.pool = L.AveragePooling2D
        self._built = False

    def _width(self, node: str) -> int:
        return self.common or self.max_width[node]

    def _mask(self, node: str, z: Mapping[str, Any]) -> Any:
        return self.tf.linalg.matvec(self.prefix[node], z[node], transpose_a=True)

    def _act(self, x: Any) -> Any:
        return self.tf.nn.relu6(x) if self.rs.space.act == "relu6" else self.tf.nn.relu(x)

    def __call__(self, x: Any, z: Mapping[str, Any], *, training: bool) -> Any:
        tf = self.tf
        sp = self.rs.space
        conv, norm = self.stem
        mask = self._mask(sp.stem.width, z)
        x = self._act(norm(conv(x), training=training)) * mask
        for slot, layers in zip(sp.blocks, self.blocks, strict=True):
            if isinstance(slot, DSSlot):
                dw, bn1, pw, bn2 = layers
                y = self._act(bn1(dw(x), training=training)) * mask
                out_mask = self._mask(slot.width, z)
                y = self._act(bn2(pw(y), training=training)) * out_mask
                if slot.depth is None:
                    x, mask = y, out_mask
                    continue
                keep, skip = _pick(self.rs, z, slot.depth, KEEP), _pick(self.rs, z, slot.depth,
                                                                         SKIP)
                s = slot.stride
                skipped = x if s == 1 else tf.nn.avg_pool2d(x, s, s, "SAME")
                x = keep * y + skip * skipped
                mask = keep * out_mask + skip * mask
            else:
                expand, dw, bn1, pw, bn2 = layers
                y = x
                if expand is not None:
                    assert slot.expand is not None
                    conv_e, bn_e = expand
                    mid_mask = self._mask(slot.expand, z)
                    y = self._act(bn_e(conv_e(y), training=training)) * mid_mask
                else:
                    mid_mask = mask
                y = self._act(bn1(dw(y), training=training)) * mid_mask
                out_mask = self._mask(slot.out, z)
                y = bn2(pw(y), training=training) * out_mask  # linear projection
                x = x + y if slot.residual else y
                mask = out_mask
        if self.head is not None:
            assert sp.head.width is not None
            conv, norm = self.head
            x = self._act(norm(conv(x), training=training)) * self._mask(sp.head.width, z)
        x = tf.reduce_mean(x, axis=[1, 2])
        return self.dense(x)

    @property
    def trainable_variables(self) -> list[Any]:
        out = []
        for layer in self.layers:
            out.extend(layer.trainable_variables)
        return out

    @property
    def variables(self) -> list[Any]:
        out = []
        for layer in self.layers:
            out.extend(layer.variables)
        return out


def _ds_space(rs: RelaxedSpace) -> bool:
    return all(isinstance(s, DSSlot) for s in rs.space.blocks)


def _prefix(choices: tuple[Any, ...], width: int) -> np.ndarray:
    """K x width matrix: row k has ones on the first ``choices[k]`` channels."""
    out = np.zeros((len(choices), width), np.float32)
    for k, c in enumerate(choices):
        out[k, : int(c)] = 1.0
    return out


def _pick(rs: RelaxedSpace, z: Mapping[str, Any], node: str, choice: str) -> Any:
    allowed = rs.choices[node]
    if choice not in allowed:
        return 0.0
    return z[node][allowed.index(choice)]
