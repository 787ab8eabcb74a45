"""Latency models fitted from measurements: pure functions, no database, no web.

- ``linear`` (``profiler_client.fitting``, shared with clients): latency = a·ops + b per
  (device, backbone), after MicroNets (RQ1), with r², MAPE and nn-Meter's ±10 % accuracy under
  k-fold cross-validation and a prediction interval.
- ``per_layer``: per-op-type cycle costs fitted on per-layer cycles, predicting any backbone.
- ``frames``: measurement records → pandas frames, ``fit_all`` → versioned fit records,
  CSV / Parquet export.
"""

from __future__ import annotations

from profiler_client.fitting.errors import FitError, InsufficientDataError
from profiler_client.fitting.linear import MIN_POINTS, LineFit, fit_ops_line
from profiler_client.fitting.metrics import ACCURACY_TOLERANCE, Metrics, Prediction, score
from service.fitting.frames import (
    FitResult,
    fit_all,
    fits_frame,
    layers_frame,
    measurements_frame,
    read_csv,
    read_parquet,
    to_csv,
    to_parquet,
)
from service.fitting.per_layer import (
    HeldOutReport,
    PerLayerModel,
    evaluate_held_out_backbone,
    fit_per_layer,
)

__all__ = [
    "ACCURACY_TOLERANCE", "MIN_POINTS", "FitError", "FitResult", "HeldOutReport",
    "InsufficientDataError", "LineFit", "Metrics", "PerLayerModel", "Prediction",
    "evaluate_held_out_backbone", "fit_all", "fit_ops_line", "fit_per_layer", "fits_frame",
    "layers_frame", "measurements_frame", "read_csv", "read_parquet", "score", "to_csv",
    "to_parquet",
]
