"""The MicroNets search spaces, each described once as decision nodes and block slots.

One :class:`SearchSpace` per task holds everything a consumer needs:

- ``nodes``: the decision nodes and their choices (MicroNets §5: ``y = sum_k z_k f_k(x)``
  over the choices ``k`` of each node). ``width`` nodes choose a layer's output channels;
  ``depth`` nodes choose between the block (``"block"``) and its parallel skip (``"skip"``).
  The sampler draws one choice per node; the DNAS supernet (later) relaxes the same nodes.
- ``stem``, ``blocks``, ``head``: the fixed skeleton (kernel sizes and strides are not
  searched, MicroNets §5) whose slots name the nodes that set their width or depth.

:meth:`SearchSpace.resolve` turns an :class:`Architecture` (the space's name, the input shape
and one choice per node) into a concrete :class:`search.network.Network`. An architecture is
plain JSON (:meth:`Architecture.to_json`) with a short stable id (:attr:`Architecture.id`).

Sources, cited where each number is used: MicroNets (Banbury et al., MLSys 2021, arXiv
2010.11267: its KWS, VWW and AD search spaces and Table 5); ARM
ML-KWS-for-MCU ``models.py: create_ds_cnn_model`` and ``train_commands.txt`` (DS-CNN(L):
``6 276 10 4 2 1 276 3 3 2 2 276 3 3 1 1 ...``); MobileNetV2 (Sandler et al., CVPR 2018,
Table 2). Pure Python: no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from search.errors import InvalidArchitectureError, UnknownNameError
from search.network import (
    AvgPool,
    Conv,
    Dense,
    Flatten,
    Layer,
    Network,
    Shape,
    ds_block,
    inverted_residual,
)

KEEP = "block"
SKIP = "skip"
DEPTH_CHOICES = (KEEP, SKIP)

Choice = int | str


@dataclass(frozen=True)
class DecisionNode:
    """One searched decision: ``kind`` is ``"width"`` (choices are channel counts) or
    ``"depth"`` (choices are ``"block"`` / ``"skip"``). A node with ``active_if`` only
    matters when that depth node keeps its block; otherwise the architecture stores None."""

    name: str
    kind: str
    choices: tuple[Choice, ...]
    doc: str = ""
    active_if: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "choices": list(self.choices),
                "doc": self.doc, "active_if": self.active_if}


# --- skeleton slots (what the nodes plug into) ----------------------------------------------


@dataclass(frozen=True)
class ConvSlot:
    """A convolution whose output width is the node ``width``."""

    width: str
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class DSSlot:
    """A depthwise-separable block (3x3 depthwise + 1x1 pointwise) of width ``width``.
    With a ``depth`` node the block has a parallel skip: the identity at stride 1, a 2x2
    average pool at stride 2 ("average pool where it downsamples", MicroNets search spaces).
    """

    width: str
    stride: int = 1
    depth: str | None = None


@dataclass(frozen=True)
class InvertedResidualSlot:
    """A MobileNetV2 inverted bottleneck: expansion width node ``expand`` (None for the
    t=1 block, which has no expansion conv), projection width node ``out``, ``stride``,
    and whether a residual ADD joins its input to its output."""

    expand: str | None
    out: str
    stride: int
    residual: bool = False


@dataclass(frozen=True)
class HeadSlot:
    """Optional 1x1 conv of width node ``width``, then average pool over the whole feature
    map, Flatten, Dense ``classes`` (no softmax: MicroNets' released models have none)."""

    classes: int
    width: str | None = None


Slot = DSSlot | InvertedResidualSlot


@dataclass(frozen=True)
class SearchSpace:
    """A search space: decision nodes plus the skeleton they parametrise."""

    name: str
    title: str
    input_shape: Shape
    stem: ConvSlot
    blocks: tuple[Slot, ...]
    head: HeadSlot
    nodes: tuple[DecisionNode, ...]
    act: str = "relu6"
    variable_input: bool = False  # True: any H x W (>= MIN_SIDE) with the default channels
    sources: tuple[str, ...] = ()

    MIN_SIDE = 32

    @property
    def node_map(self) -> dict[str, DecisionNode]:
        return {n.name: n for n in self.nodes}

    def size(self) -> int:
        """Number of choice vectors: the product of every node's choice count (an upper
        bound on distinct networks: the widths of skipped blocks do not matter)."""
        total = 1
        for n in self.nodes:
            total *= len(n.choices)
        return total

    def check_input_shape(self, shape: Shape | None) -> Shape:
        """The input shape an architecture of this space uses (the default when None)."""
        if shape is None:
            return self.input_shape
        shape = tuple(int(d) for d in shape)
        if shape == self.input_shape:
            return shape
        if (self.variable_input and len(shape) == 3 and shape[2] == self.input_shape[2]
                and min(shape[:2]) >= self.MIN_SIDE):
            return shape
        if self.variable_input:
            raise InvalidArchitectureError(
                f"space {self.name!r} takes H x W x {self.input_shape[2]} inputs with H, W >= "
                f"{self.MIN_SIDE}; got {list(shape)}")
        raise InvalidArchitectureError(
            f"space {self.name!r} has a fixed input shape {list(self.input_shape)}; "
            f"got {list(shape)}")

    def canonical(self, choices: Mapping[str, Choice | None]) -> dict[str, Choice | None]:
        """Validate ``choices`` and return them in node order with inactive nodes set to
        None, so equal networks have equal architectures (and ids)."""
        known = self.node_map
        extra = sorted(set(choices) - set(known))
        if extra:
            raise InvalidArchitectureError(
                f"space {self.name!r} has no decision node(s) {extra}; its nodes are "
                f"{', '.join(known)}", node=extra[0])
        out: dict[str, Choice | None] = {}
        for node in self.nodes:
            inactive = node.active_if is not None and choices.get(node.active_if) == SKIP
            value = choices.get(node.name)
            if inactive:
                out[node.name] = None
                continue
            if node.name not in choices or value is None:
                raise InvalidArchitectureError(
                    f"architecture of space {self.name!r} lacks a choice for {node.name!r} "
                    f"(one of {_short(node.choices)})", node=node.name)
            if value not in node.choices or isinstance(value, bool):
                raise InvalidArchitectureError(
                    f"{value!r} is not a choice of {self.name}.{node.name}; choices: "
                    f"{_short(node.choices)}", node=node.name)
            out[node.name] = value
        return out

    def resolve(self, arch: Architecture, name: str | None = None) -> Network:
        """The concrete network of ``arch`` (which must belong to this space)."""
        if arch.space != self.name:
            raise InvalidArchitectureError(
                f"architecture of space {arch.space!r} given to space {self.name!r}")
        c = arch.choices
        act = self.act

        def width(node: str) -> int:
            value = c[node]
            assert isinstance(value, int)
            return value

        layers: list[Layer] = [Conv(width(self.stem.width), self.stem.kernel, self.stem.stride,
                                    act=act)]
        for slot in self.blocks:
            if isinstance(slot, DSSlot):
                if slot.depth is not None and c[slot.depth] == SKIP:
                    if slot.stride != 1:
                        s = slot.stride
                        layers.append(AvgPool((s, s), (s, s), padding="same"))
                    continue
                layers.extend(ds_block(width(slot.width), slot.stride, act=act))
            else:
                out = width(slot.out)
                expand = width(slot.expand) if slot.expand is not None else None
                layers.extend(inverted_residual(expand, out, slot.stride,
                                                residual=slot.residual, act=act))
        if self.head.width is not None:
            layers.append(Conv(width(self.head.width), (1, 1), act=act))
        partial = Network(name or arch.name, arch.input_shape, tuple(layers))
        h, w, _ = partial.output_shape
        layers += [AvgPool((h, w)), Flatten(), Dense(self.head.classes)]
        return Network(name or arch.name, arch.input_shape, tuple(layers),
                       source=f"search space {self.name!r}")

    def describe(self) -> dict[str, Any]:
        """The space as JSON-able data (for documentation, the server and the supernet)."""
        def slot(x: object) -> dict[str, Any]:
            return {"slot": type(x).__name__, **asdict(x)}  # type: ignore[call-overload]

        return {"name": self.name, "title": self.title, "input_shape": list(self.input_shape),
                "variable_input": self.variable_input, "activation": self.act,
                "nodes": [n.to_dict() for n in self.nodes], "stem": slot(self.stem),
                "blocks": [slot(b) for b in self.blocks], "head": slot(self.head),
                "sources": list(self.sources)}


def _short(choices: tuple[Choice, ...]) -> str:
    if len(choices) <= 12:
        return ", ".join(map(str, choices))
    return f"{choices[0]}, {choices[1]}, ..., {choices[-1]} ({len(choices)} choices)"


class Architecture:
    """One point of a search space: ``space`` name, ``input_shape``, one choice per node.

    Validated and canonicalised on creation (inactive nodes become None). Equal
    architectures have equal JSON and ids; :attr:`id` is 12 hex digits of the SHA-256 of
    :meth:`to_json`.
    """

    __slots__ = ("space", "input_shape", "choices", "_json")

    def __init__(self, space: str, choices: Mapping[str, Choice | None],
                 input_shape: Shape | None = None) -> None:
        sp = get_space(space)
        self.space: str = sp.name
        self.input_shape: Shape = sp.check_input_shape(input_shape)
        self.choices: dict[str, Choice | None] = sp.canonical(choices)
        self._json = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "input_shape": list(self.input_shape),
                "choices": dict(self.choices)}

    def to_json(self) -> str:
        """Compact canonical JSON (sorted keys): rebuilds the exact network."""
        return self._json

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        try:
            return cls(data["space"], data["choices"], data.get("input_shape"))
        except KeyError as e:
            raise InvalidArchitectureError(f"an architecture needs {e.args[0]!r}") from e

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArchitectureError(f"not an architecture (bad JSON: {e})") from e
        if not isinstance(data, dict):
            raise InvalidArchitectureError("an architecture is a JSON object")
        return cls.from_dict(data)

    @property
    def id(self) -> str:
        return hashlib.sha256(self._json.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        """``<space>-<id>``: the default file name of its model."""
        return f"{self.space}-{self.id}"

    def network(self, name: str | None = None) -> Network:
        return get_space(self.space).resolve(self, name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Architecture) and self._json == other._json

    def __hash__(self) -> int:
        return hash(self._json)

    def __repr__(self) -> str:
        return f"Architecture({self._json})"


def tags_for(arch: Architecture) -> dict[str, str]:
    """The tags mcuprof's server takes at upload: ``backbone`` (the space: latency fits are
    per device and backbone, MicroNets RQ1) and ``arch`` (the architecture id)."""
    return {"backbone": arch.space, "arch": arch.id}


# --------------------------------------------------------------------------------------------
# The spaces
# --------------------------------------------------------------------------------------------

#: Channel counts in multiples of 4 up to DS-CNN(L)'s 276 (MicroNets search spaces:
#: "channels searched in multiples of 4"; CMSIS-NN is much faster on multiples of 4, RQ1).
DS_WIDTHS: tuple[int, ...] = tuple(range(4, 277, 4))


def _kws() -> SearchSpace:
    nodes = [DecisionNode("stem.width", "width", DS_WIDTHS,
                          "first Conv2D 10x4 (DS-CNN(L) conv_1)")]
    blocks: list[Slot] = []
    for i in range(1, 10):
        extra = i >= 6
        depth = f"ds{i}.depth" if extra else None
        nodes.append(DecisionNode(
            f"ds{i}.width", "width", DS_WIDTHS,
            f"DS block {i} pointwise channels" + (" (extra block)" if extra else ""),
            active_if=depth))
        if depth is not None:
            nodes.append(DecisionNode(depth, "depth", DEPTH_CHOICES,
                                      f"extra DS block {i} or its parallel identity skip"))
        # DS-CNN(L): the first DS layer has stride (2, 2), the others 1 (train_commands.txt).
        blocks.append(DSSlot(f"ds{i}.width", stride=2 if i == 1 else 1, depth=depth))
    return SearchSpace(
        name="kws",
        title="MicroNets KWS: DS-CNN(L) + 4 extra DS blocks with parallel skips",
        # 49 x 10 MFCC: 1 s at 40 ms frames / 20 ms stride, 10 coefficients (MicroNets).
        input_shape=(49, 10, 1),
        # 10x4 as DS-CNN(L)'s conv_1 (train_commands.txt: "276 10 4 2 1"), but stride 1:
        # Table 5 pools 25x5 after one stride-2 DS block, so 49x10 reaches 25x5 there, not in
        # the first conv (DS-CNN(L)'s (2, 1) stride would end at 13x5).
        stem=ConvSlot("stem.width", (10, 4), (1, 1)),
        blocks=tuple(blocks),
        head=HeadSlot(classes=12),  # Google Speech Commands v2, 12 classes (MicroNets)
        nodes=tuple(nodes),
        sources=(
            "MicroNets arXiv 2010.11267: KWS search space, Table 5 (KWS-S/M/L)",
            "ARM-software/ML-KWS-for-MCU models.py create_ds_cnn_model, train_commands.txt "
            "(DS-CNN(L) 276 channels, conv 10x4, first DS stride 2)",
        ),
    )


def _ad() -> SearchSpace:
    nodes = [DecisionNode("stem.width", "width", DS_WIDTHS, "first Conv2D 3x3 (Table 5)")]
    blocks: list[Slot] = []
    # DS-CNN(L)'s five DS blocks; the last two downsample as well so 32x32 ends at 4x4
    # (MicroNets AD space; Table 5 AD-L/M: strides 2, 1, 1, 2, 2).
    for i, stride in enumerate((2, 1, 1, 2, 2), start=1):
        depth = f"ds{i}.depth"
        nodes.append(DecisionNode(f"ds{i}.width", "width", DS_WIDTHS,
                                  f"DS block {i} pointwise channels (stride {stride})",
                                  active_if=depth))
        skip = "identity" if stride == 1 else "2x2 average pool"
        nodes.append(DecisionNode(depth, "depth", DEPTH_CHOICES,
                                  f"DS block {i} or its parallel skip ({skip})"))
        blocks.append(DSSlot(f"ds{i}.width", stride=stride, depth=depth))
    return SearchSpace(
        name="ad",
        title="MicroNets AD: DS-CNN(L) with skips, last two blocks stride 2",
        input_shape=(32, 32, 1),  # log-mel patches, downsampled to 32x32 (MicroNets AD)
        stem=ConvSlot("stem.width", (3, 3), (1, 1)),  # Table 5: "3x3"; stride 1 (32 -> 4x4)
        blocks=tuple(blocks),
        head=HeadSlot(classes=4),  # Table 5: AvgPool 4x4, FC 4 (machine-ID classification)
        nodes=tuple(nodes),
        sources=(
            "MicroNets arXiv 2010.11267: AD search space, Table 5 (AD-S/M/L)",
            "ARM-software/ML-KWS-for-MCU train_commands.txt (DS-CNN(L) five DS blocks, 276)",
        ),
    )


#: MobileNetV2 inverted-residual stages (Sandler et al. 2018, Table 2): expansion t,
#: output channels c, repeats n, first stride s.
MOBILENETV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
MOBILENETV2_STEM = 32  # Table 2: conv2d 3x3, stride 2, 32 channels
MOBILENETV2_HEAD = 1280  # Table 2: conv2d 1x1, 1280 channels, before the pool


def width_steps(base: int) -> tuple[int, ...]:
    """10%, 20%, ..., 100% of ``base`` channels, rounded half up, at least 1
    (MicroNets VWW space: "10%-100% of MobileNetV2 width in 10% steps")."""
    return tuple(sorted({max(1, (base * k + 5) // 10) for k in range(1, 11)}))


def _vww() -> SearchSpace:
    nodes = [DecisionNode("stem.width", "width", width_steps(MOBILENETV2_STEM),
                          "conv before the block stack (3x3, stride 2)")]
    blocks: list[Slot] = []
    in_full = MOBILENETV2_STEM
    index = 0
    for stage, (t, c, n, s) in enumerate(MOBILENETV2_STAGES, start=1):
        # Blocks of a stage after the first are joined by residual ADDs, which need equal
        # channel counts: one node sets the last 1x1 conv of every block of the stage.
        # (MicroNets' DNAS masks channels of one max-width tensor and never meets this.)
        out = f"stage{stage}.width"
        nodes.append(DecisionNode(out, "width", width_steps(c),
                                  f"last 1x1 conv of the blocks of stage {stage} (MobileNetV2 "
                                  f"c={c})"))
        for j in range(n):
            expand = None
            if t != 1:
                expand = f"b{index}.expand"
                nodes.append(DecisionNode(expand, "width", width_steps(t * in_full),
                                          f"first 1x1 conv of block {index} (MobileNetV2 "
                                          f"{t}x{in_full})"))
            # MobileNetV2: the first block of a stage strides and changes width; the others
            # keep both and add their input back.
            blocks.append(InvertedResidualSlot(expand, out, s if j == 0 else 1, residual=j > 0))
            in_full = c
            index += 1
    nodes.append(DecisionNode("head.width", "width", width_steps(MOBILENETV2_HEAD),
                              "1x1 conv after the block stack"))
    return SearchSpace(
        name="vww",
        title="MicroNets VWW: MobileNetV2 inverted bottlenecks at 10%-100% width",
        # Grayscale; 50x50 is MicroNets' small setting and the fastest to sample.
        input_shape=(50, 50, 1),
        variable_input=True,
        stem=ConvSlot("stem.width", (3, 3), (2, 2)),
        blocks=tuple(blocks),
        head=HeadSlot(classes=2, width="head.width"),  # person / no person
        nodes=tuple(nodes),
        sources=(
            "MicroNets arXiv 2010.11267: VWW search space (widths 10%-100% in 10% steps, "
            "grayscale 50x50 / 160x160 input)",
            "MobileNetV2, Sandler et al. CVPR 2018, Table 2 (t, c, n, s per stage)",
        ),
    )


SPACES: dict[str, SearchSpace] = {s.name: s for s in (_kws(), _vww(), _ad())}


def get_space(name: str | SearchSpace) -> SearchSpace:
    """The space called ``name`` (``kws``, ``vww``, ``ad``)."""
    if isinstance(name, SearchSpace):
        return name
    try:
        return SPACES[name]
    except KeyError:
        raise UnknownNameError("search space", name, sorted(SPACES)) from None
