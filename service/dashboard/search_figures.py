"""The figures of a search run's page (``/searches/{id}``), as plain Plotly dicts like
``service.dashboard.figures``: the run over its epochs (predicted latency and validation
accuracy, SRAM and flash, each against its budget), the Pareto front of accuracy vs predicted
latency, and predicted vs measured latency of every verified candidate.

Each latency says what it is (``service.dashboard.labels``): on a twin (``virtual:...``) a
measured latency is a cycle-model latency, not silicon, and the fits that predict it were
fitted on cycle-model latencies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.dashboard.figures import KIB, PALETTE, Figure, _axis, _layout
from service.dashboard.labels import MEASURED_CYCLE_SOURCE, LatencyKind, kind_of, latency_title

_TOP_LEGEND = {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"}
ACCURACY_COLOR = "#222"
FRONT_COLOR = "#d62728"


@dataclass(frozen=True)
class EpochPoint:
    """One epoch record as the figures need it: ``step`` is its place on the x axis."""

    step: int
    round: int
    epoch: int
    accuracy: float | None
    costs: Mapping[str, Mapping[str, Any]]
    arch_id: str | None


@dataclass(frozen=True)
class CandidatePoint:
    """One candidate as the figures need it."""

    id: int
    arch_id: str
    round: int
    accuracy: float | None
    predicted: Mapping[str, Mapping[str, Any]]
    measured: Mapping[str, Mapping[str, Any]] | None
    verified: bool


def pareto_front(latency: Sequence[float] | np.ndarray,
                 accuracy: Sequence[float] | np.ndarray) -> np.ndarray:
    """Which points no other point dominates (another is at least as fast and at least as
    accurate, and better in one): a boolean mask."""
    lat = np.asarray(latency, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
    mask = np.zeros(len(lat), dtype=bool)
    best = -np.inf
    # Fastest first, the more accurate first among equally fast ones: a point is on the
    # front when it is more accurate than every faster point.
    for i in np.lexsort((-acc, lat)):
        if acc[i] > best:
            mask[i] = True
            best = acc[i]
    return mask


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _budget(budgets: Mapping[str, Mapping[str, Any]], device: str, key: str) -> float | None:
    value = (budgets.get(device) or {}).get(key)
    return float(value) if value is not None else None


def _cost(costs: Mapping[str, Mapping[str, Any]], device: str, key: str) -> float | None:
    value = (costs.get(device) or {}).get(key)
    return float(value) if value is not None else None


def _x_axis(epochs: Sequence[EpochPoint]) -> dict[str, Any]:
    rounds = {e.round for e in epochs}
    return _axis("epoch" if len(rounds) <= 1 else "epoch (all rounds in order)")


def _budget_trace(name: str, x: Sequence[int], value: float, color: str, group: str,
                  yaxis: str = "y", unit: str = "ms") -> dict[str, Any]:
    lo, hi = (min(x), max(x)) if x else (0, 1)
    return {"type": "scatter", "mode": "lines", "name": name, "legendgroup": group,
            "x": [lo, hi], "y": [value, value], "yaxis": yaxis,
            "line": {"color": color, "width": 1.5, "dash": "dash"},
            "hovertemplate": f"{name}: %{{y:.4g}} {unit}<extra></extra>"}


def device_kind(device: str) -> LatencyKind:
    """What a device class's latencies are when nothing more is known: a physical board's
    are measured (DWT CYCCNT), a twin's come from its cycle model, Renode's are estimates."""
    return kind_of(MEASURED_CYCLE_SOURCE, device)


def predicted_name(device: str, kind: LatencyKind) -> str:
    """How a device's predicted latency is named: a twin's fit predicts cycle-model latency,
    a physical board's fit the latency measured on silicon."""
    what = "latency (silicon)" if kind.key == "measured" else kind.label
    return f"{device}: predicted {what}"


