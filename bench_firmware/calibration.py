"""Calibrating a virtual twin against its real board (``mcuprof calibrate``).

The same plans run on the physical board (``pyocd:<board>:<probe>``, DWT CYCCNT) and on its
twin (``virtual:<board>``, the cycle model), with the same input, warm-up and kernels. Each
network gives total cycles on both and per-layer cycles, summed here per operator type (the
instruction mix and memory path of a convolution, a depthwise convolution, a fully connected
layer differ, so a twin may err differently on each).

The default set (:func:`default_models`) is the microbenchmarks first, then the sample
networks. A microbenchmark (``samples/calibration/``, made by
``benchmarks/make_calibration_set.py``, listed with its SHA-256 in ``manifest.json``) is one
operator (two where it needs a second operand) that isolates one instruction class or memory
path of the kernels: the SMLAD MAC loop with weights streamed from flash, im2col copies, the
first layer's short rows, depthwise MACs, fully connected weights larger than the flash
accelerator's data cache and weights that fit it, SRAM-bound pooling and ADD, the scalar
softmax. Each states its own twin / silicon cycle ratio, so a twin's error is seen per class.

What a calibration states (:func:`summarise`):

* ``factor``: silicon cycles / twin cycles, the median over the networks: a calibrated twin
  reports its cycles × factor.
* ``error_pct``: how far a calibrated figure may be from silicon, judged on networks the factor
  was not computed from: with two or more networks, each network's twin cycles are scaled by
  the median factor of the *other* networks (leave-one-out) and the error is the largest
  |scaled / silicon − 1|; with one network there is nothing held out, and the error is the
  uncalibrated twin's |twin / silicon − 1| on it (the calibration claims nothing it has not
  checked).
* ``raw_error_pct``: the largest |twin / silicon − 1| over the networks, before calibration.
* per operator type, twin / silicon − 1 over all the networks' layers of that type.
* per microbenchmark, twin / silicon cycles (``bench_ratios``).

Factor and errors are judged on the networks alone (the figures a calibrated twin reports
are networks' figures); microbenchmarks only state their ratios. A calibration of
microbenchmarks alone falls back to judging on them.

Pure functions here; running the boards is :func:`calibrate`, which takes the backend factory
(``bench_firmware.backends.registry.open_backend`` by default) so tests can give it a scripted
board.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench_firmware.backends.base import BoardBackend
from bench_firmware.boards import get_board
from bench_firmware.compiler import compile_model
from bench_firmware.errors import McuprofError

SAMPLES = Path(__file__).resolve().parent / "samples"
MICROBENCHMARKS = SAMPLES / "calibration"  # benchmarks/make_calibration_set.py writes it
MANIFEST = "manifest.json"
NETWORK = "network"
MICROBENCHMARK = "microbenchmark"
KINDS = (NETWORK, MICROBENCHMARK)
# The networks every calibration runs unless told otherwise: the packaged samples (a
# DS-CNN keyword spotter and a MobileNet-style image classifier: convolutions, depthwise
# convolutions, fully connected layers and pooling, weights in flash).
DEFAULT_NETWORKS = ("kws_tiny.tflite", "mobilenet_tiny.tflite")
INPUT_SEED = 0  # the same input on both boards


@dataclass(frozen=True)
class CalibrationModel:
    """A model of the calibration set: a network, or a microbenchmark of one instruction
    class / memory path (``exercises`` says which)."""

    name: str
    data: bytes
    kind: str = NETWORK
    exercises: str | None = None


@dataclass(frozen=True)
class NetworkResult:
    """One network (or microbenchmark: ``kind``) on both boards: median cycles of the timed
    runs, and per-layer cycles of the last run summed per operator type."""

    name: str
    macs: int
    silicon_cycles: int
    twin_cycles: int
    silicon_by_op: dict[str, int] = field(default_factory=dict)
    twin_by_op: dict[str, int] = field(default_factory=dict)
    kind: str = NETWORK
    exercises: str | None = None

    @property
    def error(self) -> float:
        """twin / silicon − 1 (negative: the twin is faster)."""
        return self.twin_cycles / self.silicon_cycles - 1.0

    @property
    def ratio(self) -> float:
        """twin / silicon cycles."""
        return self.twin_cycles / self.silicon_cycles

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "exercises": self.exercises,
                "macs": self.macs, "silicon_cycles": self.silicon_cycles,
                "twin_cycles": self.twin_cycles, "silicon_by_op": dict(self.silicon_by_op),
                "twin_by_op": dict(self.twin_by_op)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkResult:
        """From :meth:`as_dict`; entries without ``kind`` (uploads before microbenchmarks)
        are networks."""
        exercises = d.get("exercises")
        return cls(name=str(d["name"]), macs=int(d["macs"]),
                   silicon_cycles=int(d["silicon_cycles"]), twin_cycles=int(d["twin_cycles"]),
                   silicon_by_op={str(k): int(v) for k, v in d.get("silicon_by_op", {}).items()},
                   twin_by_op={str(k): int(v) for k, v in d.get("twin_by_op", {}).items()},
                   kind=str(d.get("kind") or NETWORK),
                   exercises=None if exercises is None else str(exercises))


@dataclass(frozen=True)
class Summary:
    """What a calibration states (see the module docstring): fractions, not percent, except
    the ``*_pct`` fields."""

    factor: float
    error_pct: float
    raw_error_pct: float
    held_out: bool
    op_errors: dict[str, float]
    bench_ratios: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"factor": self.factor, "error_pct": self.error_pct,
                "raw_error_pct": self.raw_error_pct, "held_out": self.held_out,
                "op_errors": dict(self.op_errors), "bench_ratios": dict(self.bench_ratios)}


def _pct_up(x: float) -> float:
    """A fraction as percent, rounded up to 0.1 % (an error bound is never rounded down)."""
    return math.ceil(round(abs(x) * 1000.0, 6)) / 10.0


def bench_ratios(results: Sequence[NetworkResult]) -> dict[str, float]:
    """twin / silicon cycles of each microbenchmark, by name, in the given order."""
    return {r.name: r.ratio for r in results
            if r.kind == MICROBENCHMARK and r.silicon_cycles > 0}


def summarise(results: Sequence[NetworkResult]) -> Summary:
    """The factor and errors of a calibration (module docstring)."""
    if not results:
        raise McuprofError("a calibration needs at least one network")
    for n in results:
        if n.kind not in KINDS:
            raise McuprofError(f"{n.name}: kind {n.kind!r} is neither of {', '.join(KINDS)}")
        if n.silicon_cycles <= 0 or n.twin_cycles <= 0:
            raise McuprofError(f"{n.name}: cycles must be positive on both boards (silicon "
                               f"{n.silicon_cycles}, twin {n.twin_cycles})")
    networks = [n for n in results if n.kind == NETWORK] or list(results)
    ratios = [n.silicon_cycles / n.twin_cycles for n in networks]
    factor = float(statistics.median(ratios))
    raw = max(abs(n.error) for n in networks)
    if len(networks) >= 2:
        worst = 0.0
        for i, n in enumerate(networks):
            others = float(statistics.median(ratios[:i] + ratios[i + 1:]))
            worst = max(worst, abs(n.twin_cycles * others / n.silicon_cycles - 1.0))
        error, held_out = worst, True
    else:
        error, held_out = raw, False
    silicon: dict[str, int] = {}
    twin: dict[str, int] = {}
    for n in networks:
        for op, c in n.silicon_by_op.items():
            silicon[op] = silicon.get(op, 0) + c
        for op, c in n.twin_by_op.items():
            twin[op] = twin.get(op, 0) + c
    op_errors = {op: twin[op] / silicon[op] - 1.0 for op in sorted(silicon)
                 if silicon[op] > 0 and op in twin}
    return Summary(factor=factor, error_pct=_pct_up(error), raw_error_pct=_pct_up(raw),
                   held_out=held_out, op_errors=op_errors, bench_ratios=bench_ratios(results))


def _per_op(ops: Sequence[str], layer_cycles: Sequence[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for op, c in zip(ops, layer_cycles, strict=False):
        out[op] = out.get(op, 0) + int(c)
    return out


def _run(backend: BoardBackend, plan_data: bytes, x: np.ndarray, *, runs: int, warmup: int,
         kernels: str) -> tuple[int, list[int]]:
    backend.load_plan(plan_data)
    result = backend.run(x.tobytes(), runs=runs, warmup=warmup, kernels=kernels)
    if not result.cycles_per_run:
        raise McuprofError(f"{backend.device} reported no cycles: it cannot calibrate")
    return int(statistics.median(result.cycles_per_run)), list(result.layer_cycles)


def calibrate(device: str, models: Sequence[CalibrationModel | tuple[str, bytes]], *,
              runs: int = 3,
              warmup: int = 1, kernels: str = "dsp",
              open_board: Callable[[str], BoardBackend] | None = None,
              progress: Callable[[str], None] | None = None) -> list[NetworkResult]:
    """Run every model on ``device`` (a physical board, ``pyocd:<board>:<probe>``) and on its
    twin ``virtual:<board>``; returns one :class:`NetworkResult` per model. A ``(name,
    data)`` pair is a network."""
    from bench_firmware.backends.registry import open_backend, parse_device
    from bench_firmware.runner import make_input

    backend_name, board_name, _ = parse_device(device)
    if backend_name != "pyocd":
        raise McuprofError(f"calibrate needs a physical board, pyocd:<board>:<probe>; got "
                           f"{device!r}")
    board = get_board(board_name)
    opener = open_board or open_backend
    twin = f"virtual:{board.name}"
    chosen = [m if isinstance(m, CalibrationModel) else CalibrationModel(*m) for m in models]
    names = [m.name for m in chosen]
    if len(set(names)) != len(names):
        raise McuprofError(f"two calibration models share a name: {', '.join(names)}")
    plans = []
    for m in chosen:
        plan = compile_model(m.data, board, name=m.name)
        plans.append((m, plan, make_input(plan, None, seed=INPUT_SEED)))
    measured: dict[str, dict[str, tuple[int, list[int]]]] = {device: {}, twin: {}}
    for target in (device, twin):
        with opener(target) as backend:
            for m, plan, x in plans:
                if progress:
                    progress(f"{m.name} on {target}")
                measured[target][m.name] = _run(backend, plan.data, x, runs=runs,
                                                warmup=warmup, kernels=kernels)
    out = []
    for m, plan, _ in plans:
        ops = [layer.op for layer in plan.layers]
        s_cycles, s_layers = measured[device][m.name]
        t_cycles, t_layers = measured[twin][m.name]
        out.append(NetworkResult(name=m.name, macs=plan.macs, silicon_cycles=s_cycles,
                                 twin_cycles=t_cycles, silicon_by_op=_per_op(ops, s_layers),
                                 twin_by_op=_per_op(ops, t_layers), kind=m.kind,
                                 exercises=m.exercises))
    return out


def manifest() -> dict[str, Any]:
    """The microbenchmarks' ``manifest.json`` (``benchmarks/make_calibration_set.py``)."""
    path = MICROBENCHMARKS / MANIFEST
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise McuprofError(f"cannot read the calibration microbenchmarks' manifest {path}: "
                           f"{e}; reinstall mcuprof or rerun "
                           f"benchmarks/make_calibration_set.py") from e


