"""The search's costs and budgets: ops, flash, SRAM and latency per target device.

:class:`CostModel` evaluates the costs of a relaxed architecture (node probabilities) as
TensorFlow tensors the architecture step differentiates, and of a concrete architecture as
numbers. Ops, parameter bytes and latency are expectations, exact at one-hot
(:mod:`search.dnas.relaxed`). SRAM (the plan's tensor arena) and flash (the plan's bytes, what
the board's model region holds) get a straight-through correction: their differentiable
stand-ins (peak expected input + output bytes; expected parameter bytes) plus the constant
difference between the plan compiler's exact figure and the stand-in at the current argmax
architecture (:mod:`search.dnas.graph`), so the value is exact whenever the probabilities are
one-hot and the gradient is the stand-in's.

Budgets (:class:`Budget`) come from the board catalogue (``arena_capacity``: the SRAM the
firmware leaves for the arena; ``model_region_bytes``: the flash region plans are written to)
unless the user sets them, and from the user's latency limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench_firmware.backends.registry import parse_device
from bench_firmware.boards import Board, get_board
from search.dnas.graph import ExactCosts, exact_costs
from search.dnas.latency import LatencyModel
from search.dnas.relaxed import RelaxedSpace, one_hot, terms
from search.errors import SearchError
from search.spaces import Architecture, Choice


def board_of(device: str) -> Board:
    """The board of a device class or device name (``virtual:nucleo-f446re[:id]``)."""
    return get_board(parse_device(device)[1])


@dataclass(frozen=True)
class Budget:
    """What one target device allows: arena and plan bytes, and latency (None: no limit)."""

    device: str
    sram_bytes: int
    flash_bytes: int
    latency_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "sram_bytes": self.sram_bytes,
                "flash_bytes": self.flash_bytes, "latency_ms": self.latency_ms}


def budget_for(device: str, latency_ms: float | None, *, sram_kib: float | None = None,
               flash_kib: float | None = None) -> Budget:
    """The budget on ``device``: the board's arena and model region unless given (KiB)."""
    board = board_of(device)
    sram = int(sram_kib * 1024) if sram_kib is not None else board.arena_capacity
    flash = int(flash_kib * 1024) if flash_kib is not None else board.model_region_bytes
    if sram > board.arena_capacity:
        raise SearchError(f"--sram-kib {sram_kib:g} is more than {board.name} has for the "
                          f"arena ({board.arena_capacity / 1024:.0f} KiB); leave it at auto")
    if flash > board.model_region_bytes:
        raise SearchError(f"--flash-kib {flash_kib:g} is more than {board.name}'s model region "
                          f"({board.model_region_bytes / 1024:.0f} KiB); leave it at auto")
    return Budget(device, sram, flash, latency_ms)


@dataclass
class ArchCosts:
    """The costs of one concrete architecture on every target device."""

    arch: Architecture
    ops: int
    macs: int
    param_bytes: int
    sram_bytes: dict[str, int]
    flash_bytes: dict[str, int]
    latency_ms: dict[str, float]
    latency_interval: dict[str, tuple[float, float]]
    warnings: list[str]

    def violations(self, budgets: Sequence[Budget]) -> list[str]:
        """What breaks a budget, one line each (empty: fits everywhere)."""
        out = []
        for b in budgets:
            if self.sram_bytes[b.device] > b.sram_bytes:
                out.append(f"{b.device}: arena {self.sram_bytes[b.device]:,} B > "
                           f"{b.sram_bytes:,} B")
            if self.flash_bytes[b.device] > b.flash_bytes:
                out.append(f"{b.device}: plan {self.flash_bytes[b.device]:,} B > "
                           f"{b.flash_bytes:,} B")
            if b.latency_ms is not None and self.latency_ms[b.device] > b.latency_ms:
                out.append(f"{b.device}: predicted {self.latency_ms[b.device]:.2f} ms > "
                           f"{b.latency_ms:g} ms")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"arch_id": self.arch.id, "ops": self.ops, "macs": self.macs,
                "param_bytes": self.param_bytes, "sram_bytes": self.sram_bytes,
                "flash_bytes": self.flash_bytes, "latency_ms": self.latency_ms,
                "latency_interval": {k: list(v) for k, v in self.latency_interval.items()},
                "warnings": self.warnings}


