"""Calibrations of twins against their real boards (``mcuprof calibrate``): stored, looked up,
and applied when a twin's measurements, fits and predictions are read.

A calibration uploads the cycles of the same networks on a physical board and on its twin;
the server works out the factor (silicon / twin cycles) and the error of a calibrated figure
itself (``bench_firmware.calibration.summarise``), so what it states follows from what it
stored. The latest calibration of a (board, kernels) applies to every twin measurement of that
board and kernel path, old and new: a calibrated twin's cycles are its cycle-model cycles ×
the factor, marked calibrated, with the calibration's date and error as their band. Entries
of kind "microbenchmark" (one instruction class / memory path each) are stored beside the
networks and state their twin / silicon ratio (``CalibrationOut.bench_ratios``); the factor
and error come from the networks.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench_firmware.backends.registry import parse_device
from bench_firmware.backends.virtual.error_band import NETWORK, ErrorBand
from bench_firmware.calibration import MICROBENCHMARK, NetworkResult, bench_ratios, summarise
from bench_firmware.errors import McuprofError
from profiler_client.schemas import CalibrationIn, CalibrationNetworkIn, CalibrationOut
from service.db.models import Calibration

CalibrationKey = tuple[str, str]  # (board, kernels)


def store(session: Session, body: CalibrationIn) -> Calibration:
    """Store a calibration from a physical board; raises ``McuprofError`` for a device that is
    not one (the message says what to give)."""
    try:
        backend, board, ident = parse_device(body.device)
    except McuprofError as e:
        raise McuprofError(f"{e}; a calibration names the physical board, e.g. "
                           f"pyocd:nucleo-f446re:<probe id>") from e
    if backend != "pyocd" or not ident:
        raise McuprofError(f"a calibration compares a twin with its physical board: device "
                           f"{body.device!r} is not pyocd:<board>:<probe id>")
    summary = summarise([NetworkResult.from_dict(n.model_dump()) for n in body.networks])
    row = Calibration(
        board=board, device=body.device, kernels=body.kernels, firmware_id=body.firmware_id,
        factor=summary.factor, error_pct=summary.error_pct,
        raw_error_pct=summary.raw_error_pct, held_out=summary.held_out,
        op_errors=summary.op_errors, networks=[n.model_dump() for n in body.networks])
    session.add(row)
    session.flush()
    return row


def _results(row: Calibration) -> list[NetworkResult]:
    return [NetworkResult.from_dict(n) for n in row.networks]


def calibration_out(row: Calibration) -> CalibrationOut:
    """The API's view of a stored calibration; microbenchmark ratios are worked out from the
    stored entries (rows from before microbenchmarks have none)."""
    return CalibrationOut(
        id=row.id, board=row.board, device=row.device, kernels=row.kernels,
        firmware_id=row.firmware_id, factor=row.factor, error_pct=row.error_pct,
        raw_error_pct=row.raw_error_pct, held_out=row.held_out,
        op_errors={str(k): float(v) for k, v in row.op_errors.items()},
        networks=[CalibrationNetworkIn.model_validate(n) for n in row.networks],
        created_at=row.created_at, bench_ratios=bench_ratios(_results(row)))


def listed(session: Session, *, board: str | None = None) -> list[Calibration]:
    """Calibrations, newest first."""
    query = select(Calibration).order_by(Calibration.id.desc())
    if board is not None:
        query = query.where(Calibration.board == board)
    return list(session.scalars(query))


def latest(session: Session, boards: Iterable[str] | None = None
           ) -> dict[CalibrationKey, Calibration]:
    """The latest calibration of each (board, kernels), optionally only of ``boards``."""
    newest = select(func.max(Calibration.id)).group_by(Calibration.board, Calibration.kernels)
    if boards is not None:
        newest = newest.where(Calibration.board.in_(list(boards)))
    rows = session.scalars(select(Calibration).where(Calibration.id.in_(newest)))
    return {(row.board, row.kernels): row for row in rows}


def calibrated_band(row: Calibration) -> ErrorBand:
    """The band a calibrated twin states: the calibration's own error, its date and device."""
    when = row.created_at.strftime("%Y-%m-%d")
    networks = (sum(1 for n in _results(row) if n.kind != MICROBENCHMARK)
                or len(row.networks))
    held = (f"leave-one-out over {networks} networks" if row.held_out
            else "on its one network, not held out")
    return ErrorBand(
        board=row.board, workload=NETWORK, pct=row.error_pct, lo_pct=-row.error_pct,
        hi_pct=row.error_pct, calibrated=when,
        basis=(f"calibration {row.id} against {row.device} on {when}: twin cycles x "
               f"{row.factor:.4f}, error {held}; uncalibrated twin erred up to "
               f"{row.raw_error_pct:g} %"))
