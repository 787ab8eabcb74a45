"""Differentiable costs of a relaxed architecture: expectations over the decision nodes.

The supernet (:mod:`search.dnas.supernet`) mixes every node's choices with weights ``z`` (a
Gumbel-softmax sample, MicroNets §5 after FBNet); this module gives the cost of that mix as the
*expected* cost of an architecture drawn with the probabilities ``z``, node by node
independently. Every cost mcuprof models is a sum over operators of products of factors that
each depend on one node (a gate: "this block is kept"; an input channel count; an output
channel count; constants of the skeleton), and different factors of one term never depend on
the same node (tested on every space), so the expectation of each term is the product of the
factors' expectations: exact for any ``z``, and at a one-hot ``z`` it is the architecture's own
cost. That holds for ops and MACs, parameter bytes (int8 or int4 weights, int32 biases) and
both latency models (the op-count line and the per-layer-type model, whose features are
linear in the same factors: ``search/dnas/latency.py``).

Channel counts after a block with a depth node are a mixture (the block's width when it is
kept, the count before it when its skip is taken): :class:`Channels` keeps that tree and
takes the expectation of any function of the count through it.

The arena (peak SRAM) and the plan size are not sums of such terms. Their differentiable
stand-ins here are the peak over operators of the expected input + output bytes and the
expected parameter bytes; :class:`search.dnas.costs.CostModel` corrects both to the plan
compiler's exact figure at the current argmax architecture (a straight-through correction),
so they too are exact at one-hot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from search.errors import SearchError
from search.network import _out_len
from search.spaces import (
    KEEP,
    SKIP,
    Choice,
    DSSlot,
    InvertedResidualSlot,
    SearchSpace,
    get_space,
)

Probs = Mapping[str, Any]  # node name -> 1-D tensor of choice probabilities (TF or numpy)
Gate = tuple[tuple[str, str], ...]  # (depth node, KEEP or SKIP) factors, all must hold
SIMD_LANES = 4  # the DSP kernels' four int8 lanes (service/fitting/per_layer.py tail_macs)


@dataclass(frozen=True)
class Channels:
    """A channel count: a constant, a width node, or a mixture over a depth node."""

    const: int | None = None
    node: str | None = None
    depth: str | None = None  # mixture: ``kept`` when the depth node keeps, else ``skipped``
    kept: Channels | None = None
    skipped: Channels | None = None

    def expect(self, ev: Evaluator, f: Callable[[int], float]) -> Any:
        """E[f(count)] under the node probabilities of ``ev``."""
        if self.const is not None:
            return ev.const(f(self.const))
        if self.node is not None:
            return ev.node_expect(self.node, f)
        assert self.depth is not None and self.kept is not None and self.skipped is not None
        keep = ev.choice_prob(self.depth, KEEP)
        return keep * self.kept.expect(ev, f) + (1.0 - keep) * self.skipped.expect(ev, f)

    def nodes(self) -> set[str]:
        if self.const is not None:
            return set()
        if self.node is not None:
            return {self.node}
        assert self.kept is not None and self.skipped is not None and self.depth is not None
        return {self.depth} | self.kept.nodes() | self.skipped.nodes()

    def value(self, choices: Mapping[str, Choice | None]) -> int:
        """The count at a concrete architecture."""
        if self.const is not None:
            return self.const
        if self.node is not None:
            v = choices[self.node]
            assert isinstance(v, int)
            return v
        assert self.kept is not None and self.skipped is not None and self.depth is not None
        return (self.kept if choices[self.depth] != SKIP else self.skipped).value(choices)


@dataclass(frozen=True)
class RelaxedOp:
    """One operator of the converted graph, with what its costs depend on."""

    op: str  # TFLite builtin name
    gate: Gate
    in_c: Channels
    out_c: Channels
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    kernel: tuple[int, int] = (1, 1)  # conv / depthwise kernel, pool filter
    units: int = 0  # FULLY_CONNECTED outputs
    quantized_weights: bool = False  # CONV_2D / FULLY_CONNECTED: the --bits choice applies
    extra_input: Channels | None = None  # ADD's second operand (same count as in_c)

    def nodes(self) -> list[set[str]]:
        """The nodes each factor of the op's product terms depends on: the gate, the input
        channels and (convolutions and fully connected layers, whose terms multiply both
        counts) the output channels; the others' terms use one count."""
        factors = [{n for n, _ in self.gate}, self.in_c.nodes()]
        if self.op in ("CONV_2D", "FULLY_CONNECTED"):
            factors.append(self.out_c.nodes())
        return factors


