"""The dashboard's Plotly figures, as plain dicts (``{"data": [...], "layout": {...}}``).

Built from columns (pandas / numpy, no Python loop per measurement) and serialized once with
``figure_json``; the browser draws them with the service's own plotly.js. Plain dicts rather
than ``plotly.graph_objects``: the same JSON, without validating ten thousand points in Python
on every page load (``tests/dashboard`` validates the shapes with graph_objects instead).

Above ``SVG_POINTS`` markers a scatter switches to WebGL (``scattergl``), which stays smooth
with tens of thousands of points where SVG does not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench_firmware.boards import BOARDS
from profiler_client.schemas import PredictOut
from service.dashboard.labels import KINDS, LatencyKind, latency_kind, latency_title, mixed
from service.db.models import Fit

SVG_POINTS = 4000  # markers in one figure above which scatters use WebGL
UNTAGGED = "(no backbone tag)"
MOPS = 1e6  # ops per Mop: the scatter's x axis is in millions of ops
KIB = 1024.0
# Plotly's default qualitative palette (plotly.colors.qualitative.Plotly).
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692",
           "#b6e880", "#ff97ff", "#fecb52")
UNTAGGED_COLOR = "#9aa0a6"
ACCURACY_BAND = 10.0  # ± percent: nn-Meter's ±10 % accuracy band on the residual plot

Figure = dict[str, Any]

# Above the plot, right-aligned: below it, a legend collides with rotated category labels.
_TOP_LEGEND = {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"}
_FONT = {"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 13}


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "xanchor": "left"},
        "font": _FONT, "margin": {"l": 70, "r": 20, "t": 50, "b": 60},
        "paper_bgcolor": "white", "plot_bgcolor": "#fafbfc", "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.18, "yanchor": "top", "x": 0},
    }
    layout.update(extra)
    return layout


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "gridcolor": "#e5e8eb", "zeroline": False} | extra


def figure_json(fig: Figure) -> str:
    """Compact JSON, safe inside ``<script type="application/json">`` (every ``<`` escaped,
    so no ``</script>`` or ``<!--`` in a model name can end or confuse the element), with
    non-finite numbers (which JSON cannot carry) as null."""
    try:
        text = json.dumps(fig, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a NaN or infinity somewhere: the slow walk, only then
        text = json.dumps(_finite(fig), separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def colors(labels: Sequence[str]) -> dict[str, str]:
    """A stable colour per backbone label (untagged grey)."""
    tagged = [label for label in labels if label != UNTAGGED]
    out = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(tagged))}
    out[UNTAGGED] = UNTAGGED_COLOR
    return out


def _label(fit: Fit) -> str:
    cv = fit.coefficients.get("cv", {})
    return (f"{fit.backbone} fit: r² {fit.r2:.3f}, ±10% {cv.get('acc10', fit.cv_acc10):.0%} "
            f"(n={fit.n})")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def scatter_kinds(scatter: pd.DataFrame, backend: str | None) -> pd.Series:
    """The latency kind of each row of a scatter frame (its ``cycle_source`` column, if any,
    on a device of ``backend``), mapped once per distinct source."""
    sources = (scatter["cycle_source"] if "cycle_source" in scatter
               else pd.Series([None] * len(scatter), index=scatter.index, dtype=object))
    sources = sources.astype(object).where(sources.notna(), "")
    by_source = {cs: latency_kind(cs or None, backend) for cs in sources.unique()}
    return sources.map(by_source)


def device_figures(scatter: pd.DataFrame, lines: Sequence[Fit],
                   backend: str | None = None) -> dict[str, Figure]:
    """The latency-vs-ops scatter (one colour per backbone, each backbone's fitted line, r²
    and ±10 % accuracy in the legend) and the residual plot (prediction error in % of the
    observed latency, with the ±10 % band), for one device class (of ``backend``) and kernel
    path. Titles and axes say which latency it is (measured on silicon, cycle model, Renode
    estimate), and that sources are mixed when they are."""
    kinds = scatter_kinds(scatter, backend)
    what = latency_title(kinds.tolist())
    df = scatter.assign(label=scatter["backbone"].fillna(UNTAGGED),
                        kind=[k.short for k in kinds])
    labels = sorted(df["label"].unique().tolist(), key=lambda s: (s == UNTAGGED, s))
    palette = colors(labels)
    kind = "scattergl" if len(df) > SVG_POINTS else "scatter"
    by_backbone = {f.backbone: f for f in lines}
    points: list[dict[str, Any]] = []
    residuals: list[dict[str, Any]] = []
    hover = ("%{customdata[0]} (model %{customdata[1]}, measurement %{customdata[2]})"
             "<br>%{x:.3f} Mops → %{y:.3f} ms (%{customdata[3]})"
             "<extra>%{fullData.legendgroup}</extra>")
    for label in labels:
        g = df[df["label"] == label]
        x = (g["ops"].to_numpy(dtype=float) / MOPS)
        y = g["latency_ms"].to_numpy(dtype=float)
        custom = g[["model", "model_id", "measurement_id", "kind"]].to_numpy().tolist()
        points.append({
            "type": kind, "mode": "markers", "name": f"{label} (n={len(g)})",
            "legendgroup": label, "x": x.tolist(), "y": y.tolist(), "customdata": custom,
            "hovertemplate": hover,
            "marker": {"color": palette[label], "size": 7, "opacity": 0.75,
                       "line": {"width": 0.5, "color": "white"}},
        })
        fit = by_backbone.get(label)
        if fit is None or fit.a_ms_per_op is None or fit.b_ms is None:
            continue
        a, b = fit.a_ms_per_op, fit.b_ms
        lo = float(fit.coefficients.get("ops_min", g["ops"].min()))
        hi = float(fit.coefficients.get("ops_max", g["ops"].max()))
        points.append({
            "type": "scatter", "mode": "lines", "name": _label(fit), "legendgroup": label,
            "x": [lo / MOPS, hi / MOPS], "y": [a * lo + b, a * hi + b],
            "line": {"color": palette[label], "width": 2.5, "dash": "dash"},
            "hovertemplate": (f"{label}: {a * MOPS:.4g} ms/Mop × ops + {b:.4g} ms<br>"
                              f"version {fit.version}<extra></extra>"),
        })
        predicted = a * g["ops"].to_numpy(dtype=float) + b
        error = (predicted - y) / y * 100.0
        residuals.append({
            "type": kind, "mode": "markers", "name": f"{label} (CV MAPE "
            f"{fit.cv_mape:.1%})", "legendgroup": label, "x": x.tolist(),
            "y": error.tolist(), "customdata": custom,
            "hovertemplate": ("%{customdata[0]} (model %{customdata[1]})<br>%{x:.3f} Mops: "
                              "%{y:+.1f} %<extra>%{fullData.legendgroup}</extra>"),
            "marker": {"color": palette[label], "size": 6, "opacity": 0.75},
        })
    scatter_fig = {"data": points, "layout": _layout(
        f"{_capital(what)} vs ops",
        xaxis=_axis("ops (millions; 1 MAC = 2 ops)", rangemode="tozero"),
        yaxis=_axis(f"{what} (ms)", rangemode="tozero"))}
    band = {"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
            "y0": -ACCURACY_BAND, "y1": ACCURACY_BAND, "fillcolor": "#2ca02c", "opacity": 0.08,
            "line": {"width": 0}, "layer": "below"}
    zero = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": 0, "y1": 0,
            "line": {"color": "#777", "width": 1}}
    residual_fig = {"data": residuals, "layout": _layout(
        "Residuals of the op-count lines (shaded: ±10 %)",
        xaxis=_axis("ops (millions)", rangemode="tozero"),
        yaxis=_axis(f"predicted − {what} (% of it)", ticksuffix=" %"),
        shapes=[band, zero])}
    return {"scatter": scatter_fig, "residuals": residual_fig}


def _layer_labels(layers: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f"{layer.get('index', i)} {layer['op']}" for i, layer in enumerate(layers)]


def model_figures(layers: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]],
                  analysis: Mapping[str, Any], measured: pd.DataFrame,
                  prediction: PredictOut | None,
                  layer_kinds: Mapping[tuple[str, str], LatencyKind] | None = None,
                  ) -> dict[str, Figure]:
    """A model's per-layer cycles and MAC/cycle on each device (its latest measurement
    there, whose kind ``layer_kinds`` gives: DWT on silicon, cycle model, Renode estimate),
    its memory against every board's SRAM and model flash region, and its predicted vs
    observed latency on every device."""
    figs: dict[str, Figure] = {}
    cycle_traces, mac_traces = [], []
    shown: list[LatencyKind] = []
    for i, ((device, kernels), rows) in enumerate(sorted(layers.items())):
        kind = (layer_kinds or {}).get((device, kernels)) or latency_kind(
            None, device.split(":", 1)[0])
        name = (f"{device} ({kind.short})" if kernels == "dsp"
                else f"{device} ({kernels} kernels, {kind.short})")
        color = PALETTE[i % len(PALETTE)]
        labels = _layer_labels(rows)
        cycles = np.array([np.nan if r.get("cycles") is None else float(r["cycles"])
                           for r in rows])
        macs = np.array([float(r.get("macs") or 0) for r in rows])
        if np.isnan(cycles).all():
            continue
        shown.append(kind)
        cycle_traces.append({"type": "bar", "name": name, "x": labels,
                             "y": cycles.tolist(), "marker": {"color": color},
                             "hovertemplate": "%{x}: %{y:,.0f} cycles<extra>" + name
                             + "</extra>"})
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where((macs > 0) & (cycles > 0), macs / cycles, np.nan)
        mac_traces.append({"type": "bar", "name": name, "x": labels, "y": rate.tolist(),
                           "marker": {"color": color},
                           "hovertemplate": "%{x}: %{y:.3f} MAC/cycle<extra>" + name
                           + "</extra>"})
    sources = (", ".join(dict.fromkeys(k.short for k in shown)) if shown else "")
    figs["cycles"] = {"data": cycle_traces, "layout": _layout(
        "Cycles per layer (latest measurement on each device"
        + (f"; mixed sources: {sources})" if mixed(shown) else f"; {sources})" if shown
           else ")"), barmode="group",
        xaxis=_axis("", type="category", tickangle=-40, automargin=True),
        yaxis=_axis("cycles"), legend=_TOP_LEGEND)}
    figs["mac_per_cycle"] = {"data": mac_traces, "layout": _layout(
        "MAC/cycle per layer (layers with MACs)", barmode="group",
        xaxis=_axis("", type="category", tickangle=-40, automargin=True),
        yaxis=_axis("MAC / cycle", rangemode="tozero"), legend=_TOP_LEGEND)}
    figs["memory"] = memory_figure(int(analysis["arena_bytes"]), int(analysis["plan_bytes"]))
    figs["latency"] = latency_figure(measured, prediction)
    return figs


def memory_figure(arena_bytes: int, plan_bytes: int) -> Figure:
    """The model's arena against each board's SRAM left for the arena, and its plan against
    each board's model flash region, as % of capacity (100 % is full)."""
    boards = sorted(BOARDS.values(), key=lambda b: b.name)
    names = [b.name for b in boards]
    arena = [100.0 * arena_bytes / b.arena_capacity for b in boards]
    plan = [100.0 * plan_bytes / b.model_region_bytes for b in boards]
    arena_text = [f"{arena_bytes / KIB:,.1f} of {b.arena_capacity / KIB:,.0f} KiB"
                  for b in boards]
    plan_text = [f"{plan_bytes / KIB:,.1f} of {b.model_region_bytes / KIB:,.0f} KiB"
                 for b in boards]
    full = {"type": "line", "xref": "x", "x0": 100, "x1": 100, "yref": "paper", "y0": 0,
            "y1": 1, "line": {"color": "#d62728", "width": 1.5, "dash": "dot"}}
    return {"data": [
        {"type": "bar", "orientation": "h", "name": "arena / SRAM for the arena", "y": names,
         "x": arena, "text": arena_text, "textposition": "auto", "marker": {"color": PALETTE[0]},
         "hovertemplate": "%{y}: arena %{text} (%{x:.1f} %)<extra></extra>"},
        {"type": "bar", "orientation": "h", "name": "plan / model flash region", "y": names,
         "x": plan, "text": plan_text, "textposition": "auto", "marker": {"color": PALETTE[2]},
         "hovertemplate": "%{y}: plan %{text} (%{x:.1f} %)<extra></extra>"},
    ], "layout": _layout("Memory: % of each board's capacity (dotted: full)", barmode="group",
                         xaxis=_axis("% of capacity", rangemode="tozero", ticksuffix=" %"),
                         yaxis=_axis("", automargin=True), shapes=[full],
                         margin={"l": 120, "r": 20, "t": 50, "b": 60})}


