"""The service's fitted latency models, evaluated on relaxed or concrete architectures.

Two kinds of fit come from ``GET /api/v1/fits`` (``profiler_client``'s ``FitOut``):

``per_layer`` (one per device class and kernels, any backbone)
    cycles of a layer = Σ_f w[op][f] · feature_f over ``macs``, ``tail_macs``, ``out_elems``,
    ``out_pixels``, ``window``, ``gather`` and ``const`` (MAC layers) or ``reduce_ops``,
    ``out_elems``, ``const``
    (the others), op types without weights of their own using the pooled ``fallback``; plus
    the per-inference overhead; divided by the clock. The features are the ones the service
    derives from layer records (its ``service/fitting/per_layer.py`` module docstring gives
    why each is there); :func:`search.dnas.relaxed.terms` gives their expectations.
``ops_line`` (per device class, backbone and kernels)
    ``latency_ms = a · ops + b`` (MicroNets RQ1), with the ops range it was fitted on.

The per-layer model is preferred where it exists: a line fitted on one part of a space
mispredicts another part (issue #11: a width-64 KWS point is predicted +61 % by a line fitted
on 0.3-1.2 Mops models), and the per-layer model's features are the loop trip counts the
kernels run. Both are linear in the expected features, so the relaxed prediction equals the
service's own prediction at a one-hot architecture (``tests/search/test_dnas_costs.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from search.dnas.relaxed import Terms
from search.errors import SearchError

MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class LatencyModel:
    """One device's latency model as the search uses it."""

    device: str  # device class, e.g. virtual:nucleo-f446re
    kind: str  # "per_layer" or "ops_line"
    version: str  # the fit's version (cited in the search's sidecar)
    clock_hz: float = 0.0
    overhead_cycles: float = 0.0
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    fallback: dict[str, float] = field(default_factory=dict)
    a_ms_per_op: float = 0.0
    b_ms: float = 0.0
    ops_min: float | None = None  # the ops range of the device's line (any kind)
    ops_max: float | None = None
    rel_lo: float = 0.0  # prediction interval: value · (1 + rel_lo) .. value · (1 + rel_hi)
    rel_hi: float = 0.0
    error_band_pct: float | None = None  # a twin's stated error against silicon
    n_models: int = 0
    # This search's own correction: measured / predicted over the models it already
    # profiled on this device (geometric mean; 1 before any). See search/dnas/run.py.
    scale: float = 1.0

    @classmethod
    def from_fit(cls, fit: Any, line: Any | None = None) -> LatencyModel:
        """From a ``FitOut``; ``line``: the device's ops line for the search's backbone (its
        range tells when a prediction leaves the fitted models)."""
        c = dict(fit.coefficients or {})
        ops_min = ops_max = None
        src = line if line is not None else (fit if fit.kind == "ops_line" else None)
        if src is not None:
            lc = dict(src.coefficients or {})
            ops_min, ops_max = lc.get("ops_min"), lc.get("ops_max")
        band = getattr(fit, "error_band_pct", None)
        if fit.kind == "per_layer":
            return cls(device=fit.device_class, kind="per_layer", version=fit.version,
                       clock_hz=float(c["clock_hz"]),
                       overhead_cycles=float(c["overhead_cycles"]),
                       weights={op: {f: float(v) for f, v in w.items()}
                                for op, w in c["weights"].items()},
                       fallback={f: float(v) for f, v in c["fallback"].items()},
                       ops_min=ops_min, ops_max=ops_max,
                       rel_lo=float(c.get("rel_lo", 0.0)), rel_hi=float(c.get("rel_hi", 0.0)),
                       error_band_pct=band, n_models=int(fit.n_models))
        if fit.kind == "ops_line":
            a = fit.a_ms_per_op if fit.a_ms_per_op is not None else c.get("a", 0.0)
            b = fit.b_ms if fit.b_ms is not None else c.get("b", 0.0)
            rel_lo, rel_hi = _line_interval(fit)
            return cls(device=fit.device_class, kind="ops_line", version=fit.version,
                       a_ms_per_op=float(a), b_ms=float(b), ops_min=ops_min, ops_max=ops_max,
                       rel_lo=rel_lo, rel_hi=rel_hi, error_band_pct=band,
                       n_models=int(fit.n_models))
        raise SearchError(f"fit {fit.version} is of kind {fit.kind!r}; the search uses "
                          "per_layer and ops_line fits")

    # -- evaluation -----------------------------------------------------------------------

    def _weights(self, op: str) -> dict[str, float]:
        return self.weights.get(op, self.fallback)

    def cycles(self, t: Terms) -> Any:
        """Expected cycles of one inference (per-layer model)."""
        total: Any = self.overhead_cycles
        for i, op in enumerate(t.ops):
            w = self._weights(op)
            # Every feature the service derives for a layer; an op type's own weights name
            # its family's, the pooled fallback all of them (out_pixels of a pool included).
            feats = {"macs": t.macs[i], "tail_macs": t.tail_macs[i],
                     "reduce_ops": t.reduce_ops[i], "out_elems": t.out_elems[i],
                     "out_pixels": t.out_pixels[i], "window": t.window[i],
                     "gather": t.gather[i], "const": t.gate[i]}
            for name, coef in w.items():
                if coef:
                    if name not in feats:
                        raise SearchError(f"fit {self.version} has a per-layer feature "
                                          f"{name!r} this search does not know; update mcuprof")
                    total = total + coef * feats[name]
        return total

    def latency_ms(self, t: Terms) -> Any:
        """Expected latency in ms of the relaxed (or one-hot) architecture ``t``."""
        if self.kind == "per_layer":
            return self.scale * self.cycles(t) / self.clock_hz * 1e3
        return self.scale * (self.a_ms_per_op * t.total("op_count") + self.b_ms)

    def unseen_ops(self, ops: Sequence[str]) -> list[str]:
        """Op types this per-layer model predicts with its pooled fallback."""
        if self.kind != "per_layer":
            return []
        return sorted(set(ops) - set(self.weights))

    def out_of_range(self, ops: float) -> str | None:
        """Why a prediction at ``ops`` leaves the fitted models, or None."""
        if self.ops_min is None or self.ops_max is None:
            return None
        if ops < self.ops_min or ops > self.ops_max:
            return (f"{ops / 1e6:.2f} Mops is outside the {self.ops_min / 1e6:.2f}-"
                    f"{self.ops_max / 1e6:.2f} Mops of the models {self.device}'s fit was made "
                    "on")
        return None

    def interval(self, value: float) -> tuple[float, float]:
        """The fit's prediction interval around ``value`` (widened by a twin's band)."""
        band = (self.error_band_pct or 0.0) / 100.0
        return (max(value * (1.0 + self.rel_lo - band), 0.0), value * (1.0 + self.rel_hi + band))

    def describe(self) -> dict[str, Any]:
        return {"device": self.device, "kind": self.kind, "version": self.version,
                "scale": self.scale,
                "ops_range": [self.ops_min, self.ops_max], "rel_interval": [self.rel_lo,
                                                                           self.rel_hi],
                "error_band_pct": self.error_band_pct, "n_models": self.n_models}


def _line_interval(fit: Any) -> tuple[float, float]:
    """A line's relative prediction interval: ± twice its cross-validated MAPE (a fraction)."""
    worst = 2.0 * float(fit.metrics.mape)
    return (-worst, worst)
