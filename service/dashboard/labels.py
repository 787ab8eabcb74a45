"""What the dashboard calls a latency and an energy, from where each number came from.

A latency is *measured* only when a physical board's DWT cycle counter counted it
(``cycle_source`` ``dwt-cyccnt`` on a ``pyocd`` board); the virtual twins' latency comes from
their cycle model and Renode's from its instruction count, and the dashboard says so
wherever it labels a latency, with the twin's stated error band against silicon ("cycle model,
±13 % vs silicon": ``bench_firmware.backends.virtual.error_band``). Energy is *measured* only
by an energy monitor (X-NUCLEO-LPM01A); otherwise it is modeled as the board's active power ×
latency. A figure or table that mixes kinds says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bench_firmware.backends.virtual.error_band import ErrorBand
from service.twin_band import board_of, measurement_band

MEASURED_CYCLE_SOURCE = "dwt-cyccnt"  # bench_firmware.runner.CYCLE_SOURCES["pyocd"]
MEASURING_BACKEND = "pyocd"


@dataclass(frozen=True)
class LatencyKind:
    """One provenance of a latency: ``label`` names the number (``measured latency``),
    ``short`` tags a value in a table, ``detail`` says where it came from."""

    key: str
    label: str
    short: str
    detail: str


MEASURED = LatencyKind("measured", "measured latency", "measured",
                       "DWT CYCCNT on the physical board")
CYCLE_MODEL = LatencyKind("cycle-model", "cycle-model latency", "cycle model",
                          "the virtual twin's cycle model, not silicon")
RENODE = LatencyKind("renode-estimate", "Renode-estimated latency", "Renode estimate",
                     "Renode's instruction counts, not silicon")
UNKNOWN = LatencyKind("unknown", "latency of unstated source", "source unknown",
                      "no cycle source was reported")
KINDS = {k.key: k for k in (MEASURED, CYCLE_MODEL, RENODE, UNKNOWN)}
MODELED_SOURCES = {"cycle-model": CYCLE_MODEL, "renode-estimate": RENODE}  # cycle_source →


def latency_kind(cycle_source: str | None, backend: str | None = None) -> LatencyKind:
    """The kind of a latency from its measurement's ``cycle_source`` and the device's backend
    (``<backend>:<board>...``): measured only for DWT cycles on a pyocd board; a virtual or
    Renode board's latency is never called measured, whatever its source says."""
    if backend == "virtual":
        return CYCLE_MODEL
    if backend == "renode":
        return RENODE
    if cycle_source == MEASURED_CYCLE_SOURCE:
        return MEASURED if backend in (None, MEASURING_BACKEND) else UNKNOWN
    return MODELED_SOURCES.get(cycle_source or "", UNKNOWN)


def backend_of(device: str) -> str:
    """The backend of a device or device class name."""
    return device.split(":", 1)[0]


def kind_of(cycle_source: str | None, device: str) -> LatencyKind:
    return latency_kind(cycle_source, backend_of(device))


def error_band(cycle_source: str | None, device: str) -> ErrorBand | None:
    """The twin's error band of a latency from ``device`` (a device or device class name):
    cycle-model latencies of a virtual board carry their board's band, others none."""
    return measurement_band(board_of(device), cycle_source, device)


def latency_title(kinds: Iterable[LatencyKind]) -> str:
    """A label for latencies of these kinds: ``cycle-model latency``, or, when they mix,
    ``latency (mixed: measured and cycle-model)``."""
    found = sorted({k.key: k for k in kinds}.values(), key=lambda k: list(KINDS).index(k.key))
    if not found:
        return "latency"
    if len(found) == 1:
        return found[0].label
    return "latency (mixed sources: " + ", ".join(k.short for k in found) + ")"


def mixed(kinds: Iterable[LatencyKind]) -> bool:
    return len({k.key for k in kinds}) > 1


def energy_label(energy_source: str | None) -> str:
    """Words for an energy's provenance."""
    if energy_source == "measured":
        return "measured energy (energy monitor)"
    if energy_source == "modeled":
        return "modeled energy (power × time)"
    return "energy of unstated source"