class CostModel:
    """Costs of a relaxed space on a set of devices."""

    def __init__(self, rs: RelaxedSpace, budgets: Sequence[Budget],
                 latency: Mapping[str, LatencyModel] | None = None, *,
                 weight_bits: int = 8) -> None:
        self.rs = rs
        self.budgets = list(budgets)
        self.latency = dict(latency or {})
        self.weight_bits = weight_bits
        self._exact: dict[tuple[str, str], ExactCosts] = {}

    # -- concrete architectures -----------------------------------------------------------

    def exact(self, arch: Architecture, device: str) -> ExactCosts:
        """The plan compiler's figures for ``arch`` on ``device``'s board (cached), with the
        arena the device's SRAM budget allows: the compiler gives kernels their speed-ups
        (SRAM weight copies, planar images) only while the arena fits, so under a budget
        below the board's SRAM the figures are those of the plan that budget allows."""
        key = (arch.id, device)
        if key not in self._exact:
            self._exact[key] = exact_costs(arch.network(), self._board(device),
                                           weight_bits=self.weight_bits)
        return self._exact[key]

    def _board(self, device: str) -> Board:
        board = board_of(device)
        sram = min((b.sram_bytes for b in self.budgets if b.device == device),
                   default=board.arena_capacity)
        if sram >= board.arena_capacity:
            return board
        return replace(board, sram_bytes=board.sram_bytes - (board.arena_capacity - sram))

    def arch_costs(self, arch: Architecture) -> ArchCosts:
        """Every cost of ``arch`` as numbers: exact figures and the latency predictions."""
        t = terms(self.rs, one_hot(self.rs, arch.choices), weight_bits=self.weight_bits)
        first = self.exact(arch, self.budgets[0].device)
        warnings: list[str] = []
        sram, flash, lat, interval = {}, {}, {}, {}
        for b in self.budgets:
            e = self.exact(arch, b.device)
            sram[b.device], flash[b.device] = e.arena_bytes, e.plan_bytes
            model = self.latency.get(b.device)
            if model is None:
                continue
            value = float(model.latency_ms(t))
            lat[b.device] = value
            interval[b.device] = model.interval(value)
            why = model.out_of_range(float(first.ops))
            if why:
                warnings.append(f"{b.device}: {why}")
            unseen = model.unseen_ops(t.ops)
            if unseen:
                warnings.append(f"{b.device}: op types {', '.join(unseen)} have no per-layer "
                                "weights of their own in the fit (pooled fallback)")
        return ArchCosts(arch, first.ops, first.macs, first.param_bytes, sram, flash, lat,
                         interval, warnings)

    # -- relaxed (differentiable) ---------------------------------------------------------

    def raw(self, probs: Mapping[str, Any], *, ceil: Any = None) -> dict[str, Any]:
        """The differentiable parts under ``probs``: ``ops``, ``param_bytes``, and per device
        ``sram:<device>`` and ``flash:<device>`` (stand-ins before their corrections) and
        ``latency:<device>`` (where there is a latency model)."""
        t = terms(self.rs, probs, weight_bits=self.weight_bits, ceil=ceil)
        params = t.total("weight_bytes") + t.total("bias_bytes")
        out: dict[str, Any] = {"ops": t.total("op_count"), "param_bytes": params}
        peak = _peak(t.io_bytes)
        for b in self.budgets:
            out[f"sram:{b.device}"] = peak
            out[f"flash:{b.device}"] = params
            model = self.latency.get(b.device)
            if model is not None:
                out[f"latency:{b.device}"] = model.latency_ms(t)
        return out

    def corrections(self, argmax: Architecture) -> dict[str, float]:
        """What to add to :meth:`raw`'s SRAM and flash stand-ins so they are the plan
        compiler's figures at ``argmax`` (constants: no gradient)."""
        corner = terms(self.rs, one_hot(self.rs, argmax.choices), weight_bits=self.weight_bits)
        peak = float(max(float(v) for v in corner.io_bytes))
        params = float(corner.total("weight_bytes")) + float(corner.total("bias_bytes"))
        out = {}
        for b in self.budgets:
            e = self.exact(argmax, b.device)
            out[f"sram:{b.device}"] = e.arena_bytes - peak
            out[f"flash:{b.device}"] = e.plan_bytes - params
        return out

    def relaxed(self, probs: Mapping[str, Any], argmax: Architecture, *,
                ceil: Any = None) -> dict[str, Any]:
        """:meth:`raw` plus :meth:`corrections` at ``argmax``: exact at one-hot ``probs``."""
        out = self.raw(probs, ceil=ceil)
        for key, value in self.corrections(argmax).items():
            out[key] = out[key] + value
        return out


def _peak(values: list[Any]) -> Any:
    """The largest of ``values`` (tensors or numbers); its gradient flows to the largest."""
    if not values:
        return 0.0
    if all(isinstance(v, (int, float)) for v in values):
        return max(values)
    import tensorflow as tf

    return tf.reduce_max(tf.stack([tf.convert_to_tensor(v, tf.float32) for v in values]))


def argmax_arch(rs: RelaxedSpace, probs: Mapping[str, Any]) -> Architecture:
    """The architecture of the most probable choice of every node."""
    import numpy as np

    choices: dict[str, Choice | None] = {}
    for name, allowed in rs.choices.items():
        p = np.asarray(probs[name], dtype=float)
        choices[name] = allowed[int(np.argmax(p))]
    return Architecture(rs.space.name, _active(rs, choices), rs.input_shape)


def _active(rs: RelaxedSpace, choices: dict[str, Choice | None]) -> dict[str, Choice | None]:
    out = dict(choices)
    for node in rs.space.nodes:
        if node.active_if is not None and out.get(node.active_if) == "skip":
            out[node.name] = None
    return out