@dataclass
class RelaxedSpace:
    """A search space (optionally with fewer choices per node) as a relaxed operator list."""

    space: SearchSpace
    input_shape: tuple[int, int, int]
    choices: dict[str, tuple[Choice, ...]]
    ops: list[RelaxedOp] = field(default_factory=list)

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.space.nodes]


def relax(space: str | SearchSpace, *, input_shape: Sequence[int] | None = None,
          choices: Mapping[str, Sequence[Choice]] | None = None) -> RelaxedSpace:
    """The relaxed operator list of ``space``; ``choices`` restricts nodes' choices (a
    ``--max-width`` search)."""
    sp = get_space(space)
    shape = sp.check_input_shape(tuple(input_shape) if input_shape is not None else None)
    allowed: dict[str, tuple[Choice, ...]] = {}
    for node in sp.nodes:
        sub = tuple(choices[node.name]) if choices and node.name in choices else node.choices
        bad = [c for c in sub if c not in node.choices]
        if not sub or bad:
            raise SearchError(f"{sp.name}.{node.name}: choices {list(sub)} are not a non-empty "
                              f"subset of {list(node.choices)}")
        allowed[node.name] = sub
    rs = RelaxedSpace(sp, (int(shape[0]), int(shape[1]), int(shape[2])), allowed)
    _build(rs)
    return rs