def epoch_figures(epochs: Sequence[EpochPoint], devices: Sequence[str],
                  budgets: Mapping[str, Mapping[str, Any]]) -> dict[str, Figure]:
    """Predicted latency per device class and validation accuracy over the epochs, the
    latency budgets as dashed lines; SRAM (arena) and flash (plan) over the epochs against
    their budgets. Costs at an epoch are the search's expectations, so may be fractional."""
    x = [e.step for e in epochs]
    custom = [[e.round, e.epoch, e.arch_id or ""] for e in epochs]
    hover_at = "round %{customdata[0]} epoch %{customdata[1]} (argmax %{customdata[2]})"
    latency: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    for i, device in enumerate(devices):
        color, kind = _color(i), device_kind(device)
        lat = [_cost(e.costs, device, "latency_ms") for e in epochs]
        name = predicted_name(device, kind)
        latency.append({"type": "scatter", "mode": "lines+markers", "name": name,
                        "legendgroup": device, "x": x, "y": lat, "customdata": custom,
                        "marker": {"color": color, "size": 5}, "line": {"color": color},
                        "hovertemplate": f"{hover_at}<br>%{{y:.3f}} ms<extra>{name}</extra>"})
        cap = _budget(budgets, device, "latency_ms")
        if cap is not None:
            latency.append(_budget_trace(f"{device}: latency budget", x, cap, color, device))
        for key, axis, dash, what in (("sram_bytes", "y", "solid", "SRAM (arena)"),
                                      ("flash_bytes", "y2", "dot", "flash (plan)")):
            values = [_cost(e.costs, device, key) for e in epochs]
            kib = [v / KIB if v is not None else None for v in values]
            label = f"{device}: {what}"
            memory.append({"type": "scatter", "mode": "lines+markers", "name": label,
                           "legendgroup": device, "x": x, "y": kib, "yaxis": axis,
                           "customdata": custom, "marker": {"color": color, "size": 4},
                           "line": {"color": color, "dash": dash},
                           "hovertemplate": f"{hover_at}<br>%{{y:,.1f}} KiB"
                                            f"<extra>{label}</extra>"})
            cap = _budget(budgets, device, key)
            if cap is not None:
                memory.append(_budget_trace(f"{device}: {what} budget", x, cap / KIB, color,
                                            device, yaxis=axis, unit="KiB"))
    accuracy = [e.accuracy for e in epochs]
    latency.append({"type": "scatter", "mode": "lines+markers", "name": "validation accuracy",
                    "x": x, "y": accuracy, "yaxis": "y2", "customdata": custom,
                    "marker": {"color": ACCURACY_COLOR, "size": 5, "symbol": "square"},
                    "line": {"color": ACCURACY_COLOR, "dash": "dot"},
                    "hovertemplate": f"{hover_at}<br>accuracy %{{y:.2%}}<extra></extra>"})
    kinds = [device_kind(d) for d in devices]
    what = latency_title(kinds)
    return {
        "epochs_latency": {"data": latency, "layout": _layout(
            f"Predicted {what} and validation accuracy per epoch (dashed: budgets)",
            xaxis=_x_axis(epochs), yaxis=_axis(f"predicted {what} (ms)", rangemode="tozero"),
            yaxis2=_axis("validation accuracy", overlaying="y", side="right",
                         range=[0, 1], tickformat=".0%", showgrid=False),
            legend=_TOP_LEGEND, margin={"l": 70, "r": 70, "t": 80, "b": 60})},
        "epochs_memory": {"data": memory, "layout": _layout(
            "Predicted SRAM (arena, top) and flash (plan, bottom) per epoch (dashed: budgets)",
            xaxis=_x_axis(epochs) | {"anchor": "y2"},
            yaxis=_axis("SRAM (KiB)", rangemode="tozero", domain=[0.55, 1]),
            yaxis2=_axis("flash (KiB)", rangemode="tozero", domain=[0, 0.45], anchor="x"),
            legend=_TOP_LEGEND, margin={"l": 70, "r": 20, "t": 80, "b": 60})},
    }


