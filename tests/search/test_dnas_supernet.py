"""The supernet of every space: at a one-hot ``z`` it computes the chosen sub-network only.

Channels a width choice does not have are masked, skipped blocks are mixed out: so weights
the sub-network does not own cannot change the output. Checked by perturbing every supernet
weight outside the sub-network's channel prefix and comparing outputs, per space.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from search.dnas.relaxed import one_hot, relax
from search.dnas.search import restricted_choices
from search.spaces import SKIP, SPACES, Architecture

pytestmark = pytest.mark.slow


def _arch(space: str, rs, seed: int) -> Architecture:
    rnd = random.Random(seed)
    choices = {name: rnd.choice(allowed) for name, allowed in rs.choices.items()}
    for node in rs.space.nodes:
        if node.active_if is not None and choices[node.active_if] == SKIP:
            choices[node.name] = None
    return Architecture(space, choices, rs.input_shape)


@pytest.mark.parametrize("space", sorted(SPACES))
def test_one_hot_supernet_ignores_weights_outside_the_sub_network(space: str) -> None:
    pytest.importorskip("tensorflow", reason="the supernet is Keras")
    import tensorflow as tf

    from search.dnas.supernet import Supernet

    cap = 12 if space != "vww" else 8
    rs = relax(space, choices=restricted_choices(space, cap))
    net = Supernet(rs, classes=rs.space.head.classes, seed=1)
    x = tf.constant(np.random.default_rng(0).normal(size=(2, *rs.input_shape)), tf.float32)
    for seed in range(2):
        arch = _arch(space, rs, seed)
        z = {n: tf.constant(v, tf.float32) for n, v in one_hot(rs, arch.choices).items()}
        before = net(x, z, training=False).numpy()
        assert before.shape == (2, rs.space.head.classes)
        # Perturb the output channels beyond the largest width any node chose: no one-hot
        # sub-network of this architecture reads them.
        widest = max(int(v) for v in arch.choices.values() if isinstance(v, int))
        saved = [v.numpy() for v in net.trainable_variables]
        for v in net.trainable_variables:
            w = v.numpy()
            if w.ndim >= 1 and w.shape[-1] > widest and v is not net.dense.kernel \
                    and v is not net.dense.bias:
                w = w.copy()
                w[..., widest:] += 3.0
                v.assign(w)
        after = net(x, z, training=False).numpy()
        for v, w in zip(net.trainable_variables, saved, strict=True):
            v.assign(w)
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
        # ... while changing a weight the sub-network owns does change the output.
        stem = net.stem[0].kernel
        w = stem.numpy()
        stem.assign(w + 1.0)
        changed = net(x, z, training=False).numpy()
        stem.assign(w)
        assert not np.allclose(changed, before)
