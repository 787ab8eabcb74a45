"""How far a virtual twin's cycle count may be from what the real board does: its error band.

Every twin measurement carries one (``mcuprof run``, the API, the fits, the dashboard:
"cycle model, ±N % vs silicon"). The band is stated per board and workload class; the one
class stated so far is ``int8-network`` (an int8 network run by the firmware, weights in
flash: what jobs and ``mcuprof run`` measure). Other code is not given a band: the validation
suite checks it only as ratios (wait states against 0 WS), which bound no absolute error.

Where a band comes from (:class:`Evidence`, one per board, every number with its source):

1. **An independent check against silicon** (issue #10, run outside the repository): the
   twins ran int8 networks built on SMLAD kernels (CMSIS-NN 2020 with the TFLite Micro
   interpreter of that time, GCC 12, mcuprof's board set-up) whose real-board latencies are
   published, and were compared with those latencies. F446RE, F746ZG and F767ZI twins landed
   within 13 % of silicon on every network tried; the L4R5ZI twin ran the MLPerf Tiny
   reference networks 1.2-1.5x faster than a real NUCLEO-L4R5ZI, i.e. at 1/1.5 to 1/1.2 of
   the silicon latency.
2. **How much the cycle model changed since that check** on network-like code, from the
   validation suite's before/after tables (``benchmarks/twin_fidelity.py``, results in
   ``benchmarks/results/twin_fidelity_{before,after}.txt``: the ``mac_flash`` workload, SMLAD
   dot products with the weights in flash, at the board's own wait states and accelerator
   settings) and, where both were measured, the MLPerf Tiny networks with the same kernels
   before and after the model change (``benchmarks/results/mlperf_tiny_before.jsonl`` against
   ``mlperf_tiny_before_current_model.jsonl``). The flash-model change (RM0390 §3.4.2 ART
   rules on the F4; RM0432 §3.2 / §3.3.4 64-bit reads per data-cache row on the L4+) left the
   Cortex-M7 twins unchanged.
3. **The band** composes the two as worst cases, since the sign of the check's error per
   network is not known: twin/silicon after the change = (1 + check error) x (1 + shift), at
   the extremes of both ranges; the band is the larger magnitude, rounded up to a whole
   percent. It is symmetric for display ("±N %"); ``lo_pct`` / ``hi_pct`` keep the composed
   range (a negative value: the twin is faster than silicon).

A board calibrated against its real board (``mcuprof calibrate``) replaces this with the
calibration's own error; that lives with the calibration records, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

NETWORK = "int8-network"
WORKLOAD_CLASSES = (NETWORK,)
CYCLE_MODEL_SOURCE = "cycle-model"  # bench_firmware.runner.CYCLE_SOURCES["virtual"]

_CHECK_F4_F7 = ("independent check (issue #10): int8 SMLAD networks (CMSIS-NN 2020 + TFLite "
                "Micro) on the twin vs published silicon latencies, within 13 %")
_CHECK_L4 = ("independent check (issue #10): MLPerf Tiny reference networks (CMSIS-NN 2020 + "
             "TFLite Micro) ran 1.2-1.5x faster on the twin than on a NUCLEO-L4R5ZI")


@dataclass(frozen=True)
class Evidence:
    """What one board's band is derived from: the twin/silicon error range of the independent
    check (fractions, negative = the twin is faster) and the range of the cycle model's change
    since then on network-like code (fractions of the old cycle count)."""

    check_lo: float
    check_hi: float
    check: str
    shift_lo: float
    shift_hi: float
    shift: str

    def composed(self) -> tuple[float, float]:
        """The twin/silicon error range now: (1 + check) x (1 + shift) − 1 is increasing in
        both, so its extremes are at the extremes of both ranges."""
        return ((1.0 + self.check_lo) * (1.0 + self.shift_lo) - 1.0,
                (1.0 + self.check_hi) * (1.0 + self.shift_hi) - 1.0)

    def band_pct(self) -> int:
        """The symmetric band in whole percent, rounded up."""
        lo, hi = self.composed()
        # round() first: 13.000000000000002 is 13, not 14.
        return math.ceil(round(100.0 * max(abs(lo), abs(hi)), 6))


# Shift figures: cycles at the board's settings after / before the flash-model change, − 1.
EVIDENCE: dict[str, Evidence] = {
    "nucleo-f446re": Evidence(
        check_lo=-0.13, check_hi=0.13, check=_CHECK_F4_F7,
        # twin_fidelity mac_flash, ART on, 5 WS: 201,115 -> 168,330 cycles (the ART model now
        # streams and caches what the core waited for, RM0390 §3.4.2).
        shift_lo=-0.1630, shift_hi=-0.1630,
        shift="twin-fidelity suite, mac_flash at 5 WS: -16.3 % since the check"),
    "nucleo-l4r5zi": Evidence(
        check_lo=1.0 / 1.5 - 1.0, check_hi=1.0 / 1.2 - 1.0, check=_CHECK_L4,
        # twin_fidelity mac_flash, ART on, 5 WS: 166,262 -> 188,954 cycles (+13.65 %); MLPerf
        # Tiny networks +14.8 % (ic) to +25.5 % (vww): 32-byte data rows now cost four 64-bit
        # reads x wait states (RM0432 §3.2, §3.3.4).
        shift_lo=0.1365, shift_hi=0.2553,
        shift="twin-fidelity suite mac_flash +13.7 %, MLPerf Tiny networks +14.8 to +25.5 % "
              "since the check"),
    "nucleo-f746zg": Evidence(
        check_lo=-0.13, check_hi=0.13, check=_CHECK_F4_F7, shift_lo=0.0, shift_hi=0.0,
        shift="twin-fidelity suite and MLPerf Tiny networks: unchanged since the check"),
    "nucleo-f767zi": Evidence(
        check_lo=-0.13, check_hi=0.13, check=_CHECK_F4_F7, shift_lo=0.0, shift_hi=0.0,
        shift="twin-fidelity suite: unchanged since the check"),
}


@dataclass(frozen=True)
class ErrorBand:
    """A twin's stated error against silicon for one workload class: ``pct`` is the symmetric
    band ("±pct %"), ``lo_pct`` / ``hi_pct`` the range it was rounded from (twin/silicon − 1,
    in percent), ``basis`` where it comes from. ``calibrated`` names the calibration it came
    from (its date), when a real board calibrated this twin."""

    board: str
    workload: str
    pct: float
    lo_pct: float
    hi_pct: float
    basis: str
    calibrated: str | None = None

    @property
    def label(self) -> str:
        """``cycle model, ±28 % vs silicon`` (or ``calibrated cycle model, ...``)."""
        what = "calibrated cycle model" if self.calibrated else "cycle model"
        return f"{what}, ±{self.pct:g} % vs silicon"

    def interval(self, value: float) -> tuple[float, float]:
        """The range a silicon figure may lie in, given the twin's ``value``: the twin's value
        is within ±pct % of silicon, so silicon is within value / (1 ± pct/100)."""
        f = self.pct / 100.0
        return (value / (1.0 + f), value / (1.0 - f) if f < 1.0 else math.inf)

    def as_dict(self) -> dict[str, Any]:
        return {"error_band_pct": self.pct, "error_band_basis": self.basis,
                "error_band_label": self.label}


def _basis(evidence: Evidence) -> str:
    return f"{evidence.check}; {evidence.shift}"


BANDS: dict[tuple[str, str], ErrorBand] = {
    (board, NETWORK): ErrorBand(
        board=board, workload=NETWORK, pct=float(ev.band_pct()),
        lo_pct=round(100.0 * ev.composed()[0], 1), hi_pct=round(100.0 * ev.composed()[1], 1),
        basis=_basis(ev))
    for board, ev in EVIDENCE.items()
}


def error_band(board: str, workload: str = NETWORK) -> ErrorBand | None:
    """The stated band of ``board``'s twin for ``workload``, or None where none is stated."""
    return BANDS.get((board, workload))


def band_of(board: str, cycle_source: str | None, backend: str | None = None,
            workload: str = NETWORK) -> ErrorBand | None:
    """The band of a measurement: only cycle-model cycles (a virtual twin) carry one; silicon
    (DWT CYCCNT), Renode's estimates and unknown sources do not."""
    if cycle_source != CYCLE_MODEL_SOURCE or backend not in (None, "virtual"):
        return None
    return error_band(board, workload)


__all__ = ["BANDS", "CYCLE_MODEL_SOURCE", "EVIDENCE", "NETWORK", "WORKLOAD_CLASSES", "ErrorBand",
           "Evidence", "band_of", "error_band"]
