"""Predicted latency and energy of a model on device classes, from the stored fits.

Two latency models may apply (``service.fitting``): the op-count line of the model's backbone
on that device (needs the op count and the backbone tag) and the device's per-layer model
(needs the layer list: from an uploaded ``.tflite``, a stored model, or the request). Each
gives a latency with its prediction interval; the headline is the applicable one with the
lowest cross-validated MAPE (an extrapolating one only when nothing else applies). Energy is
the board's active power × latency (``bench_firmware.boards``: the figures MicroNets and
MLPerf Tiny measured), with the latency interval carried through. On a virtual twin the fits
predict the twin's cycle-model latency; the intervals are widened by the twin's stated error
band against silicon (``bench_firmware.backends.virtual.error_band``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench_firmware.backends.virtual.error_band import ErrorBand
from bench_firmware.boards import get_board
from profiler_client.fitting.metrics import Prediction
from profiler_client.schemas import DevicePredictionOut, EstimateOut, PredictIn, PredictOut
from service.db.models import Fit, Model
from service.fits_store import line_of, partitions, per_layer_of
from service.fitting.frames import BACKBONE_TAG
from service.queue import InvalidRequestError, NotFoundError, parse_device_class
from service.twin_band import TwinView, device_class_view

MW_MS_PER_MJ = 1000.0  # mW × ms = µJ; 1000 µJ = 1 mJ


@dataclass(frozen=True)
class Subject:
    """What is predicted: its op count and backbone tag (the line), its layers (the
    per-layer model) and, when known, its arena and plan bytes (whether it fits)."""

    name: str | None = None
    ops: int | None = None
    macs: int | None = None
    backbone: str | None = None
    layers: tuple[dict[str, Any], ...] | None = None
    input_shape: tuple[int, ...] | None = None
    arena_bytes: int | None = None
    plan_bytes: int | None = None


def subject_from_analysis(analysis: dict[str, Any], *, name: str | None,
                          backbone: str | None) -> Subject:
    """A subject from ``mcuprof analyze --json`` figures (a stored model's ``analysis``)."""
    return Subject(
        name=name, ops=int(analysis["ops"]), macs=int(analysis["macs"]), backbone=backbone,
        layers=tuple(dict(layer) for layer in analysis.get("layers") or ()),
        input_shape=tuple(analysis["input_shape"]) if analysis.get("input_shape") else None,
        arena_bytes=int(analysis["arena_bytes"]), plan_bytes=int(analysis["plan_bytes"]))


def subject_from_request(session: Session, body: PredictIn) -> Subject:
    """The subject of a JSON request: a stored model (``model_id``), or ops / layers."""
    if body.model_id is not None:
        model = session.get(Model, body.model_id)
        if model is None:
            raise NotFoundError(f"there is no model {body.model_id}; list models with "
                                f"GET /api/v1/models")
        tags = {t.key: t.value for t in model.tags}
        return subject_from_analysis(model.analysis, name=model.name,
                                     backbone=body.backbone or tags.get(BACKBONE_TAG))
    layers = tuple(layer.model_dump() for layer in body.layers) if body.layers else None
    ops = body.ops
    if ops is None and layers:
        ops = sum(int(layer["ops"]) for layer in layers)
    if ops is None and not layers:
        raise InvalidRequestError("nothing to predict: give ops and backbone (the op-count "
                                  "line), layers, or model_id; or upload the .tflite as "
                                  "multipart field 'file'")
    return Subject(ops=ops, backbone=body.backbone, layers=layers,
                   macs=sum(int(x["macs"]) for x in layers) if layers else None,
                   input_shape=tuple(body.input_shape) if body.input_shape else None)


def _energy(power_mw: float | None, ms: float) -> float | None:
    return None if power_mw is None else power_mw * ms / MW_MS_PER_MJ


def _estimate(fit: Fit, p: Prediction, power_mw: float | None,
              view: TwinView | None = None) -> EstimateOut:
    """One estimate. On a twin (``view``) the fit predicts the twin's cycle-model latency, so
    the interval is widened to the silicon latencies the twin's band allows around its ends:
    [lo / (1 + band), hi / (1 − band)]. A calibrated twin's fit is first scaled by the
    calibration's factor (a fit to latencies × f is the fit × f: the line and its interval are
    linear in the latencies), and its band is the calibration's error."""
    band: ErrorBand | None = view.applied if view else None
    if view is not None and view.calibration is not None:
        f = view.calibration.factor
        p = replace(p, value=p.value * f, lo=p.lo * f, hi=p.hi * f)
    wide = p.widened(band.pct if band else None)
    lo, hi = wide.lo, wide.hi
    return EstimateOut(
        model=fit.kind,  # type: ignore[arg-type]
        fit_version=fit.version, backbone=fit.backbone, latency_ms=p.value,
        latency_lo_ms=lo, latency_hi_ms=hi, level=p.level, extrapolated=p.extrapolated,
        energy_mj=_energy(power_mw, p.value), energy_lo_mj=_energy(power_mw, lo),
        energy_hi_mj=_energy(power_mw, hi), cv_mape=fit.cv_mape, cv_acc10=fit.cv_acc10,
        n=fit.n, fit_lo_ms=p.lo if band else None, fit_hi_ms=p.hi if band else None,
        error_band_pct=band.pct if band else None,
        error_band_basis=band.basis if band else None)


def _current(session: Session, devices: Sequence[str], kernels: str) -> list[Fit]:
    query = select(Fit).where(Fit.current.is_(True), Fit.kernels == kernels)
    if devices:
        query = query.where(Fit.device_class.in_(list(devices)))
    return list(session.scalars(query.order_by(Fit.device_class, Fit.id)))


def predict(session: Session, subject: Subject, devices: Sequence[str], *,
            kernels: str = "dsp") -> PredictOut:
    """Predictions for ``subject`` on every device class in ``devices`` (all classes with a
    current fit when empty). An unknown device class raises ``InvalidRequestError``."""
    classes = [parse_device_class(d.strip()) for d in dict.fromkeys(devices)]
    fits = _current(session, [c.name for c in classes], kernels)
    if not classes:
        names = sorted({f.device_class for f in fits})
        if not names:
            raise NotFoundError(f"no device class has a latency model for {kernels} kernels "
                                f"yet; profile models first (mcuprof submit), then predict")
        classes = [parse_device_class(n) for n in names]
    out: list[DevicePredictionOut] = []
    for cls in classes:
        here = [f for f in fits if f.device_class == cls.name]
        out.append(_predict_one(session, subject, cls.name, cls.board, kernels, here))
    return PredictOut(name=subject.name, ops=subject.ops, macs=subject.macs,
                      backbone=subject.backbone, predictions=out)


def _predict_one(session: Session, subject: Subject, device: str, board_name: str,
                 kernels: str, fits: list[Fit]) -> DevicePredictionOut:
    board = get_board(board_name)
    result = DevicePredictionOut(device=device, board=board.name, kernels=kernels,
                                 active_power_mw=board.active_power_mw,
                                 power_source=board.power_source if board.active_power_mw
                                 else None)
    if subject.arena_bytes is not None and subject.plan_bytes is not None and board.clock_hz:
        result.arena_bytes, result.plan_bytes = subject.arena_bytes, subject.plan_bytes
        result.arena_capacity = board.arena_capacity
        result.model_region_bytes = board.model_region_bytes
        result.fits_board = (subject.arena_bytes <= board.arena_capacity
                             and subject.plan_bytes <= board.model_region_bytes)
        if not result.fits_board:
            result.problems.append(
                f"does not fit {board.name}: arena {subject.arena_bytes:,} of "
                f"{board.arena_capacity:,} bytes, plan {subject.plan_bytes:,} of "
                f"{board.model_region_bytes:,} bytes")
    if not board.clock_hz:
        result.problems.append("the host build has no cycle counter: nothing to predict")
        return result
    power = board.active_power_mw
    view = device_class_view(session, device, kernels)
    if view is not None:
        result.error_band_pct, result.error_band_label = view.applied.pct, view.applied.label
        if view.calibration is not None:
            result.calibration_id = view.calibration.id
            result.calibration_factor = view.calibration.factor
            result.calibrated_at = view.calibration.created_at
    notes = [note for p in partitions(session, device_class=device) if p.kernels == kernels
             for note in p.notes]
    estimates: list[EstimateOut] = []
    if subject.ops is not None and subject.backbone:
        line = next((f for f in fits if f.kind == "ops_line"
                     and f.backbone == subject.backbone), None)
        if line is not None:
            estimates.append(_estimate(line, line_of(line).predict(float(subject.ops)), power,
                                       view))
        else:
            why = [n for n in notes if n.startswith(f"backbone {subject.backbone}:")]
            result.problems.append(
                f"no op-count line for backbone {subject.backbone} on {device} ({kernels} "
                f"kernels) yet" + (f": {why[0]}" if why else ": no measurements of it"))
    elif subject.ops is not None:
        result.problems.append("no backbone given: the op-count line needs the model's "
                               "backbone tag (--backbone)")
    if subject.layers:
        per_layer = next((f for f in fits if f.kind == "per_layer"), None)
        if per_layer is not None:
            p = per_layer_of(per_layer).predict(list(subject.layers),
                                                input_shape=subject.input_shape)
            estimates.append(_estimate(per_layer, p, power, view))
        else:
            why = [n for n in notes if n.startswith("per-layer model:")]
            result.problems.append(f"no per-layer model on {device} ({kernels} kernels) yet"
                                   + (f": {why[0]}" if why else ": no measurements there"))
    result.estimates = estimates
    if estimates:
        best = min(estimates, key=lambda e: (e.extrapolated, e.cv_mape))
        result.model, result.fit_version = best.model, best.fit_version
        result.latency_ms, result.latency_lo_ms = best.latency_ms, best.latency_lo_ms
        result.latency_hi_ms = best.latency_hi_ms
        result.energy_mj, result.energy_lo_mj = best.energy_mj, best.energy_lo_mj
        result.energy_hi_mj = best.energy_hi_mj
    return result