def pareto_figure(candidates: Sequence[CandidatePoint], epochs: Sequence[EpochPoint],
                  devices: Sequence[str],
                  budgets: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Accuracy vs predicted latency on each device class: the candidates (filled), the
    argmax architecture of every epoch (open), the Pareto front over both (a line through
    its points, which are drawn larger), and the latency budget (a dotted vertical line)."""
    traces: list[dict[str, Any]] = []
    top = 1.0
    for i, device in enumerate(devices):
        color, kind = _color(i), device_kind(device)
        points: list[tuple[float, float, str, str]] = []  # latency, accuracy, label, source
        for c in candidates:
            ms = _cost(c.predicted, device, "latency_ms")
            if ms is not None and c.accuracy is not None:
                points.append((ms, c.accuracy, f"candidate {c.id}: {c.arch_id} "
                                                 f"(round {c.round})", "candidate"))
        for e in epochs:
            ms = _cost(e.costs, device, "latency_ms")
            if ms is not None and e.accuracy is not None:
                points.append((ms, e.accuracy, f"round {e.round} epoch {e.epoch} argmax "
                                                 f"{e.arch_id or '?'}", "epoch"))
        if not points:
            continue
        lat = np.array([p[0] for p in points])
        acc = np.array([p[1] for p in points])
        front = pareto_front(lat, acc)
        for source, symbol, size in (("candidate", "circle", 8), ("epoch", "circle-open", 6)):
            idx = [j for j, p in enumerate(points) if p[3] == source]
            if not idx:
                continue
            traces.append({
                "type": "scatter", "mode": "markers", "legendgroup": device,
                "name": f"{device}: {'candidates' if source == 'candidate' else 'epoch argmax'}",
                "x": lat[idx].tolist(), "y": acc[idx].tolist(),
                "text": [points[j][2] for j in idx],
                "marker": {"color": color, "size": size, "symbol": symbol, "opacity": 0.8},
                "hovertemplate": f"%{{text}}<br>%{{x:.3f}} ms predicted ({kind.short}), "
                                 f"accuracy %{{y:.2%}}<extra>{device}</extra>"})
        order = np.argsort(lat[front], kind="stable")
        traces.append({
            "type": "scatter", "mode": "lines+markers", "legendgroup": device,
            "name": f"{device}: Pareto front ({int(front.sum())})",
            "x": lat[front][order].tolist(), "y": acc[front][order].tolist(),
            "text": [points[j][2] for j in np.flatnonzero(front)[order]],
            "line": {"color": FRONT_COLOR if len(devices) == 1 else color, "width": 2,
                     "shape": "hv"},
            "marker": {"color": FRONT_COLOR if len(devices) == 1 else color, "size": 11,
                       "symbol": "star", "line": {"width": 1, "color": "white"}},
            "hovertemplate": "%{text}<br>%{x:.3f} ms, accuracy %{y:.2%}<extra>front</extra>"})
        cap = _budget(budgets, device, "latency_ms")
        if cap is not None:
            traces.append({"type": "scatter", "mode": "lines", "legendgroup": device,
                           "name": f"{device}: latency budget", "x": [cap, cap],
                           "y": [0, top], "line": {"color": color, "dash": "dot"},
                           "hovertemplate": f"budget {cap:.4g} ms<extra>{device}</extra>"})
    what = latency_title([device_kind(d) for d in devices])
    return {"data": traces, "layout": _layout(
        f"Accuracy vs predicted {what}: candidates, epoch argmaxes and the Pareto front",
        xaxis=_axis(f"predicted {what} (ms)", rangemode="tozero"),
        yaxis=_axis("validation accuracy", tickformat=".0%"), legend=_TOP_LEGEND,
        margin={"l": 70, "r": 20, "t": 80, "b": 60})}


def measured_kind(device: str, figures: Mapping[str, Any]) -> LatencyKind:
    """What a candidate's measured latency on ``device`` is: measured on silicon only for DWT
    cycles of a physical board; a twin's is a cycle-model latency."""
    source = figures.get("cycle_source")
    return kind_of(source, device) if source else device_kind(device)


def verified_figure(candidates: Sequence[CandidatePoint], devices: Sequence[str]) -> Figure:
    """Predicted vs measured latency of every verified candidate on each device class it was
    measured on: whiskers are the prediction interval, the diagonal is y = x (a perfect
    prediction)."""
    traces: list[dict[str, Any]] = []
    kinds: list[LatencyKind] = []
    top = 0.0
    for i, device in enumerate(devices):
        rows = []
        for c in candidates:
            pred = (c.predicted or {}).get(device)
            meas = (c.measured or {}).get(device)
            if not c.verified or pred is None or meas is None:
                continue
            rows.append((c, pred, meas, measured_kind(device, meas)))
        if not rows:
            continue
        kinds += [r[3] for r in rows]
        x = [float(p["latency_ms"]) for _, p, _, _ in rows]
        y = [float(m["latency_ms"]) for _, _, m, _ in rows]
        hi = [float(p.get("latency_hi_ms", p["latency_ms"])) - float(p["latency_ms"])
              for _, p, _, _ in rows]
        lo = [float(p["latency_ms"]) - float(p.get("latency_lo_ms", p["latency_ms"]))
              for _, p, _, _ in rows]
        top = max(top, *x, *y, *(a + b for a, b in zip(x, hi, strict=True)))
        device_kinds = list(dict.fromkeys(r[3].label for r in rows))
        name = f"{device} ({', '.join(device_kinds)})"
        traces.append({
            "type": "scatter", "mode": "markers", "name": name, "x": x, "y": y,
            "error_x": {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
            "text": [f"candidate {c.id}: {c.arch_id} ({k.label})" for c, _, _, k in rows],
            "marker": {"color": _color(i), "size": 10},
            "hovertemplate": "%{text}<br>predicted %{x:.3f} ms, observed %{y:.3f} ms"
                             f"<extra>{device}</extra>"})
    what = latency_title(kinds) if kinds else "measured latency"
    edge = top * 1.05 if top > 0 else 1.0
    traces.append({"type": "scatter", "mode": "lines", "name": "y = x (prediction exact)",
                   "x": [0, edge], "y": [0, edge],
                   "line": {"color": "#777", "width": 1, "dash": "dash"},
                   "hoverinfo": "skip"})
    return {"data": traces, "layout": _layout(
        f"Predicted vs {what} of the verified candidates (whiskers: prediction interval)",
        xaxis=_axis("predicted latency (ms)", rangemode="tozero"),
        yaxis=_axis(f"{what} (ms)", rangemode="tozero"), legend=_TOP_LEGEND,
        margin={"l": 70, "r": 20, "t": 80, "b": 60})}