def latency_figure(measured: pd.DataFrame, prediction: PredictOut | None) -> Figure:
    """Observed latency (median, whiskers min–max; one trace per kind: measured on silicon,
    cycle model, Renode estimate) and each model's prediction (interval as whiskers) on every
    device class: ``measured`` has columns device_class, latency_ms and optionally
    latency_kind (a key of ``labels.KINDS``; without it, the kind of the device's backend)."""
    devices = sorted(set(measured["device_class"]) | {
        p.device for p in (prediction.predictions if prediction else []) if p.estimates})
    traces: list[dict[str, Any]] = []
    if "latency_kind" in measured:
        kind_keys = measured["latency_kind"]
    else:
        kind_keys = measured["device_class"].map(
            lambda d: latency_kind(None, str(d).split(":", 1)[0]).key)
    kinds: list[LatencyKind] = [KINDS[k] for k in KINDS if k in set(kind_keys)]
    for kind in kinds:
        rows = measured[kind_keys == kind.key]
        stats = rows.groupby("device_class")["latency_ms"].agg(["median", "min", "max",
                                                                "count"])
        stats = stats.reindex(devices)
        traces.append({
            "type": "scatter", "mode": "markers", "name": f"{kind.label} (median, min–max)",
            "x": devices, "y": stats["median"].tolist(),
            "error_y": {"type": "data", "symmetric": False,
                        "array": (stats["max"] - stats["median"]).tolist(),
                        "arrayminus": (stats["median"] - stats["min"]).tolist()},
            "customdata": stats["count"].fillna(0).astype(int).tolist(),
            "marker": {"color": "#222" if kind.key == "measured" else "#666", "size": 11,
                       "symbol": "diamond" if kind.key == "measured" else "diamond-open"},
            "hovertemplate": f"%{{x}}: %{{y:.3f}} ms {kind.label} (%{{customdata}} runs; "
                             f"{kind.detail})<extra></extra>"})
    if prediction is not None:
        for fit_kind, name, color in (("ops_line", "op-count line", PALETTE[0]),
                                      ("per_layer", "per-layer model", PALETTE[1])):
            by_device = {p.device: e for p in prediction.predictions for e in p.estimates
                         if e.model == fit_kind}
            if not by_device:
                continue
            y = [by_device[d].latency_ms if d in by_device else None for d in devices]
            hi = [by_device[d].latency_hi_ms - by_device[d].latency_ms if d in by_device
                  else None for d in devices]
            lo = [by_device[d].latency_ms - by_device[d].latency_lo_ms if d in by_device
                  else None for d in devices]
            level = next(iter(by_device.values())).level
            traces.append({
                "type": "scatter", "mode": "markers",
                "name": f"predicted: {name} ({level:.0%} interval)", "x": devices, "y": y,
                "error_y": {"type": "data", "symmetric": False, "array": hi,
                            "arrayminus": lo},
                "marker": {"color": color, "size": 10},
                "hovertemplate": f"%{{x}}: %{{y:.3f}} ms ({name})<extra></extra>"})
    return {"data": traces, "layout": _layout(
        f"Predicted vs {latency_title(kinds) if kinds else 'observed latency'} on every device",
        scattermode="group",
        xaxis=_axis("device class", type="category"),
        yaxis=_axis("latency (ms)", rangemode="tozero"))}
