"""latency = a·ops + b, the op-count latency model of MicroNets.

MicroNets (Banbury et al., MLSys 2021, RQ1) found that for models sampled from one search space
(backbone), latency on a Cortex-M is close to linear in op count (1 MAC = 2 ops), with
0.95 < r² < 0.99 and a different slope per backbone and device. A fitted line is what its
DNAS latency regulariser consumes. ``fit_ops_line`` fits one such line by ordinary least
squares and says how good it is: in-sample r², and r², MAPE and nn-Meter's ±10 % accuracy
(Zhang et al., MobiSys 2021) on out-of-fold predictions of a k-fold cross-validation, plus the
residual standard error behind a prediction interval for a new model.

Fit one line per (device, backbone): a line pooled over backbones is what MicroNets warns
against (its KWS backbone ran ~40 % more Mops/s than a CIFAR-10 one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from sklearn.linear_model import LinearRegression

from profiler_client.fitting.errors import FitError, InsufficientDataError
from profiler_client.fitting.metrics import (
    DEFAULT_LEVEL,
    MIN_FOLDS,
    Metrics,
    Prediction,
    folds,
    score,
)

# Fewest measurements for a line: a 2-parameter fit leaves n − 2 = 3 degrees of freedom for
# the residual standard error, and 5 points make a leave-one-out cross-validation whose
# training folds (4 points) still over-determine the line.
MIN_POINTS = 5
# Fewest distinct op counts: a line through fewer is not determined by the data.
MIN_DISTINCT_OPS = 2
DEFAULT_K_FOLDS = 5
LINE_KIND = "ops_line"
LINE_SCHEMA = 1  # bump when LineFit.to_dict changes shape


@dataclass(frozen=True)
class LineFit:
    """A fitted ``latency_ms = a * ops + b``.

    ``a`` is in ms per op and ``b`` in ms. ``in_sample`` scores the line on the points it was
    fitted on; ``cv`` scores out-of-fold predictions of a ``k``-fold cross-validation (the
    numbers to quote). ``rse_ms`` is the residual standard error, ``ops_mean`` and ``ops_sxx``
    (Σ (ops − mean)²) the rest of what the OLS prediction interval needs, and ``ops_min`` /
    ``ops_max`` the fitted range.
    """

    n: int
    a: float
    b: float
    rse_ms: float
    ops_mean: float
    ops_sxx: float
    ops_min: float
    ops_max: float
    k: int
    in_sample: Metrics
    cv: Metrics

    @property
    def r2(self) -> float:
        """In-sample r², the figure MicroNets reports."""
        return self.in_sample.r2

    @property
    def dof(self) -> int:
        return self.n - 2

    def predict_ms(self, ops: ArrayLike) -> np.ndarray:
        """Point predictions in ms for an array of op counts."""
        return self.a * np.asarray(ops, dtype=float) + self.b

    def predict(self, ops: float, *, level: float = DEFAULT_LEVEL) -> Prediction:
        """Predicted latency of a new model of ``ops`` ops, with the OLS prediction interval

            ŷ ± t(1 − (1 − level)/2, n − 2) · s · √(1 + 1/n + (ops − mean)² / Sxx)

        (s the residual standard error). ``lo`` is clipped at 0: latency is not negative."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {level}")
        value = float(self.a * ops + self.b)
        t = float(stats.t.ppf(0.5 + level / 2.0, self.dof))
        lever = 1.0 + 1.0 / self.n + (ops - self.ops_mean) ** 2 / self.ops_sxx
        half = t * self.rse_ms * math.sqrt(lever)
        return Prediction(value=value, lo=max(value - half, 0.0), hi=value + half, level=level,
                          extrapolated=not self.ops_min <= ops <= self.ops_max)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": LINE_KIND, "schema": LINE_SCHEMA,
            "n": self.n, "a": self.a, "b": self.b, "rse_ms": self.rse_ms,
            "ops_mean": self.ops_mean, "ops_sxx": self.ops_sxx,
            "ops_min": self.ops_min, "ops_max": self.ops_max, "k": self.k,
            "in_sample": self.in_sample.to_dict(), "cv": self.cv.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LineFit:
        if d.get("kind") != LINE_KIND or d.get("schema") != LINE_SCHEMA:
            raise FitError(f"not an {LINE_KIND} fit of schema {LINE_SCHEMA}: kind "
                           f"{d.get('kind')!r}, schema {d.get('schema')!r}; refit it")
        return cls(
            n=int(d["n"]), a=float(d["a"]), b=float(d["b"]), rse_ms=float(d["rse_ms"]),
            ops_mean=float(d["ops_mean"]), ops_sxx=float(d["ops_sxx"]),
            ops_min=float(d["ops_min"]), ops_max=float(d["ops_max"]), k=int(d["k"]),
            in_sample=Metrics.from_dict(d["in_sample"]), cv=Metrics.from_dict(d["cv"]),
        )


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    reg = LinearRegression().fit(x.reshape(-1, 1), y)
    return float(reg.coef_[0]), float(reg.intercept_)