def _conv(rs: RelaxedSpace, gate: Gate, c: Channels, hw: tuple[int, int], out: Channels,
          kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[Channels, tuple[int, int]]:
    ohw = (_out_len(hw[0], kernel[0], stride[0], "same"),
           _out_len(hw[1], kernel[1], stride[1], "same"))
    rs.ops.append(RelaxedOp("CONV_2D", gate, c, out, hw, ohw, kernel, quantized_weights=True))
    return out, ohw


def _dw(rs: RelaxedSpace, gate: Gate, c: Channels, hw: tuple[int, int], stride: int
        ) -> tuple[Channels, tuple[int, int]]:
    ohw = (_out_len(hw[0], 3, stride, "same"), _out_len(hw[1], 3, stride, "same"))
    rs.ops.append(RelaxedOp("DEPTHWISE_CONV_2D", gate, c, c, hw, ohw, (3, 3)))
    return c, ohw


def _build(rs: RelaxedSpace) -> None:
    """Mirror :meth:`SearchSpace.resolve` (and the converter's mapping, search/dnas/graph.py)."""
    sp = rs.space
    hw = (rs.input_shape[0], rs.input_shape[1])
    c = Channels(const=rs.input_shape[2])
    c, hw = _conv(rs, (), c, hw, Channels(node=sp.stem.width), sp.stem.kernel, sp.stem.stride)
    for slot in sp.blocks:
        if isinstance(slot, DSSlot):
            gate: Gate = ((slot.depth, KEEP),) if slot.depth is not None else ()
            before, before_hw = c, hw
            x, xhw = _dw(rs, gate, c, hw, slot.stride)
            x, xhw = _conv(rs, gate, x, xhw, Channels(node=slot.width), (1, 1), (1, 1))
            if slot.depth is None:
                c, hw = x, xhw
                continue
            if slot.stride != 1:  # the skip: a 2x2 average pool, SAME padding
                s = slot.stride
                phw = (_out_len(before_hw[0], s, s, "same"), _out_len(before_hw[1], s, s, "same"))
                rs.ops.append(RelaxedOp("AVERAGE_POOL_2D", ((slot.depth, SKIP),), before, before,
                                        before_hw, phw, (s, s)))
            c = Channels(depth=slot.depth, kept=x, skipped=before)
            hw = xhw
        else:
            assert isinstance(slot, InvertedResidualSlot)
            block_in = c
            x, xhw = c, hw
            if slot.expand is not None:
                x, xhw = _conv(rs, (), x, xhw, Channels(node=slot.expand), (1, 1), (1, 1))
            x, xhw = _dw(rs, (), x, xhw, slot.stride)
            x, xhw = _conv(rs, (), x, xhw, Channels(node=slot.out), (1, 1), (1, 1))
            if slot.residual:
                rs.ops.append(RelaxedOp("ADD", (), x, x, xhw, xhw, extra_input=block_in))
            c, hw = x, xhw
    if sp.head.width is not None:
        c, hw = _conv(rs, (), c, hw, Channels(node=sp.head.width), (1, 1), (1, 1))
    rs.ops.append(RelaxedOp("AVERAGE_POOL_2D", (), c, c, hw, (1, 1), hw))
    rs.ops.append(RelaxedOp("FULLY_CONNECTED", (), c, Channels(const=sp.head.classes),
                            (1, 1), (1, 1), units=sp.head.classes, quantized_weights=True))


class Evaluator:
    """Expectations under node probabilities. ``probs[node]`` is a 1-D tensor over the
    relaxed space's choices of that node (TensorFlow tensors or numpy arrays; the arithmetic
    is the same)."""

    def __init__(self, rs: RelaxedSpace, probs: Probs) -> None:
        self.rs = rs
        self.probs = probs

    def const(self, v: float) -> float:
        return float(v)

    def node_expect(self, node: str, f: Callable[[int], float]) -> Any:
        values = [float(f(int(c))) for c in self.rs.choices[node]]  # type: ignore[arg-type]
        p = self.probs[node]
        return _dot(p, values)

    def choice_prob(self, node: str, choice: str) -> Any:
        idx = list(self.rs.choices[node]).index(choice) if choice in self.rs.choices[node] \
            else None
        if idx is None:
            return 0.0
        return self.probs[node][idx]

    def gate(self, gate: Gate) -> Any:
        g: Any = 1.0
        for node, choice in gate:
            g = g * self.choice_prob(node, choice)
        return g


def _dot(p: Any, values: list[float]) -> Any:
    total: Any = 0.0
    for i, v in enumerate(values):
        if v:
            total = total + p[i] * v
    return total


@dataclass
class Terms:
    """Expected per-op quantities (each a scalar tensor or float), in operator order."""

    ops: list[str]
    gate: list[Any]
    macs: list[Any]
    op_count: list[Any]  # ops as bench_firmware.analysis counts them
    weight_elems: list[Any]  # weight elements (int8 or int4 by the bits)
    weight_bytes: list[Any]
    bias_bytes: list[Any]
    tail_macs: list[Any]
    out_elems: list[Any]
    out_pixels: list[Any]
    window: list[Any]  # CONV_2D: window values per output pixel x output pixels
    gather: list[Any]  # ... of those, the ones gathered (all but direct 1x1 reads)
    reduce_ops: list[Any]
    io_bytes: list[Any]  # input + output activation bytes while the op runs

    def total(self, name: str) -> Any:
        out: Any = 0.0
        for v in getattr(self, name):
            out = out + v
        return out


def terms(rs: RelaxedSpace, probs: Probs, *, weight_bits: int = 8,
          ceil: Callable[[Any], Any] | None = None) -> Terms:
    """Expected costs per operator under ``probs``. ``ceil`` rounds int4 weight bytes up
    (a straight-through ceil for tensors; exact math.ceil for numbers by default)."""
    ev = Evaluator(rs, probs)
    t = Terms([], [], [], [], [], [], [], [], [], [], [], [], [], [])

    def tail(c: int) -> float:
        return float(c % SIMD_LANES)

    for op in rs.ops:
        g = ev.gate(op.gate)
        in_c = op.in_c.expect(ev, float)
        out_c = op.out_c.expect(ev, float)
        hw_out = op.out_hw[0] * op.out_hw[1]
        kk = op.kernel[0] * op.kernel[1]
        macs: Any = 0.0
        w_elems: Any = 0.0
        w_bytes: Any = 0.0
        b_bytes: Any = 0.0
        tail_m: Any = 0.0
        reduce: Any = 0.0
        window: Any = 0.0
        gather: Any = 0.0
        if op.op == "CONV_2D":
            window = g * hw_out * kk * in_c
            gathered = op.in_c.expect(ev, _gathered if kk != 1 else _gathered_1x1)
            gather = g * hw_out * kk * gathered
            macs = g * hw_out * kk * in_c * out_c
            w_elems = g * kk * in_c * out_c
            tail_m = g * hw_out * kk * op.in_c.expect(ev, tail) * out_c
            b_bytes = g * 4.0 * out_c
            out_elems = g * hw_out * out_c
        elif op.op == "DEPTHWISE_CONV_2D":
            macs = g * hw_out * kk * in_c
            w_elems = g * kk * in_c
            tail_m = g * hw_out * kk * op.in_c.expect(ev, tail)
            b_bytes = g * 4.0 * in_c
            out_elems = g * hw_out * in_c
        elif op.op == "FULLY_CONNECTED":
            macs = g * in_c * op.units
            w_elems = g * in_c * op.units
            tail_m = g * op.in_c.expect(ev, tail) * op.units
            b_bytes = g * 4.0 * op.units
            out_elems = g * float(op.units)
        elif op.op == "AVERAGE_POOL_2D":
            out_elems = g * hw_out * in_c
            reduce = out_elems * (kk - 1)
        elif op.op == "ADD":
            out_elems = g * hw_out * in_c
        else:  # pragma: no cover - _build emits only the ops above
            raise SearchError(f"no relaxed costs for {op.op}")
        if op.op in ("CONV_2D", "FULLY_CONNECTED") and weight_bits == 4:
            w_bytes = (ceil or _ceil_half)(w_elems)
        else:
            w_bytes = w_elems
        in_hw = op.in_hw[0] * op.in_hw[1]
        io = g * in_hw * in_c + out_elems
        if op.extra_input is not None:
            io = io + g * in_hw * op.extra_input.expect(ev, float)
        t.ops.append(op.op)
        t.gate.append(g)
        t.macs.append(macs)
        t.op_count.append(2.0 * macs if op.op not in ("AVERAGE_POOL_2D", "ADD")
                          else out_elems * kk if op.op == "AVERAGE_POOL_2D" else out_elems)
        t.weight_elems.append(w_elems)
        t.weight_bytes.append(w_bytes)
        t.bias_bytes.append(b_bytes)
        t.tail_macs.append(tail_m)
        t.out_elems.append(out_elems)
        t.out_pixels.append(g * float(hw_out))
        t.window.append(window)
        t.gather.append(gather)
        t.reduce_ops.append(reduce)
        t.io_bytes.append(io)
    return t


def _gathered(c: int) -> float:
    """Window values per output pixel and kernel tap that a k x k convolution gathers."""
    return float(c)


def _gathered_1x1(c: int) -> float:
    """... for a 1x1 kernel: none when it reads a multiple of 4 channels in place."""
    return 0.0 if c % SIMD_LANES == 0 else float(c)


def _ceil_half(x: Any) -> Any:
    import math

    return math.ceil(float(x) / 2.0)


def one_hot(rs: RelaxedSpace, choices: Mapping[str, Choice | None]) -> dict[str, list[float]]:
    """Probabilities that put all weight on ``choices`` (inactive nodes: the first choice,
    which no cost then depends on)."""
    out: dict[str, list[float]] = {}
    for name, allowed in rs.choices.items():
        v = choices.get(name)
        idx = allowed.index(v) if v is not None and v in allowed else 0
        out[name] = [1.0 if i == idx else 0.0 for i in range(len(allowed))]
    return out
