"""Uniform sampling over a search space (pure Python: no TensorFlow).

MicroNets (RQ1) fits latency against ops on models "sampled uniformly from one backbone":
every decision node draws one of its choices with equal probability, independently. The
generator is ``random.Random(seed)``, whose ``choice`` sequence is stable across Python 3
releases, and every architecture consumes the same number of draws (one per node, inactive
nodes included), so a seed gives the same list on every machine, and the first ``k`` of
``sample(space, n, seed)`` are ``sample(space, k, seed)``.
"""

from __future__ import annotations

import random

from search.errors import SearchError
from search.network import Shape
from search.spaces import Architecture, SearchSpace, get_space

#: Draws per wanted architecture before giving up on finding distinct ones.
MAX_DRAWS_PER_MODEL = 100


def sample(space: str | SearchSpace, n: int, seed: int = 0, *,
           input_shape: Shape | None = None, unique: bool = True) -> list[Architecture]:
    """``n`` architectures drawn uniformly from ``space`` with ``seed``.

    ``unique`` drops repeats (equal canonical architectures) and keeps drawing; the
    spaces are large enough (>= 10^15 points) that this practically never happens.
    """
    sp = get_space(space)
    if n < 1:
        raise SearchError(f"asked for {n} architectures; ask for at least 1")
    shape = sp.check_input_shape(input_shape)
    rng = random.Random(seed)
    out: list[Architecture] = []
    seen: set[Architecture] = set()
    for _ in range(n * MAX_DRAWS_PER_MODEL):
        choices = {node.name: rng.choice(node.choices) for node in sp.nodes}
        arch = Architecture(sp.name, choices, shape)
        if unique and arch in seen:
            continue
        seen.add(arch)
        out.append(arch)
        if len(out) == n:
            return out
    raise SearchError(f"space {sp.name!r} gave only {len(out)} distinct architectures in "
                      f"{n * MAX_DRAWS_PER_MODEL} draws; ask for fewer")