def microbenchmarks() -> list[CalibrationModel]:
    """The packaged microbenchmarks, in manifest order, each checked against its SHA-256."""
    out = []
    for entry in manifest()["models"]:
        path = MICROBENCHMARKS / str(entry["file"])
        try:
            data = path.read_bytes()
        except OSError as e:
            raise McuprofError(f"cannot read calibration microbenchmark {path}: {e}") from e
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise McuprofError(f"calibration microbenchmark {path} does not match the SHA-256 "
                               f"in its manifest; reinstall mcuprof or rerun "
                               f"benchmarks/make_calibration_set.py")
        out.append(CalibrationModel(name=str(entry["name"]), data=data, kind=MICROBENCHMARK,
                                    exercises=str(entry["exercises"])))
    return out


def sample_networks() -> list[CalibrationModel]:
    """The packaged sample networks, by file name."""
    return [CalibrationModel(name=name, data=(SAMPLES / name).read_bytes())
            for name in DEFAULT_NETWORKS]


def default_models() -> list[CalibrationModel]:
    """What ``mcuprof calibrate`` runs unless told otherwise: the microbenchmarks, then the
    sample networks."""
    return microbenchmarks() + sample_networks()


__all__ = ["DEFAULT_NETWORKS", "MICROBENCHMARK", "NETWORK", "CalibrationModel",
           "NetworkResult", "Summary", "bench_ratios", "calibrate", "default_models",
           "microbenchmarks", "sample_networks", "summarise"]
