"""How good a latency model is, in the terms the field uses, and what a prediction carries.

- r² (coefficient of determination), as MicroNets reports for its op-count lines
  (Banbury et al., MLSys 2021, RQ1: 0.95 < r² < 0.99 within one search space).
- MAPE, mean absolute percentage error, as a fraction (0.05 = 5 %).
- ±10 % accuracy, nn-Meter's headline metric (Zhang et al., MobiSys 2021): the share of
  models whose predicted latency lies within ±10 % of the measured one, as a fraction.
- RMSE in milliseconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import mean_absolute_percentage_error, r2_score

from profiler_client.fitting.errors import FitError

# nn-Meter's ±10 % accuracy: |predicted − measured| ≤ 10 % of measured.
ACCURACY_TOLERANCE = 0.10
# Default coverage of prediction intervals.
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Metrics:
    """Scores of predictions against measurements (``n`` points).

    ``r2`` is sklearn's ``r2_score`` (1.0 for a perfect fit, may be negative on held-out
    data), ``mape`` and ``acc10`` are fractions, ``rmse_ms`` is in milliseconds.
    """

    n: int
    r2: float
    mape: float
    acc10: float
    rmse_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metrics:
        return cls(n=int(d["n"]), r2=float(d["r2"]), mape=float(d["mape"]),
                   acc10=float(d["acc10"]), rmse_ms=float(d["rmse_ms"]))


def score(measured: ArrayLike, predicted: ArrayLike) -> Metrics:
    """r², MAPE, ±10 % accuracy and RMSE of ``predicted`` against ``measured`` (both in ms,
    measured > 0)."""
    y = np.asarray(measured, dtype=float)
    yhat = np.asarray(predicted, dtype=float)
    if y.shape != yhat.shape or y.ndim != 1 or len(y) == 0:
        raise ValueError(f"need two equal-length 1-D arrays, got {y.shape} and {yhat.shape}")
    rel = np.abs(yhat - y) / y
    return Metrics(
        n=len(y),
        # One point has no variance to explain; report 0 rather than sklearn's warning + NaN.
        r2=float(r2_score(y, yhat)) if len(y) > 1 else 0.0,
        mape=float(mean_absolute_percentage_error(y, yhat)),
        acc10=float(np.mean(rel <= ACCURACY_TOLERANCE)),
        rmse_ms=float(np.sqrt(np.mean((yhat - y) ** 2))),
    )


@dataclass(frozen=True)
class Prediction:
    """A predicted latency in ms with its ``level`` prediction interval ``[lo, hi]``.

    ``extrapolated`` is true when the input lies outside what the model was fitted on (ops
    outside the fitted range, or op types the per-layer model has not seen): trust it less.
    """

    value: float
    lo: float
    hi: float
    level: float = DEFAULT_LEVEL
    extrapolated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def widened(self, band_pct: float | None) -> Prediction:
        """The interval of the silicon latency when this predicts a virtual twin's latency and
        the twin is within ±``band_pct`` % of silicon (``FitOut.error_band_pct``): |twin /
        silicon − 1| ≤ b puts silicon in [lo / (1 + b), hi / (1 − b)]. ``value`` is kept."""
        if band_pct is None:
            return self
        b = band_pct / 100.0
        if not 0.0 <= b < 1.0:
            raise ValueError(f"band_pct must be in [0, 100), got {band_pct}")
        return replace(self, lo=self.lo / (1.0 + b), hi=self.hi / (1.0 - b))


# Fewest folds that still make a cross-validation.
MIN_FOLDS = 2


def folds(n: int, *, k_folds: int, seed: int,
          groups: ArrayLike | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs of a shuffled k-fold split, k = min(k_folds, n units), where a
    unit is a point or, with ``groups``, a group (a model), so that one model's measurements or
    layers never straddle train and test. Deterministic for a given ``seed``."""
    from sklearn.model_selection import GroupKFold, KFold

    if k_folds < MIN_FOLDS:
        raise FitError(f"k_folds must be at least {MIN_FOLDS}, got {k_folds}")
    idx = np.arange(n)
    if groups is None:
        k = min(k_folds, n)
        return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(idx))
    g = np.asarray(groups)
    k = min(k_folds, len(np.unique(g)))
    return list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(idx, groups=g))
