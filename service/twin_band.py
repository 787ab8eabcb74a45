"""The error band a stored twin measurement, fit or prediction carries, worked out when read.

The band is a property of the board's twin and of where the cycles came from, not of the
report: it is looked up by board and ``cycle_source`` whenever a measurement or fit is served,
so an agent cannot state its own and every stored row shows the band the twin has now. Where a
real board calibrated the twin (``service.calibrations``, the latest for the board and kernel
path), the twin's cycles are also given calibrated (× the calibration's factor), with the
calibration's error as their band, marked calibrated with its date; the cycle model's own
figures keep the validation suite's band (``bench_firmware.backends.virtual.error_band``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bench_firmware.backends.virtual.error_band import CYCLE_MODEL_SOURCE, ErrorBand, band_of
from service.calibrations import CalibrationKey, calibrated_band, latest
from service.db.models import Calibration

_CACHE_KEY = "mcuprof.latest_calibrations"  # Session.info: looked up once per request


def backend_of(device: str) -> str:
    """The backend of a device or device class name (``virtual:nucleo-f446re[:id]``)."""
    return device.split(":", 1)[0]


def board_of(device: str) -> str:
    parts = device.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class TwinView:
    """What a twin figure carries when read: ``band``, the validation suite's band of the
    cycle model's own figure, and the latest ``calibration`` of the board (None: none yet),
    whose error is the band of calibrated figures (``applied``)."""

    band: ErrorBand
    calibration: Calibration | None = None

    @property
    def applied(self) -> ErrorBand:
        """The band of the figure a prediction states: calibrated when calibrated."""
        return calibrated_band(self.calibration) if self.calibration is not None else self.band

    def as_dict(self) -> dict[str, Any]:
        out = self.band.as_dict()
        if self.calibration is not None:
            cal = calibrated_band(self.calibration)
            out |= {"calibration_id": self.calibration.id,
                    "calibrated_at": self.calibration.created_at,
                    "calibrated_error_pct": cal.pct, "calibrated_label": cal.label,
                    "calibrated_basis": cal.basis}
        return out


def calibrations(session: Session | None) -> Mapping[CalibrationKey, Calibration]:
    """The latest calibration of every (board, kernels), once per session (a request); read
    it, do not change it (it is the session's cached lookup, asked for on every row)."""
    if session is None:
        return {}
    cached = session.info.get(_CACHE_KEY)
    if cached is None:
        cached = session.info[_CACHE_KEY] = latest(session)
    return cached  # type: ignore[no-any-return]


def forget_calibrations(session: Session) -> None:
    """Drop the session's cached lookup (after storing a calibration in it)."""
    session.info.pop(_CACHE_KEY, None)


def twin_view(session: Session | None, board: str, cycle_source: str | None, device: str,
              kernels: str) -> TwinView | None:
    """The band (and calibration) of a twin figure; None for silicon, Renode, unknown
    sources and boards without a stated band."""
    band = band_of(board, cycle_source, backend_of(device))
    if band is None:
        return None
    return TwinView(band, calibrations(session).get((board, kernels)))


def measurement_band(board: str, cycle_source: str | None, device: str) -> ErrorBand | None:
    """The validation suite's band of one measurement (no calibration looked up): a virtual
    twin's cycle-model cycles carry their board's band; silicon, Renode and unknown sources
    carry none."""
    return band_of(board, cycle_source, backend_of(device))


def device_class_view(session: Session | None, device_class: str,
                      kernels: str) -> TwinView | None:
    """The view of what a device class measures: its twin's when the class is a virtual board
    (every virtual measurement is cycle-model), else None."""
    return twin_view(session, board_of(device_class), CYCLE_MODEL_SOURCE, device_class,
                     kernels)
