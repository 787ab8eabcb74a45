"""What a job costs on its board, checked when it is submitted.

A job's warm-up and timed runs go to the board in one ``infer`` command, which the board (or
its twin) runs under a budget; a job that cannot finish inside it would only fail there, after
taking the board's time. So submit estimates it first and refuses it with the numbers and the
largest ``--runs`` that fits.
"""

from __future__ import annotations

import math

from bench_firmware.backends.registry import DeviceClass
from bench_firmware.boards import get_board
from service.db.models import Model
from service.queue import InvalidRequestError

# Board cycles per MAC at least, where a device has no latency fit yet: the submit-time cost
# check must not refuse work a board could do, so these are floors. Measured on the F446
# twin (2026-12): kws_tiny 5.0 (dsp) / 39 (ref), mobilenet_tiny 6.9 / 39; larger models spend
# less on per-op overhead, so the floors sit well below.
CYCLES_PER_MAC_FLOOR = {"dsp": 2.0, "ref": 10.0}


def run_budget_s(cls: DeviceClass, *, physical_run_s: float) -> tuple[float, str] | None:
    """The board time one job's runs (one ``infer`` command) may take on ``cls``, and where
    that limit comes from; None for the host build (no clock, no limit)."""
    if cls.backend == "host":
        return None
    if cls.backend == "virtual":
        # Imported here: it loads the emulator, which the API needs only for this figure.
        from bench_firmware.backends.virtual.backend import (
            DEFAULT_BUDGET_S,
            DEFAULT_WALL_BUDGET_S,
            MIN_EMULATED_HZ,
            twin_budget_s,
        )

        return twin_budget_s(get_board(cls.board)), (
            f"the virtual board's budget: {DEFAULT_BUDGET_S:g} s of board time or "
            f"{DEFAULT_WALL_BUDGET_S:g} s of host time at {MIN_EMULATED_HZ / 1e6:g} M "
            f"emulated cycles/s")
    return physical_run_s, (f"MCUPROF_PHYSICAL_RUN_SECONDS={physical_run_s:g} for "
                            f"{cls.backend} boards")


def check_cost(model: Model, cls: DeviceClass, *, runs: int, warmup: int, kernels: str,
               latency_ms: float | None, physical_run_s: float) -> None:
    """Refuses (:class:`InvalidRequestError`) a job whose warm-up and timed runs would take
    longer than the board's budget: ``latency_ms`` is the device's predicted latency (from
    its fit), else a floor of :data:`CYCLES_PER_MAC_FLOOR` cycles per MAC at the board clock."""
    budget = run_budget_s(cls, physical_run_s=physical_run_s)
    if budget is None:
        return
    budget_s, why = budget
    board = get_board(cls.board)
    if latency_ms is not None:
        run_s, source = latency_ms / 1e3, f"the {cls.name} latency fit"
    else:
        per_mac = CYCLES_PER_MAC_FLOOR.get(kernels, min(CYCLES_PER_MAC_FLOOR.values()))
        macs = int(model.analysis.get("macs") or 0)
        run_s = macs * per_mac / board.clock_hz
        source = (f"at least {per_mac:g} cycles per MAC x {macs:,} MACs at "
                  f"{board.clock_mhz:g} MHz; no latency fit for {cls.name} yet")
    estimate_s = (warmup + runs) * run_s
    if estimate_s <= budget_s:
        return
    most = math.floor(budget_s / run_s) - warmup if run_s > 0 else runs
    advice = (f"ask for at most {most} runs (--runs {most})" if most >= 1 else
              "even one run exceeds it: profile a smaller model or use a faster board")
    raise InvalidRequestError(
        f"{runs} runs + {warmup} warm-up of model {model.id} on {cls.name} would take about "
        f"{estimate_s:,.1f} s of board time ({run_s * 1e3:,.2f} ms per run, {source}), over "
        f"the {budget_s:,.1f} s one job may take there ({why}); {advice}")
