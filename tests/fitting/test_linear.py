"""The op-count line: recovery of a known line, metrics, prediction intervals, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from profiler_client.fitting.errors import FitError, InsufficientDataError
from profiler_client.fitting.linear import MIN_POINTS, LineFit, fit_ops_line
from profiler_client.fitting.metrics import folds, score

SLOPE = 2.5e-6  # ms per op: 400 Mops/s
INTERCEPT = 4.0  # ms


def line_data(n: int, noise_ms: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ops = rng.uniform(2e6, 4e7, n)
    return ops, SLOPE * ops + INTERCEPT + rng.normal(0.0, noise_ms, n)


def test_recovers_known_slope_and_intercept() -> None:
    ops, lat = line_data(60, noise_ms=0.3)
    fit = fit_ops_line(ops, lat)
    assert fit.a == pytest.approx(SLOPE, rel=0.02)
    assert fit.b == pytest.approx(INTERCEPT, abs=0.3)
    assert fit.rse_ms == pytest.approx(0.3, rel=0.25)
    assert fit.n == 60 and fit.k == 5
    assert fit.r2 > 0.99 and fit.cv.r2 > 0.99


def test_perfect_line_scores_one() -> None:
    ops = np.linspace(1e6, 3e7, 12)
    fit = fit_ops_line(ops, SLOPE * ops + INTERCEPT)
    assert fit.r2 == pytest.approx(1.0) and fit.cv.r2 == pytest.approx(1.0)
    assert fit.cv.acc10 == 1.0 and fit.in_sample.acc10 == 1.0
    assert fit.cv.mape == pytest.approx(0.0, abs=1e-9)
    assert fit.rse_ms == pytest.approx(0.0, abs=1e-9)


def test_metrics_degrade_with_noise() -> None:
    fits = [fit_ops_line(*line_data(80, noise_ms=s, seed=1)) for s in (0.2, 2.0, 8.0)]
    r2 = [f.cv.r2 for f in fits]
    acc = [f.cv.acc10 for f in fits]
    mape = [f.cv.mape for f in fits]
    assert r2[0] > r2[1] > r2[2]
    assert acc[0] > acc[1] > acc[2]
    assert mape[0] < mape[1] < mape[2]
    assert acc[0] == 1.0 and acc[2] < 0.6


def test_accuracy_is_share_within_ten_percent() -> None:
    measured = np.array([10.0, 10.0, 10.0, 10.0])
    predicted = np.array([10.5, 9.05, 11.2, 7.0])  # +5 %, −9.5 %, +12 %, −30 %
    m = score(measured, predicted)
    assert m.acc10 == 0.5
    assert m.mape == pytest.approx((0.05 + 0.095 + 0.12 + 0.30) / 4)


def test_prediction_interval_covers_95_percent_of_fresh_points() -> None:
    rng = np.random.default_rng(7)
    inside = total = 0
    for rep in range(300):
        ops, lat = line_data(20, noise_ms=1.0, seed=1000 + rep)
        fit = fit_ops_line(ops, lat)
        for x in rng.uniform(2e6, 6e7, 10):  # partly beyond the fitted range
            p = fit.predict(float(x))
            y = SLOPE * x + INTERCEPT + rng.normal(0.0, 1.0)
            inside += p.lo <= y <= p.hi
            total += 1
    assert 0.93 <= inside / total <= 0.97


def test_prediction_interval_widens_away_from_the_data() -> None:
    ops, lat = line_data(30, noise_ms=0.5)
    fit = fit_ops_line(ops, lat)
    centre = fit.predict(fit.ops_mean)
    far = fit.predict(fit.ops_max * 3)
    assert far.hi - far.lo > centre.hi - centre.lo > 0
    assert far.extrapolated and not centre.extrapolated
    assert centre.level == 0.95
    narrow = fit.predict(fit.ops_mean, level=0.5)
    assert narrow.hi - narrow.lo < centre.hi - centre.lo
    assert centre.value == pytest.approx(fit.a * fit.ops_mean + fit.b)


def test_insufficient_data_is_refused_clearly() -> None:
    ops, lat = line_data(MIN_POINTS - 1, noise_ms=0.1)
    with pytest.raises(InsufficientDataError, match="insufficient data: 4 measurements") as e:
        fit_ops_line(ops, lat)
    assert (e.value.n, e.value.needed) == (MIN_POINTS - 1, MIN_POINTS)
    with pytest.raises(InsufficientDataError, match="same op count"):
        fit_ops_line(np.full(8, 1e6), np.linspace(3, 4, 8))
    with pytest.raises(InsufficientDataError, match="distinct models"):
        fit_ops_line(*line_data(8, 0.1), groups=np.ones(8))


def test_minimum_is_a_leave_one_out() -> None:
    fit = fit_ops_line(*line_data(MIN_POINTS, noise_ms=0.1))
    assert fit.k == MIN_POINTS
    assert fit_ops_line(*line_data(7, noise_ms=0.1), k_folds=10).k == 7


@pytest.mark.parametrize(("ops", "lat", "match"), [
    ([1e6, 2e6, 3e6, 4e6, 5e6], [1.0, 2.0, np.nan, 4.0, 5.0], "finite"),
    ([1e6, 2e6, 3e6, 4e6, 5e6], [1.0, 2.0, 0.0, 4.0, 5.0], "latency_ms > 0"),
    ([1e6, 2e6, 3e6], [1.0, 2.0], "differ in length"),
])
def test_invalid_input_is_refused(ops: list[float], lat: list[float], match: str) -> None:
    with pytest.raises(FitError, match=match):
        fit_ops_line(ops, lat)


def test_too_few_folds_is_refused() -> None:
    with pytest.raises(FitError, match="k_folds must be at least 2"):
        fit_ops_line(*line_data(10, 0.1), k_folds=1)


def test_json_round_trip() -> None:
    fit = fit_ops_line(*line_data(25, noise_ms=0.5))
    again = LineFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert again == fit
    assert again.predict(1e7) == fit.predict(1e7)
    with pytest.raises(FitError, match="refit"):
        LineFit.from_dict(fit.to_dict() | {"schema": 99})


def test_deterministic() -> None:
    ops, lat = line_data(40, noise_ms=1.0)
    assert fit_ops_line(ops, lat, seed=3).to_dict() == fit_ops_line(ops, lat, seed=3).to_dict()
    other = fit_ops_line(ops, lat, seed=4)
    assert other.a == fit_ops_line(ops, lat, seed=3).a  # the fit itself does not depend on it


def test_group_folds_keep_a_model_whole() -> None:
    groups = np.repeat(np.arange(9), 3)  # each model measured three times
    splits = folds(len(groups), k_folds=4, seed=0, groups=groups)
    assert len(splits) == 4
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
    ops = np.repeat(np.linspace(1e6, 2e7, 9), 3)
    fit = fit_ops_line(ops, SLOPE * ops + INTERCEPT, groups=groups)
    assert fit.n == 27 and fit.k == 5