def check_xy(ops: ArrayLike, latency_ms: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays as float vectors, or a FitError saying what is wrong with them."""
    x = np.asarray(ops, dtype=float).ravel()
    y = np.asarray(latency_ms, dtype=float).ravel()
    if x.shape != y.shape:
        raise FitError(f"ops and latency_ms differ in length ({len(x)} vs {len(y)})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise FitError("ops and latency_ms must be finite: drop measurements without a latency "
                       "(host runs, failed jobs) before fitting")
    if np.any(x < 0) or np.any(y <= 0):
        raise FitError("ops must be ≥ 0 and latency_ms > 0 (MAPE divides by latency)")
    return x, y


def fit_ops_line(ops: ArrayLike, latency_ms: ArrayLike, *, k_folds: int = DEFAULT_K_FOLDS,
                 seed: int = 0, groups: ArrayLike | None = None) -> LineFit:
    """Fit ``latency_ms = a * ops + b`` by ordinary least squares (scikit-learn).

    Cross-validation uses k = min(``k_folds``, n) shuffled folds (``seed`` fixes them); with
    ``groups`` (e.g. model ids, when a model was measured more than once) the folds keep each
    group whole. Raises ``InsufficientDataError`` below ``MIN_POINTS`` measurements or
    ``MIN_DISTINCT_OPS`` distinct op counts, ``FitError`` for invalid input.
    """
    x, y = check_xy(ops, latency_ms)
    n = len(x)
    if n < MIN_POINTS:
        raise InsufficientDataError(
            f"insufficient data: {n} measurements, a line needs at least {MIN_POINTS}; "
            f"profile more models of this backbone on this device", n=n, needed=MIN_POINTS)
    distinct = len(np.unique(x))
    if distinct < MIN_DISTINCT_OPS:
        raise InsufficientDataError(
            f"insufficient data: all {n} measurements have the same op count; profile models "
            f"of different sizes", n=distinct, needed=MIN_DISTINCT_OPS)
    if groups is not None:
        g = np.asarray(groups).ravel()
        if len(g) != n:
            raise FitError(f"groups has {len(g)} entries for {n} points")
        if len(np.unique(g)) < MIN_FOLDS:
            raise InsufficientDataError(
                f"insufficient data: {len(np.unique(g))} distinct models; cross-validation "
                f"needs at least {MIN_FOLDS}", n=len(np.unique(g)), needed=MIN_FOLDS)

    splits = folds(n, k_folds=k_folds, seed=seed, groups=groups)
    oof = np.empty(n)
    for train, test in splits:
        a_f, b_f = _ols(x[train], y[train])
        oof[test] = a_f * x[test] + b_f

    a, b = _ols(x, y)
    fitted = a * x + b
    rss = float(np.sum((y - fitted) ** 2))
    mean = float(np.mean(x))
    return LineFit(
        n=n, a=a, b=b, rse_ms=math.sqrt(rss / (n - 2)),
        ops_mean=mean, ops_sxx=float(np.sum((x - mean) ** 2)),
        ops_min=float(np.min(x)), ops_max=float(np.max(x)), k=len(splits),
        in_sample=score(y, fitted), cv=score(y, oof),
    )
